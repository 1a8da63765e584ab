"""EXR decode/encode on top of the `OpenEXR` binding (3.5), in memory.

The binding is lenient in ways that would corrupt a render silently: deep parts read as object
arrays, damaged files can come back with fewer (or no) parts, header values it cannot store are
rejected or zeroed. Everything here checks for those cases and raises `FrameError`, whose message
names the file and says what the user can do about it.
"""

from __future__ import annotations

import base64
import io
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import OpenEXR

from ..errors import InvalidInput, ResourceExhausted

EXR_MAGIC = b"\x76\x2f\x31\x01"
PROVENANCE_PREFIX = "shotpass/"
SOURCE_COMPRESSION_ATTR = "shotpass/sourceCompression"
SOURCE_LEVEL_MODE_ATTR = "shotpass/sourceLevelMode"

# Written as they came; anything else (PXR24, B44, B44A, DWAA, DWAB, unknown) is written as ZIP so
# that a no-op pass is bit-exact.
LOSSLESS_COMPRESSIONS = frozenset({
    OpenEXR.NO_COMPRESSION,
    OpenEXR.RLE_COMPRESSION,
    OpenEXR.ZIPS_COMPRESSION,
    OpenEXR.ZIP_COMPRESSION,
    OpenEXR.PIZ_COMPRESSION,
})
DEEP_TYPES = {OpenEXR.deepscanline: "deepscanline", OpenEXR.deeptile: "deeptiled"}
_DEEP_BY_NAME = {"deepscanline": OpenEXR.deepscanline, "deeptile": OpenEXR.deeptile, "deeptiled": OpenEXR.deeptile}
PIXEL_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.uint32))
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
# Array shapes the binding stores as V2/V3/M33/M44 attributes.
_ARRAY_ATTR_SHAPES = {(2,), (3,), (3, 3), (4, 4)}

Box = tuple[int, int, int, int]


class FrameError(InvalidInput):
    """A frame that cannot be read, processed or written; the message names the file."""

    def __init__(self, source_name: str, problem: str) -> None:
        super().__init__(f"{source_name}: {problem}")
        self.source_name = source_name
        self.problem = problem


class HeaderCutShort(FrameError):
    """The header runs past the bytes given: damaged, or (for a caller reading a file's start) read more."""


@dataclass
class ExrPart:
    header: dict[str, Any]
    """Every attribute as the binding gives it, except the structural `channels` list."""
    channels: dict[str, np.ndarray]
    """name -> 2-D array, dtype as stored (float16/float32/uint32); subsampled channels as stored."""
    sampling: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    """(xSampling, ySampling, pLinear) for channels that differ from (1, 1, False)."""


@dataclass
class ExrImage:
    parts: list[ExrPart]
    source_name: str


@dataclass
class ColourPlane:
    """The colour channels of one part (and view) that a pass works on."""

    part_index: int
    channel_names: tuple[str, ...]
    layout: str  # "rgba" | "rgb" | "y" | "ya"
    rgb: np.ndarray  # H x W x 3 float32, C-contiguous (grey replicated for "y"/"ya")
    alpha: np.ndarray | None  # H x W float32
    dtypes: dict[str, np.dtype]
    data_window: Box
    display_window: Box
    pixel_aspect: float
    view: str | None = None
    prefix: str = ""  # "left." for a non-default view of a single-part multiView file


# --------------------------------------------------------------------------- decode


def decode_exr(data: bytes, source_name: str) -> ExrImage:
    """Read every part (level 0 of tiled/mipmap files) or raise FrameError."""
    expected = _read_headers(data, source_name, refuse_deep=True)
    for index, part in enumerate(expected.parts):
        _reject_deep(part.header, index, source_name)
    raw = parse_raw_headers(data, source_name)
    largest = max((p.data_window[2] - p.data_window[0] + 1) * (p.data_window[3] - p.data_window[1] + 1)
                  for p in raw if p.data_window)
    needed = sum(_part_bytes(p, len(raw) > 1, source_name) for p in raw) + largest * WORKING_BYTES_PER_PIXEL
    check_decode_budget(needed, source_name)  # before the binding allocates anything
    try:
        exr = OpenEXR.File(io.BytesIO(data), separate_channels=True)
        parts = [_decode_part(p, index, source_name) for index, p in enumerate(exr.parts)]
    except FrameError:
        raise
    except MemoryError:
        raise FrameTooLarge(
            f"{source_name}: too large to decode now: the server ran out of memory reading its "
            f"{_size(needed)} of pixels; try again later, or crop or split the frame"
        ) from None
    except Exception as exc:  # the binding raises RuntimeError, ValueError, UnicodeDecodeError...
        raise _damaged(source_name, exc) from exc
    # Damaged pixel data makes the binding skip parts with a warning instead of raising.
    if len(parts) != len(expected.parts):
        raise FrameError(
            source_name,
            f"damaged EXR: the header lists {len(expected.parts)} part(s) but only {len(parts)} could "
            "be read; re-render or re-export the frame",
        )
    return ExrImage(parts=parts, source_name=source_name)


def _check_magic(data: bytes, source_name: str) -> None:
    if not data:
        raise FrameError(source_name, "the file is empty; re-export or re-upload it")
    if not bytes(data[:4]) == EXR_MAGIC:
        raise FrameError(
            source_name,
            f"not an OpenEXR file (starts with {bytes(data[:8])!r}); render or convert the frame to EXR",
        )


def _damaged(source_name: str, exc: BaseException) -> FrameError:
    if isinstance(exc, UnicodeDecodeError):
        return FrameError(
            source_name,
            "unreadable EXR: a header text attribute is not valid UTF-8 (damaged, or written by a tool "
            "that uses another encoding); re-export the frame",
        )
    detail = str(exc).replace("<python_buffer>", "file")[:200]
    return FrameError(
        source_name,
        f"damaged or unreadable EXR ({type(exc).__name__}: {detail}); re-render or re-export the frame",
    )


def _read_headers(data: bytes, source_name: str, refuse_deep: bool = False) -> Any:
    """Header-only read: cheap, and the only reliable source of the part count."""
    _check_magic(data, source_name)
    raw = check_header_limits(data, source_name)  # before the binding sees the file: it trusts the header
    # Deep parts are told from the header's own bytes: the binding fails on some deep-only attributes
    # (deepImageState) and would call a perfectly good deep file damaged.
    non_image = len(data) > 5 and bool(data[5] & 0x08)  # version flag bit 11: single-part deep data
    for part in raw if refuse_deep else ():
        kind = part.type.decode("ascii", "replace") if part.type else ""
        if kind.startswith("deep") or (non_image and len(raw) == 1):
            _reject_deep({"type": _DEEP_BY_NAME.get(kind, OpenEXR.deepscanline)}, part.index, source_name)
    try:
        exr = OpenEXR.File(io.BytesIO(data), header_only=True)
        parts = exr.parts
        for part in parts:
            part.header  # noqa: B018 - building the dict is what raises on bad attributes
            # Channel names are decoded only when read: a name that is not UTF-8 text raises here, not later.
            [c.name for c in part.header.get("channels", [])]
    except Exception as exc:
        raise _damaged(source_name, exc) from exc
    if not parts:
        raise FrameError(source_name, "damaged EXR: no parts could be read; re-render or re-export the frame")
    return exr


def _reject_deep(header: Mapping[str, Any], index: int, source_name: str) -> None:
    kind = DEEP_TYPES.get(header.get("type"))
    if kind is not None:
        where = f" (part {index})" if index else ""
        raise FrameError(
            source_name,
            f"deep EXR ({kind}){where} cannot be processed; flatten it first (e.g. a DeepToImage in Nuke)",
        )


def _decode_part(part: Any, index: int, source_name: str) -> ExrPart:
    header = dict(part.header)
    _reject_deep(header, index, source_name)
    declared = header.pop("channels", [])
    xmin, ymin, xmax, ymax = box(header, "dataWindow")
    width, height = xmax - xmin + 1, ymax - ymin + 1
    channels: dict[str, np.ndarray] = {}
    sampling: dict[str, tuple[int, int, bool]] = {}
    for name, channel in part.channels.items():
        pixels = channel.pixels
        xs, ys, linear = int(channel.xSampling), int(channel.ySampling), bool(channel.pLinear)
        expected_shape = (-(-height // ys), -(-width // xs))
        if not isinstance(pixels, np.ndarray) or pixels.dtype not in PIXEL_DTYPES or pixels.ndim != 2:
            raise FrameError(source_name, f"damaged EXR: channel {name!r} of part {index} has no pixel data")
        if pixels.shape != expected_shape:
            raise FrameError(
                source_name,
                f"damaged EXR: channel {name!r} of part {index} is {pixels.shape[1]}x{pixels.shape[0]}, "
                f"the data window says {expected_shape[1]}x{expected_shape[0]}",
            )
        channels[name] = pixels
        if (xs, ys, linear) != (1, 1, False):
            sampling[name] = (xs, ys, linear)
    if len(channels) != len(declared):
        raise FrameError(
            source_name,
            f"damaged EXR: part {index} declares {len(declared)} channels but {len(channels)} were read",
        )
    return ExrPart(header=header, channels=channels, sampling=sampling)


def box(header: Mapping[str, Any], key: str) -> Box:
    """A window attribute as (xmin, ymin, xmax, ymax) ints, inclusive."""
    lo, hi = header[key]
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def _box_value(window: Box) -> tuple[np.ndarray, np.ndarray]:
    xmin, ymin, xmax, ymax = window
    return np.array([xmin, ymin], dtype=np.int32), np.array([xmax, ymax], dtype=np.int32)


def scale_box(window: Box, k: int) -> Box:
    """Pixel-exact scaling: pixel x covers [x*k, (x+1)*k - 1] in the output."""
    xmin, ymin, xmax, ymax = window
    return xmin * k, ymin * k, (xmax + 1) * k - 1, (ymax + 1) * k - 1


def read_header_summary(data: bytes, source_name: str) -> dict[str, Any]:
    """Windows, channels and type per part from a header-only read (no pixel decoding)."""
    exr = _read_headers(data, source_name)
    channel_types = _channel_types(data)
    parts = []
    for index, part in enumerate(exr.parts):
        header = part.header
        types = channel_types[index] if index < len(channel_types) else {}
        parts.append({
            "name": header.get("name", ""),
            "type": _enum_name(header.get("type")),
            "view": header.get("view"),
            "multiView": list(header.get("multiView", []) or []),
            "compression": _compression_name(header.get("compression")),
            "dataWindow": box(header, "dataWindow"),
            "displayWindow": box(header, "displayWindow"),
            "pixelAspectRatio": float(header.get("pixelAspectRatio", 1.0)),
            "channels": {c.name: types.get(c.name, "UNKNOWN") for c in header.get("channels", [])},
            "subsampled": sorted(
                c.name for c in header.get("channels", []) if (c.xSampling, c.ySampling) != (1, 1)
            ),
        })
    return {"source_name": source_name, "part_count": len(parts), "parts": parts}


_PIXEL_TYPE_NAMES = {0: "UINT", 1: "HALF", 2: "FLOAT"}


def _channel_types(data: bytes) -> list[dict[str, str]]:
    """Channel pixel types per part, parsed from the raw headers.

    The binding's header-only read cannot tell a channel's type (Channel.type() needs pixels), so
    the `chlist` attributes are read directly. Best effort: a damaged header yields what was parsed.
    """
    multipart = bool(struct.unpack_from("<I", data, 4)[0] & 0x1000) if len(data) >= 8 else False
    parts: list[dict[str, str]] = []
    pos = 8
    try:
        while pos < len(data) and data[pos] != 0:
            types, pos = _parse_header_types(data, pos)
            parts.append(types)
            pos += 1  # the header's terminating null byte
            if not multipart:
                break
    except (struct.error, ValueError, IndexError):
        pass
    return parts


def _parse_header_types(data: bytes, pos: int) -> tuple[dict[str, str], int]:
    types: dict[str, str] = {}
    while data[pos] != 0:
        name, pos = _c_string(data, pos)
        kind, pos = _c_string(data, pos)
        (size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        if kind == b"chlist":
            types = _parse_chlist(data[pos : pos + size])
        pos += size
    return types, pos


def _parse_chlist(value: bytes) -> dict[str, str]:
    types: dict[str, str] = {}
    pos = 0
    while pos < len(value) and value[pos] != 0:
        name, pos = _c_string(value, pos)
        (pixel_type,) = struct.unpack_from("<i", value, pos)
        pos += 16  # pixel type, pLinear + 3 reserved bytes, xSampling, ySampling
        types[name.decode("utf-8", "replace")] = _PIXEL_TYPE_NAMES.get(pixel_type, "UNKNOWN")
    return types


def _c_string(data: bytes, pos: int, limit: int | None = None) -> tuple[bytes, int]:
    """A null-terminated string at `pos`; with `limit`, the null must come within that many bytes."""
    end = data.index(b"\0", pos, None if limit is None else pos + limit)
    return data[pos:end], end + 1


def _enum_name(value: Any) -> str:
    return str(getattr(value, "name", value))


def _compression_name(value: Any) -> str:
    return _enum_name(value).removesuffix("_COMPRESSION").lower()


# --------------------------------------------------------------------------- limits, from the raw header

# The binding allocates whatever the header asks for, so sizes are checked on the raw header bytes first:
# a 20 KB file whose header says 100000x100000 must be refused before any pixel buffer exists.
DEFAULT_MAX_FRAME_PIXELS = 16384 * 16384  # an 8K upscale output (8192x4320 x2) fits well within
MAX_PARTS = 512
MAX_CHANNELS = 1024  # per part
MAX_ATTRIBUTES = 10_000  # per header
MAX_WINDOW_COORD = 1 << 24  # beyond this a window is absurd; x4 of it still fits int32
BYTES_PER_PIXEL_LIMIT = 16  # decoded bytes per frame: max_frame_pixels x this (RGBA float at the largest size)
WORKING_BYTES_PER_PIXEL = 16  # the float32 RGB + alpha copy a pass works on, besides the decoded channels
BOMB_FLOOR_BYTES = 64 << 20  # a file that decodes to less costs too little to be worth refusing
_SAMPLE_BYTES = {0: 4, 1: 2, 2: 4}  # UINT, HALF, FLOAT
# The most each codec plausibly shrinks pixels: flat black frames measured (ZIP ~950:1, PIZ ~400:1,
# RLE ~60:1, B44A ~11:1) with a wide margin. DWAA/DWAB, HTJ2K and ZSTD grow with the frame size, so
# only the byte limit bounds them.
_PLAUSIBLE_RATIO = {0: 2, 1: 130, 2: 4000, 3: 4000, 4: 2000, 5: 4000, 6: 16, 7: 16}
_UNBOUNDED_RATIO = 1_000_000
_COMPRESSION_NAMES = {int(c): _compression_name(c) for c in OpenEXR.Compression.__members__.values()}


def default_decode_budget() -> int:
    """An eighth of the machine's memory: a worker decodes one frame at a time, and previews, other workers
    and the rest of the server need the remainder. At least 256 MiB."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 16 << 30
    return max(256 << 20, memory // 8)


@dataclass
class FrameLimits:
    """What one frame may decode to; the server sets it from `[server] max_frame_pixels`."""

    max_pixels: int = DEFAULT_MAX_FRAME_PIXELS
    max_decode_bytes: int = field(default_factory=lambda: default_decode_budget())

    @property
    def max_bytes(self) -> int:
        return self.max_pixels * BYTES_PER_PIXEL_LIMIT


LIMITS = FrameLimits()


class FrameTooLarge(ResourceExhausted):
    """A frame whose decode would exceed the server's per-frame memory budget (gRPC RESOURCE_EXHAUSTED)."""


def set_decode_budget(budget: int) -> None:
    """Bytes one frame may take to decode (0: the machine's default)."""
    if budget < 0:
        raise InvalidInput(f"max_decode_bytes must be 0 (the default) or a number of bytes, not {budget}")
    LIMITS.max_decode_bytes = int(budget) or default_decode_budget()


def check_decode_budget(needed: int, source_name: str) -> None:
    budget = LIMITS.max_decode_bytes
    if needed > budget:
        raise FrameTooLarge(
            f"{source_name}: too large to decode here: it needs about {_size(needed)} of memory, over this "
            f"server's per-frame budget of {_size(budget)} ([server] max_decode_bytes); crop or split it (fewer "
            "channels or parts per file), or ask the server's admin to raise the budget"
        )


def set_max_frame_pixels(pixels: int) -> None:
    if pixels < 1:
        raise InvalidInput(f"max_frame_pixels must be a positive number of pixels, not {pixels}")
    LIMITS.max_pixels = int(pixels)


@dataclass
class RawPart:
    """What the limits need from one part header, parsed from the bytes without the binding."""

    index: int
    type: bytes = b""
    compression: int = 0
    data_window: Box | None = None
    display_window: Box | None = None
    channels: list[tuple[str, int, int, int]] = field(default_factory=list)  # name, pixel type, xs, ys
    tiled: bool = False
    chunk_count: int | None = None  # the chunkCount attribute (multi-part files have one)
    header_end: int = 0  # where this part's header ends in the file


def check_header_limits(data: bytes, source_name: str, file_size: int | None = None) -> list[RawPart]:
    """Refuse, from the header alone, a frame too large to decode or whose header promises far more
    pixels than its bytes can hold (a decompression bomb). Returns the parsed part headers.

    `data` may be only the start of the file (path mode reads the header first) when `file_size` gives
    the whole file's size."""
    parts = parse_raw_headers(data, source_name)
    size = len(data) if file_size is None else file_size
    total = 0
    for part in parts:
        total += _part_bytes(part, len(parts) > 1, source_name)
    if total > LIMITS.max_bytes:
        raise FrameError(
            source_name,
            f"the frame would decode to {_size(total)} of pixels, over this server's limit of "
            f"{_size(LIMITS.max_bytes)} per frame; send fewer channels or parts per file (e.g. split the "
            "layers), or ask the server's admin to raise [server] max_frame_pixels",
        )
    ratio = max(_PLAUSIBLE_RATIO.get(p.compression, _UNBOUNDED_RATIO) for p in parts)
    if total > BOMB_FLOOR_BYTES and total > size * ratio:
        codecs = sorted({_COMPRESSION_NAMES.get(p.compression, str(p.compression)) for p in parts})
        raise FrameError(
            source_name,
            f"the header promises {_size(total)} of pixels but the file holds only {_size(size)} "
            f"({', '.join(codecs)} compression cannot shrink pixels {ratio}:1): the file is damaged or a "
            "decompression bomb, and was not decoded; re-export the frame",
        )
    return parts


def _part_bytes(part: RawPart, multipart: bool, source_name: str) -> int:
    """Checks the part's windows and channel count; returns the bytes its pixels decode to."""
    where = f" of part {part.index}" if multipart else ""
    for key, window in (("dataWindow", part.data_window), ("displayWindow", part.display_window)):
        if window is None:
            raise FrameError(source_name, f"damaged EXR: no {key}{where} in the header; re-export the frame")
        xmin, ymin, xmax, ymax = window
        if xmax < xmin or ymax < ymin or max(map(abs, window)) > MAX_WINDOW_COORD:
            raise FrameError(
                source_name,
                f"damaged EXR: the {key}{where} is ({xmin}, {ymin})-({xmax}, {ymax}), empty or beyond "
                f"+/-{MAX_WINDOW_COORD}; re-export the frame",
            )
    xmin, ymin, xmax, ymax = part.data_window  # type: ignore[misc]
    width, height = xmax - xmin + 1, ymax - ymin + 1
    if width * height > LIMITS.max_pixels:
        raise FrameError(
            source_name,
            f"the data window{where} is {width}x{height} ({width * height} pixels), over this server's limit "
            f"of {LIMITS.max_pixels} pixels per frame; crop or reformat the frame, or ask the server's admin "
            "to raise [server] max_frame_pixels",
        )
    if part.type.startswith(b"deep"):
        return 0  # refused as deep before decoding; its sample counts are not in the header
    return sum(-(-width // xs) * -(-height // ys) * _SAMPLE_BYTES[kind] for _, kind, xs, ys in part.channels)


def parse_raw_headers(data: bytes, source_name: str) -> list[RawPart]:
    """Part headers from the file's bytes (windows, channels, compression, type), every length bounded."""
    if len(data) < 8:
        raise FrameError(source_name, "damaged EXR: the file ends inside its version field; re-export the frame")
    if data[4] != 2:
        raise FrameError(source_name, f"unsupported EXR version {data[4]} (only version 2 exists); re-export the frame")
    multipart = bool(data[5] & 0x10)  # flag bit 12 of the version field
    parts: list[RawPart] = []
    pos = 8
    try:
        while True:
            if multipart and data[pos] == 0:
                break  # an empty header ends the list
            if len(parts) >= MAX_PARTS:
                raise FrameError(
                    source_name, f"more than {MAX_PARTS} parts in one file; split it into several files"
                )
            part = RawPart(index=len(parts), tiled=not multipart and bool(data[5] & 0x02))
            pos = _parse_raw_header(data, pos, part, source_name)
            part.header_end = pos
            parts.append(part)
            if not multipart:
                break
    except (IndexError, struct.error, ValueError):
        raise HeaderCutShort(
            source_name, "damaged EXR: the header is cut short or malformed; re-render or re-export the frame"
        ) from None
    if not parts:
        raise FrameError(source_name, "damaged EXR: no parts could be read; re-render or re-export the frame")
    return parts


def _parse_raw_header(data: bytes, pos: int, part: RawPart, source_name: str) -> int:
    """Fills `part` from the attributes at `pos`; returns the position after the header's closing null."""
    count = 0
    while data[pos] != 0:
        count += 1
        if count > MAX_ATTRIBUTES:
            raise FrameError(source_name, f"damaged EXR: more than {MAX_ATTRIBUTES} attributes in one header")
        name, pos = _c_string(data, pos, 256)
        kind, pos = _c_string(data, pos, 256)
        (size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        if size < 0 or pos + size > len(data):
            raise ValueError(f"attribute {name!r} of {size} bytes")
        value = data[pos : pos + size]
        pos += size
        if kind == b"box2i" and name in (b"dataWindow", b"displayWindow"):
            window = struct.unpack("<4i", value)
            if name == b"dataWindow":
                part.data_window = window
            else:
                part.display_window = window
        elif kind == b"chlist" and name == b"channels":
            part.channels = _raw_channels(value, part.index, source_name)
        elif kind == b"compression" and name == b"compression":
            part.compression = value[0]
        elif kind == b"string" and name == b"type":
            part.type = bytes(value)
            part.tiled = part.type.startswith(b"tiled")
        elif kind == b"int" and name == b"chunkCount":
            (part.chunk_count,) = struct.unpack("<i", value)
            if part.chunk_count < 0:
                raise ValueError("negative chunkCount")
    return pos + 1


def _raw_channels(value: bytes, index: int, source_name: str) -> list[tuple[str, int, int, int]]:
    channels: list[tuple[str, int, int, int]] = []
    pos = 0
    while value[pos] != 0:
        if len(channels) >= MAX_CHANNELS:
            raise FrameError(
                source_name,
                f"part {index} has more than {MAX_CHANNELS} channels; split the layers into several files",
            )
        name, pos = _c_string(value, pos, 256)
        kind, _linear, xs, ys = struct.unpack_from("<iB3xii", value, pos)
        pos += 16
        if kind not in _SAMPLE_BYTES or xs < 1 or ys < 1:
            raise FrameError(
                source_name,
                f"damaged EXR: channel {name.decode('utf-8', 'replace')!r} of part {index} has pixel type {kind} "
                f"and sampling {xs}x{ys}; re-export the frame",
            )
        channels.append((name.decode("utf-8", "replace"), kind, xs, ys))
    return channels


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def check_output_size(width: int, height: int, scale: int, source_name: str) -> None:
    """Refuse a frame whose output (x `scale` for an upscale) would exceed the frame limit."""
    pixels = width * scale * height * scale
    if pixels > LIMITS.max_pixels:
        raise FrameError(
            source_name,
            f"the x{scale} output would be {width * scale}x{height * scale} ({pixels} pixels), over this "
            f"server's limit of {LIMITS.max_pixels} pixels per frame; crop the plate or upscale by less, or "
            "ask the server's admin to raise [server] max_frame_pixels",
        )


# --------------------------------------------------------------------------- encode


def encode_exr(image: ExrImage) -> bytes:
    """Write all parts with their headers; lossy compressions become ZIP (original recorded)."""
    parts = [_encode_part(part, index, image.source_name) for index, part in enumerate(image.parts)]
    out = io.BytesIO()
    try:
        OpenEXR.File(parts).write(out)
    except Exception as exc:
        raise FrameError(image.source_name, f"could not write the EXR ({type(exc).__name__}: {exc})") from exc
    return out.getvalue()


def _encode_part(part: ExrPart, index: int, source_name: str) -> Any:
    subsampled = sorted(
        n for n, (xs, ys, _) in part.sampling.items() if (xs, ys) != (1, 1) and n in part.channels
    )
    if subsampled:
        # The binding checks that all arrays have one shape, so it cannot write these.
        raise FrameError(
            source_name,
            f"subsampled channels ({', '.join(subsampled)}) cannot be written; convert the file to RGB "
            "(full-resolution channels) first",
        )
    header = writable_header(part.header)
    header.pop("chunkCount", None)  # recomputed by the library for the compression it writes
    _downgrade_lossy(header)
    _one_level_tiles(header)
    channels = {}
    for name, pixels in part.channels.items():
        pixels = np.ascontiguousarray(pixels)
        if pixels.dtype not in PIXEL_DTYPES:
            problem = f"channel {name!r} of part {index} has unsupported dtype {pixels.dtype}"
            raise FrameError(source_name, problem)
        linear = part.sampling.get(name, (1, 1, False))[2]
        channels[name] = OpenEXR.Channel(name, pixels, 1, 1, linear)
    return OpenEXR.Part(header, channels, str(header.get("name", "")))


def _downgrade_lossy(header: dict[str, Any]) -> None:
    compression = header.get("compression", OpenEXR.ZIP_COMPRESSION)
    if compression not in LOSSLESS_COMPRESSIONS:
        header.setdefault(SOURCE_COMPRESSION_ATTR, _compression_name(compression))
        header["compression"] = OpenEXR.ZIP_COMPRESSION


def _one_level_tiles(header: dict[str, Any]) -> None:
    """Only level 0 of a mipmap/ripmap is read, so write it as a one-level tiled part."""
    tiles = header.get("tiles")
    if tiles is None or tiles.mode == OpenEXR.ONE_LEVEL:
        return
    one = OpenEXR.TileDescription()
    one.xSize, one.ySize, one.roundingMode = tiles.xSize, tiles.ySize, tiles.roundingMode
    one.mode = OpenEXR.ONE_LEVEL
    header["tiles"] = one
    header.setdefault(SOURCE_LEVEL_MODE_ATTR, _enum_name(tiles.mode))


def writable_header(header: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every value in a form the binding stores without loss."""
    return {str(key): attribute_value(value) for key, value in header.items() if key != "channels"}


def attribute_value(value: Any) -> Any:
    """Convert one attribute value: unsupported values become JSON strings, never silently dropped."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        # Ints beyond 32 bits are zeroed by the binding; keep them exactly as text.
        number = int(value)
        return number if _INT32_MIN <= number <= _INT32_MAX else json.dumps(number)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(value))
    if isinstance(value, np.ndarray):
        return _array_value(value)
    if isinstance(value, list):
        return value if value and all(isinstance(v, str) for v in value) else _json(value)
    if isinstance(value, tuple):
        return _tuple_value(value)
    if isinstance(value, dict) or value is None:
        return _json(value)
    if type(value).__module__ == "OpenEXR":  # enums, TileDescription, IDManifest, OpaqueAttribute...
        return value
    return _json(value)


def _bytes_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(raw).decode("ascii")


def _array_value(array: np.ndarray) -> Any:
    if array.shape in _ARRAY_ATTR_SHAPES:
        if array.dtype in (np.float32, np.float64):
            return array
        # V2i/V3i exist, integer matrices do not.
        int_vector = array.ndim == 1 and np.issubdtype(array.dtype, np.integer)
        if int_vector and _INT32_MIN <= array.min() <= array.max() <= _INT32_MAX:
            return array.astype(np.int32)
        if array.dtype == np.float16:
            return array.astype(np.float32)
    return _json(array.tolist())


def _tuple_value(value: tuple) -> Any:
    """Windows (two int arrays), chromaticities (8 floats), V2f/V3f are stored natively."""
    if len(value) == 2 and all(isinstance(v, np.ndarray) and v.shape == (2,) for v in value):
        return value
    if len(value) in (2, 3, 8) and all(isinstance(v, (float, np.floating)) for v in value):
        return tuple(float(v) for v in value)  # the binding rejects numpy scalars here
    return _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, ensure_ascii=False, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return _bytes_text(bytes(value))
    return str(value)


# --------------------------------------------------------------------------- provenance


def provenance_attributes(provenance: Mapping[str, Any] | None) -> dict[str, str]:
    """`shotpass/<key>` -> string; strings survive the binding exactly (floats would become 32-bit)."""
    attrs = {}
    for key, value in (provenance or {}).items():
        name = key if key.startswith(PROVENANCE_PREFIX) else PROVENANCE_PREFIX + key
        attrs[name] = value if isinstance(value, str) else _json(value)
    return attrs


def add_provenance(image: ExrImage, provenance: Mapping[str, Any]) -> ExrImage:
    """Same parts and pixels (arrays shared, not copied) with provenance added to every header."""
    attrs = provenance_attributes(provenance)
    parts = [ExrPart({**p.header, **attrs}, dict(p.channels), dict(p.sampling)) for p in image.parts]
    return ExrImage(parts=parts, source_name=image.source_name)


# --------------------------------------------------------------------------- colour selection

COLOUR_NAMES = ("R", "G", "B", "A", "Y", "RY", "BY")


def select_colour(image: ExrImage, view: str | None = None) -> ColourPlane:
    """The RGB(A) or Y(A) channels of the requested view (default: the first part holding colour)."""
    index, prefix, view_name = _find_colour_part(image, view)
    part = image.parts[index]
    names = _colour_channels(part, prefix, image.source_name)
    layout = _layout(names)
    colour = [part.channels[n] for n in names[: 1 if layout.startswith("y") else 3]]
    stacked = colour * 3 if layout.startswith("y") else colour
    rgb = np.ascontiguousarray(np.stack(stacked, axis=-1), dtype=np.float32)
    alpha_name = prefix + "A"
    alpha = part.channels[alpha_name].astype(np.float32) if layout.endswith("a") else None
    return ColourPlane(
        part_index=index,
        channel_names=names,
        layout=layout,
        rgb=rgb,
        alpha=alpha,
        dtypes={n: part.channels[n].dtype for n in names},
        data_window=box(part.header, "dataWindow"),
        display_window=box(part.header, "displayWindow"),
        pixel_aspect=float(part.header.get("pixelAspectRatio", 1.0)),
        view=view_name,
        prefix=prefix,
    )


def _has_colour(part: ExrPart, prefix: str = "") -> bool:
    return any(prefix + c in part.channels for c in ("R", "G", "B", "Y"))


def _views(image: ExrImage) -> list[str]:
    views: list[str] = []
    for part in image.parts:
        candidates = list(part.header.get("multiView", None) or []) + [part.header.get("view")]
        views += [v for v in candidates if isinstance(v, str) and v and v not in views]
    return views


def _find_colour_part(image: ExrImage, view: str | None) -> tuple[int, str, str | None]:
    """(part index, channel-name prefix, view name)."""
    if len(image.parts) == 1:
        return _single_part_view(image, view)
    for index, part in enumerate(image.parts):
        # Blender 5 writes each pass as its own part, the colour as "<view layer>.Combined.R,G,B,A".
        prefix = _render_layer_prefix(part)
        if _has_colour(part, prefix) and (view is None or part.header.get("view") == view):
            return index, prefix, part.header.get("view")
    if view is None:
        return 0, "", None  # no colour anywhere: _colour_channels explains what is there
    raise _unknown_view(image, view)


def _single_part_view(image: ExrImage, view: str | None) -> tuple[int, str, str | None]:
    header = image.parts[0].header
    views = list(header.get("multiView", None) or [])
    if views:
        # Multi-view single part: the default (first) view's channels carry no prefix.
        chosen = views[0] if view is None else view
        if chosen not in views:
            raise _unknown_view(image, chosen)
        return 0, "" if chosen == views[0] else chosen + ".", chosen
    own = header.get("view")
    if view is None or view == own:
        return 0, _render_layer_prefix(image.parts[0]), own
    raise _unknown_view(image, view)


def _render_layer_prefix(part: ExrPart) -> str:
    """"" for plain R,G,B; for Blender's multilayer EXR, "<view layer>.Combined." (its passes, e.g.
    "<view layer>.Depth.Z", sit beside it and stay in the output)."""
    if _has_colour(part):
        return ""
    for name in part.channels:
        if name.endswith(".Combined.R") and _has_colour(part, name[:-1]):
            return name[:-1]
    return ""


def _unknown_view(image: ExrImage, view: str) -> FrameError:
    views = _views(image)
    if views:
        known = f"views in this file: {', '.join(views)}"
    else:
        known = "this file has no views; leave the view empty"
    return FrameError(image.source_name, f"no view {view!r}; {known}")


def _colour_channels(part: ExrPart, prefix: str, source_name: str) -> tuple[str, ...]:
    present = {c for c in COLOUR_NAMES if prefix + c in part.channels}
    listing = ", ".join(part.channels) or "(none)"
    if {"RY", "BY"} & present:
        raise FrameError(
            source_name,
            "luminance/chroma EXR (Y, RY, BY with subsampled chroma) cannot be processed; convert it to RGB "
            "first (e.g. write it out as RGB from Nuke)",
        )
    rgb = [c for c in ("R", "G", "B") if c in present]
    if len(rgb) == 3:
        chosen = ["R", "G", "B"]
    elif "Y" in present and not rgb:
        chosen = ["Y"]
    elif rgb:
        missing = ", ".join(c for c in ("R", "G", "B") if c not in present)
        raise FrameError(
            source_name,
            f"incomplete colour: {prefix}{', '.join(rgb)} present but {missing} missing; a pass needs R, G "
            f"and B (or Y alone). Channels are: {listing}",
        )
    else:
        raise FrameError(
            source_name,
            f"no R,G,B or Y channels{' for view ' + prefix[:-1] if prefix else ''}; channels are: {listing}. "
            "Shuffle the colour into R,G,B before sending the frame",
        )
    if "A" in present:
        chosen.append("A")
    names = tuple(prefix + c for c in chosen)
    _check_colour_dtypes(part, names, source_name)
    return names


def _check_colour_dtypes(part: ExrPart, names: tuple[str, ...], source_name: str) -> None:
    uint = [n for n in names if part.channels[n].dtype == np.uint32]
    if uint:
        raise FrameError(
            source_name,
            f"uint colour channels cannot be processed ({', '.join(uint)}); convert to half/float",
        )
    sub = [n for n in names if part.sampling.get(n, (1, 1, False))[:2] != (1, 1)]
    if sub:
        raise FrameError(source_name, f"subsampled colour channels ({', '.join(sub)}); convert to RGB first")


def _layout(names: tuple[str, ...]) -> str:
    base = "y" if names[0].endswith("Y") else "rgb"
    return base + ("a" if names[-1].endswith("A") else "")


# --------------------------------------------------------------------------- colour replacement


def replace_colour(
    image: ExrImage,
    plane: ColourPlane,
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    scale: int = 1,
    provenance: Mapping[str, Any] | None = None,
    keep_other_channels: bool = True,
) -> ExrImage:
    """One-part output: the plane's part with its colour replaced (and windows scaled by `scale`).

    - colour is cast back to each channel's stored dtype (float16 stays float16);
    - "y"/"ya" layouts write grey = mean of rgb computed in float64 (exact when R == G == B);
    - alpha None keeps the source alpha (nearest-neighbour repeated when scale > 1);
    - other channels of the part are kept only when scale == 1 and keep_other_channels.
    """
    if scale < 1 or int(scale) != scale:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    part = image.parts[plane.part_index]
    height, width = _window_size(plane.data_window, scale)
    rgb = np.asarray(rgb)
    if rgb.shape != (height, width, 3):
        raise ValueError(f"rgb must be {height}x{width}x3 for scale {scale}, got {rgb.shape}")
    keep = keep_other_channels and scale == 1
    channels: dict[str, np.ndarray] = {}
    if keep:
        channels.update((n, p) for n, p in part.channels.items() if n not in plane.channel_names)
    channels.update(_colour_arrays(part, plane, rgb, alpha, scale, keep))
    header = dict(part.header)
    header["dataWindow"] = _box_value(scale_box(plane.data_window, scale))
    header["displayWindow"] = _box_value(scale_box(plane.display_window, scale))
    header.pop("chunkCount", None)
    if not keep:
        _drop_other_views(header, plane)
    header.update(provenance_attributes(provenance))
    sampling = {n: s for n, s in part.sampling.items() if n in channels}
    return ExrImage(parts=[ExrPart(header, channels, sampling)], source_name=image.source_name)


def _window_size(window: Box, scale: int) -> tuple[int, int]:
    xmin, ymin, xmax, ymax = window
    return (ymax - ymin + 1) * scale, (xmax - xmin + 1) * scale


def _output_name(plane: ColourPlane, keep: bool, name: str) -> str:
    """A non-default view's channels lose their prefix when they are the only ones written."""
    if keep or not plane.prefix or not name.startswith(plane.prefix):
        return name
    return name[len(plane.prefix):]


def _drop_other_views(header: dict[str, Any], plane: ColourPlane) -> None:
    if "multiView" in header:
        del header["multiView"]
        if plane.view:
            header["view"] = plane.view


def _colour_arrays(
    part: ExrPart, plane: ColourPlane, rgb: np.ndarray, alpha: np.ndarray | None, scale: int, keep: bool
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    alpha_name = plane.prefix + "A"
    colour_names = [n for n in plane.channel_names if n != alpha_name]
    if plane.layout.startswith("y"):
        # float64 mean is exact when R == G == B, so a no-op pass keeps Y bit-exact.
        grey = rgb.astype(np.float64).mean(axis=-1)
        out[_output_name(plane, keep, colour_names[0])] = grey.astype(plane.dtypes[colour_names[0]])
    else:
        for i, name in enumerate(colour_names):
            channel = rgb[..., i].astype(plane.dtypes[name])
            out[_output_name(plane, keep, name)] = np.ascontiguousarray(channel)
    alpha_out = _alpha(part, plane, alpha, scale, rgb.shape[:2])
    if alpha_out is not None:
        dtype = plane.dtypes.get(alpha_name, plane.dtypes[colour_names[0]])
        out[_output_name(plane, keep, alpha_name)] = np.ascontiguousarray(alpha_out.astype(dtype))
    return out


def _alpha(
    part: ExrPart, plane: ColourPlane, alpha: np.ndarray | None, scale: int, shape: tuple[int, ...]
) -> np.ndarray | None:
    if alpha is not None:
        alpha = np.asarray(alpha)
        if alpha.shape != shape:
            raise ValueError(f"alpha must be {shape[0]}x{shape[1]}, got {alpha.shape}")
        return alpha
    source = part.channels.get(plane.prefix + "A") if plane.layout.endswith("a") else None
    if source is None:
        return None
    return np.repeat(np.repeat(source, scale, axis=0), scale, axis=1) if scale > 1 else source


# --------------------------------------------------------------------------- sanitising


def finite(rgb: np.ndarray) -> np.ndarray:
    """A copy with NaN -> 0 and +/-Inf -> +/-65504 (half max), for use before models."""
    half_max = float(np.finfo(np.float16).max)
    return np.nan_to_num(rgb, nan=0.0, posinf=half_max, neginf=-half_max)
