"""Everything a submit can know about a frame from its header, without decoding a pixel.

A submit names frames that may be huge (a 2 MB ZIP file can hold a 16384² frame: 2 GiB of half floats);
decoding each one in the RPC thread multiplied memory by every concurrent submit. Submits now check the
header (limits, deep parts, part count, colour channels, view, the chunk table against the file's size, and
the per-frame decode budget); pixels are decoded once, by the worker that renders the frame, within the
same budget.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .exr import (
    WORKING_BYTES_PER_PIXEL,
    ExrImage,
    ExrPart,
    FrameError,
    RawPart,
    _colour_channels,
    _find_colour_part,
    _part_bytes,
    _read_headers,
    _reject_deep,
    _size,
    check_decode_budget,
    parse_raw_headers,
)

_DTYPES = {0: np.uint32, 1: np.float16, 2: np.float32}
# Scanlines per chunk by compression (NONE, RLE, ZIPS, ZIP, PIZ, PXR24, B44, B44A, DWAA, DWAB).
_LINES_PER_CHUNK = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}


@dataclass
class FrameHeader:
    """A frame that passed every header check; `image` has the real headers and empty channel arrays."""

    image: ExrImage
    raw: list[RawPart]
    decode_bytes: int

    def colour(self, view: str | None = None) -> ColourInfo:
        """The colour channels a pass would use (as select_colour picks them), or FrameError naming the file."""
        index, prefix, view_name = _find_colour_part(self.image, view)
        part = self.image.parts[index]
        names = _colour_channels(part, prefix, self.image.source_name)
        xmin, ymin, xmax, ymax = self.raw[index].data_window  # type: ignore[misc]
        return ColourInfo(index, prefix, view_name, names, xmax - xmin + 1, ymax - ymin + 1, part)


@dataclass
class ColourInfo:
    part_index: int
    prefix: str
    view: str | None
    channel_names: tuple[str, ...]
    width: int
    height: int
    part: ExrPart  # its channels: name -> empty array of the stored dtype

    def has_full_channel(self, name: str) -> bool:
        """The part holds `name` at full resolution (e.g. a Z channel a depth ControlNet can use)."""
        return name in self.part.channels and self.part.sampling.get(name, (1, 1, False))[:2] == (1, 1)


def read_frame_header(data: bytes, source_name: str) -> FrameHeader:
    """Header-only checks; raises FrameError (bad file) or FrameTooLarge (over the decode budget)."""
    expected = _read_headers(data, source_name)  # magic, size limits, bombs, what the binding can parse
    raw = parse_raw_headers(data, source_name)
    parts = []
    for index, (part, raw_part) in enumerate(zip(expected.parts, raw)):
        _reject_deep(part.header, index, source_name)
        channels = {name: np.empty((0, 0), _DTYPES[kind]) for name, kind, _, _ in raw_part.channels}
        sampling = {name: (xs, ys, False) for name, _, xs, ys in raw_part.channels if (xs, ys) != (1, 1)}
        parts.append(ExrPart(header=dict(part.header), channels=channels, sampling=sampling))
    if len(parts) != len(raw):
        raise FrameError(
            source_name,
            f"damaged EXR: the header lists {len(raw)} part(s) but only {len(parts)} could be read; re-export it",
        )
    _check_chunk_table(data, raw, source_name)
    decoded = sum(_part_bytes(p, len(raw) > 1, source_name) for p in raw)
    largest = max(_pixels(p) for p in raw)
    header = FrameHeader(ExrImage(parts=parts, source_name=source_name), raw,
                         decoded + largest * WORKING_BYTES_PER_PIXEL)
    check_decode_budget(header.decode_bytes, source_name)
    return header


def _pixels(part: RawPart) -> int:
    xmin, ymin, xmax, ymax = part.data_window  # type: ignore[misc]
    return (xmax - xmin + 1) * (ymax - ymin + 1)


def _check_chunk_table(data: bytes, raw: list[RawPart], source_name: str) -> None:
    """Every chunk offset lies inside the file: a cut-off file is refused now, not when a worker decodes it."""
    pos = raw[-1].header_end + (1 if len(raw) > 1 else 0)  # multi-part: an empty header ends the list
    for part in raw:
        count = _chunk_count(part, data)
        if count is None:
            return  # tiled single-part files do not say; the decode checks them
        end = pos + 8 * count
        if end > len(data):
            raise FrameError(source_name, "damaged EXR: the file ends inside its chunk table (cut short); "
                                          "copy or export it again")
        offsets = struct.unpack_from(f"<{count}Q", data, pos)
        if any(not end <= o < len(data) for o in offsets):
            raise FrameError(
                source_name,
                f"damaged EXR: the file is {_size(len(data))} but its chunk table points beyond that (cut short "
                "while copying?); copy or export it again",
            )
        pos = end


def _chunk_count(part: RawPart, data: bytes) -> int | None:
    if part.chunk_count is not None:
        return part.chunk_count
    if part.tiled or part.compression not in _LINES_PER_CHUNK:
        return None
    xmin, ymin, xmax, ymax = part.data_window  # type: ignore[misc]
    lines = _LINES_PER_CHUNK[part.compression]
    return -(-(ymax - ymin + 1) // lines)

