"""Source and output frames as the temporal code sees them: display-referred, with their data windows."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from ..frames.colour import ColourSpaces
from ..frames.exr import Box, ColourPlane, ExrImage, decode_exr, finite, select_colour
from ..passes.base import SRGB_ENCODED
from .vectors import MotionVectors, find_motion_vectors


@dataclass
class Plate:
    """One source frame: sRGB-encoded colour (the image models' space) and a grey copy for flow."""

    frame: int
    digest: str
    window: Box
    srgb: Optional[np.ndarray]  # H x W x 3 float32, display-referred (not clipped); None in cached plates
    gray: np.ndarray  # H x W uint8, from the clipped sRGB
    vectors: Optional[MotionVectors]
    view_key: str  # view and colour space: flows of the same files read differently are not shared


def display_referred(plane: ColourPlane, colour_space: str, colours: ColourSpaces) -> np.ndarray:
    """A colour plane in the image models' space: sRGB-encoded via OCIO, as the passes see it."""
    return colours.convert(np.ascontiguousarray(finite(plane.rgb), dtype=np.float32), colour_space, SRGB_ENCODED)


def load_plate(
    data: bytes, name: str, digest: str, frame: int, view: str, colour_space: str, colours: ColourSpaces,
    vectors: bool = True, image: Optional[ExrImage] = None,
) -> Plate:
    image = image or decode_exr(data, name)
    plane = select_colour(image, view or None)
    srgb = display_referred(plane, colour_space, colours)
    return Plate(
        frame=frame,
        digest=digest,
        window=plane.data_window,
        srgb=srgb,
        gray=grey8(srgb),
        vectors=find_motion_vectors(image, plane, name, frame) if vectors else None,
        view_key=f"{view}|{colour_space}",
    )


def grey8(srgb: np.ndarray) -> np.ndarray:
    luma = srgb[..., 0] * 0.2126 + srgb[..., 1] * 0.7152 + srgb[..., 2] * 0.0722
    return np.ascontiguousarray(np.clip(luma * 255.0 + 0.5, 0, 255).astype(np.uint8))


PLATE_CACHE_BYTES = 128 << 20
_plates: OrderedDict[tuple, Plate] = OrderedDict()
_plates_lock = threading.Lock()


def cached_plate(
    data: bytes, name: str, digest: str, frame: int, view: str, colour_space: str, colours: ColourSpaces,
    vectors: bool = True, image: Optional[ExrImage] = None,
) -> Plate:
    """A source frame for flow only (grey, window, vectors), kept per process: the frames of a keyframe run are
    read by every frame between its keyframes."""
    key = (digest, frame, view, colour_space, vectors)
    with _plates_lock:
        plate = _plates.get(key)
        if plate is not None:
            _plates.move_to_end(key)
            return plate
    plate = replace(load_plate(data, name, digest, frame, view, colour_space, colours, vectors, image), srgb=None)
    with _plates_lock:
        _plates[key] = plate
        while len(_plates) > 1 and sum(_plate_bytes(p) for p in _plates.values()) > PLATE_CACHE_BYTES:
            _plates.popitem(last=False)
    return plate


def _plate_bytes(plate: Plate) -> int:
    return plate.gray.nbytes + (0 if plate.vectors is None else plate.vectors.backward.nbytes)
