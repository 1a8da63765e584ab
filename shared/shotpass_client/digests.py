"""Content digests: the algorithm is named in the digest, so stores and clients of either kind keep working.

  <64 hex>         sha256 (every store and client before BLAKE3; still accepted everywhere)
  blake3:<64 hex>  BLAKE3, several times faster than sha256 and multi-threaded on big inputs

Each blob has exactly one name per algorithm: `sha256:<hex>` is not an alias of the bare form (it is refused),
so one content never hides under two spellings of the same algorithm.

The client package stays importable without the `blake3` module (the Nuke and Blender plugins may not ship
it): `available()` then lists sha256 only, and a client picks sha256.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Optional, Tuple

try:  # optional for clients; pinned for the server
    import blake3 as _blake3
except ImportError:  # pragma: no cover - exercised by clients that do not ship it
    _blake3 = None

SHA256 = "sha256"
BLAKE3 = "blake3"
_PATTERN = re.compile(r"(?:(blake3):)?([0-9a-f]{64})")
FILE_BLOCK = 1 << 20  # cache-sized: read and hashed while the block is still in the cache (see blockio.py)
# BLAKE3's threads per hasher: all cores (-1, the module's AUTO), even on two: in the data plane on the shared
# 2-core VM all cores moved 1.2-1.8x the bytes of one thread (bench/dataplane_variants.py, bench/README.md).
BLAKE3_THREADS = -1


def available() -> Tuple[str, ...]:
    """The algorithms this process can compute, fastest first."""
    return (BLAKE3, SHA256) if _blake3 is not None else (SHA256,)


def parse(digest: str) -> Optional[Tuple[str, str]]:
    """(algorithm, hex) of a well-formed digest, else None."""
    m = _PATTERN.fullmatch(digest or "") if isinstance(digest, str) else None
    if m is None:
        return None
    return (m.group(1) or SHA256, m.group(2))


def is_digest(digest: str) -> bool:
    return parse(digest) is not None


def algorithm_of(digest: str) -> str:
    parsed = parse(digest)
    if parsed is None:
        raise ValueError(f"not a digest: {digest!r}")
    return parsed[0]


def named(algorithm: str, hex_digest: str) -> str:
    return hex_digest if algorithm == SHA256 else f"{algorithm}:{hex_digest}"


def choose(offered: Any) -> str:
    """The fastest algorithm both this process and a server offering `offered` (names) can compute."""
    offered = set(offered or ())
    for algorithm in available():
        if algorithm in offered:
            return algorithm
    return SHA256


class Hasher:
    """Incremental digest in one algorithm; `digest()` gives the named form."""

    def __init__(self, algorithm: str = SHA256) -> None:
        self.algorithm = algorithm
        if algorithm == SHA256:
            self._h: Any = hashlib.sha256()
        elif algorithm == BLAKE3:
            if _blake3 is None:
                raise ValueError("blake3 digests need the `blake3` Python package (pip install blake3)")
            self._h = _blake3.blake3(max_threads=BLAKE3_THREADS)
        else:
            raise ValueError(f"unknown digest algorithm {algorithm!r}; known: {', '.join(available())}")

    def update(self, data: Any) -> None:
        # BLAKE3 releases the GIL for large updates, so hashing overlaps the socket or disk on another thread.
        self._h.update(data)

    def digest(self) -> str:
        return named(self.algorithm, self._h.hexdigest())


def hasher_for(digest: str) -> Hasher:
    """A hasher in the algorithm a digest names (ValueError for a malformed digest or a missing algorithm)."""
    return Hasher(algorithm_of(digest))


def of_bytes(data: Any, algorithm: str = SHA256) -> str:
    h = Hasher(algorithm)
    h.update(data)
    return h.digest()


def of_file(path: str, algorithm: str = SHA256, block: int = FILE_BLOCK) -> str:
    """A file's digest, read through one reused cache-sized buffer."""
    h = Hasher(algorithm)
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(block)
        view = memoryview(buf)
        while True:
            n = fh.readinto(buf)
            if not n:
                break
            h.update(view[:n])
    return h.digest()
