"""Video stylize: AnimateDiff video-to-video over the chunk's frames, with context windows.

The render hands the model each chunk of consecutive frames (ClipModel; size it with the server's
``chunk_frames``). Within a chunk longer than ``context_size`` the motion layers attend inside windows
of ``context_size`` frames that overlap by ``context_overlap`` and are blended (diffusers' FreeNoise
windowing), so any clip length runs in bounded memory with no hard cut between windows.

Per-frame noise stays fixed by (render seed, frame number): each frame's starting latents are encoded
and noised here with that frame's own generator, so a frame renders the same whichever chunk it is in
(given the same canvas: frames whose data windows differ reach the model already placed on the union of the
chunk's windows by ``frame_pipeline.run_clip``, and are cropped back to their own windows after).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple
from ..base import ClipModel, FrameJob, FrameResult, Option, PassContext
from .common import (
    DiffusionModel,
    denoise_args,
    dtype_for,
    generator,
    latent_multiple,
    set_vae_tiling,
)
from .img2img import encode


class AnimateDiffModel(DiffusionModel, ClipModel):
    def build_options(self) -> List[Option]:
        s = self.spec
        return [
            *super().build_options(),
            Option("strength", "float", s.strength, "how far from the plate (0 = plate, 1 = new video)", minimum=0.01,
                   maximum=1),
            Option("context_size", "int", s.context_size, "frames the motion layers see together", minimum=2,
                   maximum=64),
            Option("context_overlap", "int", s.context_overlap, "frames shared by neighbouring context windows",
                   minimum=0, maximum=63),
        ]

    def load(self, device: str, variant: str) -> Any:
        if self.spec.motion_adapter is None:
            return super().load(device, variant)
        return super().load(device, variant, motion_adapter=load_motion_adapter(self.spec, device))

    def process_clip(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        frames = [j.frame for j in jobs]
        return self.guarded(frames, ctxs[0].device, lambda: self.retrying(ctxs, lambda c: self.render_clip(jobs, c)))

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """After the VAE tiles: shorter motion context windows, down to 2 frames."""
        lighter = super().lighter(options)
        if lighter is None and options["context_size"] > 2:
            size = options["context_size"] // 2
            lighter = {**options, "context_size": size, "context_overlap": min(options["context_overlap"], size - 1)}
        return lighter

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        return self.render_clip([job], [ctx])[0]

    def render_clip(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        import torch
        from diffusers.pipelines.animatediff.pipeline_animatediff_video2video import retrieve_timesteps

        ctx = ctxs[0]
        o = ctx.options
        size = min(o["context_size"], self._max_frames(ctx.device))
        overlap = min(o["context_overlap"], size - 1)
        pipe = self.pipeline(ctx.device)
        if len(jobs) > size:
            pipe.enable_free_noise(context_length=size, context_stride=size - overlap)
        elif pipe.free_noise_enabled:
            pipe.disable_free_noise()

        padded = [pad_to_multiple(np.clip(j.rgb, 0, 1), latent_multiple(pipe)) for j in jobs]
        frame_size = padded[0][1]
        h, w = padded[0][0].shape[:2]
        set_vae_tiling(pipe, h, w, ctx)
        extra = self.prepare(pipe, ctx)  # the sampler first: the timesteps below are its own
        timesteps, n = retrieve_timesteps(pipe.scheduler, o["steps"], pipe.device)
        timesteps, n = pipe.get_timesteps(n, timesteps, o["strength"], pipe.device)
        noisy = []
        for (image, _), c in zip(padded, ctxs):
            init = encode(pipe, image)
            noise = torch.randn(init.shape, generator=generator(c.seed), dtype=torch.float32).to(init)
            noisy.append(pipe.scheduler.add_noise(init, noise, timesteps[:1]))
        latents = torch.cat(noisy, dim=0).permute(1, 0, 2, 3)[None]  # 1 x C x F x h x w, as the pipeline wants
        frames = pipe(
            latents=latents,
            height=h,
            width=w,
            **denoise_args(ctx, o),
            **extra,
        ).frames[0]
        return [FrameResult(rgb=crop_to(np.asarray(f, dtype=np.float32), frame_size)) for f in frames]

    def _max_frames(self, device: str) -> int:
        return int(self.pipeline(device).motion_adapter.config.motion_max_seq_length)


def load_motion_adapter(spec: Any, device: str) -> Any:
    """The entry's separate MotionAdapter folder, joined to its SD 1.x base when the pipeline loads."""
    from diffusers import MotionAdapter

    from ...errors import ModelUnavailable

    try:
        return MotionAdapter.from_pretrained(str(spec.motion_adapter), local_files_only=True,
                                             dtype=dtype_for(spec, device))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelUnavailable(
            f"model {spec.name}: cannot load its motion adapter {spec.motion_adapter}: {err}"
        ) from None
