"""Path mode: which server-side paths a render may read, and reading them without a race.

A render reads only under the global `[paths] roots` plus the roots of its own project (`[paths.projects]
NAME = [...]`). Membership of the project is checked before (the servicer refuses a caller outside it), so a
plate under another project's roots is out of reach for anyone who is not a member of that project.

A path is opened once and read from that descriptor only; nothing is checked by name and then opened again
by name, so swapping a symlink or a folder between a check and the read cannot redirect it:

- The path must be spelled under a root (as configured, or as the root resolves). The root folder is opened,
  and the rest of the path is opened beneath it: with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`
  where the kernel has it (Linux 5.6+), else, and whenever a symlink is absolute, one component at a time
  with `O_NOFOLLOW` from the parent folder's descriptor.
- Symlinks inside a root are followed (studios keep symlinked show trees), each one resolved here hop by hop:
  a relative target continues from the link's folder, an absolute one must be spelled under the same root and
  continues from the root's descriptor; `..` steps back along the folders already opened and never above the
  root. A hop that leaves the root is refused. At most 40 links per path (like the kernel).
- What was opened must be a regular file (`fstat`: a FIFO or device under a root would block or never end)
  no larger than a frame may be. Its EXR header is read and checked (magic, windows, channels, pixel limits,
  decompression bombs) before the rest: a non-EXR or oversized file costs neither memory nor a stored blob.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from .blobs import MAX_BLOB_BYTES
from .errors import InvalidInput
from .frames.exr import EXR_MAGIC, FrameError, HeaderCutShort, check_header_limits

MAX_LINKS = 40
HEADER_FIRST_READ = 64 << 10
MAX_HEADER_BYTES = 64 << 20  # header attributes (a Cryptomatte manifest, say) seldom reach a few MiB

# openat2(2): Linux 5.6+. The syscall number is the same on every architecture of the unified table.
_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK  # NONBLOCK: a FIFO's open must not wait


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


class _Escape(Exception):
    """A hop of the path leaves its root."""


class _Openat2:
    """openat2 through libc's syscall(); `available` turns False for good on ENOSYS (old kernel, seccomp)."""

    def __init__(self) -> None:
        self.available = sys.platform.startswith("linux")
        self._syscall = None
        if self.available:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                self._syscall = libc.syscall
                self._syscall.restype = ctypes.c_long
            except (OSError, AttributeError):
                self.available = False

    def open(self, dir_fd: int, relative: str) -> Optional[int]:
        """An fd, or None when the kernel cannot do it here (the caller walks the path itself).

        Raises _Escape when a hop leaves the directory, OSError for the rest."""
        if not self.available or self._syscall is None:
            return None
        how = _OpenHow(flags=_OPEN_FLAGS, mode=0, resolve=_RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
        fd = self._syscall(
            ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd), ctypes.c_char_p(os.fsencode(relative)),
            ctypes.byref(how), ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        code = ctypes.get_errno()
        if code in (errno.ENOSYS, errno.EPERM, errno.E2BIG):  # no openat2 here (or a filter forbids it)
            self.available = False
            return None
        if code == errno.EXDEV:
            # An absolute symlink, or `..` above the root: the walker decides (absolute links may stay inside).
            return None
        if code == errno.EAGAIN:  # a concurrent rename: the kernel asks to retry; walking is as good
            return None
        raise OSError(code, os.strerror(code))


OPENAT2 = _Openat2()


class PathAccess:
    def __init__(
        self, roots: Sequence[Path] = (), project_roots: Optional[Mapping[str, Sequence[Path]]] = None
    ) -> None:
        self.roots = [Path(p).resolve() for p in roots]
        self.project_roots: Dict[str, List[Path]] = {
            name: [Path(p).resolve() for p in paths] for name, paths in (project_roots or {}).items()
        }
        # Each root under both spellings a client may map to: as configured, and as it resolves.
        self._spellings: Dict[Path, List[str]] = {}
        for given in [*roots, *(p for paths in (project_roots or {}).values() for p in paths)]:
            real = Path(given).resolve()
            names = self._spellings.setdefault(real, [])
            for spelling in (os.path.normpath(os.path.abspath(os.path.expanduser(str(given)))), str(real)):
                if spelling not in names:
                    names.append(spelling)

    def configured(self, project: str) -> bool:
        """Whether `project` has roots of its own (so its membership is the admin's to set)."""
        return project in self.project_roots

    def read(self, path: str, frame: int, project: str) -> bytes:
        """The bytes of an EXR file under the roots `project` may read, opened once, header checked first."""
        allowed = self.roots + self.project_roots.get(project, [])
        where = f"{path} (frame {frame})"
        if not allowed:
            if self.project_roots:
                raise InvalidInput(
                    f"{where}: project {project!r} may read no paths on this server; upload the "
                    f"file, or ask the server's admin to add [paths.projects] {project} roots"
                )
            raise InvalidInput(f"{where}: this server reads no paths; upload the file, or configure [paths] roots")
        outside = InvalidInput(
            f"{where}: outside the server's readable roots for project {project!r} "
            f"([paths] roots and [paths.projects] {project}); upload the file instead"
        )
        if not os.path.isabs(path):
            raise InvalidInput(f"{where}: not an absolute path; send the path as the server sees it")
        try:
            fd = self._open_beneath(path, allowed)
        except _Escape:
            raise outside from None
        except OSError as err:
            raise InvalidInput(f"{where}: cannot read it on the server ({_reason(err)})") from None
        if fd is None:
            raise outside
        try:
            return _read_checked(fd, path, where)
        except OSError as err:
            raise InvalidInput(f"{where}: cannot read it on the server ({_reason(err)})") from None
        finally:
            os.close(fd)

    # ------------------------------------------------------------ opening

    def _open_beneath(self, path: str, allowed: Sequence[Path]) -> Optional[int]:
        """An fd of `path` opened beneath the first allowed root it is spelled under; None: under none."""
        for root in allowed:
            for spelling in self._spellings.get(root, [str(root)]):
                rest = _beneath(path, spelling)
                if rest is None:
                    continue
                root_fd = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    return _open_under(root_fd, rest, self._spellings.get(root, [str(root)]))
                finally:
                    os.close(root_fd)
        return None


def _beneath(path: str, root: str) -> Optional[List[str]]:
    """The components of `path` after `root` (lexically, `..` kept for the walk), or None if not under it."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    root_parts = [p for p in root.split("/") if p]
    if parts[: len(root_parts)] != root_parts:
        return None
    return parts[len(root_parts):]


def _open_under(root_fd: int, rest: List[str], root_spellings: Sequence[str]) -> int:
    if not rest:
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file")
    if ".." not in rest:
        fd = OPENAT2.open(root_fd, "/".join(rest))
        if fd is not None:
            return fd
    return _walk(root_fd, rest, root_spellings)


def _walk(root_fd: int, rest: List[str], root_spellings: Sequence[str]) -> int:
    """Open one component at a time with O_NOFOLLOW from the folder's fd, resolving symlinks here.

    `stack` holds the folders opened so far (the root first): `..` pops it, so it never leaves the root and
    never asks the kernel for a parent that a rename could have moved."""
    stack = [root_fd]
    todo = list(rest)
    links = 0
    try:
        while todo:
            name = todo.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) == 1:
                    raise _Escape()
                os.close(stack.pop())
                continue
            last = not todo
            flags = _OPEN_FLAGS | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            try:
                fd = os.open(name, flags, dir_fd=stack[-1])
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                try:
                    target = os.readlink(name, dir_fd=stack[-1])
                except OSError:
                    raise err from None  # not a symlink: a file where a folder was expected
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links") from None
                if target.startswith("/"):
                    # An absolute link must be spelled under this same root; it continues from the root.
                    inside = next((r for r in (_beneath(target, s) for s in root_spellings) if r is not None), None)
                    if inside is None:
                        raise _Escape() from None
                    while len(stack) > 1:
                        os.close(stack.pop())
                    todo = inside + todo
                else:
                    todo = target.split("/") + todo
                continue
            if last:
                return fd
            stack.append(fd)
        raise IsADirectoryError(errno.EISDIR, "a folder, not a file")
    finally:
        for fd in stack[1:]:
            os.close(fd)


# ------------------------------------------------------------ reading


def _read_checked(fd: int, path: str, where: str) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise InvalidInput(f"{where}: {kind}; point at the frame's EXR file")
    if info.st_size > MAX_BLOB_BYTES:
        raise InvalidInput(f"{where}: {info.st_size} bytes, above the {MAX_BLOB_BYTES}-byte limit for a frame")
    _check_header(fd, info.st_size, path, where)
    # From this descriptor only, into one buffer of the size fstat gave (no second copy of the frame).
    data = bytearray(info.st_size)
    view = memoryview(data)
    offset = 0
    while offset < info.st_size:
        got = os.preadv(fd, [view[offset:]], offset)
        if got == 0:
            raise InvalidInput(f"{where}: the file shrank while it was read; read it again once it is written")
        offset += got
    view.release()
    if os.pread(fd, 1, offset):
        raise InvalidInput(f"{where}: the file grew while it was read; read it again once it is written")
    return data  # a bytearray: bytes-like for hashing and storing


def _check_header(fd: int, size: int, path: str, where: str) -> None:
    """Magic and header limits from the file's first bytes, read in growing steps while the header runs on."""
    name = os.path.basename(path)
    want = min(size, HEADER_FIRST_READ)
    while True:
        head = os.pread(fd, want, 0)
        if not head:
            raise InvalidInput(f"{where}: the file is empty; re-export it or point at the frame's EXR file")
        if head[:4] != EXR_MAGIC:
            raise InvalidInput(
                f"{where}: not an OpenEXR file (starts with {head[:8]!r}); point at the frame's EXR file"
            )
        try:
            check_header_limits(head, name, file_size=size)
            return
        except HeaderCutShort as err:
            if len(head) >= min(size, MAX_HEADER_BYTES):
                raise InvalidInput(f"{where}: {err.problem}") from None
            want = min(size, MAX_HEADER_BYTES, want * 4)
        except FrameError as err:
            raise InvalidInput(f"{where}: {err.problem}") from None


def _reason(err: OSError) -> str:
    return err.strerror or str(err)
