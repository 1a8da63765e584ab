"""The workflow every host shares: find a plate's frames, upload what the server lacks, submit, fetch.

The CLI, the Nuke plugin and the Blender extension all go through these functions, so a plate is
read, named and aligned the same way everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .client import Client, ClientError, frame_inputs
from .pathmap import PathMap
from .patterns import STILL_FRAME, FramePattern, PatternError, format_frame_list
from .proto import shotpass_pb2 as pb


class PlateError(ValueError):
    """A plate that cannot be sent as asked (missing frames, no files)."""


class UnsafeOutputName(PlateError):
    """A server named an output with folders, `..` or a drive: it would be written outside the output folder."""


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
    frame_timeout: float = 0.0  # seconds a frame may run before it fails (0: no limit)
    job_key: str = ""  # farm tasks of one job share it: their frames land in one render of the shot
    # Per-frame values (see schedule.py): frame -> prompt, option -> {frame -> value}.
    prompt_by_frame: Dict[int, str] = field(default_factory=dict)
    options_by_frame: Dict[str, Dict[int, str]] = field(default_factory=dict)

    def settings(self) -> pb.RenderSettings:
        settings = pb.RenderSettings(
            pass_name=self.pass_name,
            model=self.model,
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            options={k: str(v) for k, v in self.options.items()},
            seed=self.seed or 0,
            colour_space=self.colour_space,
            view=self.view,
            priority=self.priority,
            frame_timeout_seconds=self.frame_timeout,
        )
        for frame, text in self.prompt_by_frame.items():
            settings.prompt_by_frame[int(frame)] = text
        for name, keys in self.options_by_frame.items():
            for frame, value in keys.items():
                settings.options_by_frame[name].values[int(frame)] = str(value)
        return settings


@dataclass
class Submitted:
    render_id: str
    bytes_uploaded: int
    warnings: List[str]
    render: pb.Render


def plate_frames(pattern: str, frames: Optional[Sequence[int]] = None) -> Dict[int, str]:
    """{frame: path} of a plate on disk; asked-for frames that are missing are an error naming them.

    A still (a file name without a frame number, matte.exr) is one frame: number 1, or the one frame asked for."""
    try:
        parsed = FramePattern.parse(pattern)
        found = parsed.existing()
    except PatternError as err:
        raise PlateError(str(err)) from None
    if not found:
        raise PlateError(f"{pattern}: no frames found on disk")
    if frames is None:
        return found
    if parsed.still:
        if len(frames) != 1:
            raise PlateError(
                f"{pattern}: a still (no frame number in its name) is one frame; give one frame number "
                f"(--frames N) or none (frame 1), not {format_frame_list(frames)}"
            )
        return {frames[0]: parsed.path(frames[0])}
    missing = [f for f in frames if f not in found]
    if missing:
        raise PlateError(
            f"{pattern}: frame(s) {format_frame_list(missing)} missing on disk "
            f"(found {format_frame_list(found)})"
        )
    return {f: found[f] for f in frames}


def handles_around(frames: Sequence[int], available: Iterable[int], handles: int) -> List[int]:
    """Up to ``handles`` frames of ``available`` right before the first and after the last of ``frames``, stopping
    at the first one missing: the context a video model reads around a pickup (every host asks this)."""
    if handles < 0:
        raise PlateError(f"handles: give 0 or more frames, not {handles}")
    if not frames or not handles:
        return []
    have, wanted = set(available), set(frames)
    out: List[int] = []
    for start, step in ((min(frames) - 1, -1), (max(frames) + 1, 1)):
        for f in range(start, start + step * handles, step):
            if f not in have or f in wanted:
                break
            out.append(f)
    return sorted(out)


def handle_frames(pattern: str, frames: Sequence[int], handles: int) -> Dict[int, str]:
    """{frame: path} of the handles around ``frames`` that are on disk (``handles_around``); a still has none."""
    if not frames or not handles:
        handles_around(frames, (), handles)  # a negative count is refused all the same
        return {}
    try:
        parsed = FramePattern.parse(pattern)
        found = {} if parsed.still else parsed.existing()
    except PatternError as err:
        raise PlateError(str(err)) from None
    return {f: found[f] for f in handles_around(frames, found, handles)}


def mask_frames(pattern: str, frames: Sequence[int]) -> Dict[int, str]:
    """{frame: path} of a mask plate for these plate frames; a still mask (matte.exr) holds for every frame."""
    try:
        still = FramePattern.parse(pattern).still
    except PatternError as err:
        raise PlateError(str(err)) from None
    if still:
        path = plate_frames(pattern)[STILL_FRAME]
        return {f: path for f in frames}
    return plate_frames(pattern, frames)


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
    context: Optional[Mapping[int, str]] = None,
    context_paths: Optional[Mapping[int, str]] = None,
) -> Submitted:
    """Upload what the server lacks (by digest) and submit; a preview waits for its one frame.

    With `plate_paths` ({frame: path as the server sees it}) the plate is not uploaded at all: the server
    reads those files from its shared storage (path mode). `context` ({frame: path}, see `handle_frames`) are
    handles a video model reads around the frames without rendering them (`context_paths`: in path mode).
    """
    _check_text(spec, plate, mask, plate_paths, parent_render)  # before anything is uploaded
    _check_text(spec, context, None, context_paths, parent_render)
    frames = set(plate_paths or plate or {})
    plate = {} if plate_paths else dict(plate or {})  # path mode: nothing of the plate travels
    context = {} if context_paths else dict(context or {})
    mask = dict(mask or {})
    extra = sorted(set(mask) - frames) if frames else []
    if extra:
        raise PlateError(f"mask frame(s) {format_frame_list(extra)} have no plate frame")
    paths = [*plate.values(), *mask.values(), *context.values(), *([reference_file] if reference_file else [])]
    digests, sent = client.upload_files(paths, on_bytes=on_bytes) if paths else ({}, 0)
    request = pb.SubmitRenderRequest(
        project=spec.project,
        shot=spec.shot,
        settings=spec.settings(),
        frames=_inputs(plate, digests) if not plate_paths else _path_inputs(plate_paths),
        mask_frames=_inputs(mask, digests),
        context_frames=_inputs(context, digests) if not context_paths else _path_inputs(context_paths),
        parent_render=parent_render,
        parent_frames=list(parent_frames),
        seed_set=spec.seed is not None,
        label=spec.label,
        job_key=spec.job_key,
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


def utf8_text(what: str, value: str, hint: str) -> None:
    """Refuse text the wire cannot carry (names and paths that are not UTF-8 reach Python with surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            shown = repr(value.encode("utf-8", "surrogateescape"))[1:]
        except UnicodeEncodeError:
            shown = ascii(value)
        raise PlateError(f"{what} {shown} is not valid UTF-8 text; {hint}") from None


def _check_text(
    spec: RenderSpec,
    plate: Optional[Mapping[int, str]],
    mask: Optional[Mapping[int, str]],
    plate_paths: Optional[Mapping[int, str]],
    parent_render: str,
) -> None:
    for what, paths in (("plate file", plate), ("mask file", mask)):
        for path in (paths or {}).values():
            utf8_text(what, os.path.basename(path), "rename it (the server keeps file names as UTF-8)")
    for path in (plate_paths or {}).values():
        utf8_text("server path", path, "rename the file or its folders (path mode sends the path as UTF-8)")
    for field_name in ("project", "shot", "pass_name", "model", "prompt", "negative_prompt", "colour_space",
                       "view", "label"):
        utf8_text(field_name.replace("_", " "), getattr(spec, field_name), "use UTF-8 text (or pass --shot NAME)"
                  if field_name == "shot" else "use UTF-8 text")
    for key, value in spec.options.items():
        utf8_text("option", f"{key}={value}", "use UTF-8 text")
    utf8_text("render id", parent_render, "give a render id like r-1a2b3c4d5e6f")


def _path_inputs(paths: Mapping[int, str]) -> List[pb.FrameInput]:
    return [pb.FrameInput(frame=f, path=p, name=os.path.basename(p)) for f, p in sorted(paths.items())]


def _inputs(paths: Mapping[int, str], digests: Mapping[str, str]) -> List[pb.FrameInput]:
    return frame_inputs({f: digests[p] for f, p in paths.items()}, {f: os.path.basename(p) for f, p in paths.items()})


def output_name(render: pb.Render, frame: pb.FrameRecord, padding: int = 4) -> str:
    """The file name an output frame gets: its source file's name, else shot.####.exr."""
    if frame.input_name:
        return frame.input_name
    return FramePattern(f"{render.shot}_v{render.version:03d}.", padding, ".exr").path(frame.frame)


def output_path(out_dir: str, name: str) -> str:
    """out_dir/name, only when `name` is one plain file name that lands in out_dir, whatever a server says.

    The one check every host's downloads go through (CLI, Nuke, Blender): a name with folders, `..`, NUL or a
    drive letter is refused, and nothing is written anywhere."""
    plain = (
        bool(name)
        and name not in (".", "..")
        and not any(c in name for c in ("/", "\\", "\x00", os.sep))
        and not (len(name) >= 2 and name[1] == ":" and name[0].isalpha())
        and not os.path.isabs(name)
    )
    path = os.path.join(out_dir, name) if plain else ""
    if not plain or os.path.dirname(os.path.abspath(path)) != os.path.abspath(out_dir):
        raise UnsafeOutputName(
            f"the server named an output {name!r}, which is not a plain file name inside {out_dir}; nothing was "
            "written (is the server trustworthy and up to date?)"
        )
    return path


def fetch_outputs(
    client: Client,
    render: pb.Render,
    out_dir: str,
    pattern: Optional[FramePattern] = None,
    on_frame: Optional[Callable[[int, str], None]] = None,
) -> Dict[int, str]:
    """Download a render's finished frames into out_dir, keyed and named by frame number.

    Every name is checked before the first download, so a bad one leaves no partial output behind."""
    names: Dict[int, Tuple[str, str]] = {}
    for frame in render.frames:
        if not frame.output_digest:
            continue
        if pattern:
            name = os.path.basename(pattern.path(frame.frame))
        else:
            name = output_name(render, frame)
        names[frame.frame] = (frame.output_digest, output_path(out_dir, name))
    written: Dict[int, str] = {}
    for number, (digest, path) in names.items():
        client.download(digest, path)
        written[number] = path
        if on_frame:
            on_frame(number, path)
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
