"""Where a host writes a render's frames: an output template like a Write's file knob.

`/shows/x/sh010/shotpass/v###/sh010_comp.####.exr`: `v###` (a "v" and hashes, anywhere but the file's
frame token) becomes the render's version on the server, the last hash run of the file name stays the
frame token. Hosts keep the template on their node and record the filled pattern per version, so a
render that finishes while the host is closed is fetched into the same place later.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Optional

from .ui_model import default_output_dir

_VERSION = re.compile(r"v(#+)")
_FRAME = re.compile(r"#+")


def default_output_template(script_path: str, shot: str, env: Optional[Mapping[str, str]] = None) -> str:
    """<output folder>/<shot>/v###/<shot>.####.exr (output folder: $SHOTPASS_OUTPUT or <script>/shotpass)."""
    return os.path.join(default_output_dir(script_path, env), shot, "v###", f"{shot}.####.exr")


def fill_version(template: str, version: int) -> str:
    """The template with every `v###` replaced by the zero-padded version; the frame token is left alone."""
    directory, name = os.path.split(os.path.expandvars(os.path.expanduser(template)))
    frames = list(_FRAME.finditer(name))
    frame = frames[-1].span() if frames else None

    def fill(text: str, keep: Optional[tuple] = None) -> str:
        out, pos = [], 0
        for m in _VERSION.finditer(text):
            if keep is not None and m.span(1) == keep:
                continue
            out.append(text[pos:m.start(1)] + f"{int(version):0{len(m.group(1))}d}")
            pos = m.end(1)
        return "".join(out) + text[pos:]

    return os.path.join(fill(directory), fill(name, frame))


def has_version_token(template: str) -> bool:
    return fill_version(template, 0) != os.path.expandvars(os.path.expanduser(template))


def option_text(value: object) -> str:
    """An option value as the wire wants it when the model's schema is not at hand (a script just reopened)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def with_view_token(template: str) -> str:
    """A template for several views: `%V` (the view's name) before the frame token unless it has one."""
    if "%V" in template or "%v" in template:
        return template
    directory, name = os.path.split(template)
    frames = list(_FRAME.finditer(name))
    if not frames:
        return os.path.join(directory, name + "_%V")
    start = frames[-1].start()
    stem = name[:start].rstrip("._")
    return os.path.join(directory, f"{stem}_%V{name[len(stem):start]}{name[start:]}")


def for_view(pattern: str, view: str) -> str:
    """A pattern with `%V` / `%v` filled for one view (Nuke's own tokens)."""
    return pattern.replace("%V", view).replace("%v", view[:1])
