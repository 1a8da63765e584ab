"""Client <-> server path mapping, the way render farms map drive letters and mount points.

Written as one line a user can type in a host preference: ``/Volumes/shows=/mnt/shows;P:/=/mnt/projects/``.
The first matching local prefix wins; Windows separators are normalised so ``P:\\seq`` maps like ``P:/seq``.
"""

from __future__ import annotations

import os
from typing import List, Tuple


class PathMapError(ValueError):
    pass


class PathMap:
    def __init__(self, pairs: List[Tuple[str, str]]) -> None:
        self.pairs = [(_norm(a), _norm(b)) for a, b in pairs]

    @classmethod
    def parse(cls, text: str) -> PathMap:
        pairs: List[Tuple[str, str]] = []
        for item in filter(None, (p.strip() for p in text.replace("\n", ";").split(";"))):
            local, sep, remote = item.partition("=")
            if not sep or not local.strip() or not remote.strip():
                raise PathMapError(f"path map entry {item!r}: write it as LOCAL=SERVER (entries separated by ';')")
            pairs.append((local.strip(), remote.strip()))
        return cls(pairs)

    def to_server(self, path: str) -> str:
        return _swap(_norm(path), self.pairs)

    def maps(self, path: str) -> bool:
        """True when the path lies under one of the map's local folders (the server can see it)."""
        norm = _norm(path)
        return any(norm == a.rstrip("/") or norm.startswith(a.rstrip("/") + "/") for a, _ in self.pairs)

    @classmethod
    def from_env(cls) -> PathMap:
        """The map every host shares: $SHOTPASS_PATH_MAP (empty: no path mode)."""
        return cls.parse(os.environ.get("SHOTPASS_PATH_MAP", ""))

    def to_local(self, path: str) -> str:
        return _swap(_norm(path), [(b, a) for a, b in self.pairs])

    def __bool__(self) -> bool:
        return bool(self.pairs)


def _norm(path: str) -> str:
    return path.replace("\\", "/")


def _swap(path: str, pairs: List[Tuple[str, str]]) -> str:
    for src, dst in pairs:
        src_dir = src.rstrip("/")
        # Match whole path components only: /mnt/show must not map /mnt/showcase.
        if path == src_dir or path.startswith(src_dir + "/"):
            return dst.rstrip("/") + path[len(src_dir):]
    return path
