"""Lanes, chunks and workers.

Work is handed out one chunk (a few contiguous pending frames of one render) at a time, so a preview
submitted while a long render runs starts after the chunk in flight, not after the whole render.
The preview lane always goes first; inside a lane, higher priority first, then submission order.
Cancellation is cooperative: a flag the running model sees at its next step.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set

from . import catalog as cat
from .errors import RenderCancelled

log = logging.getLogger("shotpass.scheduler")

LANES = ("preview", "render")


@dataclass(order=True)
class _Entry:
    lane_rank: int
    neg_priority: int
    order: int
    render_id: str = field(compare=False)


class Scheduler:
    """Owns the queue and the worker threads; `run_chunk` does the actual frame work."""

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
        self._queue: List[_Entry] = []
        self._queued: Set[str] = set()
        self._in_flight: Dict[str, int] = {}  # render id -> chunks running
        self._cancelled: Set[str] = set()
        self._order = 0
        self._cv = threading.Condition()
        self._stop = False
        self._threads: List[threading.Thread] = []
        self._on_event = on_event or (lambda render_id: None)
        self._reserved: Dict[str, Set[int]] = {}  # frames of a render handed to a worker
        self._last_position: Dict[str, int] = {}

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for render_id in self.catalog.resume_interrupted():
            self.catalog.add_event(render_id, "RESUMED", {"message": "server restarted; resuming unfinished frames"})
            self.enqueue(render_id)
        for device in self.devices:
            t = threading.Thread(target=self._work, args=(device,), name=f"shotpass-worker-{device}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout)

    # ------------------------------------------------------------ queue

    def enqueue(self, render_id: str) -> None:
        render = self.catalog.get_render(render_id, with_frames=False)
        with self._cv:
            if render_id in self._queued:
                return
            self._order += 1
            entry = _Entry(LANES.index(render.lane), -int(render.settings.get("priority", 0)), self._order, render_id)
            self._queue.append(entry)
            self._queue.sort()
            self._queued.add(render_id)
            self._cv.notify_all()
        self._announce_positions()

    def position(self, render_id: str) -> int:
        with self._cv:
            for i, e in enumerate(self._queue):
                if e.render_id == render_id:
                    return i + 1
        return 0

    def cancel(self, render_id: str) -> None:
        render = self.catalog.get_render(render_id, with_frames=False)
        if render.state in cat.FINAL_STATES:
            return
        with self._cv:
            self._cancelled.add(render_id)
            waiting = render_id in self._queued and self._in_flight.get(render_id, 0) == 0
            if waiting:
                self._queue = [e for e in self._queue if e.render_id != render_id]
                self._queued.discard(render_id)
        if waiting:
            self._finish(render_id, cat.CANCELLED, "cancelled before it started")

    def is_cancelled(self, render_id: str) -> bool:
        return render_id in self._cancelled

    def check_cancel(self, render_id: str) -> None:
        if render_id in self._cancelled:
            raise RenderCancelled(f"render {render_id} was cancelled")

    def queue_depth(self) -> Dict[str, int]:
        with self._cv:
            return {lane: sum(1 for e in self._queue if LANES[e.lane_rank] == lane) for lane in LANES}

    # ------------------------------------------------------------ workers

    def _next(self) -> Optional[tuple]:
        """Pop the best render and reserve its next chunk of contiguous pending frames."""
        with self._cv:
            while not self._stop:
                while self._queue:
                    entry = self._queue.pop(0)
                    self._queued.discard(entry.render_id)
                    cancelled = entry.render_id in self._cancelled
                    frames = [] if cancelled else self._pending(entry.render_id)
                    if not frames:
                        if self._in_flight.get(entry.render_id, 0) == 0:
                            return (entry.render_id, [])  # nothing left: finalise it
                        continue
                    chunk = _contiguous_head(frames, self.chunk_frames)
                    self._in_flight[entry.render_id] = self._in_flight.get(entry.render_id, 0) + 1
                    if len(frames) > len(chunk):
                        # Its remaining frames go back in line behind the chunk.
                        self._order += 1
                        self._queue.append(_Entry(entry.lane_rank, entry.neg_priority, entry.order, entry.render_id))
                        self._queue.sort()
                        self._queued.add(entry.render_id)
                    self._reserved.setdefault(entry.render_id, set()).update(chunk)
                    return (entry.render_id, chunk)
                self._cv.wait(0.5)
        return None

    def _pending(self, render_id: str) -> List[int]:
        reserved = self._reserved.get(render_id, set())
        return [
            f.frame for f in self.catalog.frames(render_id) if f.state == cat.F_PENDING and f.frame not in reserved
        ]

    def _work(self, device: str) -> None:
        while True:
            picked = self._next()
            if picked is None:
                return
            render_id, chunk = picked
            if not chunk:
                self._maybe_finish(render_id)
                continue
            try:
                render = self.catalog.get_render(render_id, with_frames=False)
                if render.state == cat.QUEUED:
                    self.catalog.set_render_state(render_id, cat.RUNNING, device=device)
                    self._event(render_id, "STARTED", {"message": device})
                self.run_chunk(render_id, chunk, device, self)
            except Exception as exc:  # a bug or a broken model: fail the render, keep the server up
                log.error("render %s chunk %s failed:\n%s", render_id, chunk, traceback.format_exc())
                self._finish(render_id, cat.FAILED, f"internal error: {exc}")
            finally:
                with self._cv:
                    self._in_flight[render_id] -= 1
                    self._reserved.get(render_id, set()).difference_update(chunk)
                self._maybe_finish(render_id)

    def _maybe_finish(self, render_id: str) -> None:
        with self._cv:
            if self._in_flight.get(render_id, 0) or render_id in self._queued:
                return
        render = self.catalog.get_render(render_id)
        if render.state in cat.FINAL_STATES:
            return
        if render_id in self._cancelled:
            self._finish(render_id, cat.CANCELLED, "cancelled")
            return
        if any(f.state == cat.F_PENDING for f in render.frames):
            self.enqueue(render_id)
            return
        failed = [f for f in render.frames if f.state == cat.F_FAILED]
        if failed:
            first = failed[0]
            self._finish(
                render_id,
                cat.FAILED,
                f"{len(failed)} of {len(render.frames)} frames failed; frame {first.frame}: {first.error}",
            )
        else:
            self._finish(render_id, cat.FINISHED, "")

    def _finish(self, render_id: str, state: str, message: str) -> None:
        self.catalog.set_render_state(render_id, state, error=message if state != cat.FINISHED else "")
        render = self.catalog.get_render(render_id)
        self._event(
            render_id,
            "FINISHED",
            {"state": state, "message": message, "frames_done": render.frames_done, "frames_total": len(render.frames)},
        )
        with self._cv:
            self._cancelled.discard(render_id)
            self._in_flight.pop(render_id, None)
            self._reserved.pop(render_id, None)
        self._announce_positions()

    def _event(self, render_id: str, kind: str, body: dict) -> None:
        self.catalog.add_event(render_id, kind, body)
        self._on_event(render_id)

    def _announce_positions(self) -> None:
        with self._cv:
            waiting = [
                (i + 1, e.render_id) for i, e in enumerate(self._queue) if self._in_flight.get(e.render_id, 0) == 0
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
