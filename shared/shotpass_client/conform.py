"""Back into the edit: each clip of a cut gets the frames of its shot's chosen version (approved, else pinned, else
the latest finished), as an OTIO image sequence whose range includes the handles while the clip keeps the cut's
range, so the edit plays exactly the cut and an editor can still slip into the handles."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .client import Client
from .jobs import fetch_outputs
from .patterns import FramePattern, format_frame_list
from .proto import shotpass_pb2 as pb
from .timeline import ShotPlan, otio, plan_shots, read_timeline, video_items

MAX_RENDERS_PER_SHOT = 1000


@dataclass
class ClipVersion:
    plan: ShotPlan
    render: Optional[pb.Render] = None
    why: str = ""  # approved, pinned or latest
    media: str = ""  # the frame pattern the clip now points at
    reason: str = ""  # why the clip kept its media

    def row(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"index": self.plan.index, "clip": self.plan.clip, "shot": self.plan.shot,
                               "cut": list(self.plan.cut) if self.plan.ok else []}
        if self.render is not None:
            out.update(render=self.render.id, version=self.render.version, chosen=self.why, media=self.media,
                       frames=format_frame_list(f.frame for f in self.render.frames))
        else:
            out.update(render=None, version=None, reason=self.reason)
        return out


def choose_version(renders: Sequence[pb.Render], cut: Tuple[int, int]) -> Tuple[Optional[pb.Render], str]:
    """The version a clip gets: approved, else pinned, else the latest finished; each must hold the whole cut."""
    wanted = set(range(cut[0], cut[1] + 1))
    usable = [
        r for r in sorted(renders, key=lambda r: r.version, reverse=True)
        if r.lane == "render" and r.state == pb.FINISHED
        and wanted <= {f.frame for f in r.frames if f.output_digest}
    ]
    for why, pick in (("approved", lambda r: r.review.approved), ("pinned", lambda r: r.review.pinned),
                      ("latest", lambda r: True)):
        for render in usable:
            if pick(render):
                return render, why
    finished = [r for r in renders if r.lane == "render" and r.state == pb.FINISHED]
    if finished:
        return None, (f"no finished version holds every frame of the cut {cut[0]}-{cut[1]} "
                      f"(versions {', '.join(f'v{r.version}' for r in finished)})")
    return None, "no finished render of this shot"


def conform(client: Client, timeline_path: str, project: str, media_root: str, rate: float = 24.0
            ) -> Tuple[Any, List[ClipVersion]]:
    """The conformed timeline (not yet written) and what each clip got; frames are fetched under media_root."""
    ot = otio()
    timeline = read_timeline(timeline_path, rate)
    plans = plan_shots(timeline, handles=0)
    results: List[ClipVersion] = []
    for plan, (_, item) in zip(plans, video_items(timeline)):
        if not plan.shot:  # a gap stays a gap
            continue
        result = ClipVersion(plan)
        results.append(result)
        if not plan.ok:
            result.reason = plan.reason
            continue
        listed = client.list_renders(project, plan.shot, MAX_RENDERS_PER_SHOT)
        # Each finished version read whole: its frame list decides whether it holds the cut.
        renders = [client.get_render(r.id) for r in listed if r.lane == "render" and r.state == pb.FINISHED]
        render, why = choose_version(renders, plan.cut)
        if render is None:
            result.reason = why
            continue
        pattern = FramePattern.parse(plan.pattern)
        folder = os.path.join(os.path.abspath(media_root), plan.shot, f"v{render.version:03d}")
        written = fetch_outputs(client, render, folder, pattern)
        item.media_reference = _sequence(ot, item, pattern.with_directory(folder), sorted(written), plan)
        item.metadata["shotpass"] = {"project": project, "shot": plan.shot, "render": render.id,
                                     "version": render.version, "chosen": why}
        result.render, result.why = render, why
        result.media = pattern.with_directory(folder).hashes()
    return timeline, results


def _sequence(ot: Any, clip: Any, pattern: FramePattern, frames: List[int], plan: ShotPlan) -> Any:
    """An image sequence of the version's frames, placed so the clip's source range lands on the same frames."""
    source = clip.source_range
    rate = source.start_time.rate
    head = plan.cut[0] - frames[0]  # handle frames before the cut
    start = source.start_time - ot.opentime.RationalTime(head, rate)
    return ot.schema.ImageSequenceReference(
        target_url_base=os.path.dirname(pattern.prefix) + os.sep,
        name_prefix=os.path.basename(pattern.prefix),
        name_suffix=pattern.suffix,
        start_frame=frames[0],
        frame_step=1,
        rate=rate,
        frame_zero_padding=pattern.padding,
        missing_frame_policy=ot.schema.ImageSequenceReference.MissingFramePolicy.error,
        available_range=ot.opentime.TimeRange(start, ot.opentime.RationalTime(len(frames), rate)),
    )


def write_timeline(timeline: Any, path: str) -> None:
    otio().adapters.write_to_file(timeline, path)
