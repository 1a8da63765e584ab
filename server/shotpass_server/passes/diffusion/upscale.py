"""upscale: the SD x4 upscaler in overlapping tiles with feathered blending; x2 is x4 then area-downsampled.

Tiles are ``tile`` input pixels (128 -> 512 output, the upscaler's native size) sharing ``tile_overlap``
pixels, blended with linear ramps (frames/tiling.run_tiled), so a 2K plate becomes 8K on one GPU with
no seams. Each tile's noise is seeded from the frame's seed and the tile's index. Out of GPU memory,
the frame is retried with half-size tiles (a batch is first halved, down to single frames).

Batching: frames of one size, prompt and options share a tile grid, so tile n of every frame in the batch goes
through one pipeline call, each with the noise of its own frame's seed and that tile's index; the tiles are
blended per frame exactly as alone (the frames ride along as channels of one stack, and the blend is per
channel), so each frame's result is its unbatched one up to floating-point differences between batch sizes.
The host holds a batch's blended 4x outputs at once, so a batch is also capped by HOST_BATCH_BYTES.
"""

from __future__ import annotations

import math
from typing import Any, Dict, Hashable, List, Optional, Sequence

import cv2
import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple, run_tiled, tile_starts
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import DiffusionModel, batch_prompt_args, generator, prompt_args, set_vae_tiling

MIN_TILE = 32
# Host memory a batch's 4x outputs may take (the blend's float32 accumulator and each frame's copy of it): a
# batch of 2K frames is 5 frames, a 4K frame goes alone.
HOST_BATCH_BYTES = 4 * 2**30


class UpscaleModel(DiffusionModel):
    batches = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.scale = spec.scale  # type: ignore[misc]

    def build_options(self) -> List[Option]:
        s = self.spec
        return [
            *super().build_options(),
            Option("noise_level", "int", s.noise_level, "noise added to the low-res input (more: more new detail)",
                   minimum=0, maximum=350),
            Option("tile", "int", s.tile, "tile size in input pixels", minimum=MIN_TILE, maximum=4096),
            Option("tile_overlap", "int", s.tile_overlap, "overlap between tiles in input pixels", minimum=0,
                   maximum=2048),
        ]

    def load(self, device: str, variant: str) -> Any:
        pipe = super().load(device, variant)
        if self.spec.vae_slicing is None:
            # A batch's tiles decode one frame at a time on any device: at 4x the decode is memory-bound, and
            # batched it ran 1.5x slower per frame on a CPU (bench/batching.py); the denoiser still batches.
            pipe.vae.enable_slicing()
        return pipe

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        return self._upscale([job], [ctx])[0]

    def batch_key(self, job: FrameJob, ctx: PassContext) -> Optional[Hashable]:
        """Frames batch when their tile grids match (same size) and one call can take them: same prompts, options,
        reference and device. noise=flow and cross_frame shape a frame's own call: such frames run alone."""
        if ctx.noise is not None or ctx.anchor is not None:
            return None
        reference = id(ctx.reference_rgb) if ctx.reference_rgb is not None else None
        return (job.rgb.shape, reference, ctx.prompt, ctx.negative_prompt, ctx.device,
                tuple(sorted(ctx.options.items())))

    def render_batch(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        return self._upscale(jobs, ctxs)

    def batch_pixels(self, job: FrameJob, ctx: PassContext) -> int:
        """A frame adds one tile per call, and this UNet runs at the tile's own resolution: as SD's does for an
        image 8x larger each way (the 4x decode runs a frame at a time, so it does not grow with the batch)."""
        h, w = job.rgb.shape[:2]
        tile = ctx.options["tile"]
        return 64 * min(tile, h) * min(tile, w)

    def frames_that_fit(self, job: FrameJob, ctx: PassContext, wanted: int) -> int:
        h, w = job.rgb.shape[:2]
        host = 2 * (4 * h) * (4 * w) * 3 * 4  # float32 accumulator + the frame's own copy, at 4x
        return max(1, min(super().frames_that_fit(job, ctx, wanted), HOST_BATCH_BYTES // host))

    def _upscale(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        """Frames of one size tile by tile: the frames stacked as channels, so the tiles and blend are shared."""
        o = ctxs[0].options
        pipe = self.pipeline(ctxs[0].device)
        self.prepare(pipe, ctxs[0])
        tile = o["tile"]
        stack = np.concatenate([np.clip(job.rgb, 0, 1) for job in jobs], axis=2)
        out = self._tiled(pipe, stack, tile, min(o["tile_overlap"], tile // 2), ctxs)
        results = []
        for i, job in enumerate(jobs):
            rgb = np.ascontiguousarray(out[..., 3 * i: 3 * i + 3])
            if self.scale != 4:
                h, w = job.rgb.shape[:2]
                rgb = cv2.resize(rgb, (w * self.scale, h * self.scale), interpolation=cv2.INTER_AREA)
            results.append(FrameResult(rgb=np.ascontiguousarray(rgb, dtype=np.float32)))
        return results

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """After the VAE tiles: half-size tiles, down to MIN_TILE."""
        lighter = super().lighter(options)
        if lighter is None and options["tile"] // 2 >= MIN_TILE:
            lighter = {**options, "tile": options["tile"] // 2}
        return lighter

    def _tiled(self, pipe: Any, stack: np.ndarray, tile: int, overlap: int, ctxs: Sequence[PassContext]) -> np.ndarray:
        """``stack``: H x W x 3N, the frames of ``ctxs`` side by side as channels; each tile call takes all N."""
        o, n_frames = ctxs[0].options, len(ctxs)
        h, w = stack.shape[:2]
        steps = o["steps"]
        total = len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap)) * steps
        # Latents sit at the input resolution here; the pipeline also rounds sides down to its VAE factor.
        multiple = math.lcm(2 ** (len(pipe.unet.config.block_out_channels) - 1), int(pipe.vae_scale_factor))
        # The VAE decodes each tile at 4x: that output tile is the image the tiling threshold is about.
        set_vae_tiling(pipe, 4 * (min(tile, h) + (-min(tile, h)) % multiple),
                       4 * (min(tile, w) + (-min(tile, w)) % multiple), ctxs[0])
        index = [0]

        def one_tile(part: np.ndarray) -> np.ndarray:
            n = index[0]
            index[0] += 1
            padded, size = pad_to_multiple(part, multiple)

            def on_step(step: int, timestep: Any, latents: Any) -> None:
                for ctx in ctxs:  # every frame reports the step; any one's cancel stops the call
                    ctx.progress(n * steps + step + 1, total)

            import torch

            # N x 3 x h x w: frame i's tile is channels 3i..3i+2 of the stack.
            frames = padded.reshape(padded.shape[0], padded.shape[1], n_frames, 3).transpose(2, 3, 0, 1)
            image = torch.from_numpy(np.ascontiguousarray(frames)).to(pipe.device)
            if n_frames == 1:
                prompts, noise = prompt_args(ctxs[0]), generator(ctxs[0].seed + 7919 * n)
            else:  # a generator per frame: each tile's noise is its own frame's, as alone
                prompts, noise = batch_prompt_args(ctxs), [generator(ctx.seed + 7919 * n) for ctx in ctxs]
            images = pipe(
                **prompts,
                image=image,
                num_inference_steps=steps,
                guidance_scale=o["guidance"],
                noise_level=o["noise_level"],
                generator=noise,
                output_type="np",
                callback=on_step,
                callback_steps=1,
            ).images
            return np.concatenate([crop_to(np.asarray(im, dtype=np.float32), size, scale=4) for im in images], axis=2)

        return run_tiled(stack, one_tile, tile, overlap, scale=4)
