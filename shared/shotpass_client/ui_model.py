"""Host-agnostic UI model: what a plugin panel shows, derived from the server and the host's scene.

Nuke and Blender both turn a server's option schema into widgets, name a render version the same way,
guess a project/shot from the scene's file name and match the host's working colour space to one the
server knows. Pure Python (3.9+), no host and no Qt imports.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from .proto import shotpass_pb2 as pb
from .qc import qc_label, qc_problems, qc_summary

# Option kinds, as a host widget factory needs them.
STRING, INT, FLOAT, BOOL, CHOICE = "string", "int", "float", "bool", "choice"
_KINDS = {
    pb.OptionSpec.STRING: STRING,
    pb.OptionSpec.INT: INT,
    pb.OptionSpec.FLOAT: FLOAT,
    pb.OptionSpec.BOOL: BOOL,
    pb.OptionSpec.CHOICE: CHOICE,
}
STATE_NAMES = {
    pb.QUEUED: "queued",
    pb.RUNNING: "running",
    pb.FINISHED: "finished",
    pb.FAILED: "failed",
    pb.CANCELLED: "cancelled",
    pb.SUSPENDED: "suspended",
}


@dataclass
class OptionField:
    """One pass option as a widget: its kind, default (typed), limits and choices."""

    name: str
    kind: str
    default: Any
    label: str = ""
    description: str = ""
    choices: List[str] = field(default_factory=list)
    minimum: Optional[float] = None
    maximum: Optional[float] = None

    def text(self, value: Any) -> str:
        """The value as the wire wants it (options travel as text), clamped to the schema's limits."""
        if self.kind == BOOL:
            if isinstance(value, str):
                return "true" if value.strip().lower() in ("1", "true", "yes", "on") else "false"
            return "true" if value else "false"
        if self.kind in (INT, FLOAT):
            number = float(value)
            if math.isnan(number):
                number = float(self.default)
            if self.minimum is not None:
                number = max(number, self.minimum)
            if self.maximum is not None:
                number = min(number, self.maximum)
            return str(int(round(number))) if self.kind == INT else repr(float(number))
        if self.kind == CHOICE and self.choices and str(value) not in self.choices:
            return str(self.default)
        return str(value)


def _typed(kind: str, text: str) -> Any:
    try:
        if kind == BOOL:
            return text.strip().lower() in ("1", "true", "yes", "on")
        if kind == INT:
            return int(float(text or 0))
        if kind == FLOAT:
            return float(text or 0)
    except ValueError:
        return 0
    return text


def option_fields(model: pb.ModelInfo, skip: Iterable[str] = ()) -> List[OptionField]:
    """The model's options as widget specs, in the server's order, minus the ones the host shows itself."""
    skipped = set(skip)
    fields: List[OptionField] = []
    for spec in model.options:
        if spec.name in skipped:
            continue
        kind = _KINDS.get(spec.type, STRING)
        fields.append(
            OptionField(
                name=spec.name,
                kind=kind,
                default=_typed(kind, spec.default_value),
                label=spec.name.replace("_", " "),
                description=spec.description,
                choices=list(spec.choices),
                minimum=spec.minimum if spec.HasField("minimum") else None,
                maximum=spec.maximum if spec.HasField("maximum") else None,
            )
        )
    return fields


def find_model(info: pb.ServerInfo, name: str) -> Optional[pb.ModelInfo]:
    for model in info.models:
        if model.name == name:
            return model
    return None


UNAVAILABLE_MARK = " (unavailable)"


def pass_models(info: pb.ServerInfo, pass_name: str) -> Tuple[List[str], str]:
    """(models of a pass, its default model) as the server lists them; models the server says it cannot run
    (``ModelInfo.unavailable``) come last, named with UNAVAILABLE_MARK, and are never the default."""
    for p in info.passes:
        if p.name == pass_name:
            usable = [m for m in p.models if not model_unavailable(info, m)]
            broken = [m + UNAVAILABLE_MARK for m in p.models if model_unavailable(info, m)]
            default = p.default_model if p.default_model in usable else (usable[0] if usable else "")
            return usable + broken, default
    return [], ""


def model_unavailable(info: pb.ServerInfo, name: str) -> str:
    """Why the server cannot run a model (its words), or "" when it can."""
    model = find_model(info, model_name(name))
    return model.unavailable if model is not None else ""


def model_name(menu_entry: str) -> str:
    """The model a menu entry names (without UNAVAILABLE_MARK)."""
    return menu_entry[:-len(UNAVAILABLE_MARK)] if menu_entry.endswith(UNAVAILABLE_MARK) else menu_entry


def script_project_shot(script_path: str, env: Optional[Mapping[str, str]] = None) -> Tuple[str, str]:
    """Project and shot from a script/scene path: /jobs/proj/sh010/comp/sh010_comp_v003.nk -> (proj?, sh010_comp).

    The shot is the file name without its extension and trailing version (``_v003``); the project is
    $SHOTPASS_PROJECT, else the name of the folder holding the script. Unsaved: ("default", "untitled").
    """
    env = os.environ if env is None else env
    project = env.get("SHOTPASS_PROJECT", "")
    if not script_path or script_path in ("Root", "untitled"):
        return project or "default", "untitled"
    base = os.path.splitext(os.path.basename(script_path))[0]
    shot = re.sub(r"[._-]?v\d+$", "", base) or base
    folder = os.path.basename(os.path.dirname(os.path.abspath(script_path)))
    return project or folder or "default", shot


def default_output_dir(script_path: str, env: Optional[Mapping[str, str]] = None) -> str:
    """Where renders land: $SHOTPASS_OUTPUT, else <script folder>/shotpass, else <tmp>/shotpass."""
    env = os.environ if env is None else env
    if env.get("SHOTPASS_OUTPUT"):
        return env["SHOTPASS_OUTPUT"]
    if script_path and os.path.isabs(script_path):
        return os.path.join(os.path.dirname(script_path), "shotpass")
    return os.path.join(tempfile.gettempdir(), "shotpass")


def match_colour_space(host_space: str, server_spaces: Sequence[str], fallback: str = "") -> str:
    """The server colour space a host's working space names ("ACES - ACEScg" or "ACEScg" -> "ACEScg")."""
    if not host_space:
        return fallback
    lowered = {s.lower(): s for s in server_spaces}
    candidates = [host_space, host_space.split(" - ")[-1], host_space.split("(")[0].strip()]
    for cand in candidates:
        if cand.lower() in lowered:
            return lowered[cand.lower()]
    if host_space.lower() in ("scene_linear", "linear", "default"):
        return fallback
    return host_space if not server_spaces else fallback


def stars(rating: int) -> str:
    rating = max(0, min(5, int(rating)))
    return "*" * rating + "." * (5 - rating)


def version_label(entry: Mapping[str, Any]) -> str:
    """One line per version for a list widget: 'v003 render finished ***.. pinned (1-8)'.

    No '/' in labels: Nuke's enumeration knob turns it into sub-menus.
    """
    version = int(entry.get("version") or 0)
    number = f"v{version:03d}" if version else str(entry.get("render_id", ""))[:8]
    parts = [number, str(entry.get("lane") or "render"), str(entry.get("state") or "queued")]
    if entry.get("rating"):
        parts.append(stars(int(entry["rating"])))
    if entry.get("pinned"):
        parts.append("pinned")
    if qc_label(entry.get("qc")):
        parts.append(qc_label(entry.get("qc")))
    first, last = entry.get("first"), entry.get("last")
    if first is not None and last is not None and entry.get("pattern"):
        parts.append(f"({first}-{last})" if first != last else f"(frame {first})")
    return " ".join(parts)


def qc_line(entry: Mapping[str, Any]) -> str:
    """A version's QC for a status line or a details row: 'flicker 1.3x' plus what to look at, '' unmeasured."""
    summary = entry.get("qc")
    label, problems = qc_label(summary), qc_problems(summary)
    return f"QC {label}" + (f": {'; '.join(problems)}" if problems else "") if label or problems else ""


def render_summary(render: pb.Render) -> Dict[str, Any]:
    """The fields a version list keeps of a server render."""
    return {
        "render_id": render.id,
        "version": render.version,
        "lane": render.lane or "render",
        "state": STATE_NAMES.get(render.state, "unknown"),
        "rating": render.review.rating,
        "pinned": render.review.pinned,
        "parent": render.parent_render,
        "frames_done": render.frames_done,
        "frames_total": render.frames_total,
        "qc": qc_summary(render, pairs=False),
    }


def contiguous_runs(frames: Iterable[int]) -> List[Tuple[int, int]]:
    """[1,2,3,7,8] -> [(1,3),(7,8)]: what a host's execute(first, last) calls need."""
    runs: List[Tuple[int, int]] = []
    for f in sorted(set(frames)):
        if runs and f == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs
