"""stylize: SD 1.5 / SDXL img2img, optionally structure-locked by a ControlNet, steered by the shot's reference.

Structure: ``controlnet=canny`` conditions on the plate's own edges; ``controlnet=depth`` on the plate's
own Z channel (inverse depth, near = bright, as depth ControlNets were trained); ``auto`` takes depth when
the EXR has a Z channel, else edges.

Reference (the approved preview, or ``--reference FILE``): *reference latents*. The reference is encoded
by the same VAE and each frame's starting latents are moved towards the reference latents' per-channel
mean and spread (AdaIN in latent space) by ``reference_strength`` before denoising. Every frame of the
shot starts from the same palette and contrast as the frame the artist approved, while its own
structure (the spatial layout of its latents) is kept.

Batching: frames of one size, prompt and options that the pipeline takes whole (not in windows) go through
one pipeline call together (``batch`` option), each with its own starting latents, condition and noise
generator, so each frame's result is its unbatched one up to floating-point differences between batch sizes.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Dict, Hashable, List, Optional, Sequence

import cv2
import numpy as np

from ...errors import InvalidInput, ModelUnavailable
from ...frames.tiling import crop_to, pad_to_multiple
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import (
    DiffusionModel,
    batch_denoise_args,
    denoise_args,
    denoiser,
    generator,
    latent_multiple,
    load_controlnet,
    noised_with,
    set_vae_tiling,
    starting_noise,
    to_tensor,
)
from .multidiffusion import decode, native_size, tiled_img2img

CONTROLNET_PIPELINES = {
    "StableDiffusionImg2ImgPipeline": "StableDiffusionControlNetImg2ImgPipeline",
    "StableDiffusionXLImg2ImgPipeline": "StableDiffusionXLControlNetImg2ImgPipeline",
}
MIN_TILE = 64  # the out-of-memory fallback never denoises in windows smaller than this (pixels)
NO_DEPTH = "controlnet=depth needs a Z channel in the plate and it has none; use controlnet=canny or controlnet=auto"


class Img2ImgModel(DiffusionModel):
    accepts_reference = True
    uses_depth = True
    noise_modes = ("per-frame", "fixed", "flow")  # temporal/options.py
    batches = True
    native = 512  # the loaded model's native size, read when it first renders

    def build_options(self) -> List[Option]:
        s = self.spec
        nets = ["none", *(["auto"] if s.controlnets else []), *s.controlnets]
        return [
            *super().build_options(),
            Option("strength", "float", s.strength, "how far from the plate (0 = plate, 1 = new image)", minimum=0,
                   maximum=1),
            Option("reference_strength", "float", s.reference_strength,
                   "how strongly the shot's reference sets palette and contrast (0 = ignore it)", minimum=0, maximum=1),
            Option("controlnet", "choice", s.controlnet if s.controlnet in nets else "none",
                   "structure from the plate: canny edges, depth from its Z channel, auto (depth if Z, else edges)",
                   choices=nets),
            Option("controlnet_scale", "float", 1.0, "ControlNet conditioning scale", minimum=0, maximum=2),
            Option("tile", "int", s.tile,
                   "plates larger than this many pixels are denoised in overlapping windows of this size, blended "
                   "at every step (0 = the model's native size: 512 for SD 1.5, 1024 for SDXL)", minimum=0,
                   maximum=16384),
            Option("tile_overlap", "int", s.tile_overlap,
                   "pixels neighbouring windows share (-1 = a quarter window; 0 = hard cuts, which show seams)",
                   minimum=-1, maximum=8192),
            Option("cross_frame", "choice", "off",
                   "cross-frame attention: first = every frame's self-attention also attends to the render's first "
                   "frame, denoised beside it, so shapes and textures stay closer to it (about 2x the time per "
                   "frame; plates within one tile, without ControlNet)", choices=("off", "first")),
        ]

    def load(self, device: str, variant: str) -> Any:
        if variant == "main":
            return super().load(device, variant)
        import diffusers

        base = self.pipeline(device, "main")
        cls = getattr(diffusers, CONTROLNET_PIPELINES[self.spec.pipeline_class])
        pipe = cls.from_pipe(base, controlnet=load_controlnet(self.spec, variant, device))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def control_kind(self, choice: str, job: FrameJob) -> Optional[str]:
        if choice == "auto":
            if job.depth is not None and "depth" in self.spec.controlnets:
                return "depth"
            return "canny" if "canny" in self.spec.controlnets else None
        if choice == "depth" and job.depth is None:
            raise InvalidInput(f"frame {job.frame}: {NO_DEPTH}")  # submit refuses this first
        return None if choice == "none" else choice

    def validate_plate(self, colour: Any, options: Dict[str, Any], name: str, frame: int) -> None:
        """controlnet=depth on a plate without Z, and cross_frame on what it does not run on, are refused at
        submit, naming the file and frame."""
        if options.get("cross_frame", "off") != "off":
            tile = options.get("tile") or self.native
            if options.get("controlnet", "none") != "none" or max(colour.width, colour.height) > tile:
                raise InvalidInput(
                    f"{name} (frame {frame}): cross_frame={options['cross_frame']} runs on plates within one tile "
                    f"({tile} px; this one is {colour.width}x{colour.height}) and without ControlNet "
                    f"(controlnet={options.get('controlnet', 'none')}); raise tile or set controlnet=none"
                )
        # The channels the render's depth choice (frame_pipeline._depth_for) looks at: Z or *.Z, full size.
        depths = [n for n in colour.part.channels if n == "Z" or n.endswith(".Z")]
        if options.get("controlnet") == "depth" and not any(colour.has_full_channel(n) for n in depths):
            raise InvalidInput(f"{name} (frame {frame}): {NO_DEPTH}")

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        o = ctx.options
        if int(o["steps"] * o["strength"]) < 1:
            ctx.progress(1, 1)  # no step would run: the plate is the result
            return FrameResult(rgb=job.rgb.copy())
        which = self.control_kind(o["controlnet"], job)
        pipe = self.pipeline(ctx.device, which or "main")
        has_ref = self._has_reference(ctx)
        stack = self._stack(job, ctx, which, has_ref)

        def run(part: np.ndarray) -> np.ndarray:
            out = self._run(pipe, part, which is not None, has_ref, ctx)
            return np.concatenate([out, part[..., 3:]], axis=2)  # run_tiled wants all channels back

        self.native = native_size(pipe)
        tile = o["tile"] or self.native
        h, w = job.rgb.shape[:2]
        if ctx.anchor is not None:
            if which is not None or max(h, w) > tile:  # submit refuses these first
                raise InvalidInput(f"frame {job.frame}: cross_frame runs on plates within one tile, without ControlNet")
            out = self._run_anchored(pipe, stack, has_ref, ctx)
        elif max(h, w) <= tile:
            out = run(stack)  # the whole plate at once, through the pipeline
        else:
            out = self._run_tiled(pipe, stack, which is not None, has_ref, ctx, tile)
        return FrameResult(rgb=np.ascontiguousarray(out[..., :3]))

    def batch_key(self, job: FrameJob, ctx: PassContext) -> Optional[Hashable]:
        """Frames batch when one pipeline call can take them all: same size, prompts, options, condition kind
        and reference, each small enough to run whole (larger plates run in windows, frame by frame)."""
        o = ctx.options
        if int(o["steps"] * o["strength"]) < 1 or max(job.rgb.shape[:2]) > (o["tile"] or self.native):
            return None
        if ctx.noise is not None or ctx.anchor is not None:
            return None  # noise=flow and cross_frame shape each frame's own call (_run, _run_anchored)
        try:
            which = self.control_kind(o["controlnet"], job)
        except InvalidInput:
            return None  # fails alone, with its own message
        reference = id(ctx.reference_rgb) if self._has_reference(ctx) else None
        return (job.rgb.shape, which, reference, ctx.prompt, ctx.negative_prompt, ctx.device,
                tuple(sorted(o.items())))

    def render_batch(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        o, device = ctxs[0].options, ctxs[0].device
        which = self.control_kind(o["controlnet"], jobs[0])
        pipe = self.pipeline(device, which or "main")
        self.native = native_size(pipe)
        if max(jobs[0].rgb.shape[:2]) > (o["tile"] or self.native):  # the native size is known only now
            return [self.render(job, ctx) for job, ctx in zip(jobs, ctxs)]
        has_ref = self._has_reference(ctxs[0])
        stacks = [self._stack(job, ctx, which, has_ref) for job, ctx in zip(jobs, ctxs)]
        outs = self._run_batch(pipe, stacks, which is not None, has_ref, ctxs)
        return [FrameResult(rgb=np.ascontiguousarray(out)) for out in outs]

    def _has_reference(self, ctx: PassContext) -> bool:
        return ctx.reference_rgb is not None and ctx.options["reference_strength"] > 0

    def _stack(self, job: FrameJob, ctx: PassContext, which: Optional[str], has_ref: bool) -> np.ndarray:
        """The frame, its condition and the reference as one H x W x (3|6|9) array, so windows crop all alike."""
        h, w = job.rgb.shape[:2]
        planes = [np.clip(job.rgb, 0.0, 1.0)]
        if which is not None:
            planes.append(control_image(which, job))
        if has_ref:
            assert ctx.reference_rgb is not None
            planes.append(cv2.resize(np.clip(ctx.reference_rgb, 0, 1), (w, h), interpolation=cv2.INTER_AREA))
        return np.ascontiguousarray(np.concatenate(planes, axis=2), dtype=np.float32)

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """After the VAE tiles: denoise in windows, halving them down to MIN_TILE pixels."""
        lighter = super().lighter(options)
        tile = options["tile"] or self.native
        if lighter is None and tile // 2 >= MIN_TILE:
            lighter = {**options, "tile": tile // 2}
        return lighter

    def _run_tiled(self, pipe: Any, stack: np.ndarray, control: bool, has_ref: bool, ctx: PassContext,
                   tile: int) -> np.ndarray:
        """MultiDiffusion over the whole plate: encode, denoise in blended windows, decode (multidiffusion.py)."""
        o = ctx.options
        padded, size = pad_to_multiple(stack, latent_multiple(pipe))
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        extra = self.prepare(pipe, ctx)
        latents = encode(pipe, padded[..., :3])
        if has_ref:
            latents = match_statistics(latents, encode(pipe, padded[..., -3:]), o["reference_strength"])
        overlap = tile // 4 if o["tile_overlap"] < 0 else o["tile_overlap"]
        condition = padded[..., 3:6] if control else None
        latents = tiled_img2img(pipe, latents, ctx, tile, overlap, extra, condition)
        image = crop_to(decode(pipe, latents), size)
        return np.concatenate([image, stack[..., 3:]], axis=2)

    def _run_anchored(self, pipe: Any, stack: np.ndarray, has_ref: bool, ctx: PassContext) -> np.ndarray:
        """cross_frame=first: the frame denoised in one batch beside the anchor, its self-attention reaching into the
        anchor's (cross_frame.py). The anchor starts from its own latents and its own noise, as it does alone."""
        import torch

        from .cross_frame import anchored

        o, anchor = ctx.options, ctx.anchor
        assert anchor is not None
        h, w = stack.shape[:2]
        anchor_rgb = np.clip(anchor.rgb, 0, 1)
        if anchor_rgb.shape[:2] != (h, w):  # a moving data window: the anchor's picture on this frame's size
            anchor_rgb = cv2.resize(anchor_rgb, (w, h), interpolation=cv2.INTER_AREA)
        padded, size = pad_to_multiple(stack, latent_multiple(pipe))
        anchor_padded = pad_to_multiple(np.ascontiguousarray(anchor_rgb, dtype=np.float32), latent_multiple(pipe))[0]
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        latents = torch.cat([encode(pipe, anchor_padded), encode(pipe, padded[..., :3])])
        if has_ref:
            latents = match_statistics(latents, encode(pipe, padded[..., -3:]), o["reference_strength"])
        noise = torch.cat([torch.randn(latents[:1].shape, generator=generator(anchor.seed), dtype=torch.float32),
                           starting_noise(ctx, latents[1:].shape, pipe)])
        kwargs = self.prepare(pipe, ctx)
        args = denoise_args(ctx, o)
        args["prompt"] = [args["prompt"]] * 2
        if args["negative_prompt"] is not None:
            args["negative_prompt"] = [args["negative_prompt"]] * 2
        with noised_with(pipe, noise), anchored(pipe.unet):
            images = pipe(image=latents, **args, **kwargs).images
        return crop_to(np.asarray(images[1], dtype=np.float32), size)

    def _run(self, pipe: Any, stack: np.ndarray, control: bool, has_ref: bool, ctx: PassContext) -> np.ndarray:
        o = ctx.options
        padded, size = pad_to_multiple(stack, latent_multiple(pipe))
        set_vae_tiling(pipe, padded.shape[0], padded.shape[1], ctx)
        latents = self._start_latents(pipe, padded, has_ref, ctx)
        kwargs = self.prepare(pipe, ctx)
        if control:
            kwargs.update(control_image=to_tensor(padded[..., 3:6], pipe),
                          controlnet_conditioning_scale=o["controlnet_scale"])
            kwargs.update(height=padded.shape[0], width=padded.shape[1])
        # noise=flow: the starting noise follows the plate's motion (temporal/noise.py) instead of the pipeline's own.
        noise = starting_noise(ctx, latents.shape, pipe) if ctx.noise is not None else None
        with noised_with(pipe, noise) if noise is not None else nullcontext():
            images = pipe(
                image=latents,  # 4 channels: taken as the starting latents, not re-encoded
                **denoise_args(ctx, o),
                **kwargs,
            ).images
        return crop_to(np.asarray(images[0], dtype=np.float32), size)

    def _run_batch(self, pipe: Any, stacks: List[np.ndarray], control: bool, has_ref: bool,
                   ctxs: Sequence[PassContext]) -> List[np.ndarray]:
        """_run for frames of one size in one pipeline call: each frame encoded (and matched to the reference)
        on its own as _run does, then denoised and decoded together."""
        import torch

        o = ctxs[0].options
        padded = [pad_to_multiple(stack, latent_multiple(pipe)) for stack in stacks]
        size = padded[0][1]
        set_vae_tiling(pipe, padded[0][0].shape[0], padded[0][0].shape[1], ctxs[0])
        latents = torch.cat([self._start_latents(pipe, p, has_ref, ctx) for (p, _), ctx in zip(padded, ctxs)])
        kwargs = self.prepare(pipe, ctxs[0])
        if control:
            kwargs.update(control_image=torch.cat([to_tensor(p[..., 3:6], pipe) for p, _ in padded]),
                          controlnet_conditioning_scale=o["controlnet_scale"])
            kwargs.update(height=padded[0][0].shape[0], width=padded[0][0].shape[1])
        images = pipe(image=latents, **batch_denoise_args(ctxs, o), **kwargs).images
        return [crop_to(np.asarray(image, dtype=np.float32), size) for image in images]

    def _start_latents(self, pipe: Any, padded: np.ndarray, has_ref: bool, ctx: PassContext) -> Any:
        latents = encode(pipe, padded[..., :3])
        if has_ref:
            latents = match_statistics(latents, encode(pipe, padded[..., -3:]), ctx.options["reference_strength"])
        return latents


def encode(pipe: Any, rgb: np.ndarray) -> Any:
    """Deterministic VAE latents (the distribution's mean), shifted and scaled as the pipeline expects."""
    import torch

    vae = pipe.vae
    upcast = vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
    dtype = torch.float32 if upcast else vae.dtype
    with torch.no_grad():
        if upcast:
            vae.to(torch.float32)  # the SDXL VAE overflows in fp16
        x = (to_tensor(rgb, pipe) * 2.0 - 1.0).to(dtype)
        shift = getattr(vae.config, "shift_factor", None) or 0.0  # SD3 and Flux VAEs centre their latents
        latents = (vae.encode(x).latent_dist.mean - shift) * vae.config.scaling_factor
        if upcast:
            vae.to(torch.float16)
    return latents.to(denoiser(pipe).dtype)


def match_statistics(latents: Any, reference: Any, amount: float) -> Any:
    """Move each latent channel's mean and spread towards the reference's (AdaIN), by ``amount``."""
    mu, sd = latents.mean(dim=(2, 3), keepdim=True), latents.std(dim=(2, 3), keepdim=True) + 1e-6
    rmu, rsd = reference.mean(dim=(2, 3), keepdim=True), reference.std(dim=(2, 3), keepdim=True)
    matched = (latents - mu) / sd * rsd + rmu
    return latents + amount * (matched - latents)


def control_image(which: str, job: FrameJob) -> np.ndarray:
    """The ControlNet condition from the plate itself, H x W x 3 in [0, 1]."""
    if which == "canny":
        u8 = (np.clip(job.rgb, 0, 1) * 255.0 + 0.5).astype(np.uint8)
        edges = cv2.Canny(cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY), 100, 200)
        plane = edges.astype(np.float32) / 255.0
    elif which == "depth":
        plane = depth_condition(job.depth)
    else:
        raise ModelUnavailable(f"no condition builder for controlnet {which!r}")
    return np.repeat(plane[..., None], 3, axis=2)


def depth_condition(z: Optional[np.ndarray]) -> np.ndarray:
    """Z (distance, larger = farther; inf = background) -> normalised inverse depth, near = 1, far = 0."""
    assert z is not None
    valid = np.isfinite(z) & (z > 0)
    inv = np.zeros(z.shape, dtype=np.float32)
    inv[valid] = 1.0 / z[valid]
    if valid.any():
        lo, hi = float(inv[valid].min()), float(inv[valid].max())
        inv[valid] = (inv[valid] - lo) / (hi - lo) if hi > lo else 1.0
    return inv
