"""Classical inpaint: OpenCV's Telea and Navier-Stokes fills, on the plate's own float values.

They run in the plate's scene-linear space (working_space None) so HDR values survive. cv2.inpaint
accepts float32 only one channel at a time, so each channel (and alpha) is filled on its own.
"""

from __future__ import annotations

from typing import ClassVar, Optional

import cv2
import numpy as np

from ..errors import InvalidInput
from .base import FrameJob, FrameResult, Model, Option, PassContext

NO_MASK = "inpaint needs a mask: give a mask plate or use a plate with alpha"


def binary_mask(mask: Optional[np.ndarray], shape: tuple) -> np.ndarray:
    """uint8 mask (1 = fill) from a [0, 1] float mask."""
    if mask is None:
        raise InvalidInput(NO_MASK)
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., 0]
    if mask.shape != shape:
        got, want = f"{mask.shape[1]}x{mask.shape[0]}", f"{shape[1]}x{shape[0]}"
        raise InvalidInput(f"the mask is {got} but the plate is {want}")
    return (np.nan_to_num(mask, nan=0.0) > 0.5).astype(np.uint8)


def grow_mask(binary: np.ndarray, grow: int) -> np.ndarray:
    if grow <= 0:
        return binary
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    return cv2.dilate(binary, kernel)


# OpenCV's float Telea adds errors of about one unit in absolute terms (tuned for 0-255 data), which
# wrecks [0, 1] plates; each channel is mapped onto this range for the fill and back afterwards.
FILL_RANGE = 65535.0


def inpaint_plane(
    plane: np.ndarray, fill: np.ndarray, keep: np.ndarray, radius: int, method: int
) -> np.ndarray:
    """Fill one float channel where ``fill`` is set; where ``keep`` is set, return it bit for bit."""
    # Non-finite known pixels would spread into the fill; the fill reads finite copies instead.
    src = np.nan_to_num(plane, nan=0.0, posinf=65504.0, neginf=-65504.0).astype(np.float64)
    known = src[fill == 0]
    lo, hi = (float(known.min()), float(known.max())) if known.size else (0.0, 0.0)
    if hi <= lo:  # flat (or nothing known): the fill is that value
        filled = np.full(plane.shape, lo, dtype=np.float64)
    else:
        norm = np.ascontiguousarray((src - lo) * (FILL_RANGE / (hi - lo)), dtype=np.float32)
        filled = cv2.inpaint(norm, fill, float(radius), method) * ((hi - lo) / FILL_RANGE) + lo
    return np.where(keep, plane, filled).astype(np.float32)


class OpenCvInpaint(Model):
    pass_name = "inpaint"
    family = "classical"
    needs_mask = True
    keeps_unmasked = True
    working_space = None
    licence = "Apache-2.0 (OpenCV)"
    method: ClassVar[int] = cv2.INPAINT_TELEA
    options = [
        Option("radius", "int", 5, "Neighbourhood in pixels each filled pixel looks at.", (), 1, 50),
        Option("grow", "int", 0, "Grow the mask by this many pixels before filling (covers a tight mask's fringe).",
               (), 0, 64),
    ]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        opts = ctx.options
        mask = binary_mask(job.mask, job.rgb.shape[:2])
        fill = grow_mask(mask, int(opts.get("grow", 0)))
        keep = fill == 0  # the pipeline copies these back from the plate too (keeps_unmasked)
        radius = int(opts.get("radius", 5))
        planes = [job.rgb[..., c] for c in range(3)] + ([job.alpha] if job.alpha is not None else [])
        total = len(planes)
        ctx.progress(0, total)
        if not mask.any():
            ctx.progress(total, total)
            return FrameResult(rgb=job.rgb.copy(), alpha=None if job.alpha is None else job.alpha.copy(), filled=fill)
        filled = []
        for i, plane in enumerate(planes):
            filled.append(inpaint_plane(plane, fill, keep, radius, self.method))
            ctx.progress(i + 1, total)
        rgb = np.ascontiguousarray(np.stack(filled[:3], axis=-1), dtype=np.float32)
        alpha = filled[3] if job.alpha is not None else None
        return FrameResult(rgb=rgb, alpha=alpha, filled=fill)


class OpenCvTelea(OpenCvInpaint):
    name = "opencv-telea"
    description = "Classical inpaint (OpenCV, Telea fast marching): fills small holes from their border."
    method = cv2.INPAINT_TELEA


class OpenCvNavierStokes(OpenCvInpaint):
    name = "opencv-navier-stokes"
    description = "Classical inpaint (OpenCV, Navier-Stokes): continues edges and gradients into the hole."
    method = cv2.INPAINT_NS
