"""SD3/SD3.5 and Flux img2img on plates larger than the model's native size: MultiDiffusion with flow matching.

multidiffusion.py's scheme on a transformer: the whole plate is encoded once and noised once (the frame's
own noise, drawn as the pipeline draws it, so a plate within one window is the pipeline's result bit for
bit). At every step the transformer sees overlapping latent windows of the native size; their velocity
predictions are blended with linear ramps where windows overlap and one flow-matching step moves the whole
latent, so neighbouring windows agree at every step and no seam forms. Progress is reported, and cancel
honoured, after every window of every step.

The timesteps are set as the pipelines set them, for the *window's* size: Flux's resolution-dependent shift
(``mu``) and SD3's own shift are those of an image the window's size (by default the native size), which is
what each window is to the model.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

import numpy as np

from ..base import PassContext
from .common import generator, is_flux
from .multidiffusion import weight, windows


@dataclass
class Conditioning:
    """The prompt as the transformer takes it, for one call over a window."""

    embeds: Any
    pooled: Any
    negative: Optional[Any] = None  # Flux true CFG: a second call with the negative prompt
    negative_pooled: Optional[Any] = None
    text_ids: Optional[Any] = None  # Flux: the text tokens' rotary positions
    guidance: Optional[Any] = None  # Flux dev: the guidance the model takes as an input


def window_size(pipe: Any, tile_px: int, overlap_px: int) -> Tuple[int, int]:
    """(window, overlap) in latents: a multiple of the transformer's patch (Flux packs 2 x 2 latents into one
    token), the overlap at most half a window."""
    factor = int(pipe.vae_scale_factor)
    patch = 2 if is_flux(pipe) else int(pipe.transformer.config.patch_size)
    tile = max(patch, (tile_px // factor) // patch * patch)
    return tile, min(max(0, overlap_px // factor), tile // 2)


def windowed_flow(pipe: Any, latents: Any, ctx: PassContext, tile_px: int, overlap_px: int,
                  true_cfg: float = 1.0) -> Any:
    """Denoise 1 x C x h x w ``latents`` (the encoded plate) in windows; returns the denoised latents."""
    import torch

    with torch.no_grad():  # as the pipelines run (the text encoders' kernels differ with autograd on, too)
        return _windowed_flow(pipe, latents, ctx, tile_px, overlap_px, true_cfg)


def _windowed_flow(pipe: Any, latents: Any, ctx: PassContext, tile_px: int, overlap_px: int, true_cfg: float) -> Any:
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    o = ctx.options
    tile, overlap = window_size(pipe, tile_px, overlap_px)
    _, channels, h, w = latents.shape
    views = windows(h, w, tile, overlap)
    th, tw = views[0][2], views[0][3]  # every window has the same size
    # Where the pipeline would run: with cpu_offload the weights wait on the CPU but every call runs on the GPU.
    device = pipe._execution_device
    cond = _flux_conditioning(pipe, ctx, true_cfg, device) if is_flux(pipe) else _sd3_conditioning(pipe, ctx, device)
    timesteps = _timesteps(pipe, ctx, th, tw, device)
    dtype = cond.embeds.dtype  # the pipelines' latents take the prompt embeddings' dtype
    noise = randn_tensor(tuple(latents.shape), generator=generator(ctx.seed), device=device, dtype=dtype)
    latents = pipe.scheduler.scale_noise(latents.to(device, dtype), timesteps[:1], noise)
    predict = _flux_predict(pipe, cond, channels, true_cfg) if is_flux(pipe) else _sd3_predict(pipe, cond, o)
    weights = [torch.from_numpy(weight(h, w, v, overlap)).to(device, dtype)[None, None] for v in views]
    total = len(timesteps) * len(views)
    # Samplers that draw fresh noise at each step (LCM, stochastic Euler) draw it from the frame's seed too.
    takes_generator = "generator" in inspect.signature(pipe.scheduler.step).parameters
    step_kwargs = {"generator": generator(ctx.seed + 1)} if takes_generator else {}
    for i, t in enumerate(timesteps):
        blended = torch.zeros_like(latents)
        norm = torch.zeros_like(latents[:, :1])
        for k, ((y, x, vh, vw), wt) in enumerate(zip(views, weights)):
            velocity = predict(latents[:, :, y: y + vh, x: x + vw], t)
            blended[:, :, y: y + vh, x: x + vw] += velocity * wt
            norm[:, :, y: y + vh, x: x + vw] += wt
            ctx.progress(i * len(views) + k + 1, total)  # raises when the render was cancelled
        # The Euler step is elementwise: stepping the unpacked latent is stepping Flux's packed tokens.
        latents = pipe.scheduler.step(blended / norm, t, latents, **step_kwargs, return_dict=False)[0]
    return latents


def _timesteps(pipe: Any, ctx: PassContext, th: int, tw: int, device: Any) -> Any:
    """The img2img schedule as the pipeline sets it for a th x tw latent image, cut by strength (which also sets
    the scheduler's begin index, so scale_noise and step start where the pipeline's do)."""
    o = ctx.options
    steps = int(o["steps"])
    scheduler = pipe.scheduler
    if is_flux(pipe):
        from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

        sigmas = np.linspace(1.0, 1 / steps, steps)
        mu = calculate_shift((th // 2) * (tw // 2), scheduler.config.get("base_image_seq_len", 256),
                             scheduler.config.get("max_image_seq_len", 4096),
                             scheduler.config.get("base_shift", 0.5), scheduler.config.get("max_shift", 1.15))
        retrieve_timesteps(scheduler, steps, device, sigmas=sigmas, mu=mu)
    else:
        from diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3_img2img import (
            calculate_shift,
            retrieve_timesteps,
        )

        extra = {}
        if scheduler.config.get("use_dynamic_shifting", None):  # SD3.5 schedulers that shift by resolution
            patch = int(pipe.transformer.config.patch_size)
            extra["mu"] = calculate_shift((th // patch) * (tw // patch),
                                          scheduler.config.get("base_image_seq_len", 256),
                                          scheduler.config.get("max_image_seq_len", 4096),
                                          scheduler.config.get("base_shift", 0.5),
                                          scheduler.config.get("max_shift", 1.16))
        retrieve_timesteps(scheduler, steps, device, **extra)
    timesteps, _ = pipe.get_timesteps(steps, o["strength"], device)
    return timesteps


def _sd3_conditioning(pipe: Any, ctx: PassContext, device: Any) -> Conditioning:
    import torch

    cfg = ctx.options["guidance"] > 1.0
    pos, neg, pooled, neg_pooled = pipe.encode_prompt(
        prompt=ctx.prompt or "", prompt_2=None, prompt_3=None, negative_prompt=ctx.negative_prompt or None,
        do_classifier_free_guidance=cfg, device=device, num_images_per_prompt=1, max_sequence_length=256,
    )
    if cfg:  # negative first, as the pipeline batches them
        return Conditioning(torch.cat([neg, pos]), torch.cat([neg_pooled, pooled]))
    return Conditioning(pos, pooled)


def _sd3_predict(pipe: Any, cond: Conditioning, o: Any) -> Callable[[Any, Any], Any]:
    import torch

    cfg = o["guidance"] > 1.0

    def predict(part: Any, t: Any) -> Any:
        model_in = torch.cat([part] * 2) if cfg else part
        v = pipe.transformer(hidden_states=model_in, timestep=t.expand(model_in.shape[0]),
                             encoder_hidden_states=cond.embeds, pooled_projections=cond.pooled,
                             return_dict=False)[0]
        if cfg:
            uncond, text = v.chunk(2)
            v = uncond + o["guidance"] * (text - uncond)
        return v

    return predict


def _flux_conditioning(pipe: Any, ctx: PassContext, true_cfg: float, device: Any) -> Conditioning:
    import torch

    embeds, pooled, text_ids = pipe.encode_prompt(prompt=ctx.prompt or "", prompt_2=None, device=device,
                                                  num_images_per_prompt=1, max_sequence_length=512)
    cond = Conditioning(embeds, pooled, text_ids=text_ids)
    if true_cfg > 1 and ctx.negative_prompt:  # as the pipeline: true CFG only with a negative prompt
        cond.negative, cond.negative_pooled, _ = pipe.encode_prompt(
            prompt=ctx.negative_prompt, prompt_2=None, device=device, num_images_per_prompt=1,
            max_sequence_length=512,
        )
    if pipe.transformer.config.guidance_embeds:
        cond.guidance = torch.full([1], float(ctx.options["guidance"]), device=device, dtype=torch.float32)
    return cond


def _flux_predict(pipe: Any, cond: Conditioning, channels: int, true_cfg: float) -> Callable[[Any, Any], Any]:
    factor = int(pipe.vae_scale_factor)
    ids: dict = {}

    def predict(part: Any, t: Any) -> Any:
        _, _, th, tw = part.shape
        tokens = pipe._pack_latents(part, 1, channels, th, tw)
        if (th, tw) not in ids:
            # The window's own positions, 0..th/2 x 0..tw/2, as if it were a whole native-size image: Flux's rotary
            # positions were trained on images of about this size, so each window is denoised as the model knows
            # to, at the shift set for its size, and a plate within one window is exactly the pipeline's call.
            # The blended overlaps, not the positions, keep neighbouring windows in agreement.
            ids[(th, tw)] = pipe._prepare_latent_image_ids(1, th // 2, tw // 2, part.device, part.dtype)
        timestep = t.expand(1).to(part.dtype) / 1000

        def call(embeds: Any, pooled: Any) -> Any:
            return pipe.transformer(hidden_states=tokens, timestep=timestep, guidance=cond.guidance,
                                    pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=cond.text_ids,
                                    img_ids=ids[(th, tw)], joint_attention_kwargs={}, return_dict=False)[0]

        v = call(cond.embeds, cond.pooled)
        if cond.negative is not None:
            neg = call(cond.negative, cond.negative_pooled)
            v = neg + true_cfg * (v - neg)
        return pipe._unpack_latents(v, th * factor, tw * factor, factor)

    return predict


def decode(pipe: Any, latents: Any) -> np.ndarray:
    """Latents -> H x W x 3 float32 in [0, 1], unscaled and unshifted as the pipelines do before their VAE."""
    import torch

    vae = pipe.vae
    with torch.no_grad():
        z = (latents / vae.config.scaling_factor) + vae.config.shift_factor
        image = vae.decode(z, return_dict=False)[0]
    image = (image * 0.5 + 0.5).clamp(0, 1)
    return np.ascontiguousarray(image[0].permute(1, 2, 0).float().cpu().numpy(), dtype=np.float32)

