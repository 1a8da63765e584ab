"""Path mode: which server-side paths a render may read.

A render reads only under the global `[paths] roots` plus the roots of its own project (`[paths.projects]
NAME = [...]`). Paths are resolved first (symlinks, `..`), so neither can step out of a root. Membership of
the project is checked before (the servicer refuses a caller outside it), so a plate under another project's
roots is out of reach for anyone who is not a member of that project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from .blobs import MAX_BLOB_BYTES
from .errors import InvalidInput


class PathAccess:
    def __init__(
        self, roots: Sequence[Path] = (), project_roots: Optional[Mapping[str, Sequence[Path]]] = None
    ) -> None:
        self.roots = [Path(p).resolve() for p in roots]
        self.project_roots: Dict[str, List[Path]] = {
            name: [Path(p).resolve() for p in paths] for name, paths in (project_roots or {}).items()
        }

    def configured(self, project: str) -> bool:
        """Whether `project` has roots of its own (so its membership is the admin's to set)."""
        return project in self.project_roots

    def read(self, path: str, frame: int, project: str) -> bytes:
        allowed = self.roots + self.project_roots.get(project, [])
        if not allowed:
            if self.project_roots:
                raise InvalidInput(
                    f"{path} (frame {frame}): project {project!r} may read no paths on this server; upload the "
                    f"file, or ask the server's admin to add [paths.projects] {project} roots"
                )
            raise InvalidInput(
                f"{path} (frame {frame}): this server reads no paths; upload the file, or configure [paths] roots"
            )
        real = Path(path).resolve()
        if not any(real == root or root in real.parents for root in allowed):
            raise InvalidInput(
                f"{path} (frame {frame}): outside the server's readable roots for project {project!r} "
                f"([paths] roots and [paths.projects] {project}); upload the file instead"
            )
        try:
            # Only regular files of a frame's size: a FIFO or device under a root would block or never end.
            info = real.stat()
            if not real.is_file():
                raise InvalidInput(f"{path} (frame {frame}): not a regular file; point at the frame's EXR file")
            if info.st_size > MAX_BLOB_BYTES:
                raise InvalidInput(
                    f"{path} (frame {frame}): {info.st_size} bytes, above the {MAX_BLOB_BYTES}-byte limit for a frame"
                )
            return real.read_bytes()
        except OSError as err:
            raise InvalidInput(f"{path} (frame {frame}): cannot read it on the server ({err.strerror})") from None
