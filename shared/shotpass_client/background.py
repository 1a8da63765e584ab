"""Run a render off the host's UI thread and hand its progress back through a queue.

Hosts (Nuke, Blender) must not block their main thread, and most of their APIs may only be called from
it. A `BackgroundRender` uploads, submits, watches and fetches in a worker thread and puts `JobUpdate`s
into a `queue.Queue`; the host drains that queue on its main thread (Nuke: executeInMainThread, Blender:
a bpy.app.timers callback, or the caller directly when headless) with `drain_updates`.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .client import Client, ClientError
from .connection import Connection
from .jobs import PlateError, RenderSpec, fetch_outputs, submit_render
from .naming import fill_version
from .patterns import FramePattern
from .proto import shotpass_pb2 as pb

# Update kinds, in the order a job normally produces them.
UPLOADING, SUBMITTED, PROGRESS = "uploading", "submitted", "progress"
WARNING, DONE, FAILED = "warning", "done", "failed"


@dataclass
class JobUpdate:
    kind: str
    message: str = ""
    render_id: str = ""
    frames_done: int = 0
    frames_total: int = 0
    bytes_uploaded: int = 0
    # DONE: frame number -> written file; the render as the server reported it last.
    outputs: Dict[int, str] = field(default_factory=dict)
    render: Optional[pb.Render] = None
    # PROGRESS: a job-control change ("suspended", "queued" once resumed or requeued); "" otherwise.
    state: str = ""

    @property
    def fraction(self) -> float:
        return self.frames_done / self.frames_total if self.frames_total else 0.0


@dataclass
class JobRequest:
    """Everything a background render needs; filled by the host from its UI."""

    server: str
    spec: RenderSpec
    out_dir: str
    plate: Mapping[int, str] = field(default_factory=dict)
    mask: Mapping[int, str] = field(default_factory=dict)
    reference_file: Optional[str] = None
    reference_render: Optional[Tuple[str, int]] = None
    parent_render: str = ""
    parent_frames: Sequence[int] = ()
    preview: bool = False
    token: Optional[str] = None
    # TLS files (PEM paths), as in connection.Connection: a CA turns TLS on, a cert and key add mutual TLS.
    tls_ca: Optional[str] = None
    tls_cert: Optional[str] = None
    tls_key: Optional[str] = None
    # e.g. "/out/sh010/v###/sh010.####.exr" (v### = the render's version); default: the input names
    output_pattern: Optional[str] = None
    plate_paths: Optional[Mapping[int, str]] = None  # path mode: {frame: path as the server sees it}
    # Handles (jobs.handles_around): plate frames a video model reads around `plate` without rendering them.
    context: Mapping[int, str] = field(default_factory=dict)
    context_paths: Optional[Mapping[int, str]] = None


class BackgroundRender:
    """One render in a worker thread. `cancel()` may be called from any thread."""

    def __init__(self, request: JobRequest, updates: Optional[queue.Queue[JobUpdate]] = None) -> None:
        self.request = request
        self.updates: queue.Queue[JobUpdate] = updates if updates is not None else queue.Queue()
        self.render_id = ""
        self._cancel = threading.Event()
        self._client: Optional[Client] = None
        self._thread = threading.Thread(target=self._run, name="shotpass-render", daemon=True)

    def start(self) -> BackgroundRender:
        self._thread.start()
        return self

    def join(self, timeout: Optional[float] = None) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cancel(self) -> None:
        """Ask the server to stop the render (finished frames are kept there); the job then reports FAILED."""
        self._cancel.set()
        client, render_id = self._client, self.render_id
        if client is not None and render_id:
            try:
                client.cancel(render_id)
            except ClientError:
                pass  # the watch loop reports the final state either way

    def _put(self, update: JobUpdate) -> None:
        self.updates.put(update)

    def _run(self) -> None:
        req = self.request
        try:
            with Connection(req.server, req.token, req.tls_ca, req.tls_cert, req.tls_key).client() as client:
                self._client = client
                # A server restart mid-watch: the host's status line says so while the client reconnects.
                client.on_reconnect = lambda message: self._put(JobUpdate(PROGRESS, message, self.render_id, -1))
                self._put(JobUpdate(UPLOADING, "uploading frames the server does not have"))
                submitted = submit_render(
                    client, req.spec, req.plate, req.mask, req.reference_file, req.reference_render,
                    req.parent_render, req.parent_frames, preview=req.preview, plate_paths=req.plate_paths,
                    context=req.context, context_paths=req.context_paths,
                )
                self.render_id = submitted.render_id
                total = submitted.render.frames_total
                self._put(JobUpdate(SUBMITTED, f"render {submitted.render_id} submitted",
                                    submitted.render_id, 0, total, submitted.bytes_uploaded, render=submitted.render))
                for w in submitted.warnings:
                    self._put(JobUpdate(WARNING, w, submitted.render_id))
                if self._cancel.is_set():
                    client.cancel(submitted.render_id)
                render = submitted.render if req.preview else self._watch(client, submitted.render_id, total)
                if render.state != pb.FINISHED:
                    failed = [f"frame {f.frame}: {f.error}" for f in render.frames if f.error]
                    reason = "; ".join(failed[:3]) or render.error or pb.RenderState.Name(render.state).lower()
                    self._put(JobUpdate(FAILED, f"render {render.id} {pb.RenderState.Name(render.state).lower()}: "
                                        f"{reason}", render.id, render.frames_done, render.frames_total,
                                        submitted.bytes_uploaded, render=render))
                    return
                # `v###` in the pattern is the render's version (naming.fill_version), known only now.
                pattern = FramePattern.parse(fill_version(req.output_pattern, render.version)) \
                    if req.output_pattern else None
                out_dir = (os.path.dirname(pattern.prefix) if pattern else "") or req.out_dir
                outputs = fetch_outputs(client, render, out_dir, pattern)
                self._put(JobUpdate(DONE, f"render {render.id} finished: {len(outputs)} frames", render.id,
                                    render.frames_done, render.frames_total, submitted.bytes_uploaded,
                                    outputs, render))
        except (ClientError, PlateError, OSError) as err:
            self._put(JobUpdate(FAILED, str(err), self.render_id))
        except Exception as err:  # never let a worker thread die silently inside a host
            self._put(JobUpdate(FAILED, f"unexpected error: {type(err).__name__}: {err}", self.render_id))
        finally:
            self._client = None

    def _watch(self, client: Client, render_id: str, total: int) -> pb.Render:
        for event in client.watch(render_id):
            if event.kind == pb.RenderEvent.FRAME_DONE:
                self._put(JobUpdate(PROGRESS, f"frame {event.frame} done", render_id, event.frames_done, total))
            elif event.kind == pb.RenderEvent.STEP:
                self._put(JobUpdate(PROGRESS, f"frame {event.frame} step {event.step}/{event.total_steps}",
                                    render_id, -1, total))
            elif event.kind in (pb.RenderEvent.WARNING, pb.RenderEvent.FRAME_FAILED):
                self._put(JobUpdate(WARNING, event.message, render_id))
            elif event.kind in _CONTROL_STATES:
                self._put(JobUpdate(PROGRESS, event.message or _CONTROL_STATES[event.kind], render_id, -1, total,
                                    state=_CONTROL_STATES[event.kind]))
        return client.get_render(render_id)


# Job-control events a watch reports as the render's state (suspend/resume/requeue may come from anywhere).
_CONTROL_STATES = {pb.RenderEvent.SUSPENDED: "suspended", pb.RenderEvent.RESUMED: "queued",
                   pb.RenderEvent.REQUEUED: "queued"}


def drain_updates(updates: queue.Queue[JobUpdate], handle: Callable[[JobUpdate], None]) -> List[JobUpdate]:
    """Call `handle` for every update waiting in the queue, on the calling (main) thread; never blocks."""
    drained: List[JobUpdate] = []
    while True:
        try:
            update = updates.get_nowait()
        except queue.Empty:
            return drained
        handle(update)
        drained.append(update)


# ---------------------------------------------------------------------- job control from a host's panel

SUSPEND, RESUME, REQUEUE = "suspend", "resume", "requeue"
CONTROL_LABELS = {SUSPEND: "Suspend", RESUME: "Resume", REQUEUE: "Requeue Failed"}


def control_render(client: Client, render_id: str, action: str) -> Tuple[pb.Render, str]:
    """Suspend, resume or requeue a render's failed frames (worker thread); (the render after, a status line).

    A panel's Requeue Failed lifts the frame timeout when frames timed out: running them again under the same
    limit would fail them again (the CLI's `requeue --frame-timeout` sets any other limit).
    """
    if action == SUSPEND:
        render = client.suspend(render_id)
        return render, (f"render {render_id} suspended at {render.frames_done}/{render.frames_total} frames "
                        "(a running frame finishes); Resume goes on")
    if action == RESUME:
        render = client.resume(render_id)
        return render, f"render {render_id} resumed at {render.frames_done}/{render.frames_total} frames"
    if action == REQUEUE:
        before = client.get_render(render_id)
        again = [f for f in before.frames if f.state in (pb.FRAME_FAILED, pb.FRAME_CANCELLED)]
        timed_out = any("timed out" in f.error for f in again)
        render = client.requeue(render_id, 0.0 if timed_out else None)
        lifted = "; frame timeout lifted" if timed_out else ""
        frames = ", ".join(str(f.frame) for f in again[:8]) + (" ..." if len(again) > 8 else "")
        return render, f"render {render_id}: frames {frames or '-'} requeued{lifted}"
    raise ValueError(f"unknown job control action {action!r}: use {SUSPEND}, {RESUME} or {REQUEUE}")
