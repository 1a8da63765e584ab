"""Content-addressed blob store: digest-named files, written atomically, verified before they are visible.

A digest names its algorithm (shotpass_client.digests): a bare 64-hex name is sha256, `blake3:<hex>` BLAKE3.
Layout under the store's root:
  ab/cdef...            complete, verified sha256 blobs (the only files the server ever serves)
  blake3/ab/cdef...     complete, verified BLAKE3 blobs
  tmp/                  uploads that cannot resume (server outputs, path-mode reads); cleared at start
  partial/OWNER/DIGEST  the first bytes of a cut upload, kept per caller so that caller can resume it

A full disk, a disk quota, a file-size limit or `[server] max_store_bytes` stop a write with StoreFull; the
half-written file is removed, so the store never holds a blob whose content does not match its name.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import BinaryIO, Iterator, List, Optional, Set, Tuple

from shotpass_client import digests

from .errors import InvalidInput, NotFound, ResourceExhausted

log = logging.getLogger("shotpass.blobs")

_HEX_NAME = re.compile(r"^[0-9a-f]{62}$")  # a blob's file name below its two-character directory
_OWNER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_FULL_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EFBIG: "a file-size limit was reached"}
_HASH_BLOCK = 1 << 20
MAX_BLOB_BYTES = 8 << 30  # one frame file, uploaded or read in path mode


class StoreFull(ResourceExhausted):
    """The store may not grow (disk full, quota, file-size limit, max_store_bytes): gRPC RESOURCE_EXHAUSTED."""


def sha256_hex(data: bytes) -> str:
    return digests.of_bytes(data, digests.SHA256)


def check_digest(digest: str) -> str:
    if not digests.is_digest(digest):
        raise InvalidInput(
            f"not a sha256 digest (64 lowercase hex characters) or a blake3:<64 hex> one: {str(digest)[:80]!r}"
        )
    return digest


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


class BlobWriter:
    """Receives one blob in order; `commit` verifies size and digest, then renames it into place.

    With an owner the bytes go to that owner's partial file, so a cut stream can `suspend` and a later
    upload resume at `received`; without one they go to a private temp file that is dropped on any failure.
    """

    def __init__(
        self, store: BlobStore, digest: str, total_size: int, owner: Optional[str] = None, offset: int = 0
    ) -> None:
        self.store = store
        self.digest = check_digest(digest)
        self.total_size = total_size
        self.received = 0
        self._hash = digests.hasher_for(self.digest)
        self._file: Optional[BinaryIO] = None
        self._tmp: Optional[Path] = None
        self._done = False
        self._key: Optional[Tuple[str, str]] = None  # (owner, digest) while this writer holds the partial file
        self._held_at_start = 0  # bytes already on disk (a resumed partial) when this writer began
        self._reserved = 0  # bytes counted against max_store_bytes until this writer ends
        if owner is not None and store._claim(owner, digest):
            self._key = (owner, digest)
            try:
                self._open_partial(store.partial_path(owner, digest), offset)
            except BaseException:
                store._release(self._key)
                raise
        else:
            if offset:
                raise InvalidInput(
                    f"blob {digest[:12]}: this upload starts at byte {offset}, but another upload of the same "
                    "blob by you is still running; send it from byte 0, or resume once that upload has ended"
                )
            fd, name = store._full_guard(lambda: tempfile.mkstemp(dir=store.tmp_dir, prefix=digest[:12] + "."),
                                         f"blob {digest[:12]}")
            self._file = os.fdopen(fd, "wb")
            self._tmp = Path(name)
        try:
            self._reserved = store._reserve(digest, total_size - self.received)
        except BaseException:
            self.abort()
            raise

    def _open_partial(self, path: Path, offset: int) -> None:
        held = path.stat().st_size if path.is_file() else 0
        if offset not in (0, held) or offset > self.total_size:
            raise InvalidInput(
                f"blob {self.digest[:12]}: this upload starts at byte {offset}, but the server holds {held} bytes "
                "of it; ask FindBlobs where to resume (its `partial` list), or send the blob from byte 0"
            )
        self._tmp = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if offset == 0:
            # A fresh start replaces whatever an earlier cut upload left.
            self.store._account(disk=-held)
            self._file = self.store._full_guard(lambda: path.open("wb"), f"blob {self.digest[:12]}")
            return
        with path.open("rb") as fh:  # the hash covers the whole blob, so re-read what is already here
            for block in iter(lambda: fh.read(_HASH_BLOCK), b""):
                self._hash.update(block)
        self._file = path.open("ab")
        self.received = self._held_at_start = held

    def write(self, offset: int, data: bytes) -> None:
        if offset != self.received:
            raise InvalidInput(
                f"blob {self.digest[:12]}: chunk at offset {offset}, expected {self.received} (send chunks in order)"
            )
        if self.received + len(data) > self.total_size:
            raise InvalidInput(f"blob {self.digest[:12]}: more bytes than its declared size {self.total_size}")
        assert self._file is not None, "write after the writer ended"
        self._guarded(lambda: self._file.write(data))  # type: ignore[union-attr]
        self._hash.update(data)
        self.received += len(data)

    @property
    def complete(self) -> bool:
        return self.received == self.total_size

    @property
    def resumable(self) -> bool:
        return self._key is not None

    def commit(self) -> None:
        assert self._file is not None, "commit after the writer ended"
        fh = self._file

        def flush() -> None:
            fh.flush()
            os.fsync(fh.fileno())  # a full disk often shows only here (delayed allocation)
            fh.close()

        self._guarded(flush)
        self._file = None
        actual = self._hash.digest()
        if actual != self.digest:
            self.abort()
            raise InvalidInput(
                f"blob {self.digest[:12]}: content hashes to {actual[:12]}; the upload was corrupted, send it again"
            )
        try:
            existed = self.store._guarded_install(self._tmp, self.digest)
        except BaseException:
            self.abort()
            raise
        self.store._account(disk=(0 if existed else self.total_size) - self._held_at_start, reserved=-self._reserved)
        self._end()

    def suspend(self) -> None:
        """The stream was cut: keep the bytes so far for a resume (a non-resumable upload is dropped)."""
        if self._done:
            return
        if not self.resumable or self.received == 0:
            self.abort()
            return
        try:
            if self._file is not None:
                self._file.close()
        except OSError as err:  # bytes we cannot vouch for are not kept
            log.warning("dropping the partial upload of %s: %s", self.digest[:12], err)
            self.abort()
            return
        self._file = None
        if self._tmp is not None:
            os.utime(self._tmp)  # its retention counts from the last byte received
        self.store._account(disk=self.received - self._held_at_start, reserved=-self._reserved)
        self._end()

    def abort(self) -> None:
        if self._done:
            return
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass  # the file is deleted next; a failed flush of it changes nothing
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self.store._account(disk=-self._held_at_start, reserved=-self._reserved)
        self._end()

    def _end(self) -> None:
        self._done = True
        self._file = None
        self._held_at_start = self._reserved = 0
        if self._key is not None:
            self.store._release(self._key)
            self._key = None

    def _guarded(self, fn) -> None:  # type: ignore[no-untyped-def]
        try:
            fn()
        except OSError as err:
            self.abort()  # a half-written file must not linger, let alone become visible
            if err.errno in _FULL_ERRNOS:
                raise self.store.full_error(err, f"blob {self.digest[:12]}") from None
            raise


class BlobStore:
    """Blobs live at root/ab/cdef...; a blob is either complete and verified or absent."""

    def __init__(
        self,
        root: Path,
        max_bytes: Optional[int] = None,
        partial_retention_s: Optional[float] = None,
        clear_leftovers: bool = True,
    ) -> None:
        """clear_leftovers=False opens a store some server may be writing to (e.g. for `shotpass gc`)."""
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self.partial_dir = self.root / "partial"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        # Leftovers of writes cut by a crash are never visible; clear them.
        for leftover in self.tmp_dir.iterdir() if clear_leftovers else ():
            leftover.unlink(missing_ok=True)
        self.max_bytes = max_bytes or None
        self._lock = threading.Lock()
        self._busy: Set[Tuple[str, str]] = set()  # partial uploads being written right now
        self._used: Optional[int] = None  # bytes on disk (blobs + partials), counted only with a limit
        self._reserved = 0  # bytes promised to running uploads
        if partial_retention_s is not None:
            self.remove_stale_partials(time.time() - partial_retention_s)

    # ------------------------------------------------------------ reads

    def path(self, digest: str) -> Path:
        parsed = digests.parse(digest)
        if parsed is None:
            check_digest(digest)  # raises with the message
        algorithm, hex_digest = parsed  # type: ignore[misc]
        base = self.root if algorithm == digests.SHA256 else self.root / algorithm
        return base / hex_digest[:2] / hex_digest[2:]

    def has(self, digest: str) -> bool:
        return digests.is_digest(digest) and self.path(digest).is_file()

    def size(self, digest: str) -> int:
        return self._existing(digest).stat().st_size

    def get(self, digest: str) -> bytes:
        return self._existing(digest).read_bytes()

    def iter_chunks(self, digest: str, chunk_size: int) -> Iterator[tuple[int, bytes]]:
        with self._existing(digest).open("rb") as fh:
            offset = 0
            while True:
                data = fh.read(chunk_size)
                if not data:
                    return
                yield offset, data
                offset += len(data)

    @contextlib.contextmanager
    def gc_lock(self, exclusive: bool) -> Iterator[None]:
        """Submits hold it shared, garbage collection exclusively (a file lock: `shotpass gc` is another process)."""
        with open(self.root / "gc.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def blobs(self) -> Iterator[Tuple[str, int, float]]:
        """(digest, size, mtime) of every stored blob; mtime is when it was last uploaded or asked for."""
        for algorithm in (digests.SHA256, digests.BLAKE3):
            base = self.root if algorithm == digests.SHA256 else self.root / algorithm
            for sub in sorted(base.iterdir()) if base.is_dir() else ():
                if len(sub.name) != 2 or not sub.is_dir():
                    continue
                for f in sub.iterdir():
                    digest = digests.named(algorithm, sub.name + f.name)
                    if not _HEX_NAME.match(f.name) or not digests.is_digest(digest):
                        continue
                    try:
                        st = f.stat()
                    except FileNotFoundError:
                        continue  # deleted meanwhile
                    yield digest, st.st_size, st.st_mtime

    # ------------------------------------------------------------ writes

    def put(self, data: bytes, algorithm: str = digests.SHA256) -> str:
        """Store bytes the server made (outputs, path-mode reads) under their digest in `algorithm`."""
        digest = digests.of_bytes(data, algorithm)
        if not self.touch(digest):
            writer = BlobWriter(self, digest, len(data))
            try:
                writer.write(0, data)
                writer.commit()
            except BaseException:
                writer.abort()
                raise
        return digest

    def writer(self, digest: str, total_size: int, owner: Optional[str] = None, offset: int = 0) -> BlobWriter:
        """A writer for one upload; with an owner it resumes that owner's partial upload at `offset`."""
        if owner is not None and not _OWNER.match(owner):
            raise ValueError(f"bad partial-upload owner {owner!r}")
        return BlobWriter(self, digest, total_size, owner, offset)

    def touch(self, digest: str) -> bool:
        """True if the blob is stored; its retention (see blob_gc) then restarts, as someone still wants it."""
        with self._lock:
            path = self.path(digest)
            if not path.is_file():
                return False
            try:
                os.utime(path)
            except OSError:
                pass  # a read-only store still serves; it just cannot record the use
            return True

    def delete_if_older(self, digest: str, cutoff: float) -> Optional[int]:
        """Delete a blob last used before `cutoff` (unix seconds); its size, or None if it was kept."""
        with self._lock:  # against touch(): a blob asked for meanwhile is younger and stays
            path = self.path(digest)
            try:
                st = path.stat()
                if st.st_mtime >= cutoff:
                    return None
                path.unlink()
            except FileNotFoundError:
                return None
        self._account(disk=-st.st_size)
        return st.st_size

    # ------------------------------------------------------------ partial uploads

    def partial_path(self, owner: str, digest: str) -> Path:
        return self.partial_dir / owner / check_digest(digest)

    def partial_size(self, owner: str, digest: str) -> int:
        """Bytes of `digest` held from `owner`'s cut upload (0: none, or an upload of it is running now)."""
        with self._lock:
            if (owner, digest) in self._busy:
                return 0
        try:
            return self.partial_path(owner, digest).stat().st_size
        except FileNotFoundError:
            return 0

    def partials(self) -> Iterator[Tuple[Path, int, float]]:
        """(path, size, mtime) of every partial upload not being written right now."""
        for owner_dir in sorted(self.partial_dir.iterdir()):
            for f in owner_dir.iterdir() if owner_dir.is_dir() else ():
                with self._lock:
                    if (owner_dir.name, f.name) in self._busy:
                        continue
                try:
                    st = f.stat()
                except FileNotFoundError:
                    continue
                yield f, st.st_size, st.st_mtime

    def remove_stale_partials(self, cutoff: float, dry_run: bool = False) -> List[Tuple[Path, int]]:
        """Partial uploads untouched since `cutoff` will not be resumed any more: remove them."""
        removed = []
        for path, size, mtime in list(self.partials()):
            if mtime >= cutoff:
                continue
            if not dry_run:
                with self._lock:
                    if (path.parent.name, path.name) in self._busy:
                        continue  # resumed just now
                    path.unlink(missing_ok=True)
                self._account(disk=-size)
            removed.append((path, size))
        return removed

    def _claim(self, owner: str, digest: str) -> bool:
        with self._lock:
            if (owner, digest) in self._busy:
                return False
            self._busy.add((owner, digest))
            return True

    def _release(self, key: Tuple[str, str]) -> None:
        with self._lock:
            self._busy.discard(key)

    # ------------------------------------------------------------ space

    def full_error(self, err: OSError, what: str) -> StoreFull:
        try:
            free = shutil.disk_usage(self.root).free
        except OSError:
            free = 0
        reason = _FULL_ERRNOS.get(err.errno or 0, err.strerror or "no space")
        return StoreFull(
            f"the server's store is full ({reason} while writing {what}): {free} bytes ({human_bytes(free)}) free "
            f"in {self.root}; the server's admin must free space there (e.g. `shotpass gc`) or raise the "
            "disk quota / file-size limit, then send it again"
        )

    def used_bytes(self) -> int:
        """Bytes on disk in blobs and partial uploads (walks the store)."""
        total = sum(size for _, size, _ in self.blobs())
        for owner_dir in self.partial_dir.iterdir():
            for f in owner_dir.iterdir() if owner_dir.is_dir() else ():
                try:
                    total += f.stat().st_size
                except FileNotFoundError:
                    pass
        return total

    def _reserve(self, digest: str, nbytes: int) -> int:
        """Promise `nbytes` to an upload of a new blob under max_store_bytes; returns what was reserved."""
        if self.max_bytes is None or nbytes <= 0 or self.has(digest):
            return 0
        with self._lock:
            if self._used is None or self._used + self._reserved + nbytes > self.max_bytes:
                self._used = self.used_bytes()  # recount: a `shotpass gc` elsewhere may have freed space
            used = self._used + self._reserved
            if used + nbytes > self.max_bytes:
                raise StoreFull(
                    f"the server's store is full: blob {digest[:12]} needs {human_bytes(nbytes)} more, but "
                    f"{human_bytes(used)} of its limit of {human_bytes(self.max_bytes)} are used "
                    f"([server] max_store_bytes = {self.max_bytes}); the server's admin must free space "
                    "(`shotpass gc`) or raise max_store_bytes, then send it again"
                )
            self._reserved += nbytes
            return nbytes

    def _account(self, disk: int = 0, reserved: int = 0) -> None:
        with self._lock:
            self._reserved += reserved
            if self._used is not None:
                self._used += disk

    def _full_guard(self, fn, what: str):  # type: ignore[no-untyped-def]
        try:
            return fn()
        except OSError as err:
            if err.errno in _FULL_ERRNOS:
                raise self.full_error(err, what) from None
            raise

    # ------------------------------------------------------------ helpers

    def _existing(self, digest: str) -> Path:
        path = self.path(digest)
        if not path.is_file():
            raise NotFound(f"blob {digest[:12]} is not stored on this server")
        return path

    def _guarded_install(self, tmp: Path, digest: str) -> bool:
        """Rename a verified file into place; True if the blob was already there (same bytes, same name)."""
        final = self.path(digest)
        with self._lock:
            existed = final.is_file()
            self._full_guard(lambda: final.parent.mkdir(parents=True, exist_ok=True), f"blob {digest[:12]}")
            os.replace(tmp, final)
        return existed
