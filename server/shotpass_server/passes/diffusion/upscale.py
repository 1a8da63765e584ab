"""upscale: the SD x4 upscaler in overlapping tiles with feathered blending; x2 is x4 then area-downsampled.

Tiles are ``tile`` input pixels (128 -> 512 output, the upscaler's native size) sharing ``tile_overlap``
pixels, blended with linear ramps (frames/tiling.run_tiled), so a 2K plate becomes 8K on one GPU with
no seams. Each tile's noise is seeded from the frame's seed and the tile's index. Out of GPU memory,
the frame is retried with half-size tiles.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import cv2
import numpy as np

from ...frames.tiling import crop_to, pad_to_multiple, run_tiled, tile_starts
from ..base import FrameJob, FrameResult, Option, PassContext
from .common import DiffusionModel, generator, prompt_args, set_vae_tiling

MIN_TILE = 32


class UpscaleModel(DiffusionModel):
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

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        o = ctx.options
        pipe = self.pipeline(ctx.device)
        self.prepare(pipe, ctx)
        tile = o["tile"]
        out = self._tiled(pipe, np.clip(job.rgb, 0, 1), tile, min(o["tile_overlap"], tile // 2), ctx)
        if self.scale != 4:
            h, w = job.rgb.shape[:2]
            out = cv2.resize(out, (w * self.scale, h * self.scale), interpolation=cv2.INTER_AREA)
        return FrameResult(rgb=np.ascontiguousarray(out, dtype=np.float32))

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """After the VAE tiles: half-size tiles, down to MIN_TILE."""
        lighter = super().lighter(options)
        if lighter is None and options["tile"] // 2 >= MIN_TILE:
            lighter = {**options, "tile": options["tile"] // 2}
        return lighter

    def _tiled(self, pipe: Any, rgb: np.ndarray, tile: int, overlap: int, ctx: PassContext) -> np.ndarray:
        o = ctx.options
        h, w = rgb.shape[:2]
        steps = o["steps"]
        total = len(tile_starts(h, tile, overlap)) * len(tile_starts(w, tile, overlap)) * steps
        # Latents sit at the input resolution here; the pipeline also rounds sides down to its VAE factor.
        multiple = math.lcm(2 ** (len(pipe.unet.config.block_out_channels) - 1), int(pipe.vae_scale_factor))
        # The VAE decodes each tile at 4x: that output tile is the image the tiling threshold is about.
        set_vae_tiling(pipe, 4 * (min(tile, h) + (-min(tile, h)) % multiple),
                       4 * (min(tile, w) + (-min(tile, w)) % multiple), ctx)
        index = [0]

        def one_tile(part: np.ndarray) -> np.ndarray:
            n = index[0]
            index[0] += 1
            padded, size = pad_to_multiple(part, multiple)

            def on_step(step: int, timestep: Any, latents: Any) -> None:
                ctx.progress(n * steps + step + 1, total)

            import torch

            image = torch.from_numpy(np.ascontiguousarray(padded.transpose(2, 0, 1)))[None].to(pipe.device)
            images = pipe(
                **prompt_args(ctx),
                image=image,
                num_inference_steps=steps,
                guidance_scale=o["guidance"],
                noise_level=o["noise_level"],
                generator=generator(ctx.seed + 7919 * n),
                output_type="np",
                callback=on_step,
                callback_steps=1,
            ).images
            return crop_to(np.asarray(images[0], dtype=np.float32), size, scale=4)

        return run_tiled(rgb, one_tile, tile, overlap, scale=4)
