"""Render-farm jobs for shots: an Open Job Description template (what AWS Deadline Cloud runs) and an OpenCue outline.

Every task renders one chunk of a shot's frames with `shotpass render --frames A-B --json --job-key KEY`; the server
merges the chunks of one job key into one render (one version) per shot, so retried or reordered tasks still give
every frame once. Tasks need only the client install on the farm node, and SHOTPASS_TOKEN in its environment (a
token is never written into a job).
"""

from __future__ import annotations

import random
import shlex
from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

from .jobs import RenderSpec
from .patterns import format_frame_list

OPENJD_FRAMES = "{{Task.Param.Frames}}"
OPENJD_SERVER = "{{Param.ShotpassServer}}"
OPENCUE_FRAMES = "#FRAME_START#-#FRAME_END#"  # OpenCue puts each chunk's first and last frame here
DEFAULT_SERVER = "localhost:50051"


@dataclass
class FarmShot:
    shot: str
    plate: str  # frame pattern on storage the farm nodes see
    frames: List[int]


@dataclass
class FarmJob:
    name: str
    shots: List[FarmShot]
    spec: RenderSpec
    job_key: str
    out_root: str  # where tasks write frames: OUT/SHOT/
    chunk: int = 10
    task_timeout_s: int = 3600
    retries: int = 2
    server: str = ""  # "" : the farm node's $SHOTPASS_SERVER (OpenCue) or the template's default (OpenJD)


def chunks(frames: List[int], size: int) -> List[Tuple[int, int]]:
    """(first, last) of each task: runs of consecutive frames, at most `size` long."""
    if size < 1:
        raise ValueError(f"chunk size {size}: give 1 or more frames per task")
    out: List[Tuple[int, int]] = []
    for frame in sorted(set(frames)):
        if out and frame == out[-1][1] + 1 and frame - out[-1][0] < size:
            out[-1] = (out[-1][0], frame)
        else:
            out.append((frame, frame))
    return out


def settings_flags(spec: RenderSpec) -> List[str]:
    """`shotpass render` flags that reproduce a spec (defaults left out)."""
    flags = ["--project", spec.project, "--shot", spec.shot]
    for flag, value in (("--pass", spec.pass_name), ("--model", spec.model), ("--prompt", spec.prompt),
                        ("--negative-prompt", spec.negative_prompt), ("--colour-space", spec.colour_space),
                        ("--view", spec.view), ("--label", spec.label)):
        if value:
            flags += [flag, value]
    for key, value in sorted(spec.options.items()):
        flags += ["--option", f"{key}={value}"]
    for frame, text in sorted(spec.prompt_by_frame.items()):
        flags += ["--prompt-at", f"{frame}:{text}"]
    for key, keys in sorted(spec.options_by_frame.items()):
        flags += [arg for frame, value in sorted(keys.items()) for arg in ("--option-at", f"{frame}:{key}={value}")]
    if spec.seed is not None:
        flags += ["--seed", str(spec.seed)]
    if spec.priority:
        flags += ["--priority", str(spec.priority)]
    if spec.frame_timeout:
        flags += ["--frame-timeout", f"{spec.frame_timeout:g}"]
    return flags


def render_command(spec: RenderSpec, plate: str, frames: Sequence[int], out_dir: str, server: str) -> List[str]:
    """`shotpass render PLATE --frames ... --out DIR` with every setting of the spec: what a host prints for a TD
    to paste into a terminal or a farm job (tokens and TLS files come from the farm's environment, never here)."""
    return ["shotpass", "render", plate, "--frames", format_frame_list(frames), "--out", out_dir,
            "--server", server, *settings_flags(spec)]


def shell_line(cmd: Sequence[str]) -> str:
    """The command as one line a POSIX shell runs as it is (quoted where needed)."""
    return " ".join(shlex.quote(part) for part in cmd)


def with_fixed_seed(spec: RenderSpec) -> RenderSpec:
    """Tasks of one job share one seed: drawn now when the preset has none, so a retried task renders the same."""
    if spec.seed is None:
        spec.seed = random.randrange(1, 2**31)
    return spec


def task_argv(job: FarmJob, shot: FarmShot, frames: str, server: str) -> List[str]:
    spec = RenderSpec(**{**job.spec.__dict__, "shot": shot.shot})
    argv = ["shotpass", "render", shot.plate, "--frames", frames, "--json", "--job-key", job.job_key,
            "--out", f"{job.out_root.rstrip('/')}/{shot.shot}", *settings_flags(spec)]
    return argv + (["--server", server] if server else [])


def _range_text(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


# -------------------------------------------------------------------- Open Job Description


def openjd_template(job: FarmJob) -> Dict[str, Any]:
    """A job template (specificationVersion jobtemplate-2023-09): one step per shot, one task per chunk."""
    steps = []
    for shot in job.shots:
        args = task_argv(job, shot, OPENJD_FRAMES, OPENJD_SERVER)[1:]
        for arg in args:
            # OpenJD reads {{...}} in arguments as its own expressions and has no escape for them.
            if "{{" in arg and arg not in (OPENJD_FRAMES, OPENJD_SERVER):
                raise FarmError(f"shot {shot.shot}: {arg[:60]!r} holds '{{{{', which Open Job Description reads as "
                                "an expression; reword it")
        steps.append({
            "name": shot.shot[:64],
            "parameterSpace": {"taskParameterDefinitions": [{
                "name": "Frames", "type": "STRING",
                "range": [_range_text(a, b) for a, b in chunks(shot.frames, job.chunk)],
            }]},
            "script": {"actions": {"onRun": {
                "command": "shotpass",
                "args": args,
                "timeout": job.task_timeout_s,
            }}},
        })
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "name": job.name[:128],
        "description": f"shotpass {len(job.shots)} shot(s), job key {job.job_key}: one render per shot",
        "parameterDefinitions": [{
            "name": "ShotpassServer", "type": "STRING", "default": job.server or DEFAULT_SERVER,
            "description": "HOST:PORT of the shotpass server (farm nodes set SHOTPASS_TOKEN in their environment)",
        }],
        "steps": steps,
    }


def openjd_parameter_values(job: FarmJob) -> Dict[str, Any]:
    """A job bundle's parameter_values.json: retries per task for Deadline Cloud (the template format has none)."""
    return {"parameterValues": [
        {"name": "deadline:maxRetriesPerTask", "value": job.retries},
        {"name": "ShotpassServer", "value": job.server or DEFAULT_SERVER},
    ]}


# -------------------------------------------------------------------- OpenCue


def opencue_outline(job: FarmJob, show: str, user: str = "") -> str:
    """The OpenCue job spec (XML) built with OpenCue's PyOutline: one Shell layer per shot, chunked frames."""
    try:
        from outline import Outline, cuerun
        from outline.backend import cue
        from outline.modules.shell import Shell
    except ImportError:
        raise FarmError("an OpenCue outline needs PyOutline: pip install 'shotpass[opencue]'") from None
    outline = Outline(job.name, show=show, shot=job.shots[0].shot if len(job.shots) == 1 else "sequence")
    minutes = max(1, -(-job.task_timeout_s // 60))  # OpenCue layer timeouts are whole minutes
    for shot in job.shots:
        first, last = min(shot.frames), max(shot.frames)
        if len(chunks(shot.frames, 1 << 30)) != 1:
            raise FarmError(f"shot {shot.shot}: its frames are not one run ({first}-{last} with gaps); OpenCue "
                            "layers take one frame range")
        command = shlex.join(task_argv(job, shot, OPENCUE_FRAMES, job.server))
        outline.add_layer(Shell(shot.shot, command=command, range=f"{first}-{last}", chunk=job.chunk,
                                timeout=minutes, service="shell"))
    launcher = cuerun.OutlineLauncher(outline, maxretries=job.retries, nomail=True, **({"user": user} if user
                                                                                        else {}))
    return cue.serialize_simple(launcher)


class FarmError(ValueError):
    """A farm job that cannot be written as asked."""


def opencue_chunk(first: int, last: int, chunk: int) -> List[Tuple[int, int]]:
    """How OpenCue cuts a layer's range into tasks (for checks): consecutive chunks, the last one shorter."""
    return [(a, min(a + chunk - 1, last)) for a in range(first, last + 1, chunk)]


def describe(job: FarmJob) -> List[Dict[str, Any]]:
    return [{"shot": s.shot, "plate": s.plate, "tasks": [_range_text(a, b) for a, b in chunks(s.frames, job.chunk)]}
            for s in job.shots]
