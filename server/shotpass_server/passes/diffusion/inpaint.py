"""inpaint: the SD inpaint pipeline; mask from a mask plate or the plate's alpha, with grow and feather.

The generated frame is blended in through the (grown, feathered) mask, and the frame pipeline copies
every pixel outside that region back from the plate bit for bit, in the plate's own space and precision.

Batching: frames whose pipeline input has one size (the whole plate, or in region mode the mask's box scaled to
the region size), with one prompt and options, go through one pipeline call (``batch`` option), each with its
own image, mask and noise generator; each frame's result is its unbatched one up to floating-point differences
between batch sizes, and pixels outside its mask are still the plate's, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Hashable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import (
    DiffusionModel,
    batch_denoise_args,
    denoise_args,
    latent_multiple,
    set_vae_tiling,
    to_tensor,
)
from .multidiffusion import native_size

Box = Tuple[int, int, int, int]  # y0, y1, x0, x1


@dataclass
class Fill:
    """One frame's pipeline input: the plate, or its region scaled to the region size, padded for the model."""

    image: np.ndarray  # padded H x W x 3 in [0, 1]
    holes: np.ndarray  # padded H x W x 1, 1 = to fill
    size: Tuple[int, int]  # the unpadded model size (h, w)
    box: Optional[Box]  # where it goes back in the plate; None: the whole plate
    out: Tuple[int, int]  # the size it goes back at: the region's, or the plate's


class InpaintModel(DiffusionModel):
    needs_mask = True
    keeps_unmasked = True
    batches = True
    native = 512  # the loaded model's native size, read when it first renders

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
        self.native = native_size(pipe)
        fill = self._fill(pipe, job.rgb, blend, o)
        made = self._call(pipe, [fill], denoise_args(ctx, o), extra, [ctx])[0]
        return self._finish(job, blend, fill, made, o)

    def batch_key(self, job: FrameJob, ctx: PassContext) -> Optional[Hashable]:
        """Frames batch when one pipeline call can take them all: the same model size (render_batch splits a
        batch whose sizes, once the model's native size is known, differ), prompts, options and reference."""
        if job.mask is None or ctx.noise is not None or ctx.anchor is not None:
            return None  # noise=flow and cross_frame shape each frame's own call
        o = ctx.options
        blend = soft_mask(job.mask, o["grow"], o["feather"])
        if not (blend > 0).any():
            return None  # nothing to fill: no pipeline call
        size = model_size(blend.shape, region_of(blend, o, self.native), region_side(o, self.native))
        reference = id(ctx.reference_rgb) if ctx.reference_rgb is not None else None
        return (size, reference, ctx.prompt, ctx.negative_prompt, ctx.device, tuple(sorted(o.items())))

    def render_batch(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        o = ctxs[0].options
        pipe = self.pipeline(ctxs[0].device)
        extra = self.prepare(pipe, ctxs[0])
        self.native = native_size(pipe)
        blends = [soft_mask(job.mask, o["grow"], o["feather"]) for job in jobs if job.mask is not None]
        if len(blends) < len(jobs) or not all((blend > 0).any() for blend in blends):
            return [self.render(job, ctx) for job, ctx in zip(jobs, ctxs)]  # batch_key keeps these out
        fills = [self._fill(pipe, job.rgb, blend, o) for job, blend in zip(jobs, blends)]
        groups: Dict[Tuple[int, ...], List[int]] = {}  # one call per padded size, frames in order
        for i, fill in enumerate(fills):
            groups.setdefault(fill.image.shape, []).append(i)
        made: Dict[int, np.ndarray] = {}
        for members in groups.values():
            group = [ctxs[i] for i in members]
            args = batch_denoise_args(group, o) if len(members) > 1 else denoise_args(group[0], o)
            outs = self._call(pipe, [fills[i] for i in members], args, extra, group)
            made.update(zip(members, outs))
        return [self._finish(job, blend, fill, made[i], o)
                for i, (job, blend, fill) in enumerate(zip(jobs, blends, fills))]

    def batch_pixels(self, job: FrameJob, ctx: PassContext) -> int:
        """The region's pixels in region mode (at most the region size squared), else the plate's."""
        o, (h, w) = ctx.options, job.rgb.shape[:2]
        side = region_side(o, self.native)
        return side * side if o["region"] == "auto" and max(h, w) > side else h * w

    def _fill(self, pipe: Any, rgb: np.ndarray, blend: np.ndarray, o: Dict[str, Any]) -> Fill:
        """The pipeline input of one frame: its region (region mode) scaled to the region size, or the plate."""
        box = region_of(blend, o, self.native)
        y0, y1, x0, x1 = box or (0, rgb.shape[0], 0, rgb.shape[1])
        image, mask = np.clip(rgb[y0:y1, x0:x1], 0, 1), (blend[y0:y1, x0:x1] > 0).astype(np.float32)
        h, w = image.shape[:2]
        size = model_size(blend.shape, box, region_side(o, self.native))
        if size != (h, w):
            k = region_side(o, self.native) / max(h, w)
            image = cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC)
            mask = (cv2.resize(mask, size[::-1], interpolation=cv2.INTER_LINEAR) > 0).astype(np.float32)
        padded, size_in = pad_to_multiple(np.ascontiguousarray(image, dtype=np.float32), latent_multiple(pipe))
        holes, _ = pad_to_multiple(mask[..., None], latent_multiple(pipe), mode="constant")
        return Fill(image=padded, holes=holes, size=size_in, box=box, out=(h, w))

    def _call(self, pipe: Any, fills: Sequence[Fill], args: Dict[str, Any], extra: Dict[str, Any],
              ctxs: Sequence[PassContext]) -> List[np.ndarray]:
        """Fills of one padded size through one pipeline call (ctxs: their frames' contexts, in order); each comes
        back at its own region's size."""
        import torch

        height, width = fills[0].image.shape[:2]
        set_vae_tiling(pipe, height, width, ctxs[0])
        images = pipe(
            image=torch.cat([to_tensor(f.image, pipe) for f in fills]),
            mask_image=torch.cat([to_tensor(np.repeat(f.holes, 3, axis=2), pipe)[:, :1] for f in fills]),
            height=height,
            width=width,
            **args,
            **extra,
        ).images
        out = []
        for fill, image in zip(fills, images):
            made = crop_to(np.asarray(image, dtype=np.float32), fill.size)
            if made.shape[:2] != fill.out:
                made = cv2.resize(made, fill.out[::-1], interpolation=cv2.INTER_CUBIC)
            out.append(np.clip(made, 0.0, 1.0).astype(np.float32))
        return out

    def _finish(self, job: FrameJob, blend: np.ndarray, fill: Fill, made: np.ndarray, o: Dict[str, Any]) -> FrameResult:
        """The generated pixels blended into the plate through the (grown, feathered) mask."""
        if fill.box is not None:
            y0, y1, x0, x1 = fill.box
            region, made = made, job.rgb.copy()
            made[y0:y1, x0:x1] = region
        a = blend[..., None]
        rgb = job.rgb * (1.0 - a) + made * a
        grown = o["grow"] > 0 or o["feather"] > 0
        return FrameResult(rgb=np.ascontiguousarray(rgb, dtype=np.float32),
                           filled=(blend > 0).astype(np.float32) if grown else None)


def region_side(o: Dict[str, Any], native: int) -> int:
    """The longer side, in pixels, region mode inpaints at."""
    return int(o.get("region_size", 0) or native)


def region_of(blend: np.ndarray, o: Dict[str, Any], native: int) -> Optional[Box]:
    """The box region mode inpaints (the filled area plus context), or None when the whole plate goes in."""
    if o["region"] == "auto" and max(blend.shape) > region_side(o, native):
        return region_box(blend > 0, o["context"])
    return None


def model_size(plate: Tuple[int, ...], box: Optional[Box], side: int) -> Tuple[int, int]:
    """(h, w) of what the pipeline takes: the region scaled so its longer side is ``side``, or the plate as it is."""
    if box is None:
        return plate[0], plate[1]
    h, w = box[1] - box[0], box[3] - box[2]
    if max(h, w) == side:
        return h, w
    k = side / max(h, w)
    return max(8, round(h * k)), max(8, round(w * k))


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
