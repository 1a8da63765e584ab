"""inpaint: the SD inpaint pipeline; mask from a mask plate or the plate's alpha, with grow and feather.

The generated frame is blended in through the (grown, feathered) mask, and the frame pipeline copies
every pixel outside that region back from the plate bit for bit, in the plate's own space and precision.
"""

from __future__ import annotations

from typing import List

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
        ]

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        assert job.mask is not None
        o = ctx.options
        blend = soft_mask(job.mask, o["grow"], o["feather"])
        if not (blend > 0).any():
            ctx.progress(1, 1)  # nothing to fill
            return FrameResult(rgb=job.rgb.copy())
        pipe = self.pipeline(ctx.device)
        extra = self.prepare(pipe, ctx)
        padded, size = pad_to_multiple(np.clip(job.rgb, 0, 1), latent_multiple(pipe))
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        hole, _ = pad_to_multiple((blend > 0).astype(np.float32)[..., None], latent_multiple(pipe), mode="constant")
        images = pipe(
            image=to_tensor(padded, pipe),
            mask_image=to_tensor(np.repeat(hole, 3, axis=2), pipe)[:, :1],
            height=padded.shape[0],
            width=padded.shape[1],
            **denoise_args(ctx, o),
            **extra,
        ).images
        made = crop_to(np.asarray(images[0], dtype=np.float32), size)
        a = blend[..., None]
        rgb = job.rgb * (1.0 - a) + made * a
        grown = o["grow"] > 0 or o["feather"] > 0
        return FrameResult(rgb=np.ascontiguousarray(rgb, dtype=np.float32),
                           filled=(blend > 0).astype(np.float32) if grown else None)


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
