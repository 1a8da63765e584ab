"""Job control a farm user expects: suspend, resume, requeue failed frames, per-frame timeouts, and farm job keys
(chunked tasks of one job land in one render, one version of the shot, every frame once)."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from shotpass_client.patterns import format_frame_list

from . import catalog as cat
from .accounts import PermissionDenied
from .catalog_jobs import FRAME_TIMEOUT, JOB_KEY
from .errors import InvalidInput, ShotpassError

if TYPE_CHECKING:
    from .renders import RenderManager

MAX_FRAME_TIMEOUT_S = 7 * 24 * 3600.0
MAX_PRIORITY = 1_000_000
# Settings that may differ between tasks of one job: they steer how frames run, not what they look like (the
# server draws the seed of a task without one; a requeue may have changed the render's frame timeout; farm
# hosts with and without BLAKE3 name outputs in different digests).
_PER_TASK = ("priority", "seed", FRAME_TIMEOUT, "digest_algorithm")


class FrameTimedOut(ShotpassError):
    """A frame ran past its render's per-frame timeout: the frame fails with this reason."""


def check_frame_timeout(seconds: float, field: str = "frame_timeout_seconds") -> None:
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_FRAME_TIMEOUT_S:
        raise InvalidInput(f"{field} {seconds}: give 0 (no limit) up to {MAX_FRAME_TIMEOUT_S:g} seconds")


def check_priority(priority: int, field: str = "priority") -> None:
    if not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidInput(f"{field} {priority}: give -{MAX_PRIORITY} up to {MAX_PRIORITY} (higher runs first)")


def frame_timeout(settings: Dict[str, Any]) -> float:
    return float(settings.get(FRAME_TIMEOUT, 0) or 0)


def timed_out(frame: int, seconds: float, limit: float) -> Optional[str]:
    """The failure reason of a frame that ran `seconds` under a `limit` (0: none), or None."""
    if limit > 0 and seconds > limit:
        return f"frame {frame} timed out: it ran {seconds:.3g} s, past the render's frame timeout of {limit:g} s"
    return None


class JobControl:
    def __init__(self, manager: RenderManager) -> None:
        self.m = manager
        self._merge_lock = threading.Lock()  # find-or-create of a job's render: concurrent tasks make one render

    # ------------------------------------------------------------ suspend / resume / requeue

    def _render(self, render_id: str, action: str) -> cat.RenderRow:
        render = self.m.catalog.get_render(render_id, with_frames=False)
        if render.lane != "render":
            raise InvalidInput(f"render {render_id} is a preview (one frame): {action} works on renders; cancel it")
        return render

    def suspend(self, render_id: str) -> None:
        render = self._render(render_id, "suspend")
        if render.state in cat.FINAL_STATES:
            raise InvalidInput(f"render {render_id} is {render.state.lower()}: only a queued or running render can "
                               "be suspended")
        self.m.scheduler.suspend(render_id)

    def resume(self, render_id: str) -> None:
        render = self._render(render_id, "resume")
        if render.state != cat.SUSPENDED:
            if self.m.scheduler.is_suspended(render_id):  # suspended while its last frame still runs
                self.m.scheduler.resume(render_id)
                return
            raise InvalidInput(f"render {render_id} is {render.state.lower()}, not suspended; nothing to resume")
        self.m.catalog.set_render_state(render_id, cat.QUEUED)
        self.m.add_event(render_id, "RESUMED", {"message": "resumed"})
        self.m.scheduler.resume(render_id)

    def set_priority(self, render_id: str, priority: int, cap: Optional[int]) -> None:
        """Reorder a render not yet final. Raising above the caller's cap (None: none) is refused, not lowered as
        at submit: the caller asked for a place in the queue, and a silent other place would mislead them."""
        check_priority(priority)
        render = self.m.catalog.get_render(render_id, with_frames=False)
        if render.state in cat.FINAL_STATES:
            raise InvalidInput(f"render {render_id} is {render.state.lower()}: only a queued, running or suspended "
                               "render can be reordered")
        if cap is not None and priority > cap and priority > int(render.settings.get("priority", 0)):
            raise PermissionDenied(
                f"priority {priority} is above {cap}, the most {render.owner or 'this user'} may ask for (the "
                f"server's admin sets it: shotpass users set {render.owner or 'NAME'} --max-priority N)"
            )
        self.m.catalog.set_priority(render_id, priority)
        self.m.scheduler.set_priority(render_id, priority)

    def requeue(self, render_id: str, new_timeout: Optional[float] = None) -> List[int]:
        render = self._render(render_id, "requeue")
        settings = None
        if new_timeout is not None:
            check_frame_timeout(new_timeout)
            settings = dict(render.settings, **{FRAME_TIMEOUT: new_timeout})
        frames = self.m.catalog.requeue_frames(render_id, settings)
        if not frames:
            raise InvalidInput(f"render {render_id} has no failed or cancelled frames to requeue "
                               f"({render.state.lower()})")
        self._reopen(render_id, f"frames {format_frame_list(frames)} requeued")
        return frames

    def _reopen(self, render_id: str, message: str) -> None:
        """After frames went back to pending: a final render runs again; a suspended one stays suspended.

        The state is read after the frames were committed as pending: from then on the scheduler cannot finish
        the render, so one that finished just before is seen final here and reopened."""
        state = self.m.catalog.get_render(render_id, with_frames=False).state
        if state in cat.FINAL_STATES:
            self.m.catalog.reopen(render_id)
        self.m.add_event(render_id, "REQUEUED", {"message": message})
        if state != cat.SUSPENDED:
            self.m.scheduler.enqueue(render_id)

    # ------------------------------------------------------------ farm job keys

    def submit_to_job(
        self,
        job_key: str,
        project: str,
        shot: str,
        settings: Dict[str, Any],
        seed_set: bool,
        rows: Sequence[cat.FrameRow],
        create: Any,
    ) -> Tuple[str, List[str]]:
        """The job's render for this shot (created by `create()` on the first task) with these frames in it.

        Returns (render id, notes for the caller). Frames already finished are not rendered again; failed ones
        (a farm retry) run again.
        """
        with self._merge_lock:
            render_id = self.m.catalog.job_render(project, shot, job_key)
            if render_id is None:
                return create(), []
            render = self.m.catalog.get_render(render_id, with_frames=False)
            if render.state == cat.CANCELLED:
                raise InvalidInput(f"render {render_id} of job {job_key!r} was cancelled; submit under a new job key")
            _check_same_settings(job_key, render, settings, seed_set)
            added, retried, kept = self.m.catalog.merge_frames(render_id, rows)
        notes = []
        if kept:
            notes.append(f"job {job_key!r}: frames {format_frame_list(kept)} are already in render {render_id}; "
                         "not rendered again")
        if added or retried:
            self._reopen(render_id, f"job {job_key!r}: frames {format_frame_list(added + retried)} added")
        return render_id, notes


def _check_same_settings(job_key: str, render: cat.RenderRow, settings: Dict[str, Any], seed_set: bool) -> None:
    ignore = set(_PER_TASK) | {JOB_KEY}
    if seed_set:
        ignore.discard("seed")
    theirs = {k: v for k, v in render.settings.items() if k not in ignore}
    ours = {k: v for k, v in settings.items() if k not in ignore}
    differ = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
    if differ:
        raise InvalidInput(
            f"job {job_key!r} already has render {render.id} of shot {render.shot} with other settings "
            f"({', '.join(differ)}); submit tasks of one job with the same settings, or use a new job key"
        )
