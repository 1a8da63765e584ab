"""Starter models with their real weights: registry, stylize, upscale, inpaint, progress and cancel."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

from shotpass_server.errors import InvalidInput, NotFound, RenderCancelled
from shotpass_server.passes.base import FrameJob, FrameResult, Model, PassContext, parse_options
from shotpass_server.passes.registry import ModelRegistry, starter_models

REGISTRY = ModelRegistry()


def _plate(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus some texture, in [0, 1]: something a style net visibly changes."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(seed)
    fx, fy = rng.uniform(0.05, 0.3, 2)
    rgb = np.stack(
        [xx / w, yy / h, 0.5 + 0.4 * np.sin(xx * fx) * np.cos(yy * fy)], axis=-1
    ) + rng.normal(0, 0.03, (h, w, 3))
    return np.ascontiguousarray(np.clip(rgb, 0, 1), dtype=np.float32)


def _run(
    name: str,
    rgb: np.ndarray,
    given: Optional[Dict[str, str]] = None,
    alpha: Optional[np.ndarray] = None,
    mask: Optional[np.ndarray] = None,
    reference: Optional[np.ndarray] = None,
    progress: Any = None,
) -> FrameResult:
    model = REGISTRY.get(name)
    opts = parse_options(model.options, given or {}, name)
    ctx = PassContext(options=opts, seed=0, reference_rgb=reference)
    if progress is not None:
        ctx.progress = progress
    return model.process(FrameJob(frame=1001, rgb=rgb, alpha=alpha, mask=mask), ctx)


# -- registry ---------------------------------------------------------------------------------------


def test_registry_lists_every_starter_model_with_valid_options():
    names = {m.name for m in REGISTRY.all()}
    assert {
        "passthrough", "styletransfer-preset", "styletransfer-reference", "realesrgan-x4plus",
        "realesrgan-animevideov3-x2", "realesrgan-animevideov3-x3", "realesrgan-animevideov3-x4",
        "opencv-telea", "opencv-navier-stokes",
    } <= names
    assert len(names) == len(REGISTRY.all()) == len(starter_models())
    for model in REGISTRY.all():
        assert isinstance(model, Model) and model.description and model.licence
        assert model.family in ("starter", "classical", "utility")
        for opt in model.options:
            assert opt.type in ("string", "int", "float", "bool", "choice")
            # The default must survive the same parsing a client's text goes through.
            parsed = opt.parse(str(opt.default).lower() if opt.type == "bool" else str(opt.default))
            assert parsed == opt.default
        assert parse_options(model.options, {}, model.name) == {o.name: o.default for o in model.options}


def test_registry_passes_and_defaults():
    assert REGISTRY.default_for("stylize").name == "styletransfer-preset"
    assert REGISTRY.default_for("upscale").name == "realesrgan-animevideov3-x4"
    assert REGISTRY.default_for("inpaint").name == "opencv-telea"
    assert REGISTRY.default_for("passthrough").name == "passthrough"
    assert {m.name for m in REGISTRY.for_pass("inpaint")} == {"opencv-telea", "opencv-navier-stokes"}
    assert all(m.pass_name == "upscale" and m.scale in (2, 3, 4) for m in REGISTRY.for_pass("upscale"))
    assert REGISTRY.get("realesrgan-animevideov3-x3").scale == 3
    assert REGISTRY.get("opencv-telea").needs_mask and REGISTRY.get("opencv-telea").keeps_unmasked
    assert REGISTRY.get("opencv-telea").working_space is None
    assert REGISTRY.get("styletransfer-reference").uses_reference
    with pytest.raises(NotFound):
        REGISTRY.get("no-such-model")
    with pytest.raises(NotFound):
        REGISTRY.default_for("no-such-pass")
    with pytest.raises(ValueError):
        ModelRegistry(starter_models() + [starter_models()[0]])


@pytest.mark.parametrize(
    "name, given",
    [
        ("styletransfer-preset", {"strength": "1.5"}),
        ("styletransfer-preset", {"strength": "nan"}),
        ("styletransfer-preset", {"preserve_colour": "maybe"}),
        ("styletransfer-preset", {"tile_size": "big"}),
        ("styletransfer-preset", {"colour": "1"}),
        ("realesrgan-animevideov3-x2", {"tile_size": "8"}),
        ("opencv-telea", {"radius": "0"}),
        ("opencv-navier-stokes", {"grow": "65"}),
        ("passthrough", {"anything": "1"}),
    ],
)
def test_parse_options_rejects_bad_values(name: str, given: Dict[str, str]):
    with pytest.raises(InvalidInput):
        parse_options(REGISTRY.get(name).options, given, name)


# -- passthrough ------------------------------------------------------------------------------------


def test_passthrough_returns_its_input():
    rgb, alpha = _plate(10, 12) * 5, np.ones((10, 12), np.float32)
    out = _run("passthrough", rgb, alpha=alpha)
    assert out.rgb is rgb and out.alpha is alpha


# -- preset stylize ---------------------------------------------------------------------------------


def test_preset_stylize_odd_size_is_deterministic_and_changes_the_image():
    rgb = _plate(97, 130)
    out = _run("styletransfer-preset", rgb).rgb
    assert out.shape == rgb.shape and out.dtype == np.float32 and np.isfinite(out).all()
    assert np.abs(out - rgb).mean() > 0.02
    np.testing.assert_array_equal(out, _run("styletransfer-preset", rgb).rgb)
    other = _run("styletransfer-preset", rgb, {"style": "7"}).rgb
    assert np.abs(other - out).mean() > 0.02
    blend = _run("styletransfer-preset", rgb, {"style": "0:0.5,7:0.5"}).rgb
    assert np.abs(blend - out).mean() > 0.005 and np.abs(blend - other).mean() > 0.005


def test_preset_strength_zero_gives_the_input_and_half_is_between():
    rgb = _plate(97, 130)
    rgb[5, 5] = 6.0  # a highlight the net never sees still comes back at strength 0
    np.testing.assert_allclose(_run("styletransfer-preset", rgb, {"strength": "0"}).rgb, rgb, atol=1e-6)
    full = _run("styletransfer-preset", rgb).rgb
    half = _run("styletransfer-preset", rgb, {"strength": "0.5"}).rgb
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * rgb, atol=1e-5)


def test_preset_preserve_colour_keeps_the_plate_chroma():
    rgb = _plate(97, 130)
    out = _run("styletransfer-preset", rgb, {"preserve_colour": "true"}).rgb
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)

    def chroma(img: np.ndarray) -> np.ndarray:
        return img - (img @ luma)[..., None]

    plain = _run("styletransfer-preset", rgb).rgb
    inside = (out > 0.001).all(-1) & (out < 0.999).all(-1)  # clipping may bend chroma
    assert inside.mean() > 0.5
    assert np.abs(chroma(out) - chroma(rgb))[inside].max() < 1e-4
    assert np.abs(chroma(plain) - chroma(rgb))[inside].mean() > 0.01
    assert np.abs(out @ luma - rgb @ luma).mean() > 0.01  # brightness still follows the style


@pytest.mark.parametrize("spec", ["26", "-1", "a", "3:x", "3:-1", "0:0", ""])
def test_preset_bad_style_spec_is_invalid_input(spec: str):
    with pytest.raises(InvalidInput, match="style"):
        _run("styletransfer-preset", _plate(40, 40), {"style": spec})


def test_preset_tiles_large_frames_without_changing_size():
    rgb = _plate(150, 300)
    seen: List[Tuple[int, int]] = []
    out = _run("styletransfer-preset", rgb, {"tile_size": "128"}, progress=lambda i, n: seen.append((i, n)))
    assert out.rgb.shape == rgb.shape and np.isfinite(out.rgb).all()
    assert seen[-1][0] == seen[-1][1] > 1  # several tiles, each reported
    # Tiled and untiled agree broadly (tiles see less context, so not exactly).
    assert np.abs(out.rgb - _run("styletransfer-preset", rgb).rgb).mean() < 0.1


def test_preset_handles_hdr_and_nan_input():
    rgb = _plate(40, 44) * 4.0
    rgb[3, 3] = np.nan
    out = _run("styletransfer-preset", rgb).rgb
    assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


# -- reference stylize ------------------------------------------------------------------------------


def _reference(kind: int) -> np.ndarray:
    yy, xx = np.mgrid[0:200, 0:260].astype(np.float32)
    if kind == 0:  # warm diagonal stripes
        s = 0.5 + 0.5 * np.sin((xx + yy) * 0.3)
        return np.stack([0.9 * s + 0.1, 0.4 * s, 0.1 * s], -1).astype(np.float32)
    rng = np.random.default_rng(kind)  # cool blotches
    noise = rng.random((25, 33)).astype(np.float32)
    s = np.kron(noise, np.ones((8, 8), np.float32))[:200, :260]
    return np.stack([0.1 * s, 0.5 * s, 0.3 + 0.7 * s], -1).astype(np.float32)


def test_reference_stylize_full_resolution_and_reference_matters():
    rgb = _plate(300, 400)
    a = _run("styletransfer-reference", rgb, reference=_reference(0)).rgb
    b = _run("styletransfer-reference", rgb, reference=_reference(1)).rgb
    assert a.shape == rgb.shape == b.shape and a.dtype == np.float32
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert np.abs(a - rgb).mean() > 0.02
    assert np.abs(a - b).mean() > 0.02


def test_reference_stylize_has_no_seams_at_tile_edges():
    # 700 px wide with 384 px tiles (overlap 64): tiles start at 0, 316; their edges are at columns
    # 316 and 384. Different content left and right gives each tile different normalisation
    # statistics, which would show as a step there without feathered blending.
    rgb = _plate(300, 700)
    rgb[:, 350:] = rgb[:, 350:] * 0.3 + 0.6
    out = _run("styletransfer-reference", rgb, reference=_reference(0)).rgb
    grad = np.abs(np.diff(out, axis=1)).mean(axis=(0, 2))  # grad[c]: between columns c and c+1
    typical = np.median(grad)
    for edge in (316, 384):
        assert grad[edge - 1] < 2.0 * typical, (edge, grad[edge - 1], typical)


def test_reference_stylize_small_frame_and_missing_reference():
    rgb = _plate(50, 70)
    out = _run("styletransfer-reference", rgb, reference=_reference(0)).rgb
    assert out.shape == rgb.shape and np.isfinite(out).all()
    with pytest.raises(InvalidInput, match="needs a reference frame"):
        _run("styletransfer-reference", rgb)


# -- upscale ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, scale", [("realesrgan-animevideov3-x2", 2), ("realesrgan-animevideov3-x4", 4)]
)
def test_upscale_size_highlights_and_tiling(name: str, scale: int):
    rgb = _plate(37, 50)
    rgb[20, 30] = 8.0
    alpha = np.zeros((37, 50), np.float32)
    alpha[:, 25:] = 1.0
    out = _run(name, rgb, alpha=alpha)
    assert out.rgb.shape == (37 * scale, 50 * scale, 3) and out.rgb.dtype == np.float32
    assert np.isfinite(out.rgb).all()
    region = out.rgb[20 * scale : 21 * scale, 30 * scale : 31 * scale]
    # The net alone tops out near 1.0; the resized residual brings the highlight back (8 -> > 4).
    assert region.max() > 4.0
    # The net only saw [0, 1]; away from the highlight the output stays in a sane range.
    assert out.rgb[: 10 * scale].max() < 1.2
    assert out.alpha is not None and out.alpha.shape == out.rgb.shape[:2]
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1
    assert out.alpha[:, : 20 * scale].max() == 0 and out.alpha[:, 30 * scale :].min() == 1
    # Matches a plain resize broadly (the same picture, sharper).
    import cv2

    plain = cv2.resize(np.clip(rgb, 0, 1), (50 * scale, 37 * scale), interpolation=cv2.INTER_CUBIC)
    assert np.abs(np.clip(out.rgb, 0, 1) - plain).mean() < 0.06
    tiled = _run(name, rgb, {"tile_size": "24"}).rgb
    assert tiled.shape == out.rgb.shape and np.isfinite(tiled).all()
    assert np.abs(tiled - out.rgb).mean() < 0.003  # measured 0.0017; unfeathered tiles give 0.004


def test_upscale_x3_and_nan_inf_input():
    rgb = _plate(20, 26)
    rgb[2, 2], rgb[3, 3], rgb[4, 4] = np.nan, np.inf, -np.inf
    out = _run("realesrgan-animevideov3-x3", rgb)
    assert out.rgb.shape == (60, 78, 3) and np.isfinite(out.rgb).all()
    assert out.alpha is None


# -- inpaint ----------------------------------------------------------------------------------------


def _gradient() -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    truth = np.stack([xx / 63, yy / 63, 2.0 + xx / 32], -1).astype(np.float32)  # blue is HDR (2..4)
    mask = np.zeros((64, 64), np.float32)
    mask[24:36, 20:34] = 1.0
    holed = truth.copy()
    holed[mask > 0] = 0.0
    return truth, holed, mask


@pytest.mark.parametrize("name", ["opencv-telea", "opencv-navier-stokes"])
def test_inpaint_fills_the_hole_and_keeps_the_rest(name: str):
    truth, holed, mask = _gradient()
    alpha = np.ones((64, 64), np.float32)
    alpha[mask > 0] = 0.0
    out = _run(name, holed, mask=mask, alpha=alpha)
    hole = mask > 0
    before = np.abs(holed - truth)[hole].mean()
    after = np.abs(out.rgb - truth)[hole].mean()
    assert after < 0.1 * before, (before, after)
    assert out.rgb.dtype == np.float32
    np.testing.assert_array_equal(out.rgb[~hole], holed[~hole])
    assert out.alpha is not None and np.abs(out.alpha[hole] - 1).max() < 0.05
    np.testing.assert_array_equal(out.alpha[~hole], alpha[~hole])


def test_inpaint_grow_replaces_the_fringe_too():
    truth, holed, mask = _gradient()
    hole = mask > 0
    fringe = holed.copy()
    ring = np.zeros_like(hole)
    ring[22:38, 18:36] = True
    ring &= ~hole
    fringe[ring] = 50.0  # a contaminated 2 px ring around the hole
    plain = _run("opencv-telea", fringe, mask=mask)
    grown = _run("opencv-telea", fringe, {"grow": "3"}, mask=mask)
    filled = grown.filled > 0
    assert filled[ring].all() and filled[hole].all()
    np.testing.assert_array_equal(grown.rgb[~filled], fringe[~filled])
    assert np.abs(grown.rgb - truth)[ring].mean() < 0.1 * np.abs(plain.rgb - truth)[ring].mean()
    grown, plain = grown.rgb, plain.rgb
    assert np.abs(grown - truth)[hole].mean() < 0.2 * np.abs(plain - truth)[hole].mean()


def test_inpaint_needs_a_matching_mask():
    _, holed, mask = _gradient()
    with pytest.raises(InvalidInput, match="inpaint needs a mask"):
        _run("opencv-telea", holed)
    with pytest.raises(InvalidInput, match="mask"):
        _run("opencv-telea", holed, mask=mask[:32])
    out = _run("opencv-telea", holed, mask=np.zeros_like(mask))
    np.testing.assert_array_equal(out.rgb, holed)


# -- progress and cancellation ----------------------------------------------------------------------

CASES = [
    ("passthrough", (30, 30), {}),
    ("styletransfer-preset", (150, 300), {"tile_size": "128"}),
    ("styletransfer-reference", (60, 500), {}),
    ("realesrgan-animevideov3-x2", (37, 50), {"tile_size": "24"}),
    ("opencv-telea", (64, 64), {}),
]


@pytest.mark.parametrize("name, size, given", CASES)
def test_progress_is_reported_and_cancel_stops(name: str, size: Tuple[int, int], given: Dict[str, str]):
    rgb = _plate(*size)
    mask = np.zeros(size, np.float32)
    mask[10:20, 10:20] = 1
    ref = _reference(0)
    seen: List[Tuple[int, int]] = []
    _run(name, rgb, given, mask=mask, reference=ref, progress=lambda i, n: seen.append((i, n)))
    assert seen and seen[-1][0] == seen[-1][1] >= 1
    assert all(0 <= i <= n for i, n in seen)

    calls: List[Tuple[int, int]] = []

    def cancel_after_first_step(i: int, n: int) -> None:
        calls.append((i, n))
        if i >= 1:
            raise RenderCancelled("render cancelled")

    with pytest.raises(RenderCancelled):
        _run(name, rgb, given, mask=mask, reference=ref, progress=cancel_after_first_step)
    assert calls[-1][0] == 1  # stopped at the first step, not after the whole frame
    if seen[-1][1] > 1:
        assert calls[-1][1] > 1 and len(calls) < len(seen)
