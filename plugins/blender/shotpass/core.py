"""Plain-Python logic of the Blender extension: no bpy here, so it can be reasoned about (and reused) alone.

The host adapter (``host/``) turns Blender data into these values and back; everything that talks to the
server goes through the shared ``shotpass_client`` package.
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor")


def ensure_client_importable() -> None:
    """Make ``import shotpass_client`` work inside Blender.

    The extension zip vendors the package under ``_vendor/``. It is *appended* to sys.path (as Blender does
    with extension wheels) so a pipeline's own installed copy wins: the generated protobuf module may be
    imported only once per process, so there must never be two copies under different names.
    """
    try:
        import shotpass_client  # noqa: F401
    except ImportError:
        if os.path.isdir(_VENDOR) and _VENDOR not in sys.path:
            sys.path.append(_VENDOR)


ensure_client_importable()

from shotpass_client.background import (  # noqa: E402
    DONE,
    FAILED,
    PROGRESS,
    SUBMITTED,
    BackgroundRender,
    JobRequest,
    JobUpdate,
    drain_updates,
)
from shotpass_client.jobs import RenderSpec  # noqa: E402
from shotpass_client.pathmap import PathMap  # noqa: E402
from shotpass_client.patterns import FramePattern  # noqa: E402

LOCAL_HOSTS = {"localhost", "ip6-localhost"}


def server_host(address: str) -> str:
    """'host:port', '[::1]:50051' or 'dns:///host:port' -> host."""
    addr = address.split("///", 1)[-1]
    if addr.startswith("["):
        return addr[1:].split("]", 1)[0]
    return addr.rsplit(":", 1)[0] if addr.count(":") == 1 else addr


def is_local_address(address: str) -> bool:
    host = server_host(address).strip().lower()
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def online_access_problem(address: str, online_access: bool) -> Optional[str]:
    """Blender's "Allow Online Access" governs every non-local connection an extension makes."""
    if online_access or is_local_address(address):
        return None
    return (
        f"shotpass server {address} is not on this machine and Blender's online access is off: "
        "enable Preferences > System > Network > Allow Online Access (or start Blender with --online-mode), "
        "or use a server on localhost"
    )


def image_user_frames(frames: Sequence[int]) -> Tuple[int, int, int]:
    """(frame_start, frame_offset, frame_duration) for an Image user showing file frame N on scene frame N.

    Blender maps scene frame f to file frame ``(f - frame_start + 1) + frame_offset`` (clamped to the duration),
    so starting at the first output frame F with offset F - 1 makes the two numbers equal.
    """
    first, last = min(frames), max(frames)
    return first, first - 1, last - first + 1


def strip_elements(outputs: Mapping[int, str]) -> Tuple[int, List[str]]:
    """(first frame, one file name per timeline frame) for a sequencer image strip.

    Strip elements are positional, so a gap in the frame numbers repeats the previous file rather than
    shifting every later frame onto the wrong scene frame.
    """
    frames = sorted(outputs)
    names: List[str] = []
    current = outputs[frames[0]]
    for f in range(frames[0], frames[-1] + 1):
        current = outputs.get(f, current)
        names.append(os.path.basename(current))
    return frames[0], names


def sequence_pattern(first_file: str) -> FramePattern:
    """The frame pattern of an image sequence given one of its files (Blender stores the first)."""
    return FramePattern.parse(first_file)


@dataclass
class PassSettings:
    """The knobs of one render, as saved on the scene and as reused from a server render."""

    project: str = "blender"
    shot: str = "shot"
    pass_name: str = ""
    model: str = ""
    prompt: str = ""
    strength: float = -1.0  # below 0: not sent (the model's default)
    seed: int = 0
    use_seed: bool = False
    options: Dict[str, str] = field(default_factory=dict)
    label: str = ""

    def spec(self) -> RenderSpec:
        options = dict(self.options)
        if self.strength >= 0:
            options["strength"] = f"{self.strength:g}"
        return RenderSpec(
            project=self.project, shot=self.shot, pass_name=self.pass_name, model=self.model,
            prompt=self.prompt, options=options, seed=self.seed if self.use_seed else None, label=self.label,
        )

    @classmethod
    def from_render(cls, render: object) -> PassSettings:
        """Settings of a render the server reports (reuse settings)."""
        s = render.settings  # type: ignore[attr-defined]
        options = dict(s.options)
        strength = float(options.pop("strength", -1.0))
        return cls(project=render.project, shot=render.shot, pass_name=s.pass_name,  # type: ignore[attr-defined]
                   model=s.model, prompt=s.prompt, strength=strength, seed=int(s.seed), use_seed=bool(s.seed),
                   options=options)


def parse_options(text: str) -> Dict[str, str]:
    """Options typed as JSON ({"style": "mosaic"}) or key=value pairs separated by commas."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            return {str(k): str(v) for k, v in json.loads(text).items()}
        except (ValueError, AttributeError) as err:
            raise ValueError(f"options are not valid JSON: {err}") from None
    out: Dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"option {item!r}: write key=value")
        out[key.strip()] = value.strip()
    return out


def version_line(render: object) -> str:
    """One line per render for the versions list: v003 FINISHED ★★★ pinned stylize/model (id)."""
    from shotpass_client.client import state_name

    r = render
    review = r.review  # type: ignore[attr-defined]
    stars = "*" * review.rating if review.rating else "-"
    pin = " pinned" if review.pinned else ""
    parent = f" <- {r.parent_render[:8]}" if r.parent_render else ""  # type: ignore[attr-defined]
    return (f"v{r.version:03d} {state_name(r.state)} {stars}{pin} "  # type: ignore[attr-defined]
            f"{r.settings.pass_name}/{r.settings.model} {r.frames_done}/{r.frames_total} "  # type: ignore[attr-defined]
            f"({r.id}){parent}")  # type: ignore[attr-defined]


@dataclass
class Job:
    """One background render the extension is following, and what it reported last."""

    kind: str  # "render" or "preview"
    worker: BackgroundRender
    scene_name: str
    plate_kind: str  # "render", "image" or "strip": where the results go back
    strip_name: str = ""
    state: str = "uploading"
    message: str = ""
    fraction: float = 0.0
    render_id: str = ""
    outputs: Dict[int, str] = field(default_factory=dict)
    finished: bool = False
    failed: bool = False


class JobBoard:
    """All jobs of this Blender session. `drain` is the one function that moves worker results to the host."""

    def __init__(self) -> None:
        self.jobs: List[Job] = []

    def start(self, request: JobRequest, kind: str, scene_name: str, plate_kind: str, strip_name: str = "") -> Job:
        job = Job(kind, BackgroundRender(request, queue.Queue()), scene_name, plate_kind, strip_name)
        self.jobs.append(job)
        job.worker.start()
        return job

    @property
    def active(self) -> List[Job]:
        return [j for j in self.jobs if not j.finished]

    def drain(self, on_done: Callable[[Job, JobUpdate], None], on_failed: Callable[[Job, JobUpdate], None]) -> int:
        """Apply every waiting update on the calling (main) thread; returns how many jobs are still running."""
        for job in self.active:

            def handle(update: JobUpdate, job: Job = job) -> None:
                job.message = update.message
                if update.render_id:
                    job.render_id = update.render_id
                if update.kind == SUBMITTED:
                    job.state = "submitted"
                elif update.kind == PROGRESS and update.frames_done >= 0:
                    job.state, job.fraction = "running", update.fraction
                elif update.kind == DONE:
                    job.state, job.fraction, job.outputs, job.finished = "finished", 1.0, dict(update.outputs), True
                    on_done(job, update)
                elif update.kind == FAILED:
                    job.state, job.finished, job.failed = "failed", True, True
                    on_failed(job, update)

            drain_updates(job.worker.updates, handle)
        return len(self.active)

    def cancel_all(self) -> int:
        running = self.active
        for job in running:
            job.worker.cancel()
        return len(running)



def path_map_problem(text: str) -> Optional[str]:
    """Why a path-map preference cannot be used, or None (checked before anything is sent)."""
    from shotpass_client.pathmap import PathMapError

    try:
        PathMap.parse(text)
    except PathMapError as err:
        return str(err)
    return None
