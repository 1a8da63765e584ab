"""The per-render quality checks: the flicker figure, NaN/Inf counts, and frames and windows vs the contract.

Flicker: for each pair of consecutive frames (t-1, t) of a render, the source's backward flow t -> t-1
(computed, or the plate's motion vectors) pulls frame t-1 onto frame t; the mean absolute difference over
the pixels the flow trusts (visible in both frames, forward/backward consistent), display-referred
(sRGB-encoded via OCIO, clipped to [0, 1] as a display shows it), is that frame pair's warping error. The
same is measured on the source itself. The render's flicker ratio is the output's mean warping error over the
source's: 1.0 means the output changes along the motion no more than the footage does (its own flow residual,
grain and lighting); a stylize that boils reads 10 or more. EPSILON (a quarter of an 8-bit code value) keeps
the ratio finite on a still plate.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..frame_pipeline import to_canvas
from ..frames.colour import ColourSpaces
from ..frames.exr import Box, decode_exr, scale_box, select_colour
from .flow import pair_flow, resize_flow, resize_mask, warp
from .frames import Plate, display_referred, load_plate

EPSILON = 1.0 / 1024
WORST_PAIRS = 5
# An upscale's outputs are measured at a multiple of the source's pixels whose longer side stays within this:
# an x4 of a 2K plate is compared at 2x, so the check stays a fraction of the render, in time and memory.
MEASURE_MAX_SIDE = 2048
MIN_TRUSTED = 0.02  # a pair whose flow trusts less than this share of pixels says nothing: left out


@dataclass
class QcFrame:
    frame: int
    source: bytes
    source_name: str
    source_digest: str
    output: Optional[bytes]  # None: the frame has no output


@dataclass
class PairQc:
    frame_a: int
    frame_b: int
    source_error: float
    output_error: float
    ratio: float
    trusted: float  # share of frame b's pixels the flow trusts


@dataclass
class RenderQc:
    flicker_ratio: float = 0.0  # 0 when there is no pair to measure (one frame)
    source_error: float = 0.0
    output_error: float = 0.0
    pairs: List[PairQc] = field(default_factory=list)
    worst_pairs: List[PairQc] = field(default_factory=list)  # the WORST_PAIRS pairs with the highest ratio
    nonfinite_outputs: int = 0  # NaN/Inf values in the stored output frames
    nonfinite_sources: int = 0  # NaN/Inf values in the plate (the pipeline replaced them before the model)
    contract_errors: List[str] = field(default_factory=list)
    flow_source: str = ""
    seconds: float = 0.0

    def as_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> RenderQc:
        pairs = [PairQc(**p) for p in d.get("pairs", [])]
        worst = [PairQc(**p) for p in d.get("worst_pairs", [])]
        return cls(**{**d, "pairs": pairs, "worst_pairs": worst})


@dataclass
class _Frame:
    plate: Plate
    output: np.ndarray  # sRGB-encoded, clipped, on its own (scaled) data window
    out_window: Box


def render_qc(
    frames: Sequence[QcFrame], scale: int, view: str, colour_space: str, colours: ColourSpaces, vectors: bool = True
) -> RenderQc:
    started = time.perf_counter()
    qc = RenderQc()
    sources = set()
    previous: Optional[_Frame] = None
    measure = 0  # the output is compared at source pixels x measure (set from the first frame)
    for item in sorted(frames, key=lambda f: f.frame):
        if item.output is None:
            qc.contract_errors.append(f"frame {item.frame}: no output")
            previous = None
            continue
        current, measure = _load(item, scale, measure, view, colour_space, colours, vectors, qc)
        if current is None:
            previous = None
            continue
        if previous is not None:
            pair = _pair(previous, current, measure, vectors)
            if pair is not None:
                qc.pairs.append(pair[0])
                sources.add(pair[1])
        previous = current
    measured = [p for p in qc.pairs if p.trusted >= MIN_TRUSTED]
    if measured:
        qc.source_error = float(np.mean([p.source_error for p in measured]))
        qc.output_error = float(np.mean([p.output_error for p in measured]))
        qc.flicker_ratio = (qc.output_error + EPSILON) / (qc.source_error + EPSILON)
        qc.worst_pairs = sorted(measured, key=lambda p: -p.ratio)[:WORST_PAIRS]
    qc.flow_source = ", ".join(sorted(sources))
    qc.seconds = time.perf_counter() - started
    return qc


def _load(
    item: QcFrame, scale: int, measure: int, view: str, colour_space: str, colours: ColourSpaces, vectors: bool,
    qc: RenderQc,
) -> Tuple[Optional[_Frame], int]:
    image = decode_exr(item.source, item.source_name)
    source_plane = select_colour(image, view or None)
    qc.nonfinite_sources += _nonfinite(source_plane.rgb) + (0 if source_plane.alpha is None else _nonfinite(
        source_plane.alpha))
    try:
        plate = load_plate(item.source, item.source_name, item.source_digest, item.frame, view, colour_space,
                           colours, vectors, image=image)
    except Exception:  # vectors of the wrong size were refused at submit for temporal renders; QC computes flow
        plate = load_plate(item.source, item.source_name, item.source_digest, item.frame, view, colour_space,
                           colours, False, image=image)
    out_image = decode_exr(item.output or b"", f"output of frame {item.frame}")
    qc.nonfinite_outputs += sum(_nonfinite(c) for p in out_image.parts for c in p.channels.values())
    out_plane = select_colour(out_image, None)
    expected_data = scale_box(source_plane.data_window, scale)
    expected_display = scale_box(source_plane.display_window, scale)
    if out_plane.data_window != expected_data:
        qc.contract_errors.append(
            f"frame {item.frame}: output data window {out_plane.data_window}, expected {expected_data}")
    if out_plane.display_window != expected_display:
        qc.contract_errors.append(
            f"frame {item.frame}: output display window {out_plane.display_window}, expected {expected_display}")
    if out_plane.data_window != expected_data:
        return None, measure
    if not measure:
        longest = max(plate.window[2] - plate.window[0], plate.window[3] - plate.window[1]) + 1
        measure = max(f for f in range(1, scale + 1) if scale % f == 0 and (f == 1 or longest * f <= MEASURE_MAX_SIDE))
    output = np.clip(display_referred(out_plane, colour_space, colours), 0.0, 1.0)
    window = scale_box(plate.window, measure)
    if measure != scale:
        size = (window[2] - window[0] + 1, window[3] - window[1] + 1)
        output = cv2.resize(output, size, interpolation=cv2.INTER_AREA)
    return _Frame(plate, output, window), measure


def _pair(a: _Frame, b: _Frame, scale: int, vectors: bool) -> Optional[tuple]:
    flow = pair_flow(a.plate, b.plate, vectors)
    canvas = flow.canvas
    assert a.plate.srgb is not None and b.plate.srgb is not None
    src_a = to_canvas(np.clip(a.plate.srgb, 0.0, 1.0), a.plate.window, canvas)
    src_b = to_canvas(np.clip(b.plate.srgb, 0.0, 1.0), b.plate.window, canvas)
    source_error, trusted = warping_error(src_a, src_b, flow.backward, flow.valid)
    out_canvas = scale_box(canvas, scale)
    out_a = to_canvas(a.output, a.out_window, out_canvas)
    out_b = to_canvas(b.output, b.out_window, out_canvas)
    shape = out_b.shape[:2]
    backward = resize_flow(flow.backward, shape)
    valid = (resize_mask(flow.valid, shape) > 0.999).astype(np.float32)
    output_error, _ = warping_error(out_a, out_b, backward, valid)
    if trusted <= 0:
        return None
    ratio = (output_error + EPSILON) / (source_error + EPSILON)
    return PairQc(a.plate.frame, b.plate.frame, source_error, output_error, ratio, trusted), flow.source


def warping_error(a: np.ndarray, b: np.ndarray, backward: np.ndarray, valid: np.ndarray) -> tuple:
    """(mean |b - warp(a)| over trusted pixels, share of pixels trusted)."""
    weight = float(valid.sum())
    if weight <= 0:
        return 0.0, 0.0
    diff = np.abs(b - warp(a, backward)).mean(axis=-1)
    return float((diff * valid).sum() / weight), weight / valid.size


def _nonfinite(values: np.ndarray) -> int:
    if values.dtype.kind != "f":
        return 0
    return int(values.size - np.count_nonzero(np.isfinite(values)))
