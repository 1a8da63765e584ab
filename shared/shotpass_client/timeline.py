"""Shots from an edit: the clips of an OpenTimelineIO timeline (.otio, CMX 3600 EDL, ...) that point at EXR plates.

One shot per clip, named from the clip; its frames are the clip's source range plus handles (as far as frames
exist on disk). A clip that cannot be a shot (a gap, missing media, non-EXR media, no frames on disk) is kept in
the plan with the reason, so a batch lists and skips it instead of failing. Needs `opentimelineio`
(`pip install 'shotpass[pipeline]'`), imported only here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote, urlparse

from .patterns import FramePattern, PatternError, format_frame_list

FRAME_TOKEN = re.compile(r"#+|@+|%0?\d*d|\$F\d?")
PIPELINE_EXTRA = "pip install 'shotpass[pipeline]'"


class TimelineError(ValueError):
    """A timeline that cannot be read at all (the file, not one clip)."""


def otio() -> Any:
    try:
        import opentimelineio
    except ImportError:
        raise TimelineError(f"reading an edit needs OpenTimelineIO: {PIPELINE_EXTRA}") from None
    return opentimelineio


@dataclass
class ShotPlan:
    index: int  # position among the timeline's video items, from 1 (stable: conform matches clips by it)
    track: str
    clip: str  # the clip's name in the edit
    shot: str = ""  # shot name (from the clip name; "" for a gap)
    pattern: str = ""  # the plate's frame pattern (####)
    cut: Tuple[int, int] = (0, 0)  # first and last frame number of the cut
    frames: List[int] = field(default_factory=list)  # cut plus available handles
    handles: Tuple[int, int] = (0, 0)  # handle frames found on disk at head and tail
    rate: float = 24.0
    reason: str = ""  # why this item is skipped ("" for a shot)

    @property
    def ok(self) -> bool:
        return not self.reason

    def row(self) -> Dict[str, Any]:
        return {
            "index": self.index, "track": self.track, "clip": self.clip, "shot": self.shot, "plate": self.pattern,
            "cut": list(self.cut) if self.ok else [], "frames": format_frame_list(self.frames) if self.frames else "",
            "frame_count": len(self.frames), "handles": list(self.handles), "reason": self.reason,
        }


def read_timeline(path: str, rate: float = 24.0) -> Any:
    """Any format OTIO's adapters read; an EDL's timecode is read at `rate` frames per second."""
    ot = otio()
    if not os.path.isfile(path):
        raise TimelineError(f"{path}: no such file")
    kwargs = {"rate": rate} if path.lower().endswith(".edl") else {}
    try:
        found = ot.adapters.read_from_file(path, **kwargs)
    except Exception as err:  # adapters raise many types for a bad file; the user needs the file and the reason
        raise TimelineError(f"{path}: not a timeline OpenTimelineIO can read ({type(err).__name__}: {err})") from None
    if isinstance(found, ot.schema.Timeline):
        return found
    timelines = [t for t in getattr(found, "find_children", lambda **_: [])() if isinstance(t, ot.schema.Timeline)]
    if not timelines:
        raise TimelineError(f"{path}: holds no timeline")
    return timelines[0]


def video_items(timeline: Any) -> List[Tuple[str, Any]]:
    """(track name, clip or gap) of every video track, in track then edit order (transitions left out)."""
    ot = otio()
    items = []
    for t, track in enumerate(timeline.video_tracks()):
        name = track.name or f"V{t + 1}"
        for item in track:
            if isinstance(item, (ot.schema.Clip, ot.schema.Gap)):
                items.append((name, item))
    return items


def plan_shots(timeline: Any, handles: int = 0) -> List[ShotPlan]:
    ot = otio()
    plans: List[ShotPlan] = []
    used: Dict[str, int] = {}
    for index, (track, item) in enumerate(video_items(timeline), start=1):
        if isinstance(item, ot.schema.Gap):
            length = item.source_range.duration.to_frames() if item.source_range else 0
            plans.append(ShotPlan(index, track, "", reason=f"gap of {length} frames in the edit (no clip)"))
            continue
        plan = ShotPlan(index, track, item.name or "")
        plan.shot = _unique(shot_name(item.name, index), used)
        _plan_clip(item, plan, handles)
        plans.append(plan)
    return plans


def shot_name(clip_name: str, index: int) -> str:
    """A shot name from a clip name: no slashes or line breaks, spaces as underscores."""
    name = re.sub(r"[\s/\\]+", "_", (clip_name or "").strip()).strip("_.")
    name = name[:-4] if name.lower().endswith(".exr") else name
    return name[:120] or f"clip{index:03d}"


def _unique(name: str, used: Dict[str, int]) -> str:
    """A shot that appears twice in the cut gets _2, _3 ...: each clip is a shot of its own."""
    used[name] = used.get(name, 0) + 1
    return name if used[name] == 1 else f"{name}_{used[name]}"


def clip_pattern(clip: Any) -> Tuple[Optional[FramePattern], str]:
    """The clip's plate as a frame pattern, or (None, why not)."""
    ot = otio()
    ref = clip.media_reference
    if ref is None or isinstance(ref, ot.schema.MissingReference):
        return None, "missing media (the clip has no media reference)"
    if isinstance(ref, ot.schema.ImageSequenceReference):
        base = _local_path(ref.target_url_base)
        pad = max(1, ref.frame_zero_padding)
        text = os.path.join(base, ref.name_prefix) + "#" * pad + ref.name_suffix
    elif isinstance(ref, ot.schema.ExternalReference):
        text = _local_path(ref.target_url)
        if not FRAME_TOKEN.search(os.path.basename(text)):
            kind = os.path.splitext(text)[1].lower() or "a single file"
            if kind != ".exr":
                return None, f"non-EXR media ({kind}: {text}); shotpass renders EXR frame sequences"
            return None, f"a single EXR file, not a frame sequence ({text}); point the clip at name.####.exr"
    else:
        return None, f"unsupported media reference {type(ref).__name__}"
    if not text.lower().endswith(".exr"):
        return None, f"non-EXR media ({os.path.splitext(text)[1] or 'no extension'}: {text}); shotpass renders EXR"
    try:
        return FramePattern.parse(text), ""
    except PatternError as err:
        return None, str(err)


def cut_frames(clip: Any, on_disk: Dict[int, str]) -> Tuple[int, int]:
    """First and last frame number of the clip's source range in its plate's frame numbers."""
    ot = otio()
    ref = clip.media_reference
    source = clip.source_range or clip.available_range()
    count = int(round(source.duration.to_frames()))
    if isinstance(ref, ot.schema.ImageSequenceReference) and ref.available_range is not None:
        first = int(ref.frame_for_time(source.start_time))
    elif ref.available_range is not None and on_disk:
        # Media that knows its own range: the plate's first frame sits at the range's start.
        offset = (source.start_time - ref.available_range.start_time).to_frames()
        first = min(on_disk) + int(round(offset))
    else:
        # An EDL's source timecode counts frames: 00:00:41:17 at 24 fps is frame 1001.
        first = int(round(source.start_time.to_frames()))
    return first, first + count - 1


def _plan_clip(clip: Any, plan: ShotPlan, handles: int) -> None:
    pattern, why = clip_pattern(clip)
    if pattern is None:
        plan.reason = why
        return
    plan.pattern = pattern.hashes()
    try:
        on_disk = pattern.existing()
    except PatternError:
        on_disk = {}
    if not on_disk:
        plan.reason = f"no frames of {plan.pattern} on disk"
        return
    source = clip.source_range or clip.available_range()
    plan.rate = float(source.start_time.rate)
    first, last = cut_frames(clip, on_disk)
    plan.cut = (first, last)
    missing = [f for f in range(first, last + 1) if f not in on_disk]
    if missing:
        plan.reason = (f"frames {format_frame_list(missing)} of the cut are missing on disk ({plan.pattern} has "
                       f"{format_frame_list(on_disk)})")
        return
    head = [f for f in range(first - handles, first) if f in on_disk]
    tail = [f for f in range(last + 1, last + handles + 1) if f in on_disk]
    # Handles stop at the first missing frame: a shot's frames stay one contiguous run.
    head = head[len(head) - _run_back(head, first):] if head else []
    tail = tail[:_run_forward(tail, last)] if tail else []
    plan.handles = (len(head), len(tail))
    plan.frames = head + list(range(first, last + 1)) + tail


def _run_back(frames: List[int], first: int) -> int:
    n = 0
    while n < len(frames) and frames[len(frames) - 1 - n] == first - 1 - n:
        n += 1
    return n


def _run_forward(frames: List[int], last: int) -> int:
    n = 0
    while n < len(frames) and frames[n] == last + 1 + n:
        n += 1
    return n


def _local_path(url: str) -> str:
    if url.startswith("file:"):
        return unquote(urlparse(url).path)
    return url
