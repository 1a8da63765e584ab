"""One frame through one model: decode, colour in, process, colour out, encode.

Everything that keeps a frame frame-perfect lives here, not in the models: windows and metadata come
from the source part, colour goes back to the plate's space and precision, pixels a model must not
touch (outside an inpaint mask) are copied back bit for bit, and no NaN/Inf reaches a model.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Hashable, List, Optional, Sequence

import cv2
import numpy as np
import OpenEXR

from . import __version__
from .errors import InvalidInput
from .frames.colour import ColourSpaces
from .frames.exr import (
    Box,
    ColourPlane,
    ExrImage,
    add_provenance,
    box,
    decode_exr,
    encode_exr,
    finite,
    replace_colour,
    select_colour,
)
from .passes.base import ClipModel, FrameJob, FrameResult, Model, PassContext, ProgressFn, checkpoint_of

HALF_MAX = float(np.finfo(np.float16).max)  # what finite() turns +/-Inf into


def codec_threads() -> int:
    """OpenEXR's threads (SHOTPASS_CODEC_THREADS; default: one per core)."""
    text = os.environ.get("SHOTPASS_CODEC_THREADS", "").strip()
    try:
        return max(0, int(text)) if text else (os.cpu_count() or 1)
    except ValueError:
        return os.cpu_count() or 1


# OpenEXR (de)compresses a file's line blocks on its own thread pool, outside the GIL, but starts with none: one
# block after another on the calling thread, holding it. With a pool the pipelined worker's decode and encode
# overlap the model and each other (bench/pipeline.py); the bytes written are the same at any count.
OpenEXR.set_global_thread_count(codec_threads())


@dataclass
class FrameRequest:
    render_id: str
    frame: int
    data: bytes
    source_name: str
    source_digest: str
    seed: int
    options: Dict[str, object]
    colour_space: str
    view: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    mask: Optional[bytes] = None
    mask_name: str = ""
    mask_from_alpha: bool = False
    reference_rgb: Optional[np.ndarray] = None  # already in the model's working space
    device: str = "cpu"
    # Temporal renders (temporal/propagate.py): the neighbouring frames this one is built from, and what the
    # output records about it.
    temporal: Optional[Any] = None
    provenance: Dict[str, str] = field(default_factory=dict)
    # A handle of a video model's clip (temporal/context.py): the model reads it, no output is made of it.
    context: bool = False
    noise: Optional[Any] = None  # noise=flow: the frame's noise warp (temporal/noise.py)
    anchor: Optional[Any] = None  # cross_frame=first: passes.base.Anchor


def frame_seed(render_seed: int, frame: int) -> int:
    """A frame's noise seed: fixed by (render seed, frame number), independent of chunking or order."""
    digest = hashlib.sha256(f"{render_seed}:{frame}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def to_working(rgb: np.ndarray, model: Model, plate_space: str, colours: ColourSpaces) -> np.ndarray:
    # One float32 copy, cleaned and converted in place: the same values as finite() then convert() (a half's
    # +/-Inf widens to +/-Inf and becomes +/-65504 all the same), without their two extra frame-sized copies.
    out = _clean(np.array(rgb, dtype=np.float32, order="C", copy=True))
    if model.working_space is None or model.working_space == plate_space:
        return out
    return colours.convert_in_place(out, plate_space, model.working_space)


def _clean(values: np.ndarray) -> np.ndarray:
    """finite() in place, on an array this module made: NaN -> 0, +/-Inf -> +/-half max. Frames almost never
    hold either, and one summing pass says so (a sum overflowing to Inf only costs the clean-up pass)."""
    if not np.isfinite(values.sum()):
        np.nan_to_num(values, copy=False, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX)
    return values


def reference_in_working_space(
    data: bytes, name: str, view: str, model: Model, plate_space: str, colours: ColourSpaces
) -> np.ndarray:
    plane = select_colour(decode_exr(data, name), view or None)
    return to_working(plane.rgb, model, plate_space, colours)


def run_frame(
    req: FrameRequest, model: Model, colours: ColourSpaces, progress: ProgressFn
) -> bytes:
    """Returns the output EXR's bytes for one frame."""
    staged = prepare_frame(req, model, colours, progress)
    return finish_frame(staged, process_frame(staged, model, colours), model, colours)


@dataclass
class StagedFrame:
    """A frame decoded and in the model's working space, ready for the model (`prepared` None: passthrough,
    or a temporal frame, which runs whole in the model's stage)."""

    req: FrameRequest
    image: Optional[ExrImage]
    prepared: Optional[_Prepared]
    progress: ProgressFn


# The three stages of run_frame, so a worker can decode frame N+1 and encode frame N-1 while the model runs
# on frame N (renders.py). Each stage is the same code either way, so pipelined output is bit-identical.


def prepare_frame(req: FrameRequest, model: Model, colours: ColourSpaces, progress: ProgressFn) -> StagedFrame:
    """Decode and colour-convert into the model's working space (the CPU codec's half before the model)."""
    if req.temporal is not None:
        # A temporal frame reads its neighbours' stored outputs, which exist only once they are stored: it
        # is built whole in the model's stage (renders run temporal plans one frame at a time).
        return StagedFrame(req, None, None, progress)
    image = decode_exr(req.data, req.source_name)
    if model.pass_name == "passthrough":
        return StagedFrame(req, image, None, progress)
    return StagedFrame(req, image, _prepare(req, image, model, colours, progress), progress)


def process_frame(staged: StagedFrame, model: Model, colours: ColourSpaces) -> Optional[FrameResult | bytes]:
    """The model alone (the device's part); a temporal frame's whole EXR."""
    if staged.req.temporal is not None:
        from .temporal.propagate import run_temporal  # imports this module

        return run_temporal(staged.req, model, colours, staged.progress)
    if staged.prepared is None:
        staged.progress(1, 1)
        return None
    return model.process(staged.prepared.job, staged.prepared.ctx)


def batch_key(staged: StagedFrame, model: Model) -> Optional[Hashable]:
    """Which frames may go through the model together (equal keys); None: this one runs alone."""
    if staged.prepared is None:  # passthrough, or a temporal frame built whole in the model's stage
        return None
    return model.batch_key(staged.prepared.job, staged.prepared.ctx)


def process_frames(staged: Sequence[StagedFrame], model: Model, colours: ColourSpaces) -> List[Any]:
    """The model on consecutive frames with one batch key at once (process_frame for a single one)."""
    if len(staged) == 1:
        return [process_frame(staged[0], model, colours)]
    prepared = [s.prepared for s in staged]
    assert all(p is not None for p in prepared), "only prepared frames are batched"
    results = model.process_batch([p.job for p in prepared if p], [p.ctx for p in prepared if p])
    if len(results) != len(staged):
        raise RuntimeError(f"model {model.name} returned {len(results)} results for a batch of {len(staged)} frames")
    return list(results)


def finish_frame(
    staged: StagedFrame, result: Optional[FrameResult | bytes], model: Model, colours: ColourSpaces
) -> bytes:
    """Colour back to the plate's space, restore what the model must not touch, encode (the codec's other half)."""
    if isinstance(result, bytes):  # a temporal frame, finished in the model's stage
        return result
    if staged.prepared is None:
        assert staged.image is not None
        # A no-op keeps the whole file: every part, layer and attribute, pixels untouched.
        return encode_exr(add_provenance(staged.image, _provenance(staged.req, model)))
    assert isinstance(result, FrameResult)
    return _finish(staged.prepared, result, model, colours)


def run_clip(
    reqs: Sequence[FrameRequest], model: ClipModel, colours: ColourSpaces, progress: ProgressFn
) -> List[bytes]:
    """Consecutive frames through a clip model at once; returns one EXR per request that is not context, in order.

    The model sees every frame at one size: frames whose data windows differ are placed on the union of the
    windows (``clip_canvas``) and each result is cropped back to its own frame's window before it is written.
    """
    prepared = [_prepare(r, decode_exr(r.data, r.source_name), model, colours, progress) for r in reqs]
    boxes = [p.plane.data_window for p in prepared]
    canvas = clip_canvas(boxes)
    jobs = [p.job if box == canvas else _job_on_canvas(p.job, box, canvas) for p, box in zip(prepared, boxes)]
    results = model.process_clip(jobs, [p.ctx for p in prepared])
    if len(results) != len(prepared):
        raise RuntimeError(f"model {model.name} returned {len(results)} frames for {len(prepared)}")
    kept = [(p, r, box) for p, r, box in zip(prepared, results, boxes) if not p.req.context]
    return [_finish(p, r if box == canvas else _result_off_canvas(r, box, canvas, model.scale, model.name), model,
                    colours) for p, r, box in kept]


def clip_canvas(boxes: Sequence[Box]) -> Box:
    """The common canvas of a clip: the bounding box of its frames' data windows, in pixel coordinates."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def to_canvas(values: np.ndarray, box: Box, canvas: Box, fill: Optional[float] = None) -> np.ndarray:
    """Place an array given on data window ``box`` at its pixel position on ``canvas`` (which contains it).

    Outside ``box`` it is ``fill``, or with ``fill=None`` its own edge pixels repeated outward.
    """
    x0, y0, x1, y1 = canvas
    pad = [(box[1] - y0, y1 - box[3]), (box[0] - x0, x1 - box[2])] + [(0, 0)] * (values.ndim - 2)
    if fill is None:
        return np.ascontiguousarray(np.pad(values, pad, mode="edge"))
    return np.pad(values, pad, mode="constant", constant_values=fill)


def from_canvas(values: np.ndarray, box: Box, canvas: Box, scale: int = 1) -> np.ndarray:
    """Crop data window ``box`` back out of an array on ``canvas`` (at ``scale`` times its pixel size)."""
    x, y = (box[0] - canvas[0]) * scale, (box[1] - canvas[1]) * scale
    w, h = (box[2] - box[0] + 1) * scale, (box[3] - box[1] + 1) * scale
    return np.ascontiguousarray(values[y: y + h, x: x + w])


def _job_on_canvas(job: FrameJob, box: Box, canvas: Box) -> FrameJob:
    # A clip model runs all its frames at one size, so frames whose data windows move or change size (a
    # tracked element, an auto-bbox render) go onto the union of the windows at their own pixel positions.
    # Colour and depth outside a frame's window are its edge pixels repeated: black (the EXR's implicit
    # outside) would be a hard edge, moving from frame to frame, that the model's convolutions and motion
    # layers smear back into the very pixels we keep; the padding is cropped off again afterwards anyway.
    # Alpha and mask outside the window are 0, as a compositor reads them (transparent, nothing to fill).
    return FrameJob(
        frame=job.frame,
        rgb=to_canvas(job.rgb, box, canvas),
        alpha=None if job.alpha is None else to_canvas(job.alpha, box, canvas, 0.0),
        mask=None if job.mask is None else to_canvas(job.mask, box, canvas, 0.0),
        depth=None if job.depth is None else to_canvas(job.depth, box, canvas),
    )


def _result_off_canvas(result: FrameResult, box: Box, canvas: Box, scale: int, name: str) -> FrameResult:
    expected = ((canvas[3] - canvas[1] + 1) * scale, (canvas[2] - canvas[0] + 1) * scale)
    if result.rgb.shape[:2] != expected:
        raise RuntimeError(
            f"model {name} returned {result.rgb.shape[1]}x{result.rgb.shape[0]} for a "
            f"{expected[1] // scale}x{expected[0] // scale} clip at scale {scale}"
        )
    return replace(
        result,
        rgb=from_canvas(result.rgb, box, canvas, scale),
        alpha=None if result.alpha is None else from_canvas(result.alpha, box, canvas, scale),
        filled=None if result.filled is None else from_canvas(result.filled, box, canvas),
    )


@dataclass
class _Prepared:
    req: FrameRequest
    image: ExrImage
    plane: ColourPlane
    mask: Optional[np.ndarray]
    job: FrameJob
    ctx: PassContext


def _provenance(req: FrameRequest, model: Model) -> Dict[str, str]:
    prompts = {"prompt": req.prompt, "negativePrompt": req.negative_prompt} if model.uses_prompt else {}
    return {
        **{k: v for k, v in prompts.items() if v},
        "renderId": req.render_id,
        "pass": model.pass_name,
        "model": model.name,
        "seed": str(req.seed),
        "sourceFrame": str(req.frame),
        "sourceDigest": req.source_digest,
        "sourceFile": req.source_name,
        "colourSpace": req.colour_space,
        "serverVersion": __version__,
        **req.provenance,
    }


def _prepare(
    req: FrameRequest, image: ExrImage, model: Model, colours: ColourSpaces, progress: ProgressFn
) -> _Prepared:
    plane = select_colour(image, req.view or None)
    mask = _mask_for(req, plane) if model.needs_mask else None
    job = FrameJob(
        frame=req.frame,
        rgb=to_working(plane.rgb, model, req.colour_space, colours),
        alpha=None if plane.alpha is None else np.ascontiguousarray(plane.alpha, dtype=np.float32),
        mask=mask,
        depth=_depth_for(image, plane) if model.uses_depth else None,
    )
    ctx = PassContext(
        options=dict(req.options),
        seed=req.seed,
        prompt=req.prompt,
        negative_prompt=req.negative_prompt,
        reference_rgb=req.reference_rgb,
        device=req.device,
        progress=progress,
        checkpoint=checkpoint_of(progress),
        noise=req.noise,
        anchor=req.anchor,
    )
    return _Prepared(req, image, plane, mask, job, ctx)


def _finish(p: _Prepared, result: FrameResult, model: Model, colours: ColourSpaces) -> bytes:
    req, image, plane, mask = p.req, p.image, p.plane, p.mask
    h, w = plane.rgb.shape[:2]
    k = model.scale
    if result.rgb.shape[:2] != (h * k, w * k):
        raise RuntimeError(
            f"model {model.name} returned {result.rgb.shape[1]}x{result.rgb.shape[0]} for a "
            f"{w}x{h} frame at scale {k}"
        )
    rgb = result.rgb
    if model.working_space is not None and model.working_space != req.colour_space:
        # convert() makes the copy; it is cleaned in place (finite() would copy the frame again).
        rgb = _clean(colours.convert(rgb, model.working_space, req.colour_space))
    else:
        rgb = finite(rgb)
    alpha = result.alpha
    if model.needs_mask and req.mask is None:
        alpha = plane.alpha  # the alpha was the mask: it comes back as it was
    if alpha is None and plane.alpha is not None:
        alpha = plane.alpha if k == 1 else cv2.resize(plane.alpha, (w * k, h * k), interpolation=cv2.INTER_LINEAR)
    out = replace_colour(image, plane, rgb, alpha, scale=k, provenance=_provenance(req, model))
    if model.keeps_unmasked and mask is not None:
        _restore_unmasked(out, image, plane, mask if result.filled is None else result.filled)
    return encode_exr(out)


def _depth_for(image: ExrImage, plane: ColourPlane) -> Optional[np.ndarray]:
    """The plate's Z channel beside the colour plane (`Z`, `depth.Z`, `ViewLayer.Depth.Z`...), or None.

    The colour's own part first; then parts on the same data window (Blender 5 writes each pass as a part)."""
    order = [plane.part_index] + [i for i in range(len(image.parts)) if i != plane.part_index]
    for index in order:
        part = image.parts[index]
        if index != plane.part_index and box(part.header, "dataWindow") != plane.data_window:
            continue
        names = [n for n in part.channels if n == "Z" or n.endswith(".Z")]
        names.sort(key=lambda n: (n != plane.prefix + "Z", "depth" not in n.lower()))
        for name in names:
            values = np.asarray(part.channels[name], dtype=np.float32)
            if values.shape == plane.rgb.shape[:2]:
                return np.ascontiguousarray(values)
    return None


def _mask_for(req: FrameRequest, plane: ColourPlane) -> np.ndarray:
    """The fill mask (1 = fill) on the plate's data window: from a mask plate, else the plate's alpha."""
    if req.mask is not None:
        values, window = read_mask(req.mask, req.mask_name)
        return _align(finite(values), window, plane.data_window)
    if plane.alpha is None:
        raise InvalidInput(
            f"{req.source_name} (frame {req.frame}): inpaint needs a mask; give a mask plate (--mask) "
            "or a plate with an alpha channel"
        )
    return np.ascontiguousarray(finite(plane.alpha), dtype=np.float32)


def read_mask(data: bytes, name: str) -> tuple:
    """A mask plate's fill values (1 = fill) and data window: its alpha when it has one (an alpha-only file
    included), else its RGB/Y mean, else its only channel. Raises InvalidInput naming the file otherwise."""
    image = decode_exr(data, name)
    for part in image.parts:  # an alpha-only plate (A, or LAYER.A) has no colour for select_colour to find
        alphas = [n for n in part.channels if n == "A" or n.endswith(".A")]
        if alphas and not any(n.split(".")[-1] in ("R", "G", "B", "Y") for n in part.channels):
            return part.channels[sorted(alphas, key=len)[0]].astype(np.float32), box(part.header, "dataWindow")
    try:
        mplane = select_colour(image, None)
    except InvalidInput:
        part = image.parts[0]
        if len(part.channels) == 1:  # a single-channel matte ("mask", "matte", ...)
            only = next(iter(part.channels.values()))
            return only.astype(np.float32), box(part.header, "dataWindow")
        raise InvalidInput(
            f"{name}: a mask plate needs an alpha (A), RGB or Y channel, or exactly one channel; it has "
            f"{', '.join(sorted(part.channels)) or 'none'}"
        ) from None
    values = mplane.alpha if mplane.alpha is not None else mplane.rgb.mean(axis=2)
    return values, mplane.data_window


def _align(values: np.ndarray, src_window: tuple, dst_window: tuple) -> np.ndarray:
    """Place a mask given on one data window onto another (outside its window the mask is 0)."""
    sx0, sy0, sx1, sy1 = src_window
    dx0, dy0, dx1, dy1 = dst_window
    out = np.zeros((dy1 - dy0 + 1, dx1 - dx0 + 1), dtype=np.float32)
    x0, y0, x1, y1 = max(sx0, dx0), max(sy0, dy0), min(sx1, dx1), min(sy1, dy1)
    if x0 <= x1 and y0 <= y1:
        out[y0 - dy0: y1 - dy0 + 1, x0 - dx0: x1 - dx0 + 1] = values[y0 - sy0: y1 - sy0 + 1, x0 - sx0: x1 - sx0 + 1]
    return np.clip(out, 0.0, 1.0)


def _restore_unmasked(out, source, plane: ColourPlane, mask: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    """Where the mask is 0, the stored values of the source part are copied back bit for bit."""
    keep = mask <= 0.0
    src = source.parts[plane.part_index].channels
    dst = out.parts[0].channels
    for name in plane.channel_names:
        if name in dst and name in src and dst[name].shape == src[name].shape:
            dst[name][keep] = src[name][keep]
