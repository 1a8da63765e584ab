"""Operators, scriptable as ``bpy.ops.shotpass.*``. Known failures are reported, never raised as tracebacks."""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Set, Tuple

import bpy

from ..core import (
    Job,
    JobRequest,
    PassSettings,
    PlateRender,
    online_access_problem,
    parse_options,
    path_map_problem,
    sequence_pattern,
    version_line,
)
from . import animation, plates, prefs, runner
from . import options as option_fields
from . import scene as blender_scene

Result = Set[str]


class ShotpassProblem(Exception):
    """Anything the user can fix; its message is reported as is."""


def _client_errors() -> tuple:
    from shotpass_client import ClientError
    from shotpass_client.jobs import PlateError

    return (ClientError, PlateError, blender_scene.PlateProblem, ShotpassProblem, ValueError, OSError)


def _server():  # type: ignore[no-untyped-def]
    """The server as the preferences name it (token and TLS files; empty ones from $SHOTPASS_*)."""
    from shotpass_client.connection import Connection

    p = prefs.get()
    address = p.server_address.strip()
    problem = online_access_problem(address, bpy.app.online_access) or path_map_problem(p.path_map)
    if problem:
        raise ShotpassProblem(problem)
    paths = [bpy.path.abspath(f) if f else "" for f in (p.tls_ca, p.tls_cert, p.tls_key)]
    return Connection.resolve(address, p.token, *paths)


def _client():  # type: ignore[no-untyped-def]
    return _server().client(connect_timeout=3.0)


def _settings(scene: bpy.types.Scene) -> PassSettings:
    """The next render's settings: the typed option fields, then the free-text options (they win)."""
    s = scene.shotpass
    opts = {**option_fields.typed_options(s), **parse_options(s.options)}
    return PassSettings(project=s.project, shot=s.shot, pass_name=s.pass_name, model=s.model, prompt=s.prompt,
                        strength=s.strength, seed=s.seed, use_seed=s.use_seed, options=opts)


def _plate_dir(scene: bpy.types.Scene, lane: str) -> str:
    s = scene.shotpass
    return os.path.join(prefs.cache_root(), s.project, s.shot, lane)


Plan = Tuple[Dict[int, str], Optional[PlateRender], str]  # (plate files, render to run first, why it runs)


def rendered_plate(scene: bpy.types.Scene, lane: str, frames: List[int], strip: Optional[bpy.types.Strip] = None,
                   force: bool = False, handles: Sequence[int] = ()) -> Plan:
    """The plate files of a scene (or movie strip) render, its handles included: reused when current, else
    rendered first in a separate Blender process, with the reason it is rendered."""
    s = scene.shotpass
    plate_dir = _plate_dir(scene, lane) if strip is None else os.path.join(
        _plate_dir(scene, lane), bpy.path.clean_name(strip.name))
    stamp = plates.settings(scene, frames, strip, handles)
    rendered = sorted({*frames, *handles})
    files, reason = plates.current_plate(plate_dir, s.shot, stamp, rendered)
    if files and not force:
        return files, None, ""
    job = plates.start_render(scene, plate_dir, s.shot, rendered, stamp, strip)
    return job.plate, job, "asked" if force else reason


def plan_plate(scene: bpy.types.Scene, frame: Optional[int] = None) -> Plan:
    """The plate the settings point at (only `frame` for a preview): a scene render (with its handles, see
    `split_handles`), an image or a strip."""
    s = scene.shotpass
    if s.plate_kind == "IMAGE":
        image = bpy.data.images.get(s.plate_image)
        if image is None:
            raise ShotpassProblem(f"no image named {s.plate_image!r} to use as the plate")
        plate = blender_scene.image_plate(image, scene)
    elif s.plate_kind == "STRIP":
        strip = blender_scene.find_strip(scene, s.plate_strip)
        frames = list(blender_scene.strip_frames(strip))
        if frame is not None and frame not in frames:
            raise ShotpassProblem(f"the plate has no frame {frame} to preview "
                                  f"(strip {strip.name!r} covers {frames[0]}-{frames[-1]})")
        if blender_scene.strip_is_rendered(strip):
            lane = "strip" if frame is None else "preview-strip"
            return rendered_plate(scene, lane, [frame] if frame is not None else frames, strip)
        plate = blender_scene.strip_plate(strip)
    else:
        if frame is not None:
            return rendered_plate(scene, "preview", [frame])
        return rendered_plate(scene, "plate", plates.frames_of(scene), handles=plates.handle_frames(scene))
    if frame is None:
        return plate, None, ""
    if frame not in plate:
        raise ShotpassProblem(f"the plate has no frame {frame} to preview")
    return {frame: plate[frame]}, None, ""


def split_handles(scene: bpy.types.Scene, files: Dict[int, str]) -> Tuple[Dict[int, str], Dict[int, str]]:
    """(the frames to render, the handles around them) of a scene render's plate files."""
    handles = set(plates.handle_frames(scene))
    return ({f: p for f, p in files.items() if f not in handles}, {f: p for f, p in files.items() if f in handles})


def scene_plate(scene: bpy.types.Scene) -> Dict[int, str]:
    """The plate files as they would be sent now (a plate that must be rendered first: its future files)."""
    plate, job, _ = plan_plate(scene)
    if job is not None:
        job.cancel()
    return plate


def _mask(scene: bpy.types.Scene, plate: Dict[int, str]) -> Dict[int, str]:
    s = scene.shotpass
    if s.mask_from_alpha:
        return dict(plate)  # the server reads a mask frame's alpha when it has one
    if not s.mask:
        return {}
    found = sequence_pattern(bpy.path.abspath(s.mask)).existing()
    missing = sorted(set(plate) - set(found))
    if missing:
        raise ShotpassProblem(f"mask {s.mask}: no file for plate frame(s) {missing[:10]}")
    return {f: found[f] for f in plate}


def _plate_paths(plate: Dict[int, str]) -> Optional[Dict[int, str]]:
    """Path mode: plate files under the path map (preference, else $SHOTPASS_PATH_MAP) go as server paths."""
    from shotpass_client.jobs import server_paths
    from shotpass_client.pathmap import PathMap

    text = prefs.get().path_map.strip() or os.environ.get("SHOTPASS_PATH_MAP", "")
    return server_paths(plate, PathMap.parse(text)) if plate else None


def start_job(context: bpy.types.Context, kind: str, parent_render: str = "") -> Job:
    scene = context.scene
    s = scene.shotpass
    conn = _server()
    problem = option_fields.model_problem(s)
    if problem:
        raise ShotpassProblem(problem)
    spec = _settings(scene).spec()
    plate: Dict[int, str] = {}
    plate_job: Optional[PlateRender] = None
    why = ""
    context: Dict[int, str] = {}
    if not parent_render:
        plate, plate_job, why = plan_plate(scene, scene.frame_current if kind == "preview" else None)
        if kind != "preview":  # handles travel as context frames, never as frames to render
            plate, context = split_handles(scene, plate)
    out_dir = runner.job_out_dir(prefs.cache_root(), s.project, s.shot)
    spec.prompt_by_frame, spec.options_by_frame = animation.schedule(
        scene, plate or range(scene.frame_start, scene.frame_end + 1))
    try:
        request = JobRequest(
            server=conn.address, token=conn.token, tls_ca=conn.tls_ca, tls_cert=conn.tls_cert,
            tls_key=conn.tls_key, spec=spec, out_dir=out_dir, plate=plate,
            mask=_mask(scene, plate) if plate else {},
            reference_file=bpy.path.abspath(s.reference) if s.reference else None,
            reference_render=(s.reference_render, s.reference_frame) if s.reference_render and not s.reference
            else None,
            parent_render=parent_render, preview=kind == "preview",
            output_pattern=os.path.join(out_dir, f"{s.shot}.####.exr"), context=context,
        )
        request.plate_paths = _plate_paths(plate)
        request.context_paths = _plate_paths(context) if request.plate_paths else None
    except BaseException:
        if plate_job is not None:
            plate_job.cancel()
        raise
    with_handles = f" with {len(context)} handle(s)" if context else ""
    if plate_job is not None:
        s.status = (f"rendering the plate ({why}), then sending {len(plate)} frame(s){with_handles} to {conn.address}"
                    + "".join(f"; {problem}" for problem in plates.missing_passes(scene)))
    else:
        s.status = f"sending {len(plate) or 'the parent render'} frame(s){with_handles} to {conn.address}"
    plate_kind = s.plate_kind if not parent_render else "RENDER"
    return runner.start(request, kind, scene, plate_kind, s.plate_strip if plate_kind == "STRIP" else "",
                        plate_render=plate_job)


class _Base(bpy.types.Operator):
    bl_options = {"REGISTER"}

    def fail(self, err: BaseException) -> Result:
        self.report({"ERROR"}, str(err))  # Blender prints it when headless; bpy.ops raises it to scripts
        return {"CANCELLED"}


class _Follow:
    """GUI only: a modal operator that shows a job's progress in the status bar until it ends.

    The job itself runs on without it (bpy.app.timers drains the queues); Esc is left to playback and
    every other tool (cancel with the panel's Cancel button), and `cancel()` cleans up when Blender ends
    the operator itself, e.g. when another file is opened.
    """

    _job: Optional[Job] = None
    _timer = None

    def follow(self, context: bpy.types.Context, job: Job) -> Result:
        if bpy.app.background or context.window is None:
            return {"FINISHED"}
        self._job = job
        wm = context.window_manager
        self._timer = wm.event_timer_add(runner.TIMER_INTERVAL, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        job = self._job
        if event.type != "TIMER" or job is None:
            return {"PASS_THROUGH"}
        runner.drain()
        if context.workspace is not None:
            context.workspace.status_text_set(f"shotpass {job.kind} {job.state}: {job.message} "
                                              f"({int(job.fraction * 100)}%)")
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()  # the panel's progress bar
        if not job.finished:
            return {"PASS_THROUGH"}
        self._end(context)
        if job.failed:
            self.report({"ERROR"}, job.message)  # type: ignore[attr-defined]
            return {"CANCELLED"}
        self.report({"INFO"}, context.scene.shotpass.status)  # type: ignore[attr-defined]
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        self._end(context)

    def _end(self, context: bpy.types.Context) -> None:
        try:
            if self._timer is not None:
                context.window_manager.event_timer_remove(self._timer)
            if context.workspace is not None:
                context.workspace.status_text_set(None)
        except (ReferenceError, AttributeError):
            pass  # the window is already gone (file closed)
        self._timer = None
        self._job = None


class SHOTPASS_OT_render_plate(_Follow, _Base):
    """Render the scene's frame range to EXR as the plate, in a separate Blender process (the UI stays live)"""

    bl_idname = "shotpass.render_plate"
    bl_label = "Render Plate to EXR"
    bl_options = {"REGISTER", "UNDO"}

    def _start(self, context: bpy.types.Context) -> Optional[Job]:
        scene = context.scene
        s = scene.shotpass
        try:
            plate, plate_job, _ = rendered_plate(scene, "plate", plates.frames_of(scene), force=True,
                                                 handles=plates.handle_frames(scene))
        except _client_errors() as err:
            self.fail(err)
            return None
        assert plate_job is not None
        s.plate_kind = "RENDER"
        s.plate_pattern = os.path.join(plate_job.plate_dir, f"{s.shot}.####.exr")
        s.status = f"rendering the plate: {len(plate)} frames into {s.plate_pattern}" + "".join(
            f"; {problem}" for problem in plates.missing_passes(scene))
        return runner.start(None, "plate", scene, "RENDER", plate_render=plate_job)

    def execute(self, context: bpy.types.Context) -> Result:
        return {"FINISHED"} if self._start(context) is not None else {"CANCELLED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        job = self._start(context)
        return self.follow(context, job) if job is not None else {"CANCELLED"}


class SHOTPASS_OT_use_plate(_Base):
    """Use an image (sequence) or a sequencer strip as the plate instead of a scene render"""

    bl_idname = "shotpass.use_plate"
    bl_label = "Use as Plate"
    bl_options = {"REGISTER", "UNDO"}

    kind: bpy.props.EnumProperty(items=[("IMAGE", "Image", ""), ("STRIP", "Strip", "")])  # type: ignore[valid-type]
    name: bpy.props.StringProperty(description="Image or strip name (empty strip: the active strip)")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        s = scene.shotpass
        try:
            if self.kind == "IMAGE":
                image = bpy.data.images.get(self.name)
                if image is None:
                    raise ShotpassProblem(f"no image named {self.name!r}")
                plate = blender_scene.image_plate(image, scene)
                s.plate_image = image.name
            else:
                strip = blender_scene.find_strip(scene, self.name)
                if blender_scene.strip_is_rendered(strip):  # rendered to EXR when it is sent, not now
                    frames = list(blender_scene.strip_frames(strip))
                    plate = dict.fromkeys(frames, "")
                else:
                    plate = blender_scene.strip_plate(strip)
                s.plate_strip = strip.name
        except _client_errors() as err:
            return self.fail(err)
        s.plate_kind = self.kind
        self.report({"INFO"}, f"plate: {len(plate)} frames ({min(plate)}-{max(plate)})")
        return {"FINISHED"}


class _SubmitBase(_Follow, _Base):
    """Shared by submit, preview and edit_render (a registered operator class must not be subclassed)."""

    parent_render: bpy.props.StringProperty(  # type: ignore[valid-type]
        description="Chain: use this render's outputs as the input (nothing is uploaded again)")
    kind = "render"

    def parent(self, context: bpy.types.Context) -> str:
        return self.parent_render

    def begin(self, context: bpy.types.Context) -> Optional[Job]:
        try:
            return start_job(context, self.kind, self.parent(context))
        except _client_errors() as err:
            self.fail(err)
            return None

    def execute(self, context: bpy.types.Context) -> Result:
        job = self.begin(context)
        if job is None:
            return {"CANCELLED"}
        self.report({"INFO"}, f"shotpass: {self.kind} started (drain with bpy.ops.shotpass.wait() when headless)")
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> Result:
        job = self.begin(context)
        return self.follow(context, job) if job is not None else {"CANCELLED"}


class SHOTPASS_OT_submit(_SubmitBase):
    """Send the plate to the server and run the pass; the results come back into the compositor and sequencer"""

    bl_idname = "shotpass.submit"
    bl_label = "Submit Render"


class SHOTPASS_OT_preview(_SubmitBase):
    """Render the current frame on the server's preview lane and show it in an Image editor"""

    bl_idname = "shotpass.preview"
    bl_label = "Preview Frame"
    kind = "preview"


class SHOTPASS_OT_edit_render(_SubmitBase):
    """Edit this Render: run the current settings on a finished render's outputs (by reference)"""

    bl_idname = "shotpass.edit_render"
    bl_label = "Edit this Render"

    def parent(self, context: bpy.types.Context) -> str:
        parent = self.parent_render or context.scene.shotpass.last_render_id
        if not parent:
            raise ShotpassProblem("no finished render to edit yet")
        return parent


class SHOTPASS_OT_wait(_Base):
    """Headless: apply job updates until every job has ended (timers never fire in background mode)"""

    bl_idname = "shotpass.wait"
    bl_label = "Wait for Renders"

    timeout: bpy.props.FloatProperty(default=3600.0, min=0.0)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        if not runner.wait(self.timeout):
            return self.fail(ShotpassProblem(f"renders still running after {self.timeout:g} s"))
        failures = runner.take_failures()
        if failures:
            self.report({"ERROR"}, "; ".join(failures))
            return {"CANCELLED"}
        self.report({"INFO"}, context.scene.shotpass.status)
        return {"FINISHED"}


class SHOTPASS_OT_cancel(_Base):
    """Cancel the running renders (frames already finished stay on the server)"""

    bl_idname = "shotpass.cancel"
    bl_label = "Cancel Renders"

    def execute(self, context: bpy.types.Context) -> Result:
        n = runner.BOARD.cancel_all()
        self.report({"INFO"}, f"cancelling {n} render(s)")
        return {"FINISHED"}


def fill_versions(scene_name: str, renders: list) -> None:
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    s = scene.shotpass
    # The list is rebuilt; the selection follows its render's id, not its row (the server lists a shot's newest
    # renders, so an old one can drop off the top and move every row).
    selected = s.versions[s.versions_index].render_id if 0 <= s.versions_index < len(s.versions) else ""
    s.versions.clear()
    for r in sorted(renders, key=lambda r: r.version):
        item = s.versions.add()
        fill_version(item, r)
    ids = [v.render_id for v in s.versions]
    if selected in ids:
        s.versions_index = ids.index(selected)
    s.status = f"{len(renders)} version(s) of {s.project}/{s.shot}"
    runner.undo_step("shotpass: versions")


def fill_version(item: object, r: object) -> None:
    """One row of the version browser from a server render: state, review, lineage and QC."""
    from shotpass_client.ui_model import STATE_NAMES, qc_line, render_summary

    failed = sum(1 for f in r.frames if f.error)  # type: ignore[attr-defined]
    item.render_id, item.line, item.version = r.id, version_line(r), r.version  # type: ignore[attr-defined]
    item.lane, item.state = r.lane or "render", STATE_NAMES.get(r.state, "unknown")  # type: ignore[attr-defined]
    review = r.review  # type: ignore[attr-defined]
    item.rating, item.pinned, item.approved, item.note = review.rating, review.pinned, review.approved, review.note  # type: ignore[attr-defined]
    item.parent, item.model = r.parent_render, f"{r.settings.pass_name}/{r.settings.model}"  # type: ignore[attr-defined]
    flicker = qc_line(render_summary(r))  # type: ignore[arg-type]
    item.qc = (f"{r.frames_done}/{r.frames_total} frames"  # type: ignore[attr-defined]
               + (f", {failed} failed" if failed else "")
               + (f", {len(r.warnings)} warning(s)" if r.warnings else "")  # type: ignore[attr-defined]
               + (f", {flicker}" if flicker else ""))
    item.warnings = "\n".join(r.warnings)  # type: ignore[attr-defined]


class SHOTPASS_OT_list_versions(_Base):
    """List the shot's renders with state, rating, pin, lineage and QC (asked in the background)"""

    bl_idname = "shotpass.list_versions"
    bl_label = "List Versions"

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        s = scene.shotpass
        try:
            conn = _server()
        except _client_errors() as err:
            return self.fail(err)
        project, shot, name = s.project, s.shot, scene.name

        def call() -> list:
            with conn.client(connect_timeout=3.0) as client:
                return list(client.list_renders(project, shot))

        runner.ask(scene, f"listing the versions of {project}/{shot}", call, lambda rs: fill_versions(name, rs))
        return {"FINISHED"}


class SHOTPASS_OT_reuse_settings(_Base):
    """Copy a render's settings (pass, model, prompt, options, seed) into this scene"""

    bl_idname = "shotpass.reuse_settings"
    bl_label = "Reuse Settings"
    bl_options = {"REGISTER", "UNDO"}

    render_id: bpy.props.StringProperty(description="Empty: the last render")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        s = context.scene.shotpass
        try:
            with _client() as client:
                got = PassSettings.from_render(client.get_render(self.render_id or s.last_render_id))
        except _client_errors() as err:
            return self.fail(err)
        s.pass_name, s.model, s.prompt, s.strength = got.pass_name, got.model, got.prompt, got.strength
        s.seed, s.use_seed = got.seed, got.use_seed
        s.options = ", ".join(f"{k}={v}" for k, v in sorted(got.options.items()))
        self.report({"INFO"}, f"settings of {self.render_id or s.last_render_id} copied")
        return {"FINISHED"}


def _update_version(scene_name: str, render: object, message: str) -> None:
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    s = scene.shotpass
    for item in s.versions:
        if item.render_id == render.id:  # type: ignore[attr-defined]
            fill_version(item, render)
    s.status = message
    runner.undo_step("shotpass: review")


def _selected_render(context: bpy.types.Context, given: str, fallback: str) -> str:
    s = context.scene.shotpass
    if given:
        return given
    if 0 <= s.versions_index < len(s.versions):
        return s.versions[s.versions_index].render_id
    return fallback


class SHOTPASS_OT_job_control(_Base):
    """Suspend, resume, or requeue the failed frames of a render (sent in the background)"""

    bl_idname = "shotpass.job_control"
    bl_label = "Job Control"

    action: bpy.props.EnumProperty(  # type: ignore[valid-type]
        items=[("SUSPEND", "Suspend", "start no more frames (a running one finishes) until resumed"),
               ("RESUME", "Resume", "go on with a suspended render"),
               ("REQUEUE", "Requeue Failed", "render the failed and cancelled frames again (finished ones are kept)")])
    render_id: bpy.props.StringProperty(  # type: ignore[valid-type]
        description="Empty: the running render, else the version selected in the browser, else the last render")

    def execute(self, context: bpy.types.Context) -> Result:
        from shotpass_client.background import control_render

        scene = context.scene
        running = runner.busy(scene)
        render_id = self.render_id or (running.render_id if running is not None else "") or _selected_render(
            context, "", scene.shotpass.last_render_id)
        if not render_id:
            return self.fail(ShotpassProblem("no render yet: submit one first"))
        try:
            conn = _server()
        except _client_errors() as err:
            return self.fail(err)
        action, name = self.action.lower(), scene.name

        def call() -> tuple:
            with conn.client(connect_timeout=3.0) as client:
                return control_render(client, render_id, action)

        # A running job keeps watching its render; a requeued version is loaded with Load Version once it ends.
        runner.ask(scene, f"{action} {render_id}", call, lambda result: _update_version(name, *result))
        return {"FINISHED"}


class SHOTPASS_OT_review(_Base):
    """Rate, pin, approve or annotate a render (only what is given changes; sent in the background)"""

    bl_idname = "shotpass.review"
    bl_label = "Review Render"

    render_id: bpy.props.StringProperty(description="Empty: the version selected in the browser, else the last render")  # type: ignore[valid-type]
    rating: bpy.props.IntProperty(min=-1, max=5, default=-1, description="-1: unchanged")  # type: ignore[valid-type]
    pinned: bpy.props.EnumProperty(  # type: ignore[valid-type]
        items=[("KEEP", "Unchanged", ""), ("PIN", "Pin", ""), ("UNPIN", "Unpin", "")], default="KEEP")
    note: bpy.props.StringProperty(description="Review note (not given: unchanged; empty: cleared)")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        render_id = _selected_render(context, self.render_id, scene.shotpass.last_render_id)
        if not render_id:
            return self.fail(ShotpassProblem("no render to review yet"))
        try:
            conn = _server()
        except _client_errors() as err:
            return self.fail(err)
        rating = self.rating if self.rating >= 0 else None
        pinned = None if self.pinned == "KEEP" else self.pinned == "PIN"
        note = self.note if self.properties.is_property_set("note") else None
        name = scene.name

        def call() -> object:
            with conn.client(connect_timeout=3.0) as client:
                return client.review(render_id, rating=rating, pinned=pinned, note=note)

        def done(r: object) -> None:
            review = r.review  # type: ignore[attr-defined]
            _update_version(name, r, f"render {render_id}: rating {review.rating}, "
                                     f"{'pinned' if review.pinned else 'not pinned'}, note {review.note!r}")

        runner.ask(scene, f"reviewing {render_id}", call, done)
        return {"FINISHED"}


class SHOTPASS_OT_approve_reference(_Base):
    """Approve a preview and use its frame as the reference that steers the shot's next renders"""

    bl_idname = "shotpass.approve_reference"
    bl_label = "Approve as Reference"
    bl_options = {"REGISTER", "UNDO"}

    render_id: bpy.props.StringProperty(description="Empty: the selected version, else the last preview")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        render_id = _selected_render(context, self.render_id, scene.shotpass.last_preview_id)
        if not render_id:
            return self.fail(ShotpassProblem("no preview to approve yet"))
        try:
            conn = _server()
        except _client_errors() as err:
            return self.fail(err)
        name = scene.name

        def call() -> object:
            with conn.client(connect_timeout=3.0) as client:
                return client.review(render_id, approved=True)

        def done(r: object) -> None:
            target = bpy.data.scenes.get(name)
            if target is None:
                return
            frames = [f.frame for f in r.frames if f.output_digest]  # type: ignore[attr-defined]
            target.shotpass.reference_render = render_id
            target.shotpass.reference_frame = frames[0] if len(frames) == 1 else 0
            target.shotpass.reference = ""  # the approved frame replaces a reference file
            _update_version(name, r, f"render {render_id} approved: the shot's reference from now on")
            runner.undo_step("shotpass: approve reference")

        runner.ask(scene, f"approving {render_id}", call, done)
        return {"FINISHED"}


class SHOTPASS_OT_load_version(_Base):
    """Bring any version of the shot back into the scene (fetched in the background)"""

    bl_idname = "shotpass.load_version"
    bl_label = "Load Version"

    render_id: bpy.props.StringProperty(description="Empty: the version selected in the browser")  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        from shotpass_client.background import DONE, JobUpdate
        from shotpass_client.jobs import fetch_outputs

        scene = context.scene
        s = scene.shotpass
        render_id = _selected_render(context, self.render_id, "")
        if not render_id:
            return self.fail(ShotpassProblem("select a version to load"))
        try:
            conn = _server()
        except _client_errors() as err:
            return self.fail(err)
        out_dir = runner.job_out_dir(prefs.cache_root(), s.project, s.shot)
        shot, name = s.shot, scene.name

        def call() -> tuple:
            from shotpass_client.patterns import FramePattern

            with conn.client(connect_timeout=3.0) as client:
                render = client.get_render(render_id)
                pattern = FramePattern.parse(os.path.join(out_dir, f"{shot}.####.exr"))
                return render, fetch_outputs(client, render, out_dir, pattern)

        def done(result: tuple) -> None:
            render, outputs = result
            if not outputs:
                runner.fail_message(name, f"render {render_id} has no finished frames to load")
                return
            kind = "preview" if render.lane == "preview" else "render"
            job = Job(kind, None, name, "RENDER", render_id=render_id, outputs=dict(outputs), finished=True)
            runner.on_done(job, JobUpdate(DONE, f"render {render_id} loaded: {len(outputs)} frames", render_id,
                                          outputs=dict(outputs), render=render))

        runner.ask(scene, f"loading {render_id}", call, done)
        return {"FINISHED"}


def apply_server_info(scene_name: str, info: object) -> None:
    """ListModels/ServerInfo arrived: the pass and model menus and the typed options follow it."""
    scene = bpy.data.scenes.get(scene_name)
    if scene is None:
        return
    s = scene.shotpass
    option_fields.set_server_info(info)
    option_fields.fill_menus(s, info)
    problem = option_fields.sync(s)
    s.status = problem or (f"{len(s.server_models)} model(s) from the server; "
                           f"{len(s.option_values)} option(s) of {s.model or s.pass_name!r}")
    runner.undo_step("shotpass: model options")


class SHOTPASS_OT_load_options(_Base):
    """Ask the server for its passes, models and their options (in the background; fills the menus)"""

    bl_idname = "shotpass.load_options"
    bl_label = "Load Model Options"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        try:
            conn = _server()
        except _client_errors() as err:
            return self.fail(err)
        name = scene.name

        def call() -> object:
            with conn.client(connect_timeout=3.0) as client:
                return client.server_info()

        runner.ask(scene, "loading the server's models", call, lambda info: apply_server_info(name, info))
        return {"FINISHED"}


class SHOTPASS_OT_connect_result(_Base):
    """Connect the result node to the compositor's output (F12 then shows the result), or disconnect it"""

    bl_idname = "shotpass.connect_result"
    bl_label = "Result Drives Compositor"
    bl_options = {"REGISTER", "UNDO"}

    connect: bpy.props.BoolProperty(default=True)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        scene = context.scene
        s = scene.shotpass
        s.drive_compositor = self.connect
        node = blender_scene.result_node(scene)
        if node is None or node.image is None:
            return self.fail(ShotpassProblem("no result in the compositor yet"))
        if self.connect:
            if not blender_scene.connect_result(scene):
                return self.fail(ShotpassProblem("the compositor output is fed by another node: connect it by hand"))
        else:
            blender_scene.disconnect_result(scene)
        return {"FINISHED"}


class SHOTPASS_OT_prompt_key(_Base):
    """Add a prompt key at the current frame (the prompt from here on), or remove the key of this frame"""

    bl_idname = "shotpass.prompt_key"
    bl_label = "Prompt Key"
    bl_options = {"REGISTER", "UNDO"}

    remove: bpy.props.BoolProperty(default=False)  # type: ignore[valid-type]

    def execute(self, context: bpy.types.Context) -> Result:
        s = context.scene.shotpass
        frame = context.scene.frame_current
        index = next((i for i, k in enumerate(s.prompt_keys) if k.frame == frame), -1)
        if self.remove:
            if index < 0:
                return self.fail(ShotpassProblem(f"no prompt key on frame {frame}"))
            s.prompt_keys.remove(index)
            return {"FINISHED"}
        key = s.prompt_keys[index] if index >= 0 else s.prompt_keys.add()
        key.frame, key.prompt = frame, s.prompt
        return {"FINISHED"}


CLASSES = (
    SHOTPASS_OT_prompt_key,
    SHOTPASS_OT_approve_reference,
    SHOTPASS_OT_load_version,
    SHOTPASS_OT_connect_result,
    SHOTPASS_OT_render_plate, SHOTPASS_OT_use_plate, SHOTPASS_OT_submit, SHOTPASS_OT_preview,
    SHOTPASS_OT_edit_render, SHOTPASS_OT_wait, SHOTPASS_OT_cancel, SHOTPASS_OT_list_versions,
    SHOTPASS_OT_reuse_settings, SHOTPASS_OT_review, SHOTPASS_OT_job_control, SHOTPASS_OT_load_options,
)
