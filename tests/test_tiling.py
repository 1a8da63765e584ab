"""Padding and overlapping tiles: exact reconstruction, scale, normalised feathering, progress."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest

from shotpass_server.errors import RenderCancelled
from shotpass_server.frames.tiling import crop_to, pad_to_multiple, pad_to_size, run_tiled, tile_starts


def _image(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, c), dtype=np.float32)


def test_pad_to_multiple_reflects_and_crops_back():
    img = _image(67, 131)
    padded, size = pad_to_multiple(img, 8)
    assert padded.shape == (72, 136, 3) and size == (67, 131)
    # Reflect (edge pixel not repeated): row 67 mirrors row 65, column 131 mirrors column 129.
    np.testing.assert_array_equal(padded[67], padded[65])
    np.testing.assert_array_equal(padded[:67, 131], img[:, 129])
    np.testing.assert_array_equal(crop_to(padded, size), img)


def test_pad_already_multiple_is_untouched():
    img = _image(64, 32)
    padded, size = pad_to_multiple(img, 8)
    assert padded is img and size == (64, 32)


@pytest.mark.parametrize("shape", [(1, 3, 3), (2, 2, 3), (3, 1), (1, 1)])
def test_pad_smaller_than_the_pad_falls_back(shape: Tuple[int, ...]):
    img = np.random.default_rng(1).random(shape).astype(np.float32)
    padded, size = pad_to_multiple(img, 8)
    assert padded.shape[:2] == (8, 8) and padded.shape[2:] == img.shape[2:]
    assert np.isfinite(padded).all()
    np.testing.assert_array_equal(crop_to(padded, size), img)
    # Every padded value is one of the original's (reflected or repeated, never zeros or garbage).
    assert set(np.unique(padded)) <= set(np.unique(img))


def test_pad_to_size_reaches_a_fixed_net_size():
    img = _image(300, 100)
    out = pad_to_size(img, 384, 384)
    assert out.shape == (384, 384, 3)
    np.testing.assert_array_equal(out[:300, :100], img)


def test_tile_starts_keep_full_tiles_and_cover():
    for length in (31, 32, 33, 67, 131, 500):
        starts = tile_starts(length, 32, 8)
        if length <= 32:
            assert starts == [0]
            continue
        assert starts[0] == 0 and starts[-1] == length - 32  # last tile shifted inward
        assert all(b - a <= 32 - 8 for a, b in zip(starts, starts[1:]))  # at least the overlap


def test_identity_reconstructs_odd_sizes():
    img = _image(67, 131)
    calls: List[Tuple[int, int]] = []

    def ident(t: np.ndarray) -> np.ndarray:
        calls.append(t.shape[:2])
        return t

    out = run_tiled(img, ident, tile=32, overlap=8)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, img, atol=1e-6, rtol=0)
    assert len(calls) > 1 and all(s == (32, 32) for s in calls)  # every tile kept full size


def test_nearest_upscale_matches_direct_upscale():
    img = _image(37, 50, c=4)

    def nearest2(t: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(t, 2, axis=0), 2, axis=1)

    out = run_tiled(img, nearest2, tile=16, overlap=4, scale=2)
    assert out.shape == (74, 100, 4)
    np.testing.assert_allclose(out, nearest2(img), atol=1e-6, rtol=0)


def test_image_smaller_than_a_tile_is_one_call():
    img = _image(20, 30)
    calls = []
    out = run_tiled(img, lambda t: calls.append(t.shape) or t * 2, tile=64, overlap=8)
    assert calls == [(20, 30, 3)]
    np.testing.assert_array_equal(out, img * 2)


def test_per_tile_offsets_blend_smoothly_and_stay_normalised():
    # Each tile adds its own random offset. Normalised weights make every output a convex mix of
    # the offsets (within [min, max]); the ramps make neighbouring pixels differ by a small step.
    # Unnormalised weights overshoot in overlaps; hard cuts jump by a whole offset difference.
    h, w, overlap = 67, 131, 8
    img = np.zeros((h, w, 1), dtype=np.float32)
    offsets = iter(np.random.default_rng(2).random(100, dtype=np.float32))
    used: List[float] = []

    def add_offset(t: np.ndarray) -> np.ndarray:
        used.append(float(next(offsets)))
        return t + used[-1]

    out = run_tiled(img, add_offset, tile=32, overlap=overlap)[..., 0]
    assert len(used) > 4
    assert out.min() >= min(used) - 1e-6 and out.max() <= max(used) + 1e-6
    spread = max(used) - min(used)
    step = max(np.abs(np.diff(out, axis=0)).max(), np.abs(np.diff(out, axis=1)).max())
    # One ramp step is 1/(overlap+1) of an offset difference; allow two for corners.
    assert step <= 2 * spread / (overlap + 1) + 1e-6
    assert spread > 0.5  # the offsets really differ, so a hard cut would show


def test_constant_tile_function_gives_constant_output():
    out = run_tiled(_image(70, 90), lambda t: np.full_like(t, 0.25), tile=24, overlap=6)
    np.testing.assert_allclose(out, 0.25, atol=1e-6, rtol=0)


def test_progress_counts_tiles_and_can_stop():
    img = _image(67, 131)
    seen: List[Tuple[int, int]] = []
    run_tiled(img, lambda t: t, tile=32, overlap=8, progress=lambda i, n: seen.append((i, n)))
    n = len(tile_starts(67, 32, 8)) * len(tile_starts(131, 32, 8))
    assert seen == [(i, n) for i in range(1, n + 1)]

    calls = []

    def cancel_after_two(i: int, n: int) -> None:
        if i >= 2:
            raise RenderCancelled("cancelled")

    with pytest.raises(RenderCancelled):
        run_tiled(img, lambda t: calls.append(1) or t, tile=32, overlap=8, progress=cancel_after_two)
    assert len(calls) == 2


def test_wrong_tile_output_shape_is_an_error():
    with pytest.raises(ValueError, match="expected"):
        run_tiled(_image(40, 40), lambda t: t[:-1], tile=16, overlap=4)
    with pytest.raises(ValueError):
        run_tiled(_image(40, 40), lambda t: t, tile=16, overlap=16)
