"""Plain-Python logic of the Blender extension: no bpy here, so it can be reasoned about (and reused) alone.

The host adapter (``host/``) turns Blender data into these values and back; everything that talks to the
server goes through the shared ``shotpass_client`` package.
"""

from __future__ import annotations

import ipaddress
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

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
    WARNING,
    BackgroundRender,
    JobRequest,
    JobUpdate,
    drain_updates,
)
from shotpass_client.jobs import RenderSpec  # noqa: E402
from shotpass_client.pathmap import PathMap  # noqa: E402
from shotpass_client.patterns import FramePattern  # noqa: E402
from shotpass_client.plate_stamp import clear_stamp, frame_files, stale_reason, write_stamp  # noqa: E402, F401

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


class PlateRender:
    """Renders plate frames in a separate Blender process, so the artist's Blender never waits for it.

    The process writes into a staging folder; only when every frame is there are they moved into the plate
    folder and the stamp written, so a cancelled or failed render never leaves a plate that looks current.
    """

    def __init__(self, command: List[str], staging: str, plate_dir: str, name: str, frames: Sequence[int],
                 settings: Mapping[str, Any], env: Optional[Mapping[str, str]] = None) -> None:
        self.command, self.staging, self.plate_dir, self.name = command, staging, plate_dir, name
        self.frames, self.settings, self.env = list(frames), dict(settings), env
        self.message = ""
        self._proc: Optional[subprocess.Popen] = None
        self._cancelled = False
        self.log_path = os.path.join(staging, "render.log")

    @property
    def plate(self) -> Dict[int, str]:
        return frame_files(self.plate_dir, self.name, self.frames)

    def start(self) -> PlateRender:
        os.makedirs(self.staging, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          env=dict(self.env) if self.env is not None else None)
        return self

    def written(self) -> int:
        return sum(os.path.isfile(p) for p in frame_files(self.staging, self.name, self.frames).values())

    @property
    def fraction(self) -> float:
        return self.written() / len(self.frames) if self.frames else 0.0

    def cancel(self, wait: bool = False) -> None:
        """Stop the render; with ``wait``, also wait for the process and remove its staging folder now (for
        a job that nobody will poll again, e.g. when another file is opened)."""
        self._cancelled = True
        if self._proc is None:  # never started: only its staging folder (the .blend copy) to remove
            shutil.rmtree(self.staging, ignore_errors=True)
            return
        if self._proc.poll() is None:
            self._proc.terminate()
        if wait:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self.message = "plate render cancelled"
            shutil.rmtree(self.staging, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as fh:
                lines = [ln.strip() for ln in fh if ln.strip()]
        except OSError:
            return ""
        errors = [ln for ln in lines if "error" in ln.lower()]
        return " | ".join((errors or lines)[-3:])

    def poll(self) -> Optional[bool]:
        """None while rendering; True once the plate is in place; False on failure or cancel (see message)."""
        assert self._proc is not None, "start() first"
        rc = self._proc.poll()
        if rc is None:
            return None
        staged = frame_files(self.staging, self.name, self.frames)
        missing = [f for f, p in staged.items() if not os.path.isfile(p)]
        if self._cancelled:
            self.message = "plate render cancelled"
        elif rc != 0 or missing:
            self.message = (f"the plate render wrote no file for frame(s) {missing[:10]} (exit code {rc}): "
                            f"{self._log_tail() or 'no output'}")
        else:
            os.makedirs(self.plate_dir, exist_ok=True)
            clear_stamp(self.plate_dir, self.name)  # the old stamp goes first: a half-swapped plate is stale
            for f, path in self.plate.items():
                os.replace(staged[f], path)
            write_stamp(self.plate_dir, self.name, self.settings)
            shutil.rmtree(self.staging, ignore_errors=True)
            return True
        shutil.rmtree(self.staging, ignore_errors=True)
        return False


class Task:
    """One quick server call (versions, model options) in a thread, so a slow or absent server never
    freezes the UI; its result is applied on the main thread by `JobBoard.drain`."""

    def __init__(self, label: str, call: Callable[[], Any], on_result: Callable[[Any], None],
                 on_error: Callable[[str], None]) -> None:
        self.label, self.call, self.on_result, self.on_error = label, call, on_result, on_error
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=f"shotpass {label}", daemon=True)

    def start(self) -> Task:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.result = self.call()
        except Exception as err:  # delivered to the main thread as a message, never raised in a thread
            self.error = err

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()


@dataclass
class Job:
    """One background render the extension is following, and what it reported last."""

    kind: str  # "render", "preview" or "plate" (a plate render alone, nothing sent)
    worker: Optional[BackgroundRender]
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
    plate_render: Optional[PlateRender] = None  # rendered first, then the worker starts
    warnings: List[str] = field(default_factory=list)


class JobBoard:
    """All jobs of this Blender session. `drain` is the one function that moves worker results to the host."""

    def __init__(self) -> None:
        self.jobs: List[Job] = []
        self.tasks: List[Task] = []

    def start(self, request: Optional[JobRequest], kind: str, scene_name: str, plate_kind: str,
              strip_name: str = "", plate_render: Optional[PlateRender] = None) -> Job:
        """A job: the plate render first (if any), then the server render (none for a plate-only job)."""
        worker = BackgroundRender(request, queue.Queue()) if request is not None else None
        job = Job(kind, worker, scene_name, plate_kind, strip_name, plate_render=plate_render)
        self.jobs.append(job)
        if plate_render is not None:
            job.state, job.message = "rendering plate", f"rendering the plate: 0/{len(plate_render.frames)} frames"
            plate_render.start()
        elif worker is not None:
            worker.start()
        return job

    def ask(self, task: Task) -> Task:
        self.tasks.append(task.start())
        return task

    @property
    def active(self) -> List[Job]:
        return [j for j in self.jobs if not j.finished]

    def _drain_tasks(self) -> None:
        for task in [t for t in self.tasks if t.done]:
            self.tasks.remove(task)
            if task.error is not None:
                task.on_error(str(task.error))
            else:
                task.on_result(task.result)

    def _advance_plate(self, job: Job, on_done: Callable[[Job, JobUpdate], None],
                       on_failed: Callable[[Job, JobUpdate], None]) -> bool:
        """Follow a job's plate render; True once the job has moved on to the server."""
        plate = job.plate_render
        assert plate is not None
        state = plate.poll()
        if state is None:
            job.fraction = plate.fraction
            job.message = f"rendering the plate: {plate.written()}/{len(plate.frames)} frames"
            return False
        job.plate_render = None
        if state and job.worker is None:
            message = f"plate rendered: {len(plate.frames)} frame(s) in {plate.plate_dir}"
            job.state, job.fraction, job.message, job.finished = "finished", 1.0, message, True
            job.outputs = plate.plate
            on_done(job, JobUpdate(DONE, message, outputs=plate.plate))
            return False
        if state:
            job.state, job.fraction, job.message = "uploading", 0.0, "plate rendered; sending it"
            assert job.worker is not None
            job.worker.start()
            return True
        job.state, job.finished, job.failed, job.message = "failed", True, True, plate.message
        on_failed(job, JobUpdate(FAILED, plate.message))
        return False

    def drain(self, on_done: Callable[[Job, JobUpdate], None], on_failed: Callable[[Job, JobUpdate], None]) -> int:
        """Apply every waiting update on the calling (main) thread; returns how many jobs and calls still run."""
        self._drain_tasks()
        for job in self.active:
            if job.plate_render is not None and not self._advance_plate(job, on_done, on_failed):
                continue

            def handle(update: JobUpdate, job: Job = job) -> None:
                job.message = update.message
                if update.render_id:
                    job.render_id = update.render_id
                if update.kind == SUBMITTED:
                    job.state = "submitted"
                elif update.kind == WARNING and update.message not in job.warnings:
                    job.warnings.append(update.message)  # once: the submit's warnings come again in the watch
                elif update.kind == PROGRESS and update.state:
                    job.state = update.state  # suspended / queued again: shown on the progress bar
                elif update.kind == PROGRESS and update.frames_done >= 0:
                    job.state, job.fraction = "running", update.fraction
                elif update.kind == DONE:
                    job.state, job.fraction, job.outputs, job.finished = "finished", 1.0, dict(update.outputs), True
                    on_done(job, update)
                elif update.kind == FAILED:
                    job.state, job.finished, job.failed = "failed", True, True
                    on_failed(job, update)

            if job.worker is not None:
                drain_updates(job.worker.updates, handle)
        return len(self.active) + len(self.tasks)

    def cancel_all(self, wait: bool = False) -> int:
        """Cancel every running job; ``wait``: plate processes are waited for and their staging removed."""
        running = self.active
        for job in running:
            if job.plate_render is not None:
                job.plate_render.cancel(wait=wait)
            elif job.worker is not None:
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


# Render engines whose Depth and Vector passes were checked in real renders: Cycles and Workbench by the
# tests on bpy 4.2, 5.0 and 5.3; EEVEE by hand on 5.0 (on software GL it is too slow for the tests).
PASS_ENGINES = {
    "CYCLES": "Cycles",
    "BLENDER_EEVEE": "EEVEE",
    "BLENDER_EEVEE_NEXT": "EEVEE",  # 4.2-4.4 name
    "BLENDER_WORKBENCH": "Workbench",
}


def pass_problems(engine: str, use_depth: bool, use_vector: bool, motion_blur: bool) -> List[str]:
    """What the plate will lack of the passes the artist turned on, said before anything is rendered.

    Measured, not assumed: Workbench writes Depth but no Vector pass at all; Cycles and EEVEE write the
    Vector pass as zeros when motion blur is on (the blur uses the motion instead), which would tell the
    server's temporal code that nothing moves.
    """
    wanted = [p for p, on in (("Depth", use_depth), ("Vector", use_vector)) if on]
    if not wanted:
        return []
    name = PASS_ENGINES.get(engine)
    if name is None:
        return [f"render engine {engine}: shotpass cannot tell whether it writes the {' and '.join(wanted)} "
                "pass; check the plate's channels"]
    if not use_vector:
        return []
    if name == "Workbench":
        return ["Workbench renders no Vector pass, so the plate has no motion vectors: render with Cycles or "
                "EEVEE for them (the server computes flow from the pixels otherwise)"]
    if motion_blur:
        return [f"motion blur is on, so {name} writes the Vector pass as zeros: turn motion blur off for the "
                "plate, or render with flow_source=computed"]
    return []
