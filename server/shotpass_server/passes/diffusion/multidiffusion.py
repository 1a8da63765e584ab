"""img2img on plates larger than the model's native size: MultiDiffusion-style tiled denoising.

The whole plate is encoded once and noised once (the frame's own noise, so the result does not depend on
the tiling). At every step the UNet sees overlapping latent windows of the model's native size; their noise
predictions are blended with linear ramps where windows overlap and one scheduler step moves the whole
latent, so neighbouring windows agree at every step and no seam forms (Bar-Tal et al., MultiDiffusion,
2023). Progress is reported, and cancel honoured, after every window of every step.

Prompts, guidance, LoRAs, embeddings and the sampler act as in the pipeline; a ControlNet sees its own
window of the condition; SDXL windows carry their own crop coordinates; an IP-Adapter's image embeds go to
every window.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ...frames.tiling import _ramp, tile_starts
from ..base import PassContext
from .common import generator, starting_noise, to_tensor


def native_size(pipe: Any) -> int:
    """The pixel size the model was trained at (sample size x VAE factor: 512 for SD 1.5, 1024 for SDXL, SD3 and
    Flux; the transformer pipelines keep it as their default_sample_size)."""
    if getattr(pipe, "unet", None) is None:
        return int(pipe.default_sample_size) * int(pipe.vae_scale_factor)
    sample = pipe.unet.config.sample_size
    sample = sample[0] if isinstance(sample, (list, tuple)) else sample
    return int(sample) * int(getattr(pipe, "vae_scale_factor", 8))


def windows(h: int, w: int, tile: int, overlap: int) -> List[Tuple[int, int, int, int]]:
    """(y, x, height, width) latent windows covering h x w, overlapping by ``overlap``."""
    th, tw = min(tile, h), min(tile, w)
    return [(y, x, th, tw) for y in tile_starts(h, th, overlap) for x in tile_starts(w, tw, overlap)]


def weight(h: int, w: int, window: Tuple[int, int, int, int], overlap: int) -> np.ndarray:
    """A window's blend weight: 1 inside, ramping down towards edges it shares with a neighbour."""
    y, x, th, tw = window
    wy = _ramp(th, overlap, y > 0, y + th < h)
    wx = _ramp(tw, overlap, x > 0, x + tw < w)
    return np.outer(wy, wx).astype(np.float32)


def tiled_img2img(
    pipe: Any,
    latents: Any,
    ctx: PassContext,
    tile_px: int,
    overlap_px: int,
    extra: Dict[str, Any],
    control: Optional[np.ndarray] = None,
) -> Any:
    """Denoise 1 x C x h x w ``latents`` (the encoded plate) in windows; returns the denoised latents."""
    import torch

    o = ctx.options
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    down = 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    tile = max(down, (tile_px // factor) // down * down)
    overlap = min(max(0, overlap_px // factor), tile // 2)
    _, _, h, w = latents.shape
    views = windows(h, w, tile, overlap)
    device, dtype = latents.device, pipe.unet.dtype
    cfg = o["guidance"] > 1.0
    cond, added = _conditioning(pipe, ctx, cfg, device, extra)
    steps = o["steps"]
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps, device=device)
    start = max(steps - min(int(steps * o["strength"]), steps), 0)
    timesteps = scheduler.timesteps[start * scheduler.order:]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start * scheduler.order)
    noise = starting_noise(ctx, latents.shape, pipe).to(device, dtype)
    latents = scheduler.add_noise(latents.to(dtype), noise, timesteps[:1])
    if control is not None:
        control_t = to_tensor(control, pipe).to(dtype)
        control_t = torch.cat([control_t] * 2) if cfg else control_t
    weights = [torch.from_numpy(weight(h, w, v, overlap)).to(device, dtype)[None, None] for v in views]
    total = len(timesteps) * len(views)
    # Ancestral samplers' fresh noise is fixed by the frame's seed too; samplers without it take no generator.
    step_kwargs = pipe.prepare_extra_step_kwargs(generator(ctx.seed + 1), 0.0)
    with torch.no_grad():
        for i, t in enumerate(timesteps):
            blended = torch.zeros_like(latents)
            norm = torch.zeros_like(latents[:, :1])
            for k, (view, wt) in enumerate(zip(views, weights)):
                y, x, th, tw = view
                part = latents[:, :, y: y + th, x: x + tw]
                model_in = scheduler.scale_model_input(torch.cat([part] * 2) if cfg else part, t)
                kwargs: Dict[str, Any] = {"encoder_hidden_states": cond}
                view_added = dict(added)
                if "time_ids" in view_added:  # SDXL: this window's crop and size, on the plate's full size
                    view_added["time_ids"] = _time_ids(h, w, view, factor, cfg, device, dtype)
                if view_added:
                    kwargs["added_cond_kwargs"] = view_added
                if control is not None:
                    crop = control_t[:, :, y * factor: (y + th) * factor, x * factor: (x + tw) * factor]
                    down_res, mid_res = pipe.controlnet(
                        model_in, t, encoder_hidden_states=cond, controlnet_cond=crop,
                        conditioning_scale=o["controlnet_scale"], return_dict=False,
                        **({"added_cond_kwargs": view_added} if view_added else {}),
                    )
                    kwargs.update(down_block_additional_residuals=down_res, mid_block_additional_residual=mid_res)
                eps = pipe.unet(model_in, t, return_dict=False, **kwargs)[0]
                if cfg:
                    uncond, text = eps.chunk(2)
                    eps = uncond + o["guidance"] * (text - uncond)
                blended[:, :, y: y + th, x: x + tw] += eps * wt
                norm[:, :, y: y + th, x: x + tw] += wt
                ctx.progress(i * len(views) + k + 1, total)  # raises when the render was cancelled
            latents = scheduler.step(blended / norm, t, latents, **step_kwargs, return_dict=False)[0]
    return latents


def _conditioning(pipe: Any, ctx: PassContext, cfg: bool, device: Any, extra: Dict[str, Any]) -> Tuple[Any, Dict]:
    """Text embeddings (negative first under guidance) and the UNet's added conditions, as the pipeline builds."""
    import torch

    prompt, negative = ctx.prompt or "", ctx.negative_prompt or None
    added: Dict[str, Any] = {}
    if getattr(pipe, "text_encoder_2", None) is not None:  # SDXL
        pos, neg, pooled, neg_pooled = pipe.encode_prompt(
            prompt=prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
            negative_prompt=negative,
        )
        cond = torch.cat([neg, pos]) if cfg else pos
        added["text_embeds"] = torch.cat([neg_pooled, pooled]) if cfg else pooled
        added["time_ids"] = None  # per window
    else:
        pos, neg = pipe.encode_prompt(prompt, device, 1, cfg, negative)
        cond = torch.cat([neg, pos]) if cfg else pos
    if "ip_adapter_image" in extra:
        embeds = pipe.prepare_ip_adapter_image_embeds(extra["ip_adapter_image"], None, device, 1, cfg)
        added["image_embeds"] = embeds
    return cond.to(pipe.unet.dtype), added


def _time_ids(h: int, w: int, view: Tuple[int, int, int, int], factor: int, cfg: bool, device: Any,
              dtype: Any) -> Any:
    import torch

    y, x, th, tw = view
    ids = torch.tensor([[h * factor, w * factor, y * factor, x * factor, th * factor, tw * factor]], dtype=dtype,
                       device=device)
    return torch.cat([ids, ids]) if cfg else ids


def decode(pipe: Any, latents: Any) -> np.ndarray:
    """Latents -> H x W x 3 float32 in [0, 1] through the pipeline's VAE (tiled when set_vae_tiling said so)."""
    import torch

    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    with torch.no_grad():
        if upcast:
            vae.to(torch.float32)
        image = vae.decode((latents / vae.config.scaling_factor).to(vae.dtype), return_dict=False)[0]
        if upcast:
            vae.to(torch.float16)
    image = (image.float() / 2 + 0.5).clamp(0, 1)
    return np.ascontiguousarray(image[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
