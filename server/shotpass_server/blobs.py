"""Content-addressed blob store: sha256-named files, written atomically, verified before they are visible."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

from .errors import InvalidInput, NotFound

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_digest(digest: str) -> str:
    if not _DIGEST.match(digest or ""):
        raise InvalidInput(f"not a sha256 digest: {digest!r} (expected 64 lowercase hex characters)")
    return digest


class BlobWriter:
    """Receives one blob in order; `commit` verifies size and digest, then renames it into place."""

    def __init__(self, store: BlobStore, digest: str, total_size: int) -> None:
        self.store = store
        self.digest = check_digest(digest)
        self.total_size = total_size
        self.received = 0
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix=digest[:12] + ".")
        self._file: Optional[BinaryIO] = os.fdopen(fd, "wb")
        self._tmp = Path(name)

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.received:
            raise InvalidInput(
                f"blob {self.digest[:12]}: chunk at offset {offset}, expected {self.received} (send chunks in order)"
            )
        if self.received + len(data) > self.total_size:
            raise InvalidInput(f"blob {self.digest[:12]}: more bytes than its declared size {self.total_size}")
        assert self._file is not None
        self._file.write(data)
        self._hash.update(data)
        self.received += len(data)

    @property
    def complete(self) -> bool:
        return self.received == self.total_size

    def commit(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        actual = self._hash.hexdigest()
        if actual != self.digest:
            self._tmp.unlink(missing_ok=True)
            raise InvalidInput(
                f"blob {self.digest[:12]}: content hashes to {actual[:12]}; the upload was corrupted, send it again"
            )
        self.store._install(self._tmp, self.digest)

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._tmp.unlink(missing_ok=True)


class BlobStore:
    """Blobs live at root/ab/cdef...; a blob is either complete and verified or absent."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        # Leftovers of uploads cut by a crash are never visible; clear them.
        for leftover in self.tmp_dir.iterdir():
            leftover.unlink(missing_ok=True)
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        check_digest(digest)
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        return _DIGEST.match(digest or "") is not None and self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self._existing(digest).stat().st_size

    def get(self, digest: str) -> bytes:
        return self._existing(digest).read_bytes()

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        if not self.has(digest):
            writer = BlobWriter(self, digest, len(data))
            try:
                writer.write(0, data)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        return digest

    def writer(self, digest: str, total_size: int) -> BlobWriter:
        return BlobWriter(self, digest, total_size)

    def iter_chunks(self, digest: str, chunk_size: int) -> Iterator[tuple[int, bytes]]:
        with self._existing(digest).open("rb") as fh:
            offset = 0
            while True:
                data = fh.read(chunk_size)
                if not data:
                    return
                yield offset, data
                offset += len(data)

    def _existing(self, digest: str) -> Path:
        path = self.path(digest)
        if not path.is_file():
            raise NotFound(f"blob {digest[:12]} is not stored on this server")
        return path

    def _install(self, tmp: Path, digest: str) -> None:
        final = self.path(digest)
        with self._lock:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
