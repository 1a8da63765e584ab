"""Jobs of this Blender session and the one function that drains their queues on the main thread.

In the GUI `bpy.app.timers` calls `drain`; headless callers (farm scripts, tests) call it directly or run
``bpy.ops.shotpass.wait()``, because timers never fire in background mode.
"""

from __future__ import annotations

import os
import sys
import time
from typing import List, Optional

import bpy

from ..core import Job, JobBoard, JobRequest, JobUpdate
from . import scene as blender_scene

BOARD = JobBoard()
TIMER_INTERVAL = 0.25
# Failures since the last `take_failures`, for operators that report them (wait, modal submit).
_failures: List[str] = []


def log(message: str) -> None:
    """One line per event on stderr: what a farm log should show (never a traceback for a known failure)."""
    print(f"shotpass: {message}", file=sys.stderr, flush=True)


def _scene(job: Job) -> Optional[bpy.types.Scene]:
    return bpy.data.scenes.get(job.scene_name)


def _on_done(job: Job, update: JobUpdate) -> None:
    try:
        _wire(job, update)
    except Exception as err:  # a drain runs inside Blender's timer: report, never propagate
        job.failed = True
        _on_failed(job, JobUpdate("failed", f"render {update.render_id} finished but could not be wired into "
                                            f"the scene: {type(err).__name__}: {err}", update.render_id))


def _wire(job: Job, update: JobUpdate) -> None:
    scene = _scene(job)
    if scene is None or not update.outputs:
        return
    settings = scene.shotpass
    if job.kind == "preview":
        image = blender_scene.result_image(f"shotpass preview {settings.shot}", update.outputs)
        shown = blender_scene.show_in_image_editor(image)
        settings.status = (f"preview {update.render_id}: frame {min(update.outputs)} is in image {image.name!r}"
                           + (", shown in an Image editor" if shown else ""))
    else:
        name = f"shotpass {settings.shot}"
        image = blender_scene.result_image(name, update.outputs)
        wired = blender_scene.wire_compositor(scene, image, update.outputs)
        above = 0
        if job.plate_kind == "STRIP" and job.strip_name:
            source = blender_scene._strips(scene).get(job.strip_name)
            above = source.channel if source is not None else 0
        channel = blender_scene.free_channel(scene, above)
        blender_scene.wire_sequencer(scene, name, update.outputs, channel)
        settings.last_render_id = update.render_id
        render = update.render
        version = f"v{render.version:03d} " if render is not None else ""
        settings.status = (f"{version}{update.message}; in the compositor"
                           + ("" if wired else f" (node {blender_scene.RESULT_NODE!r}: connect it)")
                           + " and the sequencer")
    log(settings.status)


def _on_failed(job: Job, update: JobUpdate) -> None:
    scene = _scene(job)
    if scene is not None:
        scene.shotpass.status = update.message
    _failures.append(update.message)
    log(update.message)


def drain() -> Optional[float]:
    """Apply waiting job updates; returns the next timer interval, or None (stop the timer) when all are done."""
    running = BOARD.drain(_on_done, _on_failed)
    return TIMER_INTERVAL if running else None


def ensure_timer() -> None:
    # Timers never fire headless: there the caller drains (bpy.ops.shotpass.wait or runner.drain).
    if not bpy.app.background and not bpy.app.timers.is_registered(drain):
        bpy.app.timers.register(drain, first_interval=TIMER_INTERVAL, persistent=True)


def start(request: JobRequest, kind: str, scene: bpy.types.Scene, plate_kind: str, strip_name: str = "") -> Job:
    job = BOARD.start(request, kind, scene.name, plate_kind, strip_name)
    ensure_timer()
    return job


def wait(timeout: float) -> bool:
    """Drain until no job runs (headless); False if the timeout passed first."""
    deadline = time.monotonic() + timeout
    while drain() is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def take_failures() -> List[str]:
    out = list(_failures)
    _failures.clear()
    return out


def job_out_dir(root: str, project: str, shot: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, project, shot, "renders", stamp)
    path, n = base, 1
    while os.path.exists(path):  # two submits within a second get their own folders
        n += 1
        path = f"{base}-{n}"
    return path


def stop_all() -> None:
    BOARD.cancel_all()
    if bpy.app.timers.is_registered(drain):
        bpy.app.timers.unregister(drain)
