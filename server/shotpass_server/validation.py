"""Request checks made before any work: every field a client sends is bounded and well-formed.

A bad field is refused with InvalidInput (INVALID_ARGUMENT) naming the field; values quoted back are cut short,
so a hostile request cannot make the reply itself too large to deliver. The domain layer (renders, blobs,
parse_options) still checks meaning (unknown models, option types and ranges, missing blobs).
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from shotpass_client import digests
from shotpass_client.proto import shotpass_pb2 as pb

from .errors import InvalidInput

MAX_NAME = 200  # project, shot, label, pass, model, colour space, view
MAX_FILE_NAME = 1024  # FrameInput.name: the client's file name, used in messages
MAX_PATH = 4096
MAX_PROMPT = 4000
MAX_NOTE = 4000
MAX_OPTIONS = 64
MAX_OPTION_KEY = 64
MAX_OPTION_VALUE = 1000
MAX_ID = 64
MAX_FRAMES = 100_000  # per render, and digests per FindBlobs
FRAME_PAGE = 2000  # frames per GetRender answer (at most): well under the message limit with long errors
MAX_LIST_LIMIT = 1000
MAX_PREVIEW_TIMEOUT = 24 * 3600.0
FRAME_MIN, FRAME_MAX = -(2**31), 2**31 - 1  # frame numbers are int32 in every DCC and in EXR tools
MAX_MESSAGE = 2000  # characters of an error message sent back

_DRIVE = re.compile(r"^[A-Za-z]:")
_RENDER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def shown(value: Any, limit: int = 60) -> str:
    """repr() of a client's value, cut to `limit` characters so it can be quoted in a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(value)} characters)"


def short_message(message: str) -> str:
    """Error messages travel in trailing metadata (16 KiB at most): keep them well inside it."""
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 30] + " ... (message shortened)"


def check_text(field: str, value: str, limit: int, *, required: bool = False, single_line: bool = True) -> None:
    if required and not value:
        raise InvalidInput(f"{field} is empty; give one")
    if len(value) > limit:
        raise InvalidInput(f"{field} is {len(value)} characters long; at most {limit} are allowed")
    bad = "\x00\n\r" if single_line else "\x00"
    if any(c in value for c in bad):
        kind = "line breaks or NUL characters" if single_line else "NUL characters"
        raise InvalidInput(f"{field} {shown(value)} contains {kind}; remove them")


def check_file_name(field: str, value: str) -> None:
    """A file name that clients write outputs under: one plain name, never a folder, `..` or a drive."""
    if not value:
        return
    if value in (".", "..") or any(c in value for c in "/\\\x00") or _DRIVE.match(value):
        raise InvalidInput(
            f"{field} {shown(value)} is not a plain file name (no folders, '..', NUL or drive letters); "
            "send the file's own name, like plate.1001.exr"
        )


def check_digest(field: str, value: str, *, required: bool = True) -> None:
    if not value and not required:
        return
    if not digests.is_digest(value):
        raise InvalidInput(
            f"{field} {shown(value)} is not a sha256 digest (64 lowercase hex characters) or a blake3:<64 hex> one"
        )


def check_render_id(field: str, value: str, *, required: bool = True) -> None:
    if not value and not required:
        return
    if not value:
        raise InvalidInput(f"{field} is empty; give a render id (list them with: shotpass renders)")
    if len(value) > MAX_ID or not _RENDER_ID.fullmatch(value):
        raise InvalidInput(f"{field} {shown(value)} is not a render id (like r-1a2b3c4d5e6f)")


def check_frame(field: str, value: int) -> None:
    if not FRAME_MIN <= value <= FRAME_MAX:
        raise InvalidInput(f"{field} {value} is out of range; frame numbers are {FRAME_MIN}..{FRAME_MAX}")


# ---------------------------------------------------------------- per request


def check_find_blobs(request: pb.FindBlobsRequest) -> None:
    if len(request.digests) > MAX_FRAMES:
        raise InvalidInput(f"digests lists {len(request.digests)} entries; ask for at most {MAX_FRAMES} at a time")
    for i, digest in enumerate(request.digests):
        check_digest(f"digests[{i}]", digest)


def check_upload_chunk(chunk: pb.UploadChunk, current: Any, max_chunk_bytes: int, max_blob_bytes: int) -> None:
    """One UploadChunk before any byte is written. `current` is the blob in progress (with `digest`,
    `total_size`), or None when this chunk starts a blob. Offsets are checked by the writer, which knows
    where the blob stands."""
    if len(chunk.data) > max_chunk_bytes:
        raise InvalidInput(f"chunk of {len(chunk.data)} bytes; chunks are limited to {max_chunk_bytes} bytes")
    check_digest("chunk digest", chunk.digest)
    if not 0 <= chunk.total_size <= max_blob_bytes:
        raise InvalidInput(f"blob size {chunk.total_size} is outside 0..{max_blob_bytes}")
    if chunk.offset < 0 or chunk.offset + len(chunk.data) > chunk.total_size:
        raise InvalidInput(
            f"blob {chunk.digest[:12]}: chunk at offset {chunk.offset} with {len(chunk.data)} bytes lies outside "
            f"the blob's {chunk.total_size} bytes"
        )
    if current is not None and chunk.digest == current.digest and chunk.total_size != current.total_size:
        raise InvalidInput(
            f"blob {chunk.digest[:12]}: a chunk says the blob has {chunk.total_size} bytes, its first chunk said "
            f"{current.total_size}; send one size for every chunk of a blob"
        )


def check_submit(request: pb.SubmitRenderRequest, prefix: str = "") -> None:
    """Shapes and sizes of a SubmitRenderRequest (the render manager checks meaning)."""
    for field in ("project", "shot", "label"):
        check_text(prefix + field, getattr(request, field), MAX_NAME)
    _check_settings(request.settings, prefix + "settings.")
    _check_frame_list(request.frames, prefix + "frames")
    _check_frame_list(request.mask_frames, prefix + "mask_frames")
    _check_frame_list(request.context_frames, prefix + "context_frames")
    check_render_id(prefix + "parent_render", request.parent_render, required=False)
    if request.digest_algorithm and request.digest_algorithm not in digests.available():
        raise InvalidInput(
            f"{prefix}digest_algorithm {shown(request.digest_algorithm)} is not one this server computes; "
            f"use one of {', '.join(digests.available())} (or leave it empty for sha256)"
        )
    if len(request.parent_frames) > MAX_FRAMES:
        raise InvalidInput(f"{prefix}parent_frames lists {len(request.parent_frames)} frames; at most {MAX_FRAMES}")
    seen: set = set()
    for i, frame in enumerate(request.parent_frames):
        check_frame(f"{prefix}parent_frames[{i}]", frame)
        if frame in seen:
            raise InvalidInput(f"{prefix}parent_frames lists frame {frame} twice")
        seen.add(frame)


def _check_settings(s: pb.RenderSettings, prefix: str) -> None:
    for field in ("pass_name", "model", "colour_space", "view"):
        check_text(prefix + field, getattr(s, field), MAX_NAME)
    for field in ("prompt", "negative_prompt"):
        check_text(prefix + field, getattr(s, field), MAX_PROMPT, single_line=False)
    if len(s.options) > MAX_OPTIONS:
        raise InvalidInput(f"{prefix}options has {len(s.options)} entries; at most {MAX_OPTIONS}")
    for key, value in s.options.items():
        check_text(f"{prefix}options key", key, MAX_OPTION_KEY, required=True)
        check_text(f"{prefix}options[{key}]", value, MAX_OPTION_VALUE)
    check_text(prefix + "reference.name", s.reference.name, MAX_NAME)
    which = s.reference.WhichOneof("source")
    if which == "digest":
        check_digest(prefix + "reference.digest", s.reference.digest)
    elif which == "render_frame":
        check_render_id(prefix + "reference.render_frame.render_id", s.reference.render_frame.render_id)
        check_frame(prefix + "reference.render_frame.frame", s.reference.render_frame.frame)


def _check_frame_list(frames: Any, field: str) -> None:
    if len(frames) > MAX_FRAMES:
        raise InvalidInput(f"{field} lists {len(frames)} frames; at most {MAX_FRAMES} per render")
    for i, f in enumerate(frames):
        where = f"{field}[{i}] (frame {f.frame})"
        check_frame(f"{field}[{i}].frame", f.frame)
        check_text(f"{where}.name", f.name, MAX_FILE_NAME)
        check_file_name(f"{where}.name", f.name)
        which = f.WhichOneof("source")
        if which == "digest":
            check_digest(f"{where}.digest", f.digest)
        elif which == "path":
            check_text(f"{where}.path", f.path, MAX_PATH, required=True)
        else:
            raise InvalidInput(f"{where} has neither a digest nor a path; upload the file and send its digest")


def check_preview(request: pb.PreviewFrameRequest) -> None:
    check_submit(request.render, "render.")
    t = request.timeout_seconds
    if not math.isfinite(t) or not 0 <= t <= MAX_PREVIEW_TIMEOUT:
        raise InvalidInput(f"timeout_seconds {t}: give 0 (the server's default) up to {MAX_PREVIEW_TIMEOUT:g}")


def check_watch(request: pb.WatchRenderRequest) -> None:
    check_render_id("render_id", request.render_id)
    if request.after_sequence < 0:
        raise InvalidInput(f"after_sequence {request.after_sequence}: give 0 (from the start) or a sequence number")


def check_frame_page(request: pb.GetRenderRequest) -> Optional[int]:
    """A GetRender page: its size, and the frame its token says the last page ended at (None: the first)."""
    if not 0 <= request.frame_page_size <= FRAME_PAGE:
        raise InvalidInput(
            f"frame_page_size {request.frame_page_size}: give 0 (the server's default) up to {FRAME_PAGE}"
        )
    token = request.frame_page_token
    if not token:
        return None
    try:
        after = int(token) if len(token) <= 24 else None
    except ValueError:
        after = None
    if after is None or not FRAME_MIN <= after <= FRAME_MAX:
        raise InvalidInput(f"frame_page_token {shown(token)} is not one this server gave; start again without it")
    return after


def check_list(request: pb.ListRendersRequest) -> None:
    check_text("project", request.project, MAX_NAME)
    check_text("shot", request.shot, MAX_NAME)
    if not 0 <= request.limit <= MAX_LIST_LIMIT:
        raise InvalidInput(f"limit {request.limit}: give 0 (the server's default) up to {MAX_LIST_LIMIT}")


def check_review(request: pb.ReviewRenderRequest) -> None:
    check_render_id("render_id", request.render_id)
    if request.HasField("rating") and not 0 <= request.rating <= 5:
        raise InvalidInput(f"rating {request.rating}: use 0 (unrated) to 5")
    if request.HasField("note"):
        check_text("note", request.note, MAX_NOTE, single_line=False)


# ---------------------------------------------------------------- undecodable requests


def undecodable_field(descriptor: Descriptor, data: bytes, prefix: str = "") -> Optional[str]:
    """The first text field of a serialized message whose bytes are not UTF-8 (protobuf then refuses the
    whole message), as a dotted field path; None when that is not what is wrong with it."""
    pos = 0
    try:
        while pos < len(data):
            key, pos = _varint(data, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                _, pos = _varint(data, pos)
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                size, pos = _varint(data, pos)
                value, pos = data[pos : pos + size], pos + size
                field = descriptor.fields_by_number.get(number)
                if field is None:
                    continue
                name = prefix + field.name
                if field.type == FieldDescriptor.TYPE_STRING:
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError:
                        return name
                elif field.type == FieldDescriptor.TYPE_MESSAGE:
                    found = undecodable_field(field.message_type, value, name + ".")
                    if found:
                        return found
            else:
                return None  # groups or garbage: not a text problem
    except IndexError:
        return None
    return None


def _varint(data: bytes, pos: int) -> tuple:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80 or shift > 63:
            return value, pos
