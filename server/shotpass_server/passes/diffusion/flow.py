"""stylize and inpaint on transformer bases sampled by flow matching: SD3/SD3.5 and Flux.

The same frame contract as the UNet kinds: the plate is reflect-padded to the transformer's multiple (the VAE's
8 x its 2 x 2 patches), encoded to the distribution's mean (shifted and scaled as these VAEs want), steered
by the shot's reference (AdaIN of the latents, as img2img.py does), denoised with the frame's own noise and
cropped back. A plate within one window (``tile``, by default the model's native size) goes through the
pipeline whole; a larger one is denoised in blended windows of that size (flow_windows.py), as the UNet kinds
are, so a 2K or 4K plate runs at the scale the model was trained at and fits in GPU memory. Inpaint is
img2img.py's sibling in inpaint.py, region mode included; these classes only set what differs: the options
(Flux's guidance is a model input, with true CFG beside it) and no ControlNet.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import DiffusionModel, denoise_args, generator, latent_multiple, set_vae_tiling
from .flow_windows import decode, windowed_flow
from .img2img import MIN_TILE, encode, match_statistics
from .inpaint import Fill, InpaintModel
from .multidiffusion import native_size

FLUX_GUIDANCE_HELP = "guidance the model takes as an input (Flux dev: about 3.5; Flux schnell ignores it)"
TRUE_CFG_HELP = "true classifier-free guidance with the negative prompt (1 = off; each step runs twice above 1)"


def flow_options(model: DiffusionModel, base: List[Option]) -> List[Option]:
    """The options every diffusion model has, with Flux's guidance described as it is, and true CFG for Flux."""
    if not model.spec.kind.startswith("flux"):
        return base
    out = [Option("guidance", "float", o.default, FLUX_GUIDANCE_HELP, minimum=0, maximum=50)
           if o.name == "guidance" else o for o in base]
    return [*out, Option("true_cfg", "float", 1.0, TRUE_CFG_HELP, minimum=1, maximum=20)]


def flow_call_args(model: DiffusionModel, ctx: PassContext) -> Dict[str, Any]:
    return {"true_cfg_scale": float(ctx.options["true_cfg"])} if model.spec.kind.startswith("flux") else {}


@contextmanager
def seeded_steps(pipe: Any, seeds: Sequence[int]) -> Iterator[None]:
    """For one pipeline call, a sampler that draws fresh noise at each step (LCM) draws it from each frame's seed:
    the SD3 and Flux pipelines give their scheduler's step no generator, so it would draw from torch's global one
    and a re-render would not match. A batch gets a generator per frame, so each frame draws what it draws alone.
    Samplers that draw nothing ignore the generator."""
    scheduler = pipe.scheduler
    if "generator" not in inspect.signature(scheduler.step).parameters:
        yield
        return
    real_step = scheduler.step
    noise = generator(seeds[0]) if len(seeds) == 1 else [generator(seed) for seed in seeds]

    def step(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("generator", noise)
        return real_step(*args, **kwargs)

    scheduler.step = step  # shadows the class's method on this (cached) pipeline's scheduler
    try:
        yield
    finally:
        del scheduler.step


class FlowImg2ImgModel(DiffusionModel):
    """sd3-img2img, flux-img2img: the plate through the pipeline, or in blended windows when larger than one,
    with the reference's palette."""

    accepts_reference = True
    native = 1024  # the loaded model's native size, read when it first renders

    def build_options(self) -> List[Option]:
        s = self.spec
        return [
            *flow_options(self, super().build_options()),
            Option("strength", "float", s.strength, "how far from the plate (0 = plate, 1 = new image)", minimum=0,
                   maximum=1),
            Option("reference_strength", "float", s.reference_strength,
                   "how strongly the shot's reference sets palette and contrast (0 = ignore it)", minimum=0, maximum=1),
            Option("tile", "int", s.tile,
                   "plates larger than this many pixels are denoised in overlapping windows of this size, blended "
                   "at every step (0 = the model's native size: 1024 for SD3/SD3.5 and Flux)", minimum=0,
                   maximum=16384),
            Option("tile_overlap", "int", s.tile_overlap,
                   "pixels neighbouring windows share (-1 = a quarter window; 0 = hard cuts, which show seams)",
                   minimum=-1, maximum=8192),
        ]

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        o = ctx.options
        if int(o["steps"] * o["strength"]) < 1:
            ctx.progress(1, 1)  # no step would run: the plate is the result
            return FrameResult(rgb=job.rgb.copy())
        pipe = self.pipeline(ctx.device)
        self.native = native_size(pipe)
        tile = o["tile"] or self.native
        if max(job.rgb.shape[:2]) > tile:
            return self.render_in_windows(job, ctx, tile)
        padded, size, latents = self._start(pipe, job, ctx)
        extra = self.prepare(pipe, ctx)
        with seeded_steps(pipe, [ctx.seed + 1]):
            images = pipe(
                image=latents,  # as many channels as the VAE's latents: taken as the start, not re-encoded
                height=padded.shape[0],
                width=padded.shape[1],
                **denoise_args(ctx, o),
                **extra,
            ).images
        return FrameResult(rgb=np.ascontiguousarray(crop_to(np.asarray(images[0], dtype=np.float32), size)))

    def render_in_windows(self, job: FrameJob, ctx: PassContext, tile: int) -> FrameResult:
        """MultiDiffusion over the whole plate in windows of ``tile`` pixels: encode, denoise in blended windows,
        decode (flow_windows.py). A plate within one window gives what the pipeline gives, bit for bit."""
        o = ctx.options
        pipe = self.pipeline(ctx.device)
        padded, size, latents = self._start(pipe, job, ctx)
        self.prepare(pipe, ctx)  # the sampler and LoRA weights, set on the pipeline
        overlap = tile // 4 if o["tile_overlap"] < 0 else o["tile_overlap"]
        true_cfg = float(o["true_cfg"]) if "true_cfg" in o else 1.0
        latents = windowed_flow(pipe, latents, ctx, tile, overlap, true_cfg)
        return FrameResult(rgb=np.ascontiguousarray(crop_to(decode(pipe, latents), size)))

    def _start(self, pipe: Any, job: FrameJob, ctx: PassContext) -> Tuple[np.ndarray, Tuple[int, int], Any]:
        """The padded plate, its own size and its latents, moved towards the reference's palette."""
        o = ctx.options
        h, w = job.rgb.shape[:2]
        padded, size = pad_to_multiple(np.ascontiguousarray(np.clip(job.rgb, 0.0, 1.0)), latent_multiple(pipe))
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        latents = encode(pipe, padded)
        if ctx.reference_rgb is not None and o["reference_strength"] > 0:
            ref = cv2.resize(np.clip(ctx.reference_rgb, 0, 1), (w, h), interpolation=cv2.INTER_AREA)
            ref_padded, _ = pad_to_multiple(np.ascontiguousarray(ref, dtype=np.float32), latent_multiple(pipe))
            latents = match_statistics(latents, encode(pipe, ref_padded), o["reference_strength"])
        return padded, size, latents

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """After the VAE tiles: denoise in windows, halving them down to MIN_TILE pixels."""
        lighter = super().lighter(options)
        tile = options["tile"] or self.native
        if lighter is None and tile // 2 >= MIN_TILE:
            lighter = {**options, "tile": tile // 2}
        return lighter

    def prepare(self, pipe: Any, ctx: PassContext) -> Dict[str, Any]:
        return {**super().prepare(pipe, ctx), **flow_call_args(self, ctx)}


class FlowInpaintModel(InpaintModel):
    """sd3-inpaint, flux-inpaint: inpaint.py's region and blending, on a transformer base."""

    def build_options(self) -> List[Option]:
        return flow_options(self, super().build_options())

    def prepare(self, pipe: Any, ctx: PassContext) -> Dict[str, Any]:
        return {**super().prepare(pipe, ctx), **flow_call_args(self, ctx)}

    def _call(self, pipe: Any, fills: Sequence[Fill], args: Dict[str, Any], extra: Dict[str, Any],
              ctxs: Sequence[PassContext]) -> List[np.ndarray]:
        with seeded_steps(pipe, [ctx.seed + 1 for ctx in ctxs]):
            return super()._call(pipe, fills, args, extra, ctxs)
