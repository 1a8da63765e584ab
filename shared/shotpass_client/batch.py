"""Many shots at once with one look: settings from a preset file or an earlier render, per-shot overrides from a
sidecar file, one render per shot of an edit (timeline.py)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Dict, List, Mapping, Optional

from .client import FINAL_STATES, Client
from .jobs import PlateError, RenderSpec, plate_frames, server_paths, submit_render
from .pathmap import PathMap
from .proto import shotpass_pb2 as pb
from .timeline import ShotPlan

# Keys of a preset file (and of a shot's table in a sidecar) and the RenderSpec field each sets.
PRESET_KEYS = {
    "pass": "pass_name", "model": "model", "prompt": "prompt", "negative_prompt": "negative_prompt",
    "options": "options", "seed": "seed", "colour_space": "colour_space", "view": "view", "priority": "priority",
    "label": "label", "project": "project", "frame_timeout": "frame_timeout",
}


class PresetError(ValueError):
    """A preset or sidecar file that cannot be used, naming the file and key."""


def load_toml(path: str) -> Dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Nuke 14-15 and Blender 4.x Pythons: the same parser from PyPI (the pipeline extra)
        try:
            import tomli as tomllib
        except ImportError:
            raise PresetError(
                f"{path}: reading TOML on Python < 3.11 needs tomli: pip install 'shotpass[pipeline]'"
            ) from None
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as err:
        raise PresetError(f"{path}: cannot read it ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise PresetError(f"{path}: not valid TOML ({err})") from None


def apply_settings(spec: RenderSpec, table: Mapping[str, Any], where: str) -> RenderSpec:
    """A copy of `spec` with a preset table's keys applied (options are merged key by key)."""
    unknown = sorted(set(table) - set(PRESET_KEYS) - {"shots"})
    if unknown:
        raise PresetError(f"{where}: unknown key(s) {', '.join(unknown)}; use {', '.join(sorted(PRESET_KEYS))}")
    changes: Dict[str, Any] = {}
    types = {f.name: f.type for f in fields(RenderSpec)}
    for key, value in table.items():
        if key == "shots":
            continue
        name = PRESET_KEYS[key]
        if name == "options":
            if not isinstance(value, dict):
                raise PresetError(f"{where}: options must be a table (options.strength = 0.5)")
            changes["options"] = {**spec.options, **{str(k): _text(v) for k, v in value.items()}}
        elif name in ("seed", "priority"):
            if not isinstance(value, int) or isinstance(value, bool):
                raise PresetError(f"{where}: {key} must be a whole number, not {value!r}")
            changes[name] = value
        elif name == "frame_timeout":
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise PresetError(f"{where}: frame_timeout must be seconds (0 or more), not {value!r}")
            changes[name] = float(value)
        else:
            if not isinstance(value, str):
                raise PresetError(f"{where}: {key} must be text, not {value!r} ({types[name]})")
            changes[name] = value
    return replace(spec, **changes)


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def spec_from_render(render: pb.Render) -> RenderSpec:
    """Copy another render's settings (`--like RENDER`): same pass, model, prompt, options and seed."""
    s = render.settings
    return RenderSpec(
        project=render.project, pass_name=s.pass_name, model=s.model, prompt=s.prompt,
        negative_prompt=s.negative_prompt, options=dict(s.options), seed=s.seed, colour_space=s.colour_space,
        view=s.view, priority=s.priority, frame_timeout=s.frame_timeout_seconds,
    )


@dataclass
class ShotJob:
    plan: ShotPlan
    spec: RenderSpec
    render_id: str = ""
    render: Optional[pb.Render] = None
    error: str = ""
    warnings: List[str] = field(default_factory=list)

    def line(self) -> str:
        p = self.plan
        if self.error:
            return f"{p.shot:<24} error: {self.error}"
        r = self.render
        if r is None:
            return f"{p.shot:<24} waiting to submit"
        state = pb.RenderState.Name(r.state)
        failed = sum(1 for f in r.frames if f.error)
        return (f"{p.shot:<24} {r.id} v{r.version:<3} {state:<9} {r.frames_done:>4}/{r.frames_total:<4} frames"
                + (f"  {failed} failed" if failed else "") + (f"  {r.error}" if r.error and r.state == pb.FAILED
                                                              else ""))

    def summary(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"clip": self.plan.clip, "shot": self.plan.shot, "index": self.plan.index,
                               "frames": self.plan.frames, "cut": list(self.plan.cut), "error": self.error,
                               "warnings": self.warnings}
        if self.render is not None:
            r = self.render
            out.update(render=r.id, version=r.version, state=pb.RenderState.Name(r.state),
                       frames_done=r.frames_done, device_seconds=round(r.compute_seconds, 3),
                       failed={str(f.frame): f.error for f in r.frames if f.error})
        return out


def shot_specs(plans: List[ShotPlan], base: RenderSpec, sidecar: Mapping[str, Any], where: str) -> List[ShotJob]:
    """One job per usable shot: the base settings, then the sidecar's [shots.NAME] table (by shot or clip name)."""
    tables = sidecar.get("shots", {})
    if not isinstance(tables, dict):
        raise PresetError(f"{where}: [shots] must hold one table per shot ([shots.sh010])")
    names = {p.shot for p in plans if p.ok} | {p.clip for p in plans if p.ok}
    unknown = sorted(set(tables) - names)
    if unknown:
        raise PresetError(f"{where}: [shots.{unknown[0]}] names no clip or shot of this edit")
    jobs = []
    for plan in plans:
        if not plan.ok:
            continue
        table = tables.get(plan.shot, tables.get(plan.clip, {}))
        spec = apply_settings(replace(base, shot=plan.shot), table, f"{where} [shots.{plan.shot}]")
        jobs.append(ShotJob(plan, spec))
    return jobs


def submit_shots(client: Client, jobs: List[ShotJob], path_map: Optional[PathMap] = None,
                 on_submitted: Optional[Callable[[ShotJob], None]] = None) -> None:
    """Upload and submit each shot; a shot the server refuses keeps its error and the others go on."""
    from .client import ClientError

    for job in jobs:
        try:
            plate = plate_frames(job.plan.pattern, job.plan.frames)
            submitted = submit_render(client, job.spec, plate,
                                      plate_paths=server_paths(plate, path_map) if path_map else None)
        except (ClientError, PlateError) as err:
            job.error = str(err)
        else:
            job.render_id, job.render, job.warnings = submitted.render_id, submitted.render, submitted.warnings
        if on_submitted:
            on_submitted(job)


def poll_until_final(client: Client, jobs: List[ShotJob], on_update: Callable[[], None],
                     interval: float = 0.5) -> None:
    import time

    while True:
        live = [j for j in jobs if j.render_id and (j.render is None or j.render.state not in FINAL_STATES)]
        for job in live:
            job.render = client.get_render(job.render_id)
        on_update()
        if not live or all(j.render is not None and j.render.state in FINAL_STATES for j in live):
            return
        time.sleep(interval)


def output_dir(root: str, shot: str) -> str:
    return os.path.join(root, shot)
