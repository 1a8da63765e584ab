"""The order a temporal render's frames must run in, fixed at submit and stored with the render's settings.

``flow``: every frame needs the previous frame's stored output, so the range runs in frame order, one chunk
at a time. ``keyframes``: keyframes first (independent of each other, so chunks of them may run side by side),
then the frames between, each from its two neighbouring keyframes' stored outputs. With ``keyframe_refine=flow``
each keyframe is blended with the previous keyframe's stored output, so the keyframes run one after another
like a ``flow`` range. Because every frame reads only *stored* outputs, a render resumed after a restart or
picked up after a cancel gives the same frames as one that ran straight through.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from shotpass_client.patterns import format_frame_list

from ..errors import InvalidInput
from .options import temporal_mode

SETTINGS_KEY = "temporal_plan"
MAX_KEYFRAME_GAP = 99  # frames between two keyframes (or before the first, after the last)


@dataclass
class TemporalPlan:
    # "flow" | "keyframes" | "clip" (a video model: each contiguous run of frames is one clip, never cut into
    # chunks, so its context windows blend across the whole run)
    mode: str
    frames: List[int]  # every frame of the render, sorted
    keyframes: List[int] = field(default_factory=list)  # keyframes mode, sorted
    previews: Dict[int, str] = field(default_factory=dict)  # keyframe -> approved preview output used as it is
    refine: bool = False  # keyframes: each keyframe blended with the previous one carried along the flow

    def stages(self) -> List[Tuple[List[int], bool]]:
        """The frames in the order they may run: (stage, whether its frames run one after another)."""
        if self.mode == "flow":
            return [(self.frames, True)]
        keys = set(self.keyframes)
        return [(self.keyframes, self.refine), ([f for f in self.frames if f not in keys], False)]

    def next_chunk(self, pending: Sequence[int], reserved: Set[int], limit: int) -> List[int]:
        """The next frames to hand to a worker, in order; [] while earlier frames they depend on still run."""
        if self.mode == "clip":
            # The pending frames of one contiguous run of the render's frames: its done frames are read as context
            # (temporal/context.py), so a run with a gap of finished frames is still one clip, run once.
            waiting = set(pending)
            for run in contiguous_runs(self.frames):
                chosen = [f for f in run if f in waiting]
                if chosen:
                    return chosen
            return []
        waiting = set(pending)
        for stage, sequential in self.stages():
            if not any(f in waiting or f in reserved for f in stage):
                continue  # this stage is done (or failed): the next one may start
            if sequential and any(f in reserved for f in stage):
                return []
            return [f for f in stage if f in waiting][:limit]
        return []

    def previous(self, frame: int) -> Optional[int]:
        i = bisect.bisect_left(self.frames, frame)
        return self.frames[i - 1] if i > 0 else None

    def is_keyframe(self, frame: int) -> bool:
        return self.mode == "keyframes" and frame in set(self.keyframes)

    def previous_keyframe(self, frame: int) -> Optional[int]:
        i = bisect.bisect_left(self.keyframes, frame)
        return self.keyframes[i - 1] if i > 0 else None

    def neighbours(self, frame: int) -> Tuple[Optional[int], Optional[int]]:
        """The keyframes before and after a propagated frame (None past either end)."""
        i = bisect.bisect_left(self.keyframes, frame)
        before = self.keyframes[i - 1] if i > 0 else None
        after = self.keyframes[i] if i < len(self.keyframes) else None
        return before, after

    def to_settings(self) -> Dict[str, Any]:
        previews = {str(k): v for k, v in self.previews.items()}
        out: Dict[str, Any] = {"mode": self.mode, "keyframes": self.keyframes, "previews": previews}
        if self.refine:
            out["refine"] = True
        return out

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], frames: Sequence[int]) -> Optional[TemporalPlan]:
        raw = settings.get(SETTINGS_KEY)
        if not raw:
            return None
        return cls(raw["mode"], sorted(frames), list(raw.get("keyframes", [])),
                   {int(k): v for k, v in dict(raw.get("previews", {})).items()}, bool(raw.get("refine", False)))


def _keyframes(text: str, ordered: Sequence[int]) -> Set[int]:
    """The keyframes a client listed, each one a frame of the render. Ranges are matched against the render's
    frames, never expanded on their own: ``1-999999999`` is refused, not allocated."""
    inside = set(ordered)
    keys: Set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.match(r"^(-?\d+)(?:-(-?\d+))?(?:x(\d+))?$", part)
        if not m:
            raise InvalidInput(f"option keyframes={text!r}: {part!r} is not a frame or a range (1001, 1001-1100x8)")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        step = int(m.group(3) or 1)
        if last < first or step < 1:
            raise InvalidInput(f"option keyframes: {part!r}: the last frame is before the first, or the step is 0")
        named = (last - first) // step + 1
        found = {f for f in ordered if first <= f <= last and (f - first) % step == 0}
        if len(found) != named:
            missing = [f for f in range(first, last + 1, step) if f not in inside][:20] if named <= 100_000 else []
            which = f"frame(s) {format_frame_list(missing)}" if missing else f"{part!r}"
            raise InvalidInput(
                f"option keyframes: {which} are not frames of this render ({format_frame_list(ordered)}); "
                "give keyframes inside the range"
            )
        keys |= found
    if not keys:
        raise InvalidInput(f"option keyframes={text!r} names no frame")
    return keys


def clip_plan(frames: Sequence[int]) -> Optional[TemporalPlan]:
    return TemporalPlan("clip", sorted(frames)) if len(frames) > 1 else None


def contiguous_runs(ordered: Sequence[int]) -> List[List[int]]:
    """Consecutive frame numbers grouped: [1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]."""
    runs: List[List[int]] = []
    for f in ordered:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


def make_plan(options: Mapping[str, Any], frames: Sequence[int], previews: Mapping[int, str]) -> Optional[TemporalPlan]:
    """The plan of a render with these options, or None when it runs frame by frame (off, or one frame)."""
    mode = temporal_mode(dict(options))
    ordered = sorted(frames)
    if mode == "off" or len(ordered) < 2:
        return None
    if mode == "flow":
        return TemporalPlan("flow", ordered)
    inside = set(ordered)
    text = str(options.get("keyframes", "")).strip()
    if text:
        keys = _keyframes(text, ordered)
    else:
        every = max(1, int(options.get("keyframe_every", 8)))
        keys = set(ordered[::every]) | {ordered[-1]}
    used = {f: d for f, d in previews.items() if f in inside}
    keys |= set(used)
    _check_gaps(sorted(keys), ordered)
    refine = str(options.get("keyframe_refine", "off")) == "flow"
    return TemporalPlan("keyframes", ordered, sorted(keys), used, refine)


def _check_gaps(keys: Sequence[int], ordered: Sequence[int]) -> None:
    """A propagated frame walks the flow through every frame to its keyframes: keep that walk bounded."""
    positions = [bisect.bisect_left(ordered, k) for k in keys]
    edges = [-1, *positions, len(ordered)]
    for lo, hi in zip(edges, edges[1:]):
        if hi - lo - 1 > MAX_KEYFRAME_GAP:
            first, last = ordered[lo + 1], ordered[hi - 1]
            raise InvalidInput(
                f"option keyframes: frames {first}-{last} are {hi - lo - 1} frames without a keyframe; propagation "
                f"reaches at most {MAX_KEYFRAME_GAP} frames: add keyframes there or use keyframe_every"
            )
