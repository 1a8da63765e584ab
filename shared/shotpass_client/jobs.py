"""The workflow every host shares: find a plate's frames, upload what the server lacks, submit, fetch.

The CLI, the Nuke plugin and the Blender extension all go through these functions, so a plate is
read, named and aligned the same way everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .client import Client, ClientError, frame_inputs
from .pathmap import PathMap
from .patterns import FramePattern, PatternError, format_frame_list
from .proto import shotpass_pb2 as pb


class PlateError(ValueError):
    """A plate that cannot be sent as asked (missing frames, no files)."""


@dataclass
class RenderSpec:
    """What a user chose for a render; hosts fill it from their knobs, the CLI from its flags."""

    project: str = "default"
    shot: str = "shot"
    pass_name: str = ""  # empty: the model's pass
    model: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    options: Dict[str, str] = field(default_factory=dict)
    seed: Optional[int] = None
    colour_space: str = ""
    view: str = ""
    priority: int = 0
    label: str = ""

    def settings(self) -> pb.RenderSettings:
        return pb.RenderSettings(
            pass_name=self.pass_name,
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            options={k: str(v) for k, v in self.options.items()},
            seed=self.seed or 0,
            colour_space=self.colour_space,
            view=self.view,
            priority=self.priority,
        )


@dataclass
class Submitted:
    render_id: str
    bytes_uploaded: int
    warnings: List[str]
    render: pb.Render


def plate_frames(pattern: str, frames: Optional[Sequence[int]] = None) -> Dict[int, str]:
    """{frame: path} of a plate on disk; asked-for frames that are missing are an error naming them."""
    try:
        found = FramePattern.parse(pattern).existing()
    except PatternError as err:
        raise PlateError(str(err)) from None
    if not found:
        raise PlateError(f"{pattern}: no frames found on disk")
    if frames is None:
        return found
    missing = [f for f in frames if f not in found]
    if missing:
        raise PlateError(
            f"{pattern}: frame(s) {format_frame_list(missing)} missing on disk "
            f"(found {format_frame_list(found)})"
        )
    return {f: found[f] for f in frames}


def server_paths(plate: Mapping[int, str], path_map: PathMap) -> Optional[Dict[int, str]]:
    """Path mode: {frame: path on the server} when every frame lies under a mapped folder, else None."""
    if not path_map or not plate:
        return None
    local = {f: os.path.abspath(p) for f, p in plate.items()}
    if not all(path_map.maps(p) for p in local.values()):
        return None
    return {f: path_map.to_server(p) for f, p in local.items()}


def submit_render(
    client: Client,
    spec: RenderSpec,
    plate: Optional[Mapping[int, str]] = None,
    mask: Optional[Mapping[int, str]] = None,
    reference_file: Optional[str] = None,
    reference_render: Optional[Tuple[str, int]] = None,
    parent_render: str = "",
    parent_frames: Sequence[int] = (),
    preview: bool = False,
    on_bytes: Optional[Callable[[int], None]] = None,
    plate_paths: Optional[Mapping[int, str]] = None,
) -> Submitted:
    """Upload what the server lacks (by digest) and submit; a preview waits for its one frame.

    With `plate_paths` ({frame: path as the server sees it}) the plate is not uploaded at all: the server
    reads those files from its shared storage (path mode).
    """
    frames = set(plate_paths or plate or {})
    plate = {} if plate_paths else dict(plate or {})  # path mode: nothing of the plate travels
    mask = dict(mask or {})
    extra = sorted(set(mask) - frames) if frames else []
    if extra:
        raise PlateError(f"mask frame(s) {format_frame_list(extra)} have no plate frame")
    paths = list(plate.values()) + list(mask.values()) + ([reference_file] if reference_file else [])
    digests, sent = client.upload_files(paths, on_bytes=on_bytes) if paths else ({}, 0)
    request = pb.SubmitRenderRequest(
        project=spec.project,
        shot=spec.shot,
        settings=spec.settings(),
        frames=_inputs(plate, digests) if not plate_paths else [
            pb.FrameInput(frame=f, path=p, name=os.path.basename(p)) for f, p in sorted(plate_paths.items())
        ],
        mask_frames=_inputs(mask, digests),
        parent_render=parent_render,
        parent_frames=list(parent_frames),
        seed_set=spec.seed is not None,
        label=spec.label,
    )
    if reference_file:
        request.settings.reference.digest = digests[reference_file]
        request.settings.reference.name = os.path.basename(reference_file)
    elif reference_render:
        request.settings.reference.render_frame.render_id = reference_render[0]
        request.settings.reference.render_frame.frame = reference_render[1]
    if preview:
        answer = client.preview(request)
        return Submitted(answer.render_id, sent, list(answer.warnings), answer.render)
    submitted = client.submit(request)
    return Submitted(submitted.render_id, sent, list(submitted.warnings), submitted.render)


def _inputs(paths: Mapping[int, str], digests: Mapping[str, str]) -> List[pb.FrameInput]:
    return frame_inputs({f: digests[p] for f, p in paths.items()}, {f: os.path.basename(p) for f, p in paths.items()})


def output_name(render: pb.Render, frame: pb.FrameRecord, padding: int = 4) -> str:
    """The file name an output frame gets: its source file's name, else shot.####.exr."""
    if frame.input_name:
        return frame.input_name
    return FramePattern(f"{render.shot}_v{render.version:03d}.", padding, ".exr").path(frame.frame)


def fetch_outputs(
    client: Client,
    render: pb.Render,
    out_dir: str,
    pattern: Optional[FramePattern] = None,
    on_frame: Optional[Callable[[int, str], None]] = None,
) -> Dict[int, str]:
    """Download a render's finished frames into out_dir, keyed and named by frame number."""
    written: Dict[int, str] = {}
    for frame in render.frames:
        if not frame.output_digest:
            continue
        name = pattern.with_directory(out_dir).path(frame.frame) if pattern else os.path.join(
            out_dir, output_name(render, frame)
        )
        client.download(frame.output_digest, name)
        written[frame.frame] = name
        if on_frame:
            on_frame(frame.frame, name)
    return written


def require_finished(render: pb.Render) -> None:
    """Raise unless every frame finished: partial output is never presented as complete."""
    if render.state != pb.FINISHED:
        failed = [f"frame {f.frame}: {f.error}" for f in render.frames if f.error]
        detail = "; ".join(failed[:3]) or render.error or "no reason recorded"
        raise ClientError(
            f"render {render.id} ended {pb.RenderState.Name(render.state)} with "
            f"{render.frames_done}/{render.frames_total} frames: {detail}",
            pb.RenderState.Name(render.state),
        )
