"""inpaint: the SD inpaint pipeline; mask from a mask plate or the plate's alpha, with grow and feather.

The generated frame is blended in through the (grown, feathered) mask, and the frame pipeline copies
every pixel outside that region back from the plate bit for bit, in the plate's own space and precision.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import cv2
import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import (
    DiffusionModel,
    denoise_args,
    latent_multiple,
    set_vae_tiling,
    to_tensor,
)
from .multidiffusion import native_size


class InpaintModel(DiffusionModel):
    needs_mask = True
    keeps_unmasked = True

    def build_options(self) -> List[Option]:
        return [
            *super().build_options(),
            Option("strength", "float", self.spec.strength, "1 = ignore what is under the mask", minimum=0.01,
                   maximum=1),
            Option("grow", "int", 0, "grow the mask by this many pixels", minimum=0, maximum=512),
            Option("feather", "int", 0, "soft edge outside the grown mask, in pixels", minimum=0, maximum=512),
            Option("region", "choice", "auto",
                   "auto: on plates larger than the region size, inpaint only the mask's box plus context, "
                   "scaled to the region size and pasted back; off: the whole plate at once",
                   choices=("auto", "off")),
            Option("region_size", "int", 0,
                   "the longer side, in pixels, the region is inpainted at (0 = the model's native size: 512 for "
                   "SD 1.5, 1024 for SDXL, SD3 and Flux)", minimum=0, maximum=16384),
            Option("context", "int", 64, "pixels of plate around the mask's box the model sees (region mode)",
                   minimum=0, maximum=4096),
        ]

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """After the VAE tiles: the region at the model's native size instead of the whole plate."""
        lighter = super().lighter(options)
        if lighter is None and options["region"] == "off":
            lighter = {**options, "region": "auto"}
        return lighter

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        assert job.mask is not None
        o = ctx.options
        blend = soft_mask(job.mask, o["grow"], o["feather"])
        if not (blend > 0).any():
            ctx.progress(1, 1)  # nothing to fill
            return FrameResult(rgb=job.rgb.copy())
        pipe = self.pipeline(ctx.device)
        extra = self.prepare(pipe, ctx)
        native = o.get("region_size", 0) or native_size(pipe)
        h, w = blend.shape
        if o["region"] == "auto" and max(h, w) > native:
            y0, y1, x0, x1 = region_box(blend > 0, o["context"])
            made = job.rgb.copy()
            crop = self._inpaint(pipe, job.rgb[y0:y1, x0:x1], blend[y0:y1, x0:x1] > 0, ctx, extra, native)
            made[y0:y1, x0:x1] = crop
        else:
            made = self._inpaint(pipe, job.rgb, blend > 0, ctx, extra, None)
        a = blend[..., None]
        rgb = job.rgb * (1.0 - a) + made * a
        grown = o["grow"] > 0 or o["feather"] > 0
        return FrameResult(rgb=np.ascontiguousarray(rgb, dtype=np.float32),
                           filled=(blend > 0).astype(np.float32) if grown else None)


    def _inpaint(self, pipe: Any, rgb: np.ndarray, hole: np.ndarray, ctx: PassContext, extra: Dict[str, Any],
                 native: Optional[int]) -> np.ndarray:
        """The pipeline on ``rgb`` (scaled so its longer side is ``native`` when given) and back at its size."""
        h, w = rgb.shape[:2]
        image, mask = np.clip(rgb, 0, 1), hole.astype(np.float32)
        if native is not None and max(h, w) != native:
            k = native / max(h, w)
            size = (max(8, round(w * k)), max(8, round(h * k)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
            mask = (cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR) > 0).astype(np.float32)
        padded, size_in = pad_to_multiple(np.ascontiguousarray(image, dtype=np.float32), latent_multiple(pipe))
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        holes, _ = pad_to_multiple(mask[..., None], latent_multiple(pipe), mode="constant")
        images = pipe(
            image=to_tensor(padded, pipe),
            mask_image=to_tensor(np.repeat(holes, 3, axis=2), pipe)[:, :1],
            height=padded.shape[0],
            width=padded.shape[1],
            **denoise_args(ctx, ctx.options),
            **extra,
        ).images
        made = crop_to(np.asarray(images[0], dtype=np.float32), size_in)
        if made.shape[:2] != (h, w):
            made = cv2.resize(made, (w, h), interpolation=cv2.INTER_CUBIC)
        return np.clip(made, 0.0, 1.0).astype(np.float32)


def region_box(hole: np.ndarray, context: int) -> tuple:
    """(y0, y1, x0, x1): the hole's bounding box grown by ``context`` pixels, within the plate."""
    ys, xs = np.nonzero(hole)
    h, w = hole.shape
    return (max(0, ys.min() - context), min(h, ys.max() + 1 + context),
            max(0, xs.min() - context), min(w, xs.max() + 1 + context))


def soft_mask(mask: np.ndarray, grow: int, feather: int) -> np.ndarray:
    """The blend weight: the mask, grown by ``grow`` px, then ramping to 0 over ``feather`` px outside it."""
    out = np.clip(mask.astype(np.float32), 0, 1)
    hard = (out > 0).astype(np.uint8)
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        hard = cv2.dilate(hard, kernel)
        out = np.maximum(out, hard.astype(np.float32))
    if feather > 0:
        # Distance (px) from the grown mask for every pixel outside it; weight falls linearly to 0.
        dist = cv2.distanceTransform((1 - hard).astype(np.uint8), cv2.DIST_L2, 5)
        ramp = np.clip(1.0 - dist / float(feather + 1), 0.0, 1.0)
        out = np.maximum(out, ramp.astype(np.float32))
    return out
