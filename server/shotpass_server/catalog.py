"""The sqlite catalog (WAL): projects, shots, renders, their frames and events.

One connection guarded by a lock: the server's writes are small and frequent, and sqlite serialises
writers anyway. Every state change is committed before it is announced, so a SIGKILL loses nothing
that a client was told about.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .catalog_jobs import SUSPENDED as SUSPENDED  # job control's render state, beside the others
from .catalog_jobs import JobCatalogMixin
from .errors import CatalogUnavailable, NotFound

log = logging.getLogger("shotpass.catalog")
PROBE_INTERVAL_S = 1.0  # while the catalog cannot write: how often a test write checks whether it can again
# sqlite's words for "the disk under the catalog failed" (full, I/O error, read-only, gone): not a bug here.
_STORAGE_ERRORS = ("disk", "full", "i/o", "readonly", "read-only", "unable to open")

# Render states (names match the wire contract's RenderState).
QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = "QUEUED", "RUNNING", "FINISHED", "FAILED", "CANCELLED"
FINAL_STATES = (FINISHED, FAILED, CANCELLED)
# Frame states.
F_PENDING, F_RUNNING, F_DONE, F_FAILED, F_CANCELLED = (
    "FRAME_PENDING",
    "FRAME_RUNNING",
    "FRAME_DONE",
    "FRAME_FAILED",
    "FRAME_CANCELLED",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS shots (
  id INTEGER PRIMARY KEY, project_id INTEGER NOT NULL REFERENCES projects(id), name TEXT NOT NULL,
  created_at REAL NOT NULL, UNIQUE(project_id, name));
CREATE TABLE IF NOT EXISTS renders (
  id TEXT PRIMARY KEY, shot_id INTEGER NOT NULL REFERENCES shots(id), version INTEGER NOT NULL,
  lane TEXT NOT NULL, state TEXT NOT NULL, settings TEXT NOT NULL, parent TEXT, label TEXT NOT NULL DEFAULT '',
  reference_digest TEXT NOT NULL DEFAULT '', scale INTEGER NOT NULL DEFAULT 1,
  created_at REAL NOT NULL, started_at REAL NOT NULL DEFAULT 0, finished_at REAL NOT NULL DEFAULT 0,
  compute_seconds REAL NOT NULL DEFAULT 0, device TEXT NOT NULL DEFAULT '',
  rating INTEGER NOT NULL DEFAULT 0, pinned INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '',
  approved INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '', warnings TEXT NOT NULL DEFAULT '[]',
  owner TEXT NOT NULL DEFAULT '',
  UNIQUE(shot_id, version));
CREATE TABLE IF NOT EXISTS frames (
  render_id TEXT NOT NULL REFERENCES renders(id), frame INTEGER NOT NULL,
  input_digest TEXT NOT NULL, input_name TEXT NOT NULL DEFAULT '', mask_digest TEXT NOT NULL DEFAULT '',
  output_digest TEXT NOT NULL DEFAULT '', output_size INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL, error TEXT NOT NULL DEFAULT '', compute_seconds REAL NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0, finished_at REAL NOT NULL DEFAULT 0, started_at REAL NOT NULL DEFAULT 0,
  PRIMARY KEY (render_id, frame));
CREATE TABLE IF NOT EXISTS events (
  render_id TEXT NOT NULL, seq INTEGER NOT NULL, time REAL NOT NULL, kind TEXT NOT NULL,
  body TEXT NOT NULL, PRIMARY KEY (render_id, seq));
CREATE INDEX IF NOT EXISTS renders_by_state ON renders(state);
CREATE INDEX IF NOT EXISTS renders_by_parent ON renders(parent);
-- Blob access checks (accounts.py) ask "which renders use this digest?".
CREATE INDEX IF NOT EXISTS frames_by_input ON frames(input_digest);
CREATE INDEX IF NOT EXISTS frames_by_output ON frames(output_digest);
CREATE INDEX IF NOT EXISTS frames_by_mask ON frames(mask_digest);
CREATE INDEX IF NOT EXISTS renders_by_reference ON renders(reference_digest);
-- Per-render quality checks (temporal/qc.py): the summary as JSON, and one row per measured frame pair.
CREATE TABLE IF NOT EXISTS render_qc (
  render_id TEXT PRIMARY KEY REFERENCES renders(id), summary TEXT NOT NULL, computed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS qc_pairs (
  render_id TEXT NOT NULL REFERENCES renders(id), frame_a INTEGER NOT NULL, frame_b INTEGER NOT NULL,
  source_error REAL NOT NULL, output_error REAL NOT NULL, ratio REAL NOT NULL, trusted REAL NOT NULL,
  PRIMARY KEY (render_id, frame_b));
-- One row the catalog rewrites to find out whether it can write again after a storage failure.
CREATE TABLE IF NOT EXISTS write_probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""

# Columns added after the first release: (table, column, declaration). Older catalogs get them on open.
MIGRATIONS = (
    ("renders", "owner", "TEXT NOT NULL DEFAULT ''"),
    ("frames", "started_at", "REAL NOT NULL DEFAULT 0"),
    # Counters kept with each frame change, so per-frame bookkeeping never re-reads a render's frames.
    ("renders", "frames_total", "INTEGER NOT NULL DEFAULT 0"),
    ("renders", "frames_done", "INTEGER NOT NULL DEFAULT 0"),
)
# Filled in when a migration adds the column (older catalogs), by column.
BACKFILLS = {
    "frames_total": "UPDATE renders SET frames_total = (SELECT COUNT(*) FROM frames f WHERE f.render_id = renders.id)",
    "frames_done": "UPDATE renders SET frames_done ="
                   " (SELECT COUNT(*) FROM frames f WHERE f.render_id = renders.id AND f.state = 'FRAME_DONE')",
}
# Indexes on migrated columns: created after the migration, or an old catalog would fail to open.
LATE_INDEXES = """
CREATE INDEX IF NOT EXISTS renders_by_owner ON renders(owner, state);
-- The scheduler asks for a render's next pending frames, and whether any are left, at every chunk.
CREATE INDEX IF NOT EXISTS frames_by_state ON frames(render_id, state, frame);
"""
FRAME_COLUMNS = (
    "frame, input_digest, input_name, mask_digest, output_digest, output_size, state, error,"
    " compute_seconds, attempts, finished_at, started_at"
)


@dataclass
class FrameRow:
    frame: int
    input_digest: str
    input_name: str = ""
    mask_digest: str = ""
    output_digest: str = ""
    output_size: int = 0
    state: str = F_PENDING
    error: str = ""
    compute_seconds: float = 0.0
    attempts: int = 0
    finished_at: float = 0.0
    started_at: float = 0.0  # when the frame last went to a worker (unix seconds)


@dataclass
class RenderRow:
    id: str
    project: str
    shot: str
    version: int
    lane: str
    state: str
    settings: Dict[str, Any]
    parent: Optional[str]
    label: str
    reference_digest: str
    scale: int
    created_at: float
    started_at: float
    finished_at: float
    compute_seconds: float
    device: str
    rating: int
    pinned: bool
    note: str
    approved: bool
    error: str
    warnings: List[str]
    owner: str = ""  # the submitting user's name; "" on a single-user server
    frames_total: int = 0
    frames_done: int = 0
    # All frames, or the page asked for (get_render), or none (with_frames=False, list_renders).
    frames: List[FrameRow] = field(default_factory=list)
    children: List[str] = field(default_factory=list)
    qc: Optional[Dict[str, Any]] = None  # temporal/qc.py RenderQc.as_dict(), once measured


@dataclass
class EventRow:
    render_id: str
    seq: int
    time: float
    kind: str
    body: Dict[str, Any]


class Catalog(JobCatalogMixin):
    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._writable = threading.Event()
        self._writable.set()
        self.write_error = ""  # why the catalog cannot write, while it cannot
        # Called with True/False when writing stops or starts working again (the server's health follows it).
        self.on_writable: Callable[[bool], None] = lambda writable: None
        self._closed = False
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._migrate()

    def _migrate(self) -> None:
        for table, column, declaration in MIGRATIONS:
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                if column in BACKFILLS:
                    self._db.execute(BACKFILLS[column])
        self._db.executescript(LATE_INDEXES)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    # ------------------------------------------------------------------ storage failures

    @property
    def writable(self) -> bool:
        return self._writable.is_set()

    def wait_writable(self, timeout: float) -> bool:
        return self._writable.wait(timeout)

    def _storage_failed(self, err: sqlite3.Error) -> CatalogUnavailable:
        if self._writable.is_set():
            self.write_error = str(err)
            self._writable.clear()
            log.error("the catalog cannot write (%s): new work waits until it can; checking every %g s",
                      err, PROBE_INTERVAL_S)
            threading.Thread(target=self._probe_until_writable, name="shotpass-catalog-probe", daemon=True).start()
            self.on_writable(False)
        return CatalogUnavailable(
            f"the server cannot write its catalog ({err}): its disk is full or failing; nothing was recorded. "
            "Try again once the server's admin has freed space (health shows NOT_SERVING until then)"
        )

    def _probe_until_writable(self) -> None:
        while not self._closed:
            time.sleep(PROBE_INTERVAL_S)
            try:
                with self._lock, self._transaction():
                    if self._closed:
                        return
                    self._db.execute("INSERT OR REPLACE INTO write_probe (id, at) VALUES (1, ?)", (time.time(),))
            except (CatalogUnavailable, sqlite3.Error):
                continue
            log.warning("the catalog can write again; work resumes")
            self.write_error = ""
            self._writable.set()
            self.on_writable(True)
            return

    # ------------------------------------------------------------------ writes

    def create_render(
        self,
        project: str,
        shot: str,
        lane: str,
        settings: Dict[str, Any],
        frames: Iterable[FrameRow],
        parent: Optional[str],
        label: str,
        reference_digest: str,
        scale: int,
        warnings: List[str],
        owner: str = "",
    ) -> str:
        now = time.time()
        render_id = "r-" + uuid.uuid4().hex[:12]
        frames = list(frames)
        with self._lock, self._transaction():
            shot_id = self._shot_id(project, shot, now)
            row = self._db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM renders WHERE shot_id = ?", (shot_id,)
            ).fetchone()
            self._db.execute(
                "INSERT INTO renders (id, shot_id, version, lane, state, settings, parent, label,"
                " reference_digest, scale, created_at, warnings, owner, frames_total)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    render_id, shot_id, row[0], lane, QUEUED, json.dumps(settings), parent, label,
                    reference_digest, scale, now, json.dumps(warnings), owner, len(frames),
                ),
            )
            self._db.executemany(
                "INSERT INTO frames (render_id, frame, input_digest, input_name, mask_digest, state)"
                " VALUES (?,?,?,?,?,?)",
                [(render_id, f.frame, f.input_digest, f.input_name, f.mask_digest, F_PENDING) for f in frames],
            )
        return render_id

    def set_render_state(self, render_id: str, state: str, error: str = "", device: str = "") -> None:
        now = time.time()
        with self._lock, self._transaction():
            if state == RUNNING:
                self._db.execute(
                    "UPDATE renders SET state = ?, device = ?,"
                    " started_at = CASE WHEN started_at = 0 THEN ? ELSE started_at END WHERE id = ?",
                    (state, device, now, render_id),
                )
            elif state in FINAL_STATES:
                self._db.execute(
                    "UPDATE renders SET state = ?, error = ?, finished_at = ? WHERE id = ?",
                    (state, error, now, render_id),
                )
                # Frames that never ran are marked, so no one mistakes them for pending work.
                self._db.execute(
                    "UPDATE frames SET state = ? WHERE render_id = ? AND state IN (?, ?)",
                    (F_CANCELLED if state == CANCELLED else F_FAILED if state == FAILED else F_PENDING,
                     render_id, F_PENDING, F_RUNNING),
                )
            else:
                self._db.execute("UPDATE renders SET state = ? WHERE id = ?", (state, render_id))

    def frame_started(self, render_id: str, frame: int) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE frames SET state = ?, attempts = attempts + 1, started_at = ?"
                " WHERE render_id = ? AND frame = ?",
                (F_RUNNING, time.time(), render_id, frame),
            )

    def frame_done(self, render_id: str, frame: int, digest: str, size: int, seconds: float) -> int:
        """Record a finished frame; returns the render's finished frames so far."""
        with self._lock, self._transaction():
            was = self._db.execute(
                "SELECT state FROM frames WHERE render_id = ? AND frame = ?", (render_id, frame)
            ).fetchone()
            self._db.execute(
                "UPDATE frames SET state = ?, output_digest = ?, output_size = ?, compute_seconds = ?,"
                " error = '', finished_at = ? WHERE render_id = ? AND frame = ?",
                (F_DONE, digest, size, seconds, time.time(), render_id, frame),
            )
            newly = int(was is not None and was[0] != F_DONE)
            self._db.execute(
                "UPDATE renders SET compute_seconds = compute_seconds + ?, frames_done = frames_done + ? WHERE id = ?",
                (seconds, newly, render_id),
            )
            return int(self._db.execute("SELECT frames_done FROM renders WHERE id = ?", (render_id,)).fetchone()[0])

    def frame_failed(self, render_id: str, frame: int, error: str, seconds: float, state: str = F_FAILED) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE frames SET state = ?, error = ?, compute_seconds = compute_seconds + ?"
                " WHERE render_id = ? AND frame = ?",
                (state, error, seconds, render_id, frame),
            )
            self._db.execute(
                "UPDATE renders SET compute_seconds = compute_seconds + ? WHERE id = ?", (seconds, render_id)
            )

    def reset_frame(self, render_id: str, frame: int) -> None:
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE frames SET state = ? WHERE render_id = ? AND frame = ?", (F_PENDING, render_id, frame)
            )

    def review(self, render_id: str, **changes: Any) -> None:
        allowed = {"rating", "pinned", "note", "approved"}
        sets = {k: v for k, v in changes.items() if k in allowed and v is not None}
        if not sets:
            return
        with self._lock, self._transaction():
            self._require(render_id)
            cols = ", ".join(f"{k} = ?" for k in sets)
            self._db.execute(f"UPDATE renders SET {cols} WHERE id = ?", (*sets.values(), render_id))

    def add_event(self, render_id: str, kind: str, body: Dict[str, Any]) -> EventRow:
        now = time.time()
        with self._lock, self._transaction():
            seq = self._db.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE render_id = ?", (render_id,)
            ).fetchone()[0]
            self._db.execute(
                "INSERT INTO events (render_id, seq, time, kind, body) VALUES (?,?,?,?,?)",
                (render_id, seq, now, kind, json.dumps(body)),
            )
        return EventRow(render_id, seq, now, kind, body)

    def resume_interrupted(self) -> List[str]:
        """After a restart: frames caught mid-run go back to pending; unfinished renders are returned."""
        with self._lock, self._transaction():
            self._db.execute("UPDATE frames SET state = ? WHERE state = ?", (F_PENDING, F_RUNNING))
            rows = self._db.execute(
                "SELECT id FROM renders WHERE state IN (?, ?) ORDER BY created_at", (QUEUED, RUNNING)
            ).fetchall()
            self._db.execute("UPDATE renders SET state = ? WHERE state = ?", (QUEUED, RUNNING))
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ reads

    def get_render(
        self, render_id: str, with_frames: bool = True, frames_after: Optional[int] = None,
        frame_limit: Optional[int] = None,
    ) -> RenderRow:
        """The render; its frames (all, or at most `frame_limit` of those numbered above `frames_after`)."""
        with self._lock:
            row = self._require(render_id)
            render = self._render_from_row(row)
            if with_frames:
                render.frames = self.frames(render_id, frames_after, frame_limit)
            render.children = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM renders WHERE parent = ? ORDER BY created_at", (render_id,)
                )
            ]
            render.qc = self.qc(render_id, with_pairs=with_frames)
        return render

    def frames(self, render_id: str, after: Optional[int] = None, limit: Optional[int] = None) -> List[FrameRow]:
        sql = f"SELECT {FRAME_COLUMNS} FROM frames WHERE render_id = ?"
        args: List[Any] = [render_id]
        if after is not None:
            sql += " AND frame > ?"
            args.append(after)
        sql += " ORDER BY frame"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return [FrameRow(**dict(r)) for r in rows]

    def frames_numbered(self, render_id: str, numbers: Sequence[int]) -> List[FrameRow]:
        """The render's frames with these numbers (one chunk), by primary key: cost independent of the render's size."""
        if not numbers:
            return []
        with self._lock:
            rows = self._db.execute(
                f"SELECT {FRAME_COLUMNS} FROM frames WHERE render_id = ? AND frame IN ({','.join('?' * len(numbers))})"
                " ORDER BY frame",
                (render_id, *numbers),
            ).fetchall()
        return [FrameRow(**dict(r)) for r in rows]

    def pending_frames(self, render_id: str, limit: Optional[int]) -> List[int]:
        """The first `limit` (None: all) pending frame numbers (index frames_by_state: no scan of finished frames)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT frame FROM frames WHERE render_id = ? AND state = ? ORDER BY frame LIMIT ?",
                (render_id, F_PENDING, -1 if limit is None else limit),
            ).fetchall()
        return [r[0] for r in rows]

    def has_frames_in_state(self, render_id: str, state: str) -> bool:
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM frames WHERE render_id = ? AND state = ? LIMIT 1", (render_id, state)
            ).fetchone() is not None

    def failed_frames(self, render_id: str) -> Tuple[int, Optional[FrameRow]]:
        """(how many frames failed, the first of them)."""
        with self._lock:
            count = self._db.execute(
                "SELECT COUNT(*) FROM frames WHERE render_id = ? AND state = ?", (render_id, F_FAILED)
            ).fetchone()[0]
            first = self._db.execute(
                f"SELECT {FRAME_COLUMNS} FROM frames WHERE render_id = ? AND state = ? ORDER BY frame LIMIT 1",
                (render_id, F_FAILED),
            ).fetchone()
        return int(count), FrameRow(**dict(first)) if first else None

    def first_done_frame(self, render_id: str) -> Optional[int]:
        """The number of the render's first finished frame (None when none): a version's thumbnail."""
        with self._lock:
            row = self._db.execute(
                "SELECT frame FROM frames WHERE render_id = ? AND state = ? ORDER BY frame LIMIT 1",
                (render_id, F_DONE),
            ).fetchone()
        return None if row is None else int(row[0])

    def first_output(self, render_id: str) -> str:
        """The output digest of the render's first finished frame ("" when none)."""
        with self._lock:
            row = self._db.execute(
                "SELECT output_digest FROM frames WHERE render_id = ? AND state = ? ORDER BY frame LIMIT 1",
                (render_id, F_DONE),
            ).fetchone()
        return row[0] if row else ""

    def list_renders(
        self, project: str = "", shot: str = "", limit: int = 200, projects: Optional[Sequence[str]] = None
    ) -> List[RenderRow]:
        """Newest first, without frames; `projects` (when given) limits the answer to those projects (the caller's)."""
        sql = _RENDER_SELECT + " WHERE 1=1"
        args: List[Any] = []
        if projects is not None:
            sql += f" AND p.name IN ({','.join('?' * len(projects))})"
            args.extend(projects)
        if project:
            sql += " AND p.name = ?"
            args.append(project)
        if shot:
            sql += " AND s.name = ?"
            args.append(shot)
        sql += " ORDER BY r.created_at DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
            renders = [self._render_from_row(r) for r in rows]
            for render in renders:
                render.qc = self.qc(render.id, with_pairs=False)
        return renders

    def events_after(self, render_id: str, after: int) -> List[EventRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT render_id, seq, time, kind, body FROM events WHERE render_id = ? AND seq > ? ORDER BY seq",
                (render_id, after),
            ).fetchall()
        return [EventRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def device_seconds_since(self, since: float) -> List[Tuple[str, float, float]]:
        """(owner, compute seconds, finished at) of every frame that finished or failed after `since`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT r.owner, f.compute_seconds, f.finished_at FROM frames f JOIN renders r ON r.id = f.render_id"
                " WHERE f.finished_at >= ? AND f.compute_seconds > 0",
                (since,),
            ).fetchall()
        return [(row[0], float(row[1]), float(row[2])) for row in rows]

    def shots(self, projects: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
        """Every shot (of `projects`, when given) with its render count and its newest render's time."""
        sql = (
            "SELECT p.name AS project, s.name AS shot, COUNT(r.id) AS renders, COALESCE(MAX(r.created_at), 0)"
            " AS latest, COALESCE(SUM(r.approved), 0) AS approved FROM shots s JOIN projects p ON p.id = s.project_id"
            " LEFT JOIN renders r ON r.shot_id = s.id"
        )
        args: List[Any] = []
        if projects is not None:
            sql += f" WHERE p.name IN ({','.join('?' * len(projects))})"
            args.extend(projects)
        with self._lock:
            rows = self._db.execute(sql + " GROUP BY s.id ORDER BY p.name, s.name", args).fetchall()
        return [dict(r) for r in rows]

    def device_seconds(self, projects: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
        """Device-seconds spent per (project, shot, user), with render and finished-frame counts."""
        sql = (
            "SELECT p.name AS project, s.name AS shot, r.owner AS user, SUM(r.compute_seconds) AS seconds,"
            " COUNT(r.id) AS renders, SUM((SELECT COUNT(*) FROM frames f WHERE f.render_id = r.id AND f.state = ?))"
            " AS frames FROM renders r JOIN shots s ON s.id = r.shot_id JOIN projects p ON p.id = s.project_id"
        )
        args: List[Any] = [F_DONE]
        if projects is not None:
            sql += f" WHERE p.name IN ({','.join('?' * len(projects))})"
            args.extend(projects)
        with self._lock:
            rows = self._db.execute(sql + " GROUP BY p.name, s.name, r.owner ORDER BY p.name, s.name", args)
            return [dict(r) for r in rows.fetchall()]

    def render_ids_in_state(self, *states: str) -> List[str]:
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(
                f"SELECT id FROM renders WHERE state IN ({marks}) ORDER BY created_at", states
            ).fetchall()
        return [r[0] for r in rows]

    def owner_load(self, owner: str) -> Tuple[int, int]:
        """(renders waiting or running, frames not yet finished in them) of one user: the per-user quotas.

        Previews are left out, as they are of the global queue bound: one frame each, and never kept waiting.
        """
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(DISTINCT r.id), COUNT(f.frame) FROM renders r"
                " LEFT JOIN frames f ON f.render_id = r.id AND f.state IN (?, ?)"
                " WHERE r.owner = ? AND r.lane != 'preview' AND r.state IN (?, ?)",
                (F_PENDING, F_RUNNING, owner, QUEUED, RUNNING),
            ).fetchone()
        return int(row[0]), int(row[1])

    def reset_running_frames(self, render_ids: Iterable[str], frames: Optional[Sequence[int]] = None) -> int:
        """Frames of these renders caught mid-run (only `frames`, when given) go back to pending: a shutdown that
        could not wait for them, or a chunk the catalog could not record."""
        ids = list(render_ids)
        if not ids:
            return 0
        sql = f"UPDATE frames SET state = ? WHERE state = ? AND render_id IN ({','.join('?' * len(ids))})"
        args: List[Any] = [F_PENDING, F_RUNNING, *ids]
        if frames is not None:
            sql += f" AND frame IN ({','.join('?' * len(frames))})"
            args.extend(frames)
        with self._lock, self._transaction():
            cur = self._db.execute(sql, args)
        return cur.rowcount

    # ------------------------------------------------------------------ quality checks

    def set_qc(self, render_id: str, summary: Dict[str, Any]) -> None:
        """Store a render's QC (replacing an earlier one): the pairs in their table, the rest as JSON."""
        pairs = summary.get("pairs", [])
        rest = {k: v for k, v in summary.items() if k != "pairs"}
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM qc_pairs WHERE render_id = ?", (render_id,))
            self._db.execute(
                "INSERT OR REPLACE INTO render_qc (render_id, summary, computed_at) VALUES (?, ?, ?)",
                (render_id, json.dumps(rest), time.time()),
            )
            self._db.executemany(
                "INSERT INTO qc_pairs (render_id, frame_a, frame_b, source_error, output_error, ratio, trusted)"
                " VALUES (?,?,?,?,?,?,?)",
                [(render_id, p["frame_a"], p["frame_b"], p["source_error"], p["output_error"], p["ratio"],
                  p["trusted"]) for p in pairs],
            )

    def qc(self, render_id: str, with_pairs: bool = True) -> Optional[Dict[str, Any]]:
        with self._lock:
            row = self._db.execute("SELECT summary FROM render_qc WHERE render_id = ?", (render_id,)).fetchone()
            if row is None:
                return None
            summary = json.loads(row[0])
            summary["pairs"] = [] if not with_pairs else [
                dict(r) for r in self._db.execute(
                    "SELECT frame_a, frame_b, source_error, output_error, ratio, trusted FROM qc_pairs"
                    " WHERE render_id = ? ORDER BY frame_b", (render_id,))
            ]
        return summary

    # ------------------------------------------------------------------ helpers

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction; a storage failure becomes CatalogUnavailable (and starts the probe)."""
        try:
            with _Txn(self._db):
                yield
        except sqlite3.OperationalError as err:
            if any(word in str(err).lower() for word in _STORAGE_ERRORS):
                raise self._storage_failed(err) from err
            raise

    def _shot_id(self, project: str, shot: str, now: float) -> int:
        self._db.execute("INSERT OR IGNORE INTO projects (name, created_at) VALUES (?, ?)", (project, now))
        project_id = self._db.execute("SELECT id FROM projects WHERE name = ?", (project,)).fetchone()[0]
        self._db.execute(
            "INSERT OR IGNORE INTO shots (project_id, name, created_at) VALUES (?, ?, ?)", (project_id, shot, now)
        )
        return self._db.execute(
            "SELECT id FROM shots WHERE project_id = ? AND name = ?", (project_id, shot)
        ).fetchone()[0]

    def _require(self, render_id: str) -> sqlite3.Row:
        row = self._db.execute(_RENDER_SELECT + " WHERE r.id = ?", (render_id,)).fetchone()
        if row is None:
            raise NotFound(f"no render {render_id!r} on this server (list them with: shotpass renders)")
        return row

    @staticmethod
    def _render_from_row(row: sqlite3.Row) -> RenderRow:
        d = dict(row)
        d["settings"] = json.loads(d["settings"])
        d["warnings"] = json.loads(d["warnings"])
        d["pinned"] = bool(d["pinned"])
        d["approved"] = bool(d["approved"])
        return RenderRow(**d)

    def referenced_digests(self) -> set[str]:
        """Every blob some render uses or made (inputs, masks, handles, outputs, references), whatever its state:
        blob GC never deletes these."""
        with self._lock:
            rows = self._db.execute(
                "SELECT input_digest FROM frames UNION SELECT mask_digest FROM frames"
                " UNION SELECT output_digest FROM frames UNION SELECT reference_digest FROM renders"
                # A video render's handles (temporal/context.py) live in its settings.
                " UNION SELECT json_extract(c.value, '$.digest') FROM renders, json_each(renders.settings,"
                " '$.context_frames') AS c"
            ).fetchall()
        return {r[0] for r in rows if r[0]}


_RENDER_SELECT = (
    "SELECT r.id, p.name AS project, s.name AS shot, r.version, r.lane, r.state, r.settings, r.parent, r.label,"
    " r.reference_digest, r.scale, r.created_at, r.started_at, r.finished_at, r.compute_seconds, r.device,"
    " r.rating, r.pinned, r.note, r.approved, r.error, r.warnings, r.owner, r.frames_total, r.frames_done"
    " FROM renders r JOIN shots s ON s.id = r.shot_id JOIN projects p ON p.id = s.project_id"
)


class _Txn:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (autocommit connection)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except sqlite3.Error:
                self._rollback()  # a failed COMMIT (disk full) leaves the transaction open
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self._db.in_transaction:  # sqlite may have rolled back by itself after an I/O error
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
