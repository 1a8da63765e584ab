"""The `shotpass render` command line that reproduces a host's render from a terminal or a render farm.

Hosts build a RenderSpec from their UI; this turns it (with the plate's files, frames and an output
folder) into the CLI's arguments, so a TD can paste it into a farm job. Tokens and TLS files are never
written into it: the farm's environment supplies SHOTPASS_TOKEN / SHOTPASS_TLS_* like the artist's does.
"""

from __future__ import annotations

import shlex
from typing import List, Sequence

from .jobs import RenderSpec
from .patterns import format_frame_list


def render_command(spec: RenderSpec, plate: str, frames: Sequence[int], out_dir: str, server: str) -> List[str]:
    """`shotpass render PLATE --frames ... --out DIR` with every setting of the spec."""
    cmd = ["shotpass", "render", plate, "--frames", format_frame_list(frames), "--out", out_dir,
           "--server", server, "--project", spec.project, "--shot", spec.shot]
    if spec.pass_name:
        cmd += ["--pass", spec.pass_name]
    if spec.model:
        cmd += ["--model", spec.model]
    if spec.prompt:
        cmd += ["--prompt", spec.prompt]
    if spec.negative_prompt:
        cmd += ["--negative-prompt", spec.negative_prompt]
    for key, value in sorted(spec.options.items()):
        cmd += ["--option", f"{key}={value}"]
    if spec.seed is not None:
        cmd += ["--seed", str(spec.seed)]
    if spec.colour_space:
        cmd += ["--colour-space", spec.colour_space]
    if spec.view:
        cmd += ["--view", spec.view]
    if spec.label:
        cmd += ["--label", spec.label]
    return cmd


def shell_line(cmd: Sequence[str]) -> str:
    """The command as one line a POSIX shell runs as it is (quoted where needed)."""
    return " ".join(shlex.quote(part) for part in cmd)
