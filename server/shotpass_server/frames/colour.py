"""Colour-space conversion with OpenColorIO's built-in configs (offline, nothing is downloaded)."""

from __future__ import annotations

import os
import threading

import numpy as np
import PyOpenColorIO as ocio

from ..errors import InvalidInput

DEFAULT_CONFIG = "ocio://cg-config-latest"
# The sRGB-encoded space image models expect (name in cg-config-latest, OCIO 2.6).
SRGB_ENCODED = "sRGB Encoded Rec.709 (sRGB)"


# Where a studio config spells a space the models work in differently (ACES studio configs, older ACES 1.x
# configs), the first of these names it has is used.
SPELLINGS = {SRGB_ENCODED: ("srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "srgb_texture")}


class ColourSpaces:
    """Names, validation and cached CPU processors for one OCIO config."""

    def __init__(self, config: str = DEFAULT_CONFIG) -> None:
        try:
            self._config = ocio.Config.CreateFromFile(config)
        except Exception as exc:  # OCIO raises its own Exception type for unknown/bad configs
            origin = os.environ.get("OCIO", "").strip()
            fix = (
                f"fix $OCIO (it names {origin!r}), unset it to use the built-in {DEFAULT_CONFIG}, "
                "or set [colour] config"
                if origin and origin == config
                else "fix [colour] config in the server's config file"
            )
            detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise InvalidInput(f"cannot load the colour config {config!r} ({detail}); {fix}") from exc
        self.config_name = config
        self.scene_linear: str = self._config.getCanonicalName(ocio.ROLE_SCENE_LINEAR)
        self._names = list(
            self._config.getColorSpaceNames(ocio.SEARCH_REFERENCE_SPACE_ALL, ocio.COLORSPACE_ALL)
        )
        self._processors: dict[tuple[str, str], ocio.CPUProcessor] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """All colour space names of the config (display- and scene-referred, active or not)."""
        return list(self._names)

    def check(self, name: str) -> str:
        """The canonical name for a colour space name, alias or role (case-insensitive)."""
        text = name.strip() if isinstance(name, str) else ""
        canonical = self._config.getCanonicalName(text) if text else ""
        for other in SPELLINGS.get(text, ()) if not canonical else ():
            canonical = self._config.getCanonicalName(other)
            if canonical:
                break
        if not canonical or self._config.getColorSpace(canonical) is None:
            examples = ", ".join(self._examples())
            raise InvalidInput(f"unknown colour space {name!r}; e.g. {examples}")
        return canonical

    def _examples(self) -> list[str]:
        preferred = [self.scene_linear, "ACES2065-1", "Linear Rec.709 (sRGB)", SRGB_ENCODED, "Raw"]
        return list(dict.fromkeys(n for n in preferred if n in self._names))

    def convert(self, rgb: np.ndarray, src: str, dst: str) -> np.ndarray:
        """A new H x W x 3 float32 C-contiguous array converted from `src` to `dst`.

        float16 input is widened to float32 first (exact), so one F32 processor serves both.
        """
        array = np.asarray(rgb)
        if array.ndim < 1 or array.shape[-1] != 3:
            raise ValueError(f"expected an array of RGB triplets (..., 3), got shape {array.shape}")
        out = np.array(array, dtype=np.float32, order="C", copy=True)
        return self.convert_in_place(out, src, dst)

    def convert_in_place(self, out: np.ndarray, src: str, dst: str) -> np.ndarray:
        """Convert a C-contiguous float32 (..., 3) array the caller owns, in place; returns it."""
        source, target = self.check(src), self.check(dst)
        if source == target or out.size == 0:
            return out
        cpu = self._processor(source, target)
        if out.ndim == 3:
            # As an image, row by row: applyRGB takes the buffer as one row of W*H pixels, which makes OCIO
            # stage the whole frame at once (~1.6x slower at 1920x1080, same bits). Both release the GIL.
            cpu.apply(ocio.PackedImageDesc(out, out.shape[1], out.shape[0], 3))
        else:
            cpu.applyRGB(out)
        return out

    def _processor(self, source: str, target: str) -> ocio.CPUProcessor:
        key = (source, target)
        with self._lock:
            cpu = self._processors.get(key)
            if cpu is None:
                # LOSSLESS: the default optimisation uses a fast pow that shifts near-black values by
                # ~3e-4 in a lin -> sRGB -> lin round trip; lossless stays ~1e-6 for ~1.5x the time.
                cpu = self._config.getProcessor(source, target).getOptimizedCPUProcessor(
                    ocio.BIT_DEPTH_F32, ocio.BIT_DEPTH_F32, ocio.OPTIMIZATION_LOSSLESS
                )
                self._processors[key] = cpu
            return cpu
