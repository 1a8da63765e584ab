"""Jobs of this Blender session and the one function that drains their queues on the main thread.

In the GUI `bpy.app.timers` calls `drain`; headless callers (farm scripts, tests) call it directly or run
``bpy.ops.shotpass.wait()``, because timers never fire in background mode.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, List, Optional

import bpy
from bpy.app.handlers import persistent

from ..core import Job, JobBoard, JobRequest, JobUpdate, PlateRender, Task
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


def fail_message(scene_name: str, message: str) -> None:
    scene = bpy.data.scenes.get(scene_name)
    if scene is not None:
        scene.shotpass.status = message
    _failures.append(message)
    log(message)


def on_done(job: Job, update: JobUpdate) -> None:
    _on_done(job, update)


def _on_done(job: Job, update: JobUpdate) -> None:
    try:
        _wire(job, update)
    except Exception as err:  # a drain runs inside Blender's timer: report, never propagate
        job.failed = True
        _on_failed(job, JobUpdate("failed", f"render {update.render_id} finished but could not be wired into "
                                            f"the scene: {type(err).__name__}: {err}", update.render_id))


def undo_step(message: str) -> None:
    """Make what a finished job changed one undo step of its own (it arrives outside any operator)."""
    try:
        bpy.ops.ed.undo_push(message=message[:60])
    except RuntimeError as err:  # no undo stack (e.g. undo steps set to 0): nothing to push onto
        log(f"no undo step: {err}")


def review_scene_name(shot: str) -> str:
    return f"shotpass {shot}"


def _wire(job: Job, update: JobUpdate) -> None:
    scene = _scene(job)
    if scene is None or not update.outputs:
        return
    settings = scene.shotpass
    # Every warning, not only the first: e.g. handles a per-frame model did not read must not go unsaid.
    warnings = f" ({len(job.warnings)} warning(s): {' | '.join(job.warnings)})" if job.warnings else ""
    if job.kind == "plate":
        settings.status = update.message
    elif job.kind == "preview":
        image = blender_scene.result_image(f"shotpass preview {settings.shot}", update.outputs)
        shown = blender_scene.show_in_image_editor(image)
        settings.last_preview_id = update.render_id
        settings.status = (f"preview {update.render_id}: frame {min(update.outputs)} is in image {image.name!r}"
                           + (", shown in the Image editor" if shown else "") + warnings)
    else:
        name = f"shotpass {settings.shot}"
        image = blender_scene.result_image(name, update.outputs)
        wired = blender_scene.wire_compositor(scene, image, update.outputs, connect=settings.drive_compositor)
        review = blender_scene.review_scene(scene, review_scene_name(settings.shot))
        blender_scene.wire_sequencer(review, name, update.outputs, 1)
        settings.last_render_id = update.render_id
        render = update.render
        version = f"v{render.version:03d} " if render is not None else ""
        settings.status = (f"{version}{update.message}; node {blender_scene.RESULT_NODE!r} in the compositor"
                           + (" drives its output" if wired else "") + f", strip in scene {review.name!r}"
                           + warnings)
    log(settings.status)
    undo_step(f"shotpass: {job.kind} {update.render_id}")


def _on_failed(job: Job, update: JobUpdate) -> None:
    scene = _scene(job)
    if scene is not None:
        scene.shotpass.status = update.message
    _failures.append(update.message)
    log(update.message)


def drain() -> Optional[float]:
    """Apply waiting job updates; returns the next timer interval, or None (stop the timer) when all are done."""
    running = BOARD.drain(_on_done, _on_failed)
    _redraw_panels()
    return TIMER_INTERVAL if running else None


def _redraw_panels() -> None:
    """The sidebar's progress bar and status follow the jobs (Blender redraws a region only when told)."""
    wm = bpy.context.window_manager
    if bpy.app.background or wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "SEQUENCE_EDITOR", "NODE_EDITOR"}:
                area.tag_redraw()


def ensure_timer() -> None:
    # Timers never fire headless: there the caller drains (bpy.ops.shotpass.wait or runner.drain).
    if not bpy.app.background and not bpy.app.timers.is_registered(drain):
        bpy.app.timers.register(drain, first_interval=TIMER_INTERVAL, persistent=True)


def start(request: JobRequest, kind: str, scene: bpy.types.Scene, plate_kind: str, strip_name: str = "",
          plate_render: Optional[PlateRender] = None) -> Job:
    job = BOARD.start(request, kind, scene.name, plate_kind, strip_name, plate_render=plate_render)
    ensure_timer()
    return job


def ask(scene: bpy.types.Scene, label: str, call: Callable[[], Any], on_result: Callable[[Any], None]) -> Task:
    """Run a quick server call in a thread; its result (or error, as the scene's status) comes back on a drain."""
    scene_name = scene.name
    scene.shotpass.status = f"{label}..."

    def on_error(message: str) -> None:
        target = bpy.data.scenes.get(scene_name)
        if target is not None:
            target.shotpass.status = f"{label}: {message}"
        _failures.append(f"{label}: {message}")
        log(f"{label}: {message}")

    task = BOARD.ask(Task(label, call, on_result, on_error))
    ensure_timer()
    return task


def busy(scene: bpy.types.Scene) -> Optional[Job]:
    """The running job of this scene, if any (for the panel's progress bar)."""
    return next((j for j in BOARD.active if j.scene_name == scene.name), None)


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


@persistent
def on_load_pre(*_args: Any) -> None:
    """Another file is opened: its scenes replace these, so nothing may be wired into them any more."""
    n = BOARD.cancel_all(wait=True)  # no drain will see these jobs again: clean up their plates now
    if n:
        log(f"{n} render(s) of the closed file cancelled (their frames stay on the server)")
    BOARD.jobs.clear()
    BOARD.tasks.clear()


HANDLERS = (("load_pre", on_load_pre),)


def add_handlers() -> None:
    for name, fn in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn not in handlers:
            handlers.append(fn)


def stop_all() -> None:
    BOARD.cancel_all(wait=True)  # disabled: nothing drains these jobs any more
    for name, fn in HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
    if bpy.app.timers.is_registered(drain):
        bpy.app.timers.unregister(drain)
