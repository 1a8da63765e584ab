"""Catalog queries of job control, farm jobs and cost: kept apart from the core catalog, mixed into it.

Every method runs under the catalog's lock and in its transactions, like the core catalog's own.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

SUSPENDED = "SUSPENDED"  # a render state (RenderState.SUSPENDED on the wire): not final, no frames start
JOB_KEY = "job_key"  # settings key holding the farm job key a render was submitted under
FRAME_TIMEOUT = "frame_timeout_s"  # settings key: seconds a frame may run (0 or absent: no limit)


class JobCatalogMixin:
    """Mixed into Catalog (which provides _db, _lock and _transaction)."""

    _db: sqlite3.Connection
    _lock: threading.RLock

    _transaction: Callable[[], Any]  # Catalog's write transaction (a context manager)

    def job_render(self, project: str, shot: str, job_key: str) -> Optional[str]:
        """The render of a shot submitted under a job key, if any (the newest, should there be several)."""
        with self._lock:
            row = self._db.execute(
                "SELECT r.id FROM renders r JOIN shots s ON s.id = r.shot_id JOIN projects p ON p.id = s.project_id"
                " WHERE p.name = ? AND s.name = ? AND r.lane = 'render' AND json_extract(r.settings, '$.job_key') = ?"
                " ORDER BY r.created_at DESC LIMIT 1",
                (project, shot, job_key),
            ).fetchone()
        return row[0] if row else None

    def merge_frames(self, render_id: str, rows: Sequence[Any]) -> Tuple[List[int], List[int], List[int]]:
        """Add a farm task's frames to its job's render: (new frames, failed/cancelled frames run again, frames
        already there and left as they are). A frame number already there with another input is refused."""
        from .catalog import F_CANCELLED, F_FAILED, F_PENDING
        from .errors import InvalidInput

        added, retried, kept = [], [], []
        with self._lock, self._transaction():
            have = {
                r[0]: (r[1], r[2])
                for r in self._db.execute("SELECT frame, input_digest, state FROM frames WHERE render_id = ?",
                                          (render_id,))
            }
            for row in rows:
                if row.frame in have:
                    digest, state = have[row.frame]
                    if digest != row.input_digest:
                        raise InvalidInput(
                            f"frame {row.frame} ({row.input_name or 'input'}) differs from the frame {row.frame} "
                            f"already in render {render_id} of this job; use a new job key for a new plate"
                        )
                    if state in (F_FAILED, F_CANCELLED):
                        self._db.execute(
                            "UPDATE frames SET state = ?, error = '' WHERE render_id = ? AND frame = ?",
                            (F_PENDING, render_id, row.frame),
                        )
                        retried.append(row.frame)
                    else:
                        kept.append(row.frame)
                    continue
                self._db.execute(
                    "INSERT INTO frames (render_id, frame, input_digest, input_name, mask_digest, state)"
                    " VALUES (?,?,?,?,?,?)",
                    (render_id, row.frame, row.input_digest, row.input_name, row.mask_digest, F_PENDING),
                )
                added.append(row.frame)
        return added, retried, kept

    def requeue_frames(self, render_id: str, settings: Optional[Dict[str, Any]] = None) -> List[int]:
        """Failed and cancelled frames back to pending (errors cleared); `settings` replaces the render's."""
        from .catalog import F_CANCELLED, F_FAILED, F_PENDING

        with self._lock, self._transaction():
            frames = [
                r[0]
                for r in self._db.execute(
                    "SELECT frame FROM frames WHERE render_id = ? AND state IN (?, ?) ORDER BY frame",
                    (render_id, F_FAILED, F_CANCELLED),
                )
            ]
            self._db.execute(
                "UPDATE frames SET state = ?, error = '' WHERE render_id = ? AND state IN (?, ?)",
                (F_PENDING, render_id, F_FAILED, F_CANCELLED),
            )
            if settings is not None:
                self._db.execute("UPDATE renders SET settings = ? WHERE id = ?", (json.dumps(settings), render_id))
        return frames

    def set_priority(self, render_id: str, priority: int) -> None:
        """The render's priority setting (reorder); one statement, so a concurrent settings write is not lost."""
        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE renders SET settings = json_set(settings, '$.priority', ?) WHERE id = ?",
                (int(priority), render_id),
            )

    def reopen(self, render_id: str) -> None:
        """A final render with frames to run again goes back to the queue: no error, no finish time."""
        from .catalog import QUEUED

        with self._lock, self._transaction():
            self._db.execute(
                "UPDATE renders SET state = ?, error = '', finished_at = 0 WHERE id = ?", (QUEUED, render_id)
            )

    def shot_stats(self, project: str = "", shot: str = "", projects: Optional[Sequence[str]] = None) -> List[Dict]:
        """Per shot: renders, previews, frames done and failed, device-seconds (failed frames' time included)."""
        from .catalog import F_DONE, F_FAILED

        sql = (
            "SELECT p.name AS project, s.name AS shot,"
            " SUM(r.lane = 'render') AS renders, SUM(r.lane = 'preview') AS previews,"
            " COALESCE(SUM(fd.done), 0) AS frames_done, COALESCE(SUM(fd.failed), 0) AS frames_failed,"
            " COALESCE(SUM(r.compute_seconds), 0) AS device_seconds"
            " FROM renders r JOIN shots s ON s.id = r.shot_id JOIN projects p ON p.id = s.project_id"
            " LEFT JOIN (SELECT render_id, SUM(state = ?) AS done, SUM(state = ? AND error != '') AS failed"
            " FROM frames GROUP BY render_id) fd ON fd.render_id = r.id WHERE 1=1"
        )
        args: List[Any] = [F_DONE, F_FAILED]
        if projects is not None:
            sql += f" AND p.name IN ({','.join('?' * len(projects))})"
            args.extend(projects)
        if project:
            sql += " AND p.name = ?"
            args.append(project)
        if shot:
            sql += " AND s.name = ?"
            args.append(shot)
        sql += " GROUP BY p.name, s.name ORDER BY p.name, s.name"
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    def mark_suspended(self, render_id: str) -> None:
        with self._lock, self._transaction():
            self._db.execute("UPDATE renders SET state = ? WHERE id = ?", (SUSPENDED, render_id))
