"""UploadChunk and BlobChunk written and read by hand: the small header, then the blob's bytes.

protobuf would copy a 4 MiB chunk into the message and again into its serialization; `encode_chunk` writes
exactly the wire format of the message (fields 1-4 in order, defaults omitted, as SerializeToString does), so
any protobuf parser, the server's included, reads it as the message. On the way in, protobuf copies the bytes
field out of the received message and again when `.data` is read; `decode_chunk` reads the header and hands
out the data as a view into the received message. Both messages have the same field numbers.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Union

Buffer = Union[bytes, bytearray, memoryview]
_VARINT, _LENGTH = 0, 2  # the wire types of fields 1-4


class Chunk(NamedTuple):
    """A decoded UploadChunk/BlobChunk; `data` is a view into the received message, not a copy."""

    digest: str
    total_size: int
    offset: int
    data: memoryview


class NotCanonical(ValueError):
    """Not a chunk as protobuf encoders write one (or not a message at all): let protobuf itself parse it."""


def _read_varint(buf: bytes, pos: int) -> tuple:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise NotCanonical("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if value >> 64:
                raise NotCanonical("a varint beyond 64 bits")
            return value, pos
        shift += 7


def decode_chunk(message: bytes) -> Chunk:
    """The fields of a serialized UploadChunk/BlobChunk, the data not copied.

    Reads fields 1-4 in any order (the last of a repeated field wins, as in protobuf); anything else (an unknown
    field, a wrong wire type, a cut message, a digest that is not UTF-8) raises NotCanonical, so that the caller
    falls back to protobuf's own parser and its answer, never to a guess.
    """
    view = memoryview(message)
    digest, total_size, offset, data = "", 0, 0, view[:0]
    pos = 0
    while pos < len(message):
        key, pos = _read_varint(message, pos)
        field, wire = key >> 3, key & 7
        if field in (2, 3) and wire == _VARINT:
            value, pos = _read_varint(message, pos)
            value = value - (1 << 64) if value >= 1 << 63 else value  # int64 is two's complement on the wire
            if field == 2:
                total_size = value
            else:
                offset = value
        elif field in (1, 4) and wire == _LENGTH:
            length, pos = _read_varint(message, pos)
            if pos + length > len(message):
                raise NotCanonical("a field runs past the end of the message")
            if field == 1:
                try:
                    digest = str(view[pos: pos + length], "utf-8")
                except UnicodeDecodeError:
                    raise NotCanonical("the digest is not UTF-8") from None
            else:
                data = view[pos: pos + length]
            pos += length
        else:
            raise NotCanonical(f"field {field} with wire type {wire}")
    return Chunk(digest, total_size, offset, data)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


def encode_chunk(digest: str, total_size: int, offset: int, data: Buffer) -> bytes:
    """The serialized UploadChunk/BlobChunk {digest, total_size, offset, data} (sizes are never negative)."""
    if total_size < 0 or offset < 0:
        raise ValueError("sizes and offsets are not negative")
    head = bytearray()
    name = digest.encode()
    if name:
        head += b"\x0a" + _varint(len(name)) + name
    if total_size:
        head += b"\x10" + _varint(total_size)
    if offset:
        head += b"\x18" + _varint(offset)
    if len(data):
        head += b"\x22" + _varint(len(data))
    return b"".join((head, data))


def passthrough(serialize):  # type: ignore[no-untyped-def]
    """A gRPC serializer that sends already-encoded bytes as they are and serializes messages as before."""

    def serializer(message):  # type: ignore[no-untyped-def]
        return message if isinstance(message, bytes) else serialize(message)

    return serializer


def decoder(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A gRPC deserializer for chunks: `decode_chunk`, else `parse` (protobuf's, with its own answer)."""

    def deserialize(message: bytes) -> Any:
        try:
            return decode_chunk(message)
        except NotCanonical:
            return parse(message)

    return deserialize
