"""Padding and overlapping-tile execution for image models.

Networks want sizes that are multiples of their stride, and large frames must be cut into tiles to
bound memory. Tiles overlap and are blended with linear ramps whose weights are normalised per
pixel, so an identity function reproduces its input and neighbouring tiles never leave seams.
"""

from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import numpy as np

TileFn = Callable[[np.ndarray], np.ndarray]
ProgressFn = Callable[[int, int], None]


def _pad_mode(size: int, mode: str) -> str:
    # numpy cannot reflect a length-1 axis (there is nothing to mirror); repeat the edge instead.
    if mode in ("reflect", "symmetric") and size < 2:
        return "edge"
    return mode


def pad_to_size(img: np.ndarray, height: int, width: int, mode: str = "reflect") -> np.ndarray:
    """Pad HxW[xC] at the bottom and right up to height x width (never crops)."""
    h, w = img.shape[:2]
    ph, pw = max(0, height - h), max(0, width - w)
    if not ph and not pw:
        return img
    extra = [(0, 0)] * (img.ndim - 2)
    # Pad each axis on its own so a length-1 axis can fall back to edge without affecting the other.
    out = np.pad(img, [(0, ph), (0, 0)] + extra, mode=_pad_mode(h, mode)) if ph else img
    out = np.pad(out, [(0, 0), (0, pw)] + extra, mode=_pad_mode(w, mode)) if pw else out
    return np.ascontiguousarray(out)


def pad_to_multiple(
    img: np.ndarray, multiple: int, mode: str = "reflect"
) -> Tuple[np.ndarray, Tuple[int, int]]:
    """Pad so both sides are multiples of ``multiple``; returns (padded, original (h, w))."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = img.shape[:2]
    return pad_to_size(img, h + (-h) % multiple, w + (-w) % multiple, mode), (h, w)


def crop_to(img: np.ndarray, size: Tuple[int, int], scale: int = 1) -> np.ndarray:
    """Undo pad_to_multiple/pad_to_size: keep the top-left (h*scale) x (w*scale)."""
    h, w = size
    return np.ascontiguousarray(img[: h * scale, : w * scale])


def tile_starts(length: int, tile: int, overlap: int) -> List[int]:
    """Start offsets of tiles covering [0, length); the last is shifted inward to keep full size."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(length: int, ramp: int, feather_start: bool, feather_end: bool) -> np.ndarray:
    """1-D weights: 1 inside, a linear ramp over ``ramp`` samples at each edge shared with a neighbour.

    Ramp values stay strictly positive so every pixel has weight even where only one tile is feathered.
    """
    w = np.ones(length, dtype=np.float32)
    n = min(ramp, length)
    if n <= 0:
        return w
    up = (np.arange(1, n + 1, dtype=np.float32)) / (n + 1)
    if feather_start:
        w[:n] = np.minimum(w[:n], up)
    if feather_end:
        w[length - n :] = np.minimum(w[length - n :], up[::-1])
    return w


def run_tiled(
    img: np.ndarray,
    fn: TileFn,
    tile: int,
    overlap: int,
    scale: int = 1,
    progress: Optional[ProgressFn] = None,
) -> np.ndarray:
    """Apply ``fn`` over overlapping tiles of an HxWxC image and blend the results.

    ``fn`` maps a th x tw x C tile to (th*scale) x (tw*scale) x C. Tiles are ``tile`` px (input pixels)
    with ``overlap`` px shared between neighbours; an image no larger than one tile is a single call.
    ``progress(done, total)`` is called after each tile (it may raise to stop the run).
    """
    if img.ndim != 3:
        raise ValueError(f"run_tiled expects H x W x C, got shape {img.shape}")
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile (tile={tile}, overlap={overlap})")
    h, w, c = img.shape
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    total = len(ys) * len(xs)
    if total == 1:
        out = _call(fn, img, scale)
        if progress is not None:
            progress(1, 1)
        return out

    acc = np.zeros((h * scale, w * scale, c), dtype=np.float32)
    weight = np.zeros((h * scale, w * scale), dtype=np.float32)
    done = 0
    for y in ys:
        th = min(tile, h - y)
        wy = _ramp(th * scale, overlap * scale, y > 0, y + th < h)
        for x in xs:
            tw = min(tile, w - x)
            wx = _ramp(tw * scale, overlap * scale, x > 0, x + tw < w)
            out = _call(fn, img[y : y + th, x : x + tw], scale)
            wt = wy[:, None] * wx[None, :]
            oy, ox = y * scale, x * scale
            acc[oy : oy + th * scale, ox : ox + tw * scale] += out * wt[..., None]
            weight[oy : oy + th * scale, ox : ox + tw * scale] += wt
            done += 1
            if progress is not None:
                progress(done, total)
    acc /= weight[..., None]
    return acc


def _call(fn: TileFn, tile_in: np.ndarray, scale: int) -> np.ndarray:
    th, tw, c = tile_in.shape
    out = np.asarray(fn(np.ascontiguousarray(tile_in)), dtype=np.float32)
    if out.shape != (th * scale, tw * scale, c):
        raise ValueError(f"tile function returned {out.shape}, expected {(th * scale, tw * scale, c)}")
    return out
