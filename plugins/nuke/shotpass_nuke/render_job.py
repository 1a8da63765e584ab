"""One render of one ShotPass node as the worker runs it: the temporary Writes to execute, the files they
produce, and the server request per view. Plain Python (no nuke): the controller drives it."""

from __future__ import annotations

import copy
import os
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from shotpass_client.background import BackgroundRender, JobRequest
from shotpass_client.naming import fill_version, for_view
from shotpass_client.patterns import FramePattern


class Cancelled(Exception):
    """The user cancelled while the plate was still rendering locally: nothing was sent."""


@dataclass
class LocalRender:
    """Temporary Writes to execute frame by frame before the upload: (write, frames, pattern) each."""

    writes: List[Tuple[Any, List[int], str]] = field(default_factory=list)
    work_dir: str = ""


@dataclass
class NodeJob:
    """One render of one node: the local plate render, then the server part (BackgroundRender)."""

    node_id: str
    title: str
    request: JobRequest
    local: LocalRender
    values: Dict[str, Any]  # raw option values read on the main thread, formatted with the model's schema
    preview: bool
    template: str  # the output template (with %V when several views render)
    views: List[str] = field(default_factory=lambda: [""])  # "": one view, files without a view token
    proxy: bool = False
    roi: Optional[List[float]] = None
    colour_space: str = ""  # the host's name of the plate's colour space (results come back in it)
    files: Dict[str, Tuple[str, List[int]]] = field(default_factory=dict)  # plate/mask/reference pattern
    handles: List[int] = field(default_factory=list)  # plate frames read as context only (written, not rendered)
    thread: Optional[threading.Thread] = None
    finished: bool = False  # every view's render finished and was fetched
    background: Optional[BackgroundRender] = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def render_id(self) -> str:
        return self.background.render_id if self.background is not None else ""

    def cancel(self) -> None:
        self.cancelled.set()
        if self.background is not None:
            self.background.cancel()

    def join(self, timeout: Optional[float] = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


def check_files(job: NodeJob) -> None:
    for _write, frames, pattern in job.local.writes:
        for view in job.views:
            files = {f: FramePattern.parse(for_view(pattern, view)).path(f) for f in frames}
            missing = [f for f, p in files.items() if not os.path.isfile(p)]
            if missing:
                raise RuntimeError(f"frames {missing} of {os.path.basename(for_view(pattern, view))} were not "
                                   "written")
        job.files[os.path.basename(pattern).split(".")[0].split("_%V")[0]] = (pattern, frames)

@staticmethod
def view_request(job: NodeJob, view: str, version: int) -> JobRequest:
    """The server request for one view: its files; after the first view, the first view's version folder."""
    request = copy.copy(job.request)
    request.spec = copy.deepcopy(job.request.spec)
    if view:
        request.spec.label = f"{request.spec.label} ({view})"
    for what, (pattern, frames) in job.files.items():
        files = {f: FramePattern.parse(for_view(pattern, view)).path(f) for f in frames}
        if what == "plate":
            request.plate = {f: p for f, p in files.items() if f not in job.handles}
            request.context = {f: p for f, p in files.items() if f in job.handles}
        elif what == "mask":
            request.mask = files
        else:
            request.reference_file = next(iter(files.values()))
    template = fill_version(job.template, version) if version else job.template
    request.output_pattern = for_view(template, view)
    return request


def renders_of(entry: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(render id, output pattern) of a version: one, or one per view of a stereo version."""
    views = entry.get("views") or {}
    if not views:
        return [(entry["render_id"], entry["pattern"])]
    return [(rid, for_view(entry["pattern"], view)) for view, rid in views.items()]
