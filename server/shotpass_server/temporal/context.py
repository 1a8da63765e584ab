"""Handles for video models: plate frames read as context around a render's frames, never output.

A video model's frames shape each other (its motion layers see every frame of a context window, and the windows
are laid out from the clip's first frame), so a pickup that re-renders frames 3-6 of a 1-8 shot gives other
frames than the full render did unless it reads 1-2 and 7-8 as well. A render stores such handles with its
settings. Each clip a worker runs is the render's frames extended by every neighbouring frame it can read -- its
handles, and its own frames that are done already -- so a pickup with the full render's handles, and a render
resumed after a restart, run the very clip (and context windows) the whole range ran, and give the same frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Dict, List, Mapping, Sequence, Tuple

from shotpass_client.patterns import format_frame_list

from ..catalog import FrameRow
from ..errors import InvalidInput
from .plan import contiguous_runs

CONTEXT_FRAMES = "context_frames"  # the settings key: [{"frame", "digest", "name"}, ...]
MAX_CONTEXT_FRAMES = 256  # handles per render: more than any motion context window reads


@dataclass
class ContextFrames:
    rows: Dict[int, FrameRow] = field(default_factory=dict)
    sizes: Dict[int, Tuple[int, int]] = field(default_factory=dict)

    def to_settings(self) -> List[Dict[str, Any]]:
        return [{"frame": f, "digest": r.input_digest, "name": r.input_name} for f, r in sorted(self.rows.items())]


def context_rows(settings: Mapping[str, Any]) -> Dict[int, FrameRow]:
    """A render's handles, as frame rows (input only) by frame number."""
    return {
        int(c["frame"]): FrameRow(frame=int(c["frame"]), input_digest=str(c["digest"]), input_name=str(c["name"]))
        for c in settings.get(CONTEXT_FRAMES, ())
    }


def check_context_frames(specs: Sequence[Any], frames: Collection[int]) -> List[Any]:
    """The handles sent with a submit (objects with ``frame`` and ``name``), sorted, once they are known to be
    few, distinct, outside the render's frames and next to them (each reaches a render frame through frames
    that are all handles or render frames)."""
    if len(specs) > MAX_CONTEXT_FRAMES:
        raise InvalidInput(f"at most {MAX_CONTEXT_FRAMES} context frames (handles) per render, not {len(specs)}")
    seen: Dict[int, str] = {}
    for spec in specs:
        if spec.frame in seen:
            raise InvalidInput(f"context frame {spec.frame} is listed twice ({seen[spec.frame]} and {spec.name})")
        if spec.frame in frames:
            raise InvalidInput(f"context frame {spec.frame} ({spec.name}) is also a frame to render; handles are "
                               "the frames around the range, read but not output")
        seen[spec.frame] = spec.name
    runs = contiguous_runs(sorted({*frames, *seen}))
    stranded = [f for run in runs if not any(f in frames for f in run) for f in run]
    if stranded:
        raise InvalidInput(
            f"context frame(s) {format_frame_list(stranded)} are not next to the frames to render "
            f"({format_frame_list(sorted(frames))}); handles extend a range at its head and tail, without gaps"
        )
    return sorted(specs, key=lambda s: s.frame)


def clip_around(chunk: Sequence[int], readable: Collection[int]) -> List[int]:
    """The frames a clip over ``chunk`` reads: the chunk, extended frame by frame outward (and across gaps
    inside it) as long as the next frame is ``readable``."""
    lo, hi = min(chunk), max(chunk)
    while lo - 1 in readable:
        lo -= 1
    while hi + 1 in readable:
        hi += 1
    return sorted(f for f in {*chunk, *readable} if lo <= f <= hi)

