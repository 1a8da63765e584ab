"""One frame of a temporal render: ``flow`` blending and ``keyframes`` propagation.

Everything a frame needs travels in its request (``TemporalInputs``: the neighbouring source frames and
their *stored* outputs), so a frame computes the same on the local executor and on a Ray actor, and a
resumed render the same as an uninterrupted one. Blending happens in the model's working space (sRGB-encoded
for the image models), at the model's output size: an upscale's flow is the source flow scaled up.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InvalidInput
from ..frame_pipeline import FrameRequest, _finish, _prepare, _Prepared, from_canvas, to_canvas, to_working
from ..frames.colour import ColourSpaces
from ..frames.exr import Box, decode_exr, scale_box, select_colour
from ..passes.base import FrameResult, Model, ProgressFn
from .flow import chain_flow, rejoined, resize_flow, resize_mask, soften, warp
from .frames import Plate, cached_plate

# Where neither keyframe is trusted: measured on bikes.mp4 (every 8) and Beachball (keyframes 1, 8), flicker with
# 1.0 (nearness alone) 2.555 / 1.707, 0.5 2.529 / 1.624, 0.1 2.521 / 1.595, 0.01 2.522 / 1.594.
UNTRUSTED_STEP_WEIGHT = 0.1


@dataclass
class SourceFrame:
    """A source frame of the range: what the flow between two frames is computed from."""

    frame: int
    source: bytes
    source_name: str
    source_digest: str


@dataclass
class Neighbour(SourceFrame):
    """A frame this one is built from: its source and its stored output."""

    output: bytes = b""
    output_digest: str = ""


@dataclass
class TemporalInputs:
    # "flow" (blend with the previous output) | "keyframes" (propagate from keyframes) | "preview" (an approved
    # preview is this keyframe's output). Keyframes the model renders run as plain frames.
    mode: str
    strength: float = 0.92
    use_vectors: bool = True
    # flow: the previous frame of the range when it has an output (a refined keyframe: the previous keyframe,
    # reached through the frames of towards_before)
    previous: Optional[Neighbour] = None
    before: Optional[Neighbour] = None  # keyframes: the keyframe before this frame
    after: Optional[Neighbour] = None  # keyframes: the keyframe after it
    # keyframes: the source frames between this frame and each keyframe, nearest first (the flow walks them)
    towards_before: List[SourceFrame] = field(default_factory=list)
    towards_after: List[SourceFrame] = field(default_factory=list)
    preset: Optional[bytes] = None  # "preview": an approved preview of this keyframe, used as it is
    # flow from the previous keyframe (keyframe_refine): forgive one lost step of the walk where the plate agrees
    rejoin: bool = False


def run_temporal(req: FrameRequest, model: Model, colours: ColourSpaces, progress: ProgressFn) -> bytes:
    t = req.temporal
    assert t is not None
    if t.mode == "preview" and t.preset is not None:
        progress(1, 1)
        return t.preset
    prepared = _prepare(req, decode_exr(req.data, req.source_name), model, colours, progress)
    result = model.process(prepared.job, prepared.ctx) if runs_model(t) else None
    return finish_temporal(prepared, result, model, colours, progress)


def runs_model(t: TemporalInputs) -> bool:
    """Whether the model renders this frame (flow) or it is made from stored outputs alone (keyframes, preview)."""
    return t.mode == "flow"


def finish_temporal(
    prepared: _Prepared, result: Optional[FrameResult], model: Model, colours: ColourSpaces, progress: ProgressFn
) -> bytes:
    """The part after the model: blend with (flow) or propagate from (keyframes) the neighbours' stored outputs,
    then colour out and encode. The pipelined worker runs it once the frames before it are stored."""
    req, t = prepared.req, prepared.req.temporal
    assert t is not None
    if t.mode == "preview" and t.preset is not None:
        progress(1, 1)
        return t.preset
    current = cached_plate(req.data, req.source_name, req.source_digest, req.frame, req.view, req.colour_space,
                           colours, t.use_vectors, prepared.image)
    if t.mode == "flow":
        assert result is not None
        if t.previous is not None and t.strength > 0:
            warped, trust, _ = pull(t.previous, t.towards_before, current, req, model, colours, t.use_vectors,
                                    t.rejoin)
            w = (t.strength * trust)[..., None]
            result = replace(result, rgb=np.ascontiguousarray((1.0 - w) * result.rgb + w * warped, dtype=np.float32))
        return _finish(prepared, result, model, colours)
    if t.mode != "keyframes" or (t.before is None and t.after is None):
        raise InvalidInput(f"{req.source_name} (frame {req.frame}): no keyframe to propagate from")
    progress(0, 1)
    rgb = propagate(req.frame, current, t, req, model, colours)
    progress(1, 1)
    return _finish(prepared, FrameResult(rgb=rgb, alpha=None), model, colours)


def propagate(
    frame: int, current: Plate, t: TemporalInputs, req: FrameRequest, model: Model, colours: ColourSpaces
) -> np.ndarray:
    """The frame from its neighbouring keyframes' outputs, each warped along the source's flow.

    Each keyframe counts by its nearness in time and only where its flow is trusted (occlusion-aware); pixels
    neither keyframe sees (uncovered in both) take the warps weighted by nearness and by how far each side's walk
    followed them.
    """
    sides = [(n, path) for n, path in ((t.before, t.towards_before), (t.after, t.towards_after)) if n is not None]
    if len(sides) == 1:
        nearness = [1.0]
    else:
        assert t.before is not None and t.after is not None
        span = float(t.after.frame - t.before.frame)
        nearness = [(t.after.frame - frame) / span, (frame - t.before.frame) / span]
    total = None
    weights = None
    for (side, path), near in zip(sides, nearness):
        warped, trust, followed = pull(side, path, current, req, model, colours, t.use_vectors)
        # The 1e-3: where neither side is trusted, nearness decides, and each step of the walk that lost the pixel
        # divides its side's say by 10 (the side that followed it further is the likelier match).
        w = (near * (trust + 1e-3 * followed))[..., None]
        total = w * warped if total is None else total + w * warped
        weights = w if weights is None else weights + w
    assert total is not None and weights is not None
    return np.ascontiguousarray(total / weights, dtype=np.float32)


def pull(
    n: Neighbour, path: Sequence[SourceFrame], current: Plate, req: FrameRequest, model: Model,
    colours: ColourSpaces, use_vectors: bool, rejoin: bool = False,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A neighbour's output warped onto this frame along the source's motion (through the frames of ``path``
    between them), in the model's working space, with the flow's trust (0-1) and how far the walk followed each
    pixel (1 where trusted, times UNTRUSTED_STEP_WEIGHT per step that lost it). ``rejoin``: trust as
    flow.rejoined."""
    plates = [current] + [
        cached_plate(s.source, s.source_name, s.source_digest, s.frame, req.view, req.colour_space, colours,
                     use_vectors)
        for s in [*path, n]
    ]
    flow = chain_flow(plates, use_vectors)
    k = model.scale
    expected = scale_box(plates[-1].window, k)
    window, out = _output(n, req, model, colours)
    if window != expected:
        raise InvalidInput(
            f"{req.source_name} (frame {req.frame}): the stored output of frame {n.frame} has data window "
            f"{window}, not {expected}; re-render frame {n.frame}"
        )
    canvas_k = scale_box(flow.canvas, k)
    on_canvas = to_canvas(out, expected, canvas_k)
    shape = on_canvas.shape[:2]
    warped = warp(on_canvas, resize_flow(flow.backward, shape))
    trust = soften(resize_mask(rejoined(flow, plates[0], plates[-1]) if rejoin else flow.valid, shape))
    failed = np.zeros(shape, np.float32) if flow.failed is None else resize_mask(flow.failed, shape)
    followed = UNTRUSTED_STEP_WEIGHT**failed
    return (from_canvas(warped, current.window, flow.canvas, k), from_canvas(trust, current.window, flow.canvas, k),
            from_canvas(followed, current.window, flow.canvas, k))


OUTPUT_CACHE_BYTES = 128 << 20
_outputs: OrderedDict[tuple, Tuple[Box, np.ndarray]] = OrderedDict()
_outputs_lock = threading.Lock()


def _output(n: Neighbour, req: FrameRequest, model: Model, colours: ColourSpaces) -> Tuple[Box, np.ndarray]:
    """A stored output in the model's working space, kept per process: a keyframe feeds every frame up to the next."""
    key = (n.output_digest, model.working_space, req.colour_space, req.view)
    with _outputs_lock:
        hit = _outputs.get(key) if n.output_digest else None
        if hit is not None:
            _outputs.move_to_end(key)
            return hit
    plane = select_colour(decode_exr(n.output, f"output of frame {n.frame}"), None)
    item = (plane.data_window, to_working(plane.rgb, model, req.colour_space, colours))
    if n.output_digest:
        with _outputs_lock:
            _outputs[key] = item
            while len(_outputs) > 1 and sum(v[1].nbytes for v in _outputs.values()) > OUTPUT_CACHE_BYTES:
                _outputs.popitem(last=False)
    return item
