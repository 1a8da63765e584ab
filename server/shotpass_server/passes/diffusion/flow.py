"""stylize and inpaint on transformer bases sampled by flow matching: SD3/SD3.5 and Flux.

The same frame contract as the UNet kinds: the plate is reflect-padded to the transformer's multiple (the VAE's
8 x its 2 x 2 patches), encoded to the distribution's mean (shifted and scaled as these VAEs want), steered
by the shot's reference (AdaIN of the latents, as img2img.py does), denoised with the frame's own noise and
cropped back. Inpaint is img2img.py's sibling in inpaint.py, region mode included; these classes only set
what differs: the options (Flux's guidance is a model input, with true CFG beside it), no ControlNet and
no windowed (MultiDiffusion) denoising: a transformer attends over the whole plate at once, so the only
lighter setting after running out of memory is the VAE in tiles.
"""

from __future__ import annotations

from typing import Any, Dict, List

import cv2
import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import DiffusionModel, denoise_args, latent_multiple, set_vae_tiling
from .img2img import encode, match_statistics
from .inpaint import InpaintModel

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


class FlowImg2ImgModel(DiffusionModel):
    """sd3-img2img, flux-img2img: the whole plate through the pipeline, with the reference's palette."""

    accepts_reference = True

    def build_options(self) -> List[Option]:
        s = self.spec
        return [
            *flow_options(self, super().build_options()),
            Option("strength", "float", s.strength, "how far from the plate (0 = plate, 1 = new image)", minimum=0,
                   maximum=1),
            Option("reference_strength", "float", s.reference_strength,
                   "how strongly the shot's reference sets palette and contrast (0 = ignore it)", minimum=0, maximum=1),
        ]

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        o = ctx.options
        if int(o["steps"] * o["strength"]) < 1:
            ctx.progress(1, 1)  # no step would run: the plate is the result
            return FrameResult(rgb=job.rgb.copy())
        pipe = self.pipeline(ctx.device)
        h, w = job.rgb.shape[:2]
        padded, size = pad_to_multiple(np.ascontiguousarray(np.clip(job.rgb, 0.0, 1.0)), latent_multiple(pipe))
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        latents = encode(pipe, padded)
        if ctx.reference_rgb is not None and o["reference_strength"] > 0:
            ref = cv2.resize(np.clip(ctx.reference_rgb, 0, 1), (w, h), interpolation=cv2.INTER_AREA)
            ref_padded, _ = pad_to_multiple(np.ascontiguousarray(ref, dtype=np.float32), latent_multiple(pipe))
            latents = match_statistics(latents, encode(pipe, ref_padded), o["reference_strength"])
        images = pipe(
            image=latents,  # as many channels as the VAE's latents: taken as the start, not re-encoded
            height=padded.shape[0],
            width=padded.shape[1],
            **denoise_args(ctx, o),
            **self.prepare(pipe, ctx),
        ).images
        return FrameResult(rgb=np.ascontiguousarray(crop_to(np.asarray(images[0], dtype=np.float32), size)))

    def prepare(self, pipe: Any, ctx: PassContext) -> Dict[str, Any]:
        return {**super().prepare(pipe, ctx), **flow_call_args(self, ctx)}


class FlowInpaintModel(InpaintModel):
    """sd3-inpaint, flux-inpaint: inpaint.py's region and blending, on a transformer base."""

    def build_options(self) -> List[Option]:
        return flow_options(self, super().build_options())

    def prepare(self, pipe: Any, ctx: PassContext) -> Dict[str, Any]:
        return {**super().prepare(pipe, ctx), **flow_call_args(self, ctx)}
