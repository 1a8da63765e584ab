"""A plate rendered by a host carries a stamp of the settings it was rendered with, beside its frames.

Before a plate on disk is sent again, the host compares the stamp with its current settings: a plate
rendered for another frame range, resolution, camera or pass setup is re-rendered (or the artist is
told), never sent silently. The stamp is written last, after every frame is in place, so a plate whose
render was cancelled half-way has no valid stamp. Pure Python, no host imports.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, Mapping, Optional

STAMP_SUFFIX = ".plate.json"


def stamp_path(plate_dir: str, name: str) -> str:
    return os.path.join(plate_dir, name + STAMP_SUFFIX)


def frame_files(plate_dir: str, name: str, frames: Iterable[int]) -> Dict[int, str]:
    """The plate's files by frame number: NAME.####.exr (wider numbers are written as they are)."""
    return {f: os.path.join(plate_dir, f"{name}.{f:04d}.exr") for f in frames}


def read_stamp(plate_dir: str, name: str) -> Optional[Dict[str, Any]]:
    try:
        with open(stamp_path(plate_dir, name), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_stamp(plate_dir: str, name: str, settings: Mapping[str, Any]) -> str:
    path = stamp_path(plate_dir, name)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"settings": dict(settings)}, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path


def clear_stamp(plate_dir: str, name: str) -> None:
    try:
        os.remove(stamp_path(plate_dir, name))
    except FileNotFoundError:
        pass


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return f"{value[0]}-{value[1]}"
    return json.dumps(value) if not isinstance(value, str) else value


def stale_reason(plate_dir: str, name: str, settings: Mapping[str, Any], frames: Iterable[int]) -> Optional[str]:
    """Why the plate on disk cannot be sent for these settings, or None when it is current.

    ``settings`` must be JSON-like (the host's frame range, resolution, camera, passes...; a key ending in
    ``_digest`` is a hash of content, reported as edited); ``frames`` are the frame numbers the plate must hold.
    """
    stamp = read_stamp(plate_dir, name)
    if stamp is None:
        return "no plate rendered for these settings yet"
    saved = stamp.get("settings", {})
    current = json.loads(json.dumps(dict(settings)))  # tuples -> lists, as they were stored
    changed = [f"{key[:-len('_digest')]} edited" if key.endswith("_digest")
               else f"{key} {_show(saved.get(key))} -> {_show(current.get(key))}"
               for key in sorted(set(saved) | set(current)) if saved.get(key) != current.get(key)]
    if changed:
        return "the scene changed since the plate was rendered: " + ", ".join(changed)
    missing = sorted(f for f, p in frame_files(plate_dir, name, frames).items() if not os.path.isfile(p))
    if missing:
        return f"plate frame(s) {missing[:10]} are missing from {plate_dir}"
    return None
