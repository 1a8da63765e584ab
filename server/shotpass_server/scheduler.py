"""Lanes, chunks, fair share and workers.

Work is handed out one chunk (a few contiguous pending frames of one render) at a time, so a preview
submitted while a long render runs starts after the chunk in flight, not after the whole render.
A free worker takes its next chunk from the render that ranks first by:
  1. lane: previews before renders — except that after PREVIEW_BURST preview chunks in a row, a waiting
     render gets the next chunk, so a steady stream of previews cannot starve renders;
  2. fair share between users: fewest chunks in flight, then fewest device-seconds used recently (halved every
     USAGE_HALF_LIFE_S), so one user's long render delays another user's start by at most the chunk in flight;
  3. the render's priority (higher first), then submission order.
Cancellation is cooperative: a flag the running model sees at its next step. Shutdown is graceful: no new
chunks start, the running ones get a grace period, then they are cancelled the same way and their frames go
back to pending, so the next start resumes them (finished frames are kept).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Set, Tuple, TypeVar

from . import catalog as cat
from .errors import CatalogUnavailable, RenderCancelled, ShotpassError

_T = TypeVar("_T")

log = logging.getLogger("shotpass.scheduler")

LANES = ("preview", "render")
USAGE_HALF_LIFE_S = 600.0  # how fast a user's past device time stops counting against them
PREVIEW_BURST = 4  # preview chunks handed out in a row before a waiting render gets one
HALT_WAIT_S = 10.0  # after the grace: how long a cancelled step gets to reach its next cancellation point


@dataclass
class _Entry:
    """A render with frames not yet handed to a worker."""

    lane_rank: int
    neg_priority: int
    order: int
    render_id: str
    owner: str


class _Usage:
    """Device-seconds per user, decaying exponentially: recent use counts, last week's does not."""

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self._used: Dict[str, Tuple[float, float]] = {}  # owner -> (seconds, as of monotonic time)

    def seed(self, catalog: cat.Catalog) -> None:
        """Recent use from the catalog, so a restart does not wipe the record of who just used the devices."""
        wall, now = time.time(), time.monotonic()
        for owner, seconds, finished_at in catalog.device_seconds_since(wall - 8 * self.half_life):
            self.add(owner, seconds * 0.5 ** (max(0.0, wall - finished_at) / self.half_life), now)

    def add(self, owner: str, seconds: float, now: float) -> None:
        self._used[owner] = (self.get(owner, now) + seconds, now)

    def get(self, owner: str, now: float) -> float:
        seconds, at = self._used.get(owner, (0.0, now))
        return seconds * 0.5 ** ((now - at) / self.half_life)


class Scheduler:
    """Owns the queue and the worker threads; `run_chunk` does the actual frame work."""

    # Renders whose frames depend on each other (temporal renders): given (render id, a reader of ALL its pending
    # frames, frames in flight, chunk size), the frames to start now in their order ([] = wait for the ones in
    # flight), or None for a render whose frames are independent (their pending frames are then never all read).
    plan_chunk: Callable[[str, Callable[[], List[int]], Set[int], int], Optional[List[int]]] = staticmethod(
        lambda render_id, pending, reserved, limit: None
    )
    # Runs once a render's last frame is done, before it is announced FINISHED (the per-render QC).
    before_finish: Callable[[str], None] = staticmethod(lambda render_id: None)

    def __init__(
        self,
        catalog: cat.Catalog,
        run_chunk: Callable[[str, List[int], str, Scheduler], None],
        devices: List[str],
        chunk_frames: int = 4,
        on_event: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.catalog = catalog
        self.run_chunk = run_chunk
        self.devices = devices
        self.chunk_frames = max(1, chunk_frames)
        self._queue: Dict[str, _Entry] = {}  # render id -> entry
        self._in_flight: Dict[str, int] = {}  # render id -> chunks running
        self._owner_chunks: Dict[str, int] = {}  # user -> chunks running
        self._usage = _Usage(USAGE_HALF_LIFE_S)
        self._cancelled: Set[str] = set()
        self._suspended: Set[str] = set()  # job control: their frames are not handed out until resumed
        self._order = 0
        self._cv = threading.Condition()
        self._stop = False  # no new chunks (shutting down)
        self._previews_in_row = 0
        self._halting = False  # shutdown grace is over: running steps are cancelled, their frames resume later
        self._threads: List[threading.Thread] = []
        self._started = False
        self._on_event = on_event or (lambda render_id: None)
        self._reserved: Dict[str, Set[int]] = {}  # frames of a render handed to a worker
        self._last_position: Dict[str, int] = {}
        self._finishing: Set[str] = set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._usage.seed(self.catalog)
        for render_id in self.catalog.resume_interrupted():
            self.catalog.add_event(render_id, "RESUMED", {"message": "server restarted; resuming unfinished frames"})
            self.enqueue(render_id)
        with self._cv:
            self._started = True
            for device in self.devices:
                self._start_worker(device)

    def add_device(self, device: str) -> bool:
        """Give the scheduler one more worker slot at runtime (a GPU box joined the Ray cluster).

        ``devices`` is the server's shared list, so GetServerInfo lists the new slot too. Returns False (and
        adds nothing) once the scheduler is stopping, or when the device is already there.
        """
        with self._cv:
            if self._stop or device in self.devices:
                return False
            self.devices.append(device)
            if self._started:  # before start(), start() runs it with the others
                self._start_worker(device)
        log.info("worker %s added", device)
        return True

    def _start_worker(self, device: str) -> None:
        # The caller holds the lock: stop() joins a snapshot of the threads and must not miss one added meanwhile.
        t = threading.Thread(target=self._work, args=(device,), name=f"shotpass-worker-{device}", daemon=True)
        t.start()
        self._threads.append(t)

    @property
    def stopping(self) -> bool:
        return self._stop

    def stop(self, grace: float = 10.0) -> None:
        """Start no new chunks; give the running ones `grace` seconds, then cancel them cooperatively.

        Frames a cancelled step did not finish go back to pending; the render keeps its state, so the next
        start resumes it (catalog.resume_interrupted). Finished frames are kept.
        """
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        deadline = time.monotonic() + max(0.0, grace)
        with self._cv:
            threads = list(self._threads)  # no more are added once _stop is set
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        with self._cv:
            busy = any(n > 0 for n in self._in_flight.values())
        if busy:
            log.warning("shutdown: the running step did not finish within %g s; cancelling it (its unfinished "
                        "frames resume at the next start)", grace)
            self.halt()
            deadline = time.monotonic() + HALT_WAIT_S
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))
        with self._cv:
            unfinished = [rid for rid, n in self._in_flight.items() if n] + list(self._reserved)
        # A model that never reached a cancellation point leaves its frame marked running: it goes back too.
        try:
            self.catalog.reset_running_frames(set(unfinished))
        except CatalogUnavailable:
            log.warning("shutdown: the catalog cannot write; frames left running resume at the next start")

    def halt(self) -> None:
        """Cancel the running steps now (shutdown past its grace): their unfinished frames stay pending."""
        with self._cv:
            self._stop = self._halting = True
            self._cv.notify_all()

    # ------------------------------------------------------------ queue

    def enqueue(self, render_id: str) -> None:
        render = self.catalog.get_render(render_id, with_frames=False)
        with self._cv:
            if render_id in self._queue or render_id in self._suspended:
                return
            self._order += 1
            self._queue[render_id] = _Entry(
                LANES.index(render.lane), -int(render.settings.get("priority", 0)), self._order, render_id, render.owner
            )
            self._cv.notify_all()
        self._announce_positions()

    def position(self, render_id: str) -> int:
        with self._cv:
            for i, e in enumerate(self._ordered()):
                if e.render_id == render_id:
                    return i + 1
        return 0

    def cancel(self, render_id: str) -> None:
        render = self.catalog.get_render(render_id, with_frames=False)
        if render.state in cat.FINAL_STATES:
            return
        with self._cv:
            self._cancelled.add(render_id)
            self._suspended.discard(render_id)
            queued = render_id in self._queue or render.state == cat.SUSPENDED
            waiting = queued and self._in_flight.get(render_id, 0) == 0
            if render_id in self._queue:
                del self._queue[render_id]
        if waiting:
            self._finish(render_id, cat.CANCELLED, "cancelled before it started")

    # ------------------------------------------------------------ job control

    def suspend(self, render_id: str) -> None:
        """No more chunks of this render start; a running frame finishes, then it waits SUSPENDED."""
        with self._cv:
            self._suspended.add(render_id)
            self._queue.pop(render_id, None)
        self._maybe_finish(render_id)

    def resume(self, render_id: str) -> None:
        with self._cv:
            self._suspended.discard(render_id)
        self.enqueue(render_id)

    def set_priority(self, render_id: str, priority: int) -> None:
        """Reorder: a queued render ranks by its new priority from its next chunk on (a chunk in flight runs on).
        Only the priority key moves: the lane and fair share still rank first. A render not in the queue (running
        its last chunk, suspended) takes the priority from the catalog when it is queued again."""
        with self._cv:
            entry = self._queue.get(render_id)
            if entry is not None:
                entry.neg_priority = -int(priority)
                self._cv.notify_all()
        self._announce_positions()

    def is_suspended(self, render_id: str) -> bool:
        return render_id in self._suspended

    def should_stop(self, render_id: str) -> bool:
        """Between frames: stop this render's chunk (cancelled, suspended, or the server is stopping)."""
        return self.is_cancelled(render_id) or render_id in self._suspended

    def is_cancelled(self, render_id: str) -> bool:
        return self._halting or render_id in self._cancelled

    def check_cancel(self, render_id: str) -> None:
        if self._halting:
            raise RenderCancelled(f"render {render_id} was interrupted: the server is shutting down")
        if render_id in self._cancelled:
            raise RenderCancelled(f"render {render_id} was cancelled")

    def queue_depth(self) -> Dict[str, int]:
        with self._cv:
            return {lane: sum(1 for e in self._queue.values() if LANES[e.lane_rank] == lane) for lane in LANES}

    # ------------------------------------------------------------ workers

    def _ordered(self) -> List[_Entry]:
        """Queued renders, best first (the caller holds the lock)."""
        now = time.monotonic()
        render_rank = LANES.index("render")
        renders_waited = self._previews_in_row >= PREVIEW_BURST and any(
            e.lane_rank == render_rank for e in self._queue.values()
        )
        return sorted(
            self._queue.values(),
            key=lambda e: (
                e.lane_rank != render_rank if renders_waited else e.lane_rank,
                self._owner_chunks.get(e.owner, 0),
                self._usage.get(e.owner, now),
                e.neg_priority,
                e.order,
            ),
        )

    def _next(self) -> Optional[Tuple[str, List[int], str]]:
        """Pick the best render and reserve its next chunk of contiguous pending frames."""
        with self._cv:
            while not self._stop:
                for entry in self._ordered():
                    render_id = entry.render_id
                    stopped = render_id in self._cancelled or render_id in self._suspended
                    frames = [] if stopped else self._pending(render_id)
                    if not frames:
                        del self._queue[render_id]
                        if self._in_flight.get(render_id, 0) == 0:
                            return (render_id, [], entry.owner)  # nothing left: finalise it
                        continue
                    planned = self.plan_chunk(render_id, functools.partial(self._pending, render_id, True),
                                              self._reserved.get(render_id, set()), self.chunk_frames)
                    if planned is not None and not planned:
                        continue  # its next frames depend on frames still running
                    chunk = planned or _contiguous_head(frames, self.chunk_frames)
                    if len(chunk) == len(frames):
                        del self._queue[render_id]  # its last frames are handed out
                    self._in_flight[render_id] = self._in_flight.get(render_id, 0) + 1
                    self._owner_chunks[entry.owner] = self._owner_chunks.get(entry.owner, 0) + 1
                    is_preview = entry.lane_rank == LANES.index("preview")
                    self._previews_in_row = self._previews_in_row + 1 if is_preview else 0
                    self._reserved.setdefault(render_id, set()).update(chunk)
                    return (render_id, chunk, entry.owner)
                self._cv.wait(0.5)
        return None

    def _pending(self, render_id: str, every: bool = False) -> List[int]:
        """The render's next pending frames not yet handed out: enough for one chunk plus one, so the caller
        can tell whether these are its last (read by index: cost independent of the render's size); with
        `every`, all of them (a temporal plan orders the whole range)."""
        reserved = self._reserved.get(render_id, set())
        frames = self.catalog.pending_frames(render_id, None if every else self.chunk_frames + len(reserved) + 1)
        return [f for f in frames if f not in reserved]

    def _work(self, device: str) -> None:
        """One device's loop. Nothing ends it but stop(): a catalog that cannot write makes it wait (its
        chunk's frames go back to pending), a failing chunk fails its render."""
        while True:
            try:
                picked = self._until_recorded(self._next)
                if picked is None:
                    return
                render_id, chunk, owner = picked
                if chunk:
                    self._run(render_id, chunk, owner, device)
                self._until_recorded(functools.partial(self._maybe_finish, render_id))
                self._until_recorded(self._announce_positions)  # fair share moved on: waiting renders may move
            except Exception:  # e.g. a catalog read failing on a dying disk: log it, wait, go on
                log.error("worker %s:\n%s", device, traceback.format_exc())
                time.sleep(1.0)

    def _run(self, render_id: str, chunk: List[int], owner: str, device: str) -> None:
        started = time.monotonic()
        try:
            render = self.catalog.get_render(render_id, with_frames=False)
            if render.state == cat.QUEUED:
                self.catalog.set_render_state(render_id, cat.RUNNING, device=device)
                self._event(render_id, "STARTED", {"message": device})
                log.info("render %s started on %s", render_id, device, extra={"render_id": render_id})
            self.run_chunk(render_id, chunk, device, self)
        except CatalogUnavailable:
            # Not the render's fault: its frames caught mid-run go back to pending once the catalog can
            # write, and the render is picked up again from there.
            self._until_recorded(functools.partial(self.catalog.reset_running_frames, [render_id], chunk))
        except Exception as exc:  # a bug or a broken model: fail the render, keep the server up
            log.error("render %s chunk %s failed:\n%s", render_id, chunk, traceback.format_exc(),
                      extra={"render_id": render_id})
            # A user-facing error (e.g. the model became unavailable at a registry reload) is shown as it is.
            message = str(exc) if isinstance(exc, ShotpassError) else f"internal error: {exc}"
            self._until_recorded(functools.partial(self._finish, render_id, cat.FAILED, message))
        finally:
            with self._cv:
                now = time.monotonic()
                self._usage.add(owner, now - started, now)
                self._owner_chunks[owner] -= 1
                # _finish (a failed chunk) may have dropped the count already.
                left = self._in_flight.pop(render_id, 1) - 1
                if left > 0:
                    self._in_flight[render_id] = left
                self._reserved.get(render_id, set()).difference_update(chunk)
                if not self._reserved.get(render_id, True):
                    self._reserved.pop(render_id, None)
                self._cv.notify_all()  # a render waiting on these frames (a temporal one) may go on

    def _until_recorded(self, step: Callable[[], _T]) -> Optional[_T]:
        """Run `step`; while the catalog cannot write, wait until it can and run it again (None: stopping)."""
        while True:
            try:
                return step()
            except CatalogUnavailable:
                while not self.catalog.wait_writable(1.0):
                    if self._stop:
                        return None
                if self._stop:
                    return None

    def _maybe_finish(self, render_id: str) -> None:
        with self._cv:
            if self._in_flight.get(render_id, 0) or render_id in self._queue:
                return
        render = self.catalog.get_render(render_id, with_frames=False)
        if render.state in cat.FINAL_STATES:
            return
        if render_id in self._cancelled:
            self._finish(render_id, cat.CANCELLED, "cancelled")
            return
        pending = self.catalog.has_frames_in_state(render_id, cat.F_PENDING)
        if pending and render_id in self._suspended:
            if render.state != cat.SUSPENDED:
                self.catalog.mark_suspended(render_id)
                self._event(render_id, "SUSPENDED", {"message": "suspended; resume it to go on"})
            return
        if pending:
            if not self._stop:  # shutting down: the next start resumes it
                self.enqueue(render_id)
            return
        failed, first = self.catalog.failed_frames(render_id)
        if first is not None:
            self._finish(
                render_id,
                cat.FAILED,
                f"{failed} of {render.frames_total} frames failed; frame {first.frame}: {first.error}",
            )
        else:
            with self._cv:  # the QC takes a while: a second worker finding the render done must not run it too
                if render_id in self._finishing:
                    return
                self._finishing.add(render_id)
            try:
                self.before_finish(render_id)
                self._finish(render_id, cat.FINISHED, "")
            finally:
                with self._cv:
                    self._finishing.discard(render_id)

    def _finish(self, render_id: str, state: str, message: str) -> None:
        self.catalog.set_render_state(render_id, state, error=message if state != cat.FINISHED else "")
        render = self.catalog.get_render(render_id, with_frames=False)
        self._event(
            render_id,
            "FINISHED",
            {"state": state, "message": message, "frames_done": render.frames_done,
             "frames_total": render.frames_total},
        )
        log.log(logging.WARNING if state == cat.FAILED else logging.INFO, "render %s %s (%d/%d frames)%s", render_id,
                state.lower(), render.frames_done, render.frames_total, f": {message}" if message else "",
                extra={"render_id": render_id})
        with self._cv:
            self._cancelled.discard(render_id)
            self._in_flight.pop(render_id, None)
            self._reserved.pop(render_id, None)
            self._last_position.pop(render_id, None)
        self._announce_positions()

    def _event(self, render_id: str, kind: str, body: dict) -> None:
        self.catalog.add_event(render_id, kind, body)
        self._on_event(render_id)

    def _announce_positions(self) -> None:
        with self._cv:
            waiting = [
                (i + 1, e.render_id)
                for i, e in enumerate(self._ordered())
                if self._in_flight.get(e.render_id, 0) == 0
            ]
        for pos, render_id in waiting:
            last = self._last_position.get(render_id)
            if last != pos:
                self._last_position[render_id] = pos
                self._event(render_id, "QUEUED", {"position": pos})


def _contiguous_head(frames: List[int], limit: int) -> List[int]:
    """The first run of consecutive frame numbers, at most `limit` long."""
    chunk = [frames[0]]
    for f in frames[1:]:
        if len(chunk) >= limit or f != chunk[-1] + 1:
            break
        chunk.append(f)
    return chunk


def wall_clock() -> float:
    return time.perf_counter()
