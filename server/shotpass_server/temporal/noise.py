"""Starting noise that follows the plate's motion: diffusion img2img with ``noise=flow``.

Each latent cell of a frame takes its noise from where that point of the picture was in the previous frame
(along the source's flow, temporal/flow.py), so the noise travels with the content instead of boiling (new
noise every frame, ``per-frame``) or sticking to the screen (``fixed``). Cells whose content was hidden or
outside the previous frame, or whose flow is not trusted (occlusions, the frame's edges), start afresh from the
frame's own noise, the one it has with ``per-frame``.

A frame's warp is a map over its latent cells: the frame whose noise each cell reads (``origin``) and the
cell's continuous position in that frame's latent grid (``coords``). Carrying positions rather than noise values
keeps the noise exactly Gaussian and white (each cell reads one value, nearest, never a blend of several, which
would lower its variance and blur it), while motion smaller than a cell still adds up from frame to frame
instead of being rounded away. A frame's warp depends only on the render's source frames from its first frame
up to it, so it is the same in any order, on any worker, and after a restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..frames.exr import Box
from .flow import pair_flow
from .frames import Plate

CELL = 8  # pixels per latent cell of the image models' VAEs (SD 1.x, SDXL)
STATES_BYTES = 64 << 20  # warps kept per process: the next frame of a render continues from the last one


@dataclass
class NoiseWarp:
    """Where each latent cell of a frame takes its starting noise from (small: one int and two floats a cell)."""

    frame: int
    origin: np.ndarray  # h x w int64 (latent cells of the frame's data window): frame whose noise the cell reads
    coords: np.ndarray  # h x w x 2 float32: (x, y) of the cell in that frame's latent grid
    sizes: Dict[int, Tuple[int, int]]  # origin frame -> its data window in pixels (height, width)
    seeds: Dict[int, int]  # origin frame -> its noise seed

    def nbytes(self) -> int:
        return int(self.origin.nbytes + self.coords.nbytes)


def cells(height: int, width: int) -> Tuple[int, int]:
    """Latent cells covering a data window of height x width pixels (before any padding)."""
    return -(-height // CELL), -(-width // CELL)


def first_warp(plate: Plate, seed: int) -> NoiseWarp:
    """The render's first frame: every cell reads its own noise."""
    h, w = _size(plate.window)
    gh, gw = cells(h, w)
    gx, gy = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    return NoiseWarp(plate.frame, np.full((gh, gw), plate.frame, np.int64), np.stack([gx, gy], axis=-1),
                     {plate.frame: (h, w)}, {plate.frame: seed})


def next_warp(previous: NoiseWarp, before: Plate, plate: Plate, seed: int, use_vectors: bool = True) -> NoiseWarp:
    """Carry the previous frame's warp one step along the source's flow onto ``plate``."""
    flow = pair_flow(before, plate, use_vectors)
    h, w = _size(plate.window)
    gh, gw = cells(h, w)
    gx, gy = np.meshgrid(np.arange(gw, dtype=np.float32), np.arange(gh, dtype=np.float32))
    # Each cell's centre, in pixels of the pair's canvas (inside the frame's own window).
    px = np.minimum(gx * CELL + (CELL - 1) / 2, w - 1) + (plate.window[0] - flow.canvas[0])
    py = np.minimum(gy * CELL + (CELL - 1) / 2, h - 1) + (plate.window[1] - flow.canvas[1])
    back = cv2.remap(flow.backward, px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    trusted = cv2.remap(flow.valid, px, py, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.5
    # Where the centre was in the previous frame, in that frame's latent cells (continuous).
    qx = (px + back[..., 0] + flow.canvas[0] - before.window[0] - (CELL - 1) / 2) / CELL
    qy = (py + back[..., 1] + flow.canvas[1] - before.window[1] - (CELL - 1) / 2) / CELL
    ph, pw = previous.origin.shape
    nx, ny = np.rint(qx).astype(np.int64), np.rint(qy).astype(np.int64)
    inside = trusted & (nx >= 0) & (nx < pw) & (ny >= 0) & (ny < ph)
    nx, ny = np.clip(nx, 0, pw - 1), np.clip(ny, 0, ph - 1)
    origin = previous.origin[ny, nx]
    coords = previous.coords[ny, nx] + np.stack([qx - nx, qy - ny], axis=-1).astype(np.float32)
    # A carried position must still fall on its origin's grid, else the cell starts afresh.
    keys = np.array(sorted(previous.sizes), np.int64)
    grids = np.array([cells(*previous.sizes[int(k)])[::-1] for k in keys], np.float32)  # (w, h) per origin
    limits = grids[np.searchsorted(keys, origin)]
    inside &= np.all((coords >= -0.5) & (coords < limits - 0.5), axis=-1)
    origin = np.where(inside, origin, plate.frame)
    coords = np.where(inside[..., None], coords, np.stack([gx, gy], axis=-1)).astype(np.float32)
    used = {int(k) for k in np.unique(origin)}
    sizes = {k: v for k, v in previous.sizes.items() if k in used}
    seeds = {k: v for k, v in previous.seeds.items() if k in used}
    sizes[plate.frame], seeds[plate.frame] = (h, w), seed
    return NoiseWarp(plate.frame, origin, coords, sizes, seeds)


def warped_noise(warp: NoiseWarp, shape: Sequence[int], multiple: int) -> Any:
    """1 x C x H x W float32 starting noise for a frame whose latents have ``shape`` (its data window padded to
    ``multiple`` pixels): every frame's own noise field is what ``per-frame`` noise would be for it at its padded
    size, and each cell of the frame's window reads its origin's field at its carried position. Cells of the
    padding read the frame's own field (they are cropped off after decoding)."""
    import torch

    from ..passes.diffusion.common import generator

    fields: Dict[int, Any] = {}

    def field(k: int) -> Any:
        if k not in fields:
            h, w = warp.sizes[k]
            padded = (shape[0], shape[1], -(-h // multiple) * multiple // CELL, -(-w // multiple) * multiple // CELL)
            fields[k] = torch.randn(padded, generator=generator(warp.seeds[k]), dtype=torch.float32)
        return fields[k]

    own = field(warp.frame)
    if tuple(own.shape) != tuple(shape):
        raise RuntimeError(f"frame {warp.frame}: noise warp made for latents {tuple(own.shape)}, not {tuple(shape)}")
    out = own.clone()
    for k in np.unique(warp.origin):
        k = int(k)
        if k == warp.frame:
            continue  # fresh cells read the frame's own field at their own cell: already there
        ys, xs = np.nonzero(warp.origin == k)
        src = field(k)
        cx = np.clip(np.rint(warp.coords[ys, xs, 0]).astype(np.int64), 0, src.shape[3] - 1)
        cy = np.clip(np.rint(warp.coords[ys, xs, 1]).astype(np.int64), 0, src.shape[2] - 1)
        out[0, :, torch.from_numpy(ys), torch.from_numpy(xs)] = src[0, :, torch.from_numpy(cy), torch.from_numpy(cx)]
    return out


class NoiseWarps:
    """Warps of the frames rendered lately, per render: a frame continues from the nearest earlier one kept, so
    a render that runs in order computes one flow per frame; a restarted one walks from its first frame again."""

    def __init__(self, limit: int = STATES_BYTES) -> None:
        self.limit = limit
        self._items: OrderedDict[Tuple[str, int], NoiseWarp] = OrderedDict()
        self._lock = threading.Lock()

    def warp(self, key: str, frames: Sequence[int], frame: int, plate: Callable[[int], Plate],
             seed: Callable[[int], int], use_vectors: bool = True) -> NoiseWarp:
        """Frame ``frame``'s warp, ``frames`` being the render's frames in order (the chain it walks)."""
        index = frames.index(frame)
        start, found = index, self._get((key, frame))
        while found is None and start > 0:
            start -= 1
            found = self._get((key, frames[start]))
        if found is None:
            found = first_warp(plate(frames[0]), seed(frames[0]))
            self._put((key, frames[0]), found)
        for i in range(start + 1, index + 1):
            found = next_warp(found, plate(frames[i - 1]), plate(frames[i]), seed(frames[i]), use_vectors)
            self._put((key, frames[i]), found)
        return found

    def _get(self, key: Tuple[str, int]) -> Optional[NoiseWarp]:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def _put(self, key: Tuple[str, int], warp: NoiseWarp) -> None:
        with self._lock:
            self._items[key] = warp
            while len(self._items) > 1 and sum(w.nbytes() for w in self._items.values()) > self.limit:
                self._items.popitem(last=False)


def _size(window: Box) -> Tuple[int, int]:
    return window[3] - window[1] + 1, window[2] - window[0] + 1
