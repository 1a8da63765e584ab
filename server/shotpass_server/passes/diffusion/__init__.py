"""Diffusers-backed passes on local weights, one module per pipeline family (see model_config for the TOML)."""

from __future__ import annotations

from ...model_config import ModelSpec
from ..base import Model


def diffusion_model(spec: ModelSpec) -> Model:
    """The Model for one ``[models.NAME]`` table; nothing heavy is imported or loaded until a frame runs."""
    if spec.kind in ("sd15-img2img", "sdxl-img2img"):
        from .img2img import Img2ImgModel

        return Img2ImgModel(spec)
    if spec.kind == "sd-inpaint":
        from .inpaint import InpaintModel

        return InpaintModel(spec)
    if spec.kind == "sd-x4-upscaler":
        from .upscale import UpscaleModel

        return UpscaleModel(spec)
    from .animatediff import AnimateDiffModel

    return AnimateDiffModel(spec)
