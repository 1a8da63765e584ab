"""Diffusers-backed passes on local weights, one module per pipeline family (see model_config for the TOML)."""

from __future__ import annotations

from typing import Any, Dict

from ...errors import ModelUnavailable
from ...model_config import ModelSpec
from ..base import FrameJob, FrameResult, Model, PassContext


class UnavailableModel(Model):
    """A registry entry whose folder failed probing: listed with the reason, refuses every render."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]
        self.pass_name = spec.pass_name  # type: ignore[misc]
        self.family = spec.family  # type: ignore[misc]
        self.description = spec.description  # type: ignore[misc]
        self.licence = spec.licence  # type: ignore[misc]
        self.unavailable = spec.unavailable
        self.options = []  # type: ignore[misc]

    def validate_plate(self, colour: Any, options: Dict[str, Any], name: str, frame: int) -> None:
        raise ModelUnavailable(self.unavailable)

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        raise ModelUnavailable(self.unavailable)


def diffusion_model(spec: ModelSpec) -> Model:
    """The Model for one ``[models.NAME]`` table; nothing heavy is imported or loaded until a frame runs."""
    if spec.unavailable:
        return UnavailableModel(spec)
    if spec.kind in ("sd3-img2img", "flux-img2img"):
        from .flow import FlowImg2ImgModel

        return FlowImg2ImgModel(spec)
    if spec.kind in ("sd3-inpaint", "flux-inpaint"):
        from .flow import FlowInpaintModel

        return FlowInpaintModel(spec)
    if spec.kind in ("sd15-img2img", "sdxl-img2img"):
        from .img2img import Img2ImgModel

        return Img2ImgModel(spec)
    if spec.kind in ("sd-inpaint", "sdxl-inpaint"):
        from .inpaint import InpaintModel

        return InpaintModel(spec)
    if spec.kind == "sd-x4-upscaler":
        from .upscale import UpscaleModel

        return UpscaleModel(spec)
    from .animatediff import AnimateDiffModel

    return AnimateDiffModel(spec)
