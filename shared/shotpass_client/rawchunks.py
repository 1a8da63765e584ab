"""UploadChunk and BlobChunk written by hand: the small header, then the blob's bytes, in one copy.

protobuf would copy a 4 MiB chunk into the message and again into its serialization; this writes exactly
the wire format of the message (fields 1-4 in order, defaults omitted, as SerializeToString does), so any
protobuf parser, the server's included, reads it as the message. Both messages have the same field numbers.
"""

from __future__ import annotations

from typing import Union

Buffer = Union[bytes, bytearray, memoryview]


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
