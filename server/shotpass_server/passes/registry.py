"""Which models exist, per pass, and which one a render gets when it names none."""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional

from ..errors import ModelUnavailable, NotFound
from ..temporal.options import add_temporal_options
from .base import Model
from .classical_inpaint import OpenCvNavierStokes, OpenCvTelea
from .passthrough import Passthrough
from .starter_stylize import StyleTransferPreset, StyleTransferReference
from .starter_upscale import (
    RealEsrganAnimeVideoX2,
    RealEsrganAnimeVideoX3,
    RealEsrganAnimeVideoX4,
    RealEsrganX4Plus,
    RealEsrganX4PlusAnime,
)

# animevideov3-x4 is the upscale default: x4plus is ~40x slower on CPU for the same scale.
DEFAULTS: Dict[str, str] = {
    "stylize": "styletransfer-preset",
    "upscale": "realesrgan-animevideov3-x4",
    "inpaint": "opencv-telea",
    "passthrough": "passthrough",
}


def starter_models() -> List[Model]:
    """Instances of every model that works offline with no configuration (weights load lazily)."""
    return [
        Passthrough(),
        StyleTransferPreset(),
        StyleTransferReference(),
        RealEsrganAnimeVideoX4(),
        RealEsrganAnimeVideoX2(),
        RealEsrganAnimeVideoX3(),
        RealEsrganX4Plus(),
        RealEsrganX4PlusAnime(),
        OpenCvTelea(),
        OpenCvNavierStokes(),
    ]


class ModelRegistry:
    """Models by name, in registration order; defaults per pass from ``defaults``."""

    def __init__(self, models: Optional[Iterable[Model]] = None, defaults: Optional[Dict[str, str]] = None):
        self._models: Dict[str, Model] = {}
        self._defaults = dict(DEFAULTS if defaults is None else defaults)
        for model in starter_models() if models is None else models:
            self.register(model)

    def register(self, model: Model) -> None:
        if model.name in self._models:
            raise ValueError(f"model {model.name} is registered twice")
        add_temporal_options(model)  # per-frame models: the temporal render options (temporal/options.py)
        self._models[model.name] = model

    def get(self, name: str) -> Model:
        """The model by name; one listed as unavailable (its folder failed probing) raises with the reason."""
        try:
            model = self._models[name]
        except KeyError:
            known = ", ".join(self._models) or "none"
            raise NotFound(f"no model {name!r} (known models: {known})") from None
        if getattr(model, "unavailable", ""):
            raise ModelUnavailable(f"{model.unavailable} (fix the registry, then: shotpass models --reload)")
        return model

    def for_pass(self, pass_name: str) -> List[Model]:
        return [m for m in self._models.values() if m.pass_name == pass_name]

    def default_for(self, pass_name: str) -> Model:
        """The configured default, else the first registered model of that pass that can serve."""
        name = self._defaults.get(pass_name)
        if name in self._models and not getattr(self._models[name], "unavailable", ""):
            return self._models[name]
        models = [m for m in self.for_pass(pass_name) if not getattr(m, "unavailable", "")]
        if not models:
            raise NotFound(f"no model serves the {pass_name!r} pass (passes: {', '.join(self.passes())})")
        return models[0]

    def passes(self) -> List[str]:
        return list(dict.fromkeys(m.pass_name for m in self._models.values()))

    def all(self) -> List[Model]:
        return list(self._models.values())
