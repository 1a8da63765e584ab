"""The sidebar panel (3D view, sequencer and compositor: Shotpass tab) and its version browser."""

from __future__ import annotations

import bpy

from . import options, plates, runner


class SHOTPASS_UL_versions(bpy.types.UIList):
    """The shot's renders: version, lane, state, rating, pin, approval and lineage in one row."""

    def draw_item(self, context: bpy.types.Context, layout: bpy.types.UILayout, data: object, item: object,
                  icon: int, active_data: object, active_propname: str, index: int = 0) -> None:
        v = item
        row = layout.row(align=True)
        state_icon = {"finished": "CHECKMARK", "failed": "ERROR", "cancelled": "CANCEL", "running": "RENDER_ANIMATION",
                      "queued": "TIME"}.get(v.state, "DOT")  # type: ignore[attr-defined]
        row.label(text=f"v{v.version:03d} {v.lane}", icon=state_icon)  # type: ignore[attr-defined]
        row.label(text="*" * v.rating or "-")  # type: ignore[attr-defined]
        if v.pinned:  # type: ignore[attr-defined]
            row.label(text="", icon="PINNED")
        if v.approved:  # type: ignore[attr-defined]
            row.label(text="", icon="SOLO_ON")
        if v.warnings:  # type: ignore[attr-defined]
            row.label(text="", icon="ERROR")
        if v.parent:  # type: ignore[attr-defined]
            row.label(text=f"<- {v.parent[:8]}")  # type: ignore[attr-defined]


def draw_progress(layout: bpy.types.UILayout, scene: bpy.types.Scene) -> None:
    job = runner.busy(scene)
    if job is None:
        return
    text = f"{job.kind} {job.state}" + (f": {job.message}" if job.message else "")
    if hasattr(layout, "progress"):  # Blender 4.0+; kept guarded for builds without it
        layout.progress(factor=job.fraction, type="BAR", text=text)
    else:
        layout.label(text=f"{int(job.fraction * 100)}% {text}", icon="TIME")
    row = layout.row(align=True)
    row.operator("shotpass.cancel", icon="CANCEL")
    row.operator("shotpass.job_control", text="Suspend", icon="PAUSE").action = "SUSPEND"
    row.operator("shotpass.job_control", text="Resume", icon="PLAY").action = "RESUME"


def draw_options(layout: bpy.types.UILayout, s: object) -> None:
    box = layout.box()
    row = box.row()
    row.label(text="Options")
    row.prop(s, "show_option_help", text="", icon="QUESTION")
    for o in s.option_values:  # type: ignore[attr-defined]
        box.prop(o, f"{o.kind.lower()}_value", text=o.name.replace("_", " "))
        if s.show_option_help:  # type: ignore[attr-defined]
            box.label(text=f"{o.description} (default {o.default})")
    box.prop(s, "options", text="Extra")


def draw_handles(layout: bpy.types.UILayout, s: object) -> None:
    """The Handles field, for video models (or while the server's model list is unknown); for a model that
    renders frame by frame, only a note when handles are set, since it reads none of them."""
    video = options.reads_handles(s)
    if video is False:
        if s.handles:  # type: ignore[attr-defined]
            layout.label(text=f"Handles {s.handles}: {s.model or 'this model'} renders frame by frame and "  # type: ignore[attr-defined]
                              "reads none", icon="INFO")
        return
    layout.prop(s, "handles")
    if s.handles and s.plate_kind != "RENDER":  # type: ignore[attr-defined]
        layout.label(text="Handles are rendered with a Scene Render plate only", icon="INFO")


def draw_versions(layout: bpy.types.UILayout, s: object) -> None:
    box = layout.box()
    row = box.row()
    row.label(text="Versions")
    row.operator("shotpass.list_versions", text="", icon="FILE_REFRESH")
    box.template_list("SHOTPASS_UL_versions", "", s, "versions", s, "versions_index", rows=4)
    if not (0 <= s.versions_index < len(s.versions)):  # type: ignore[attr-defined]
        return
    v = s.versions[s.versions_index]  # type: ignore[attr-defined]
    col = box.column(align=True)
    col.label(text=f"{v.render_id}  {v.state}  {v.model}")
    col.label(text=f"QC: {v.qc}")
    if v.parent:
        col.label(text=f"from {v.parent}")
    for warning in filter(None, v.warnings.split("\n")):
        col.label(text=warning, icon="ERROR")
    row = box.row(align=True)
    row.operator("shotpass.load_version", icon="IMPORT").render_id = v.render_id
    if v.lane == "render" and v.state in ("queued", "running"):
        op = row.operator("shotpass.job_control", text="Suspend", icon="PAUSE")
        op.action, op.render_id = "SUSPEND", v.render_id
    if v.state == "suspended":
        op = row.operator("shotpass.job_control", text="Resume", icon="PLAY")
        op.action, op.render_id = "RESUME", v.render_id
    if v.lane == "render" and (v.state in ("failed", "cancelled") or "failed" in v.qc):
        op = row.operator("shotpass.job_control", text="Requeue Failed", icon="FILE_REFRESH")
        op.action, op.render_id = "REQUEUE", v.render_id
    if v.lane == "preview":
        row.operator("shotpass.approve_reference", icon="SOLO_ON").render_id = v.render_id
    row = box.row(align=True)
    for n in range(1, 6):
        op = row.operator("shotpass.review", text="*" * n, depress=v.rating == n)
        op.render_id, op.rating = v.render_id, n
    op = row.operator("shotpass.review", text="", icon="UNPINNED" if v.pinned else "PINNED")
    op.render_id, op.pinned = v.render_id, "UNPIN" if v.pinned else "PIN"
    row = box.row(align=True)
    row.prop(v, "note", text="Note")
    op = row.operator("shotpass.review", text="", icon="CHECKMARK")
    op.render_id, op.note = v.render_id, v.note


class _ShotpassPanel:
    bl_region_type = "UI"
    bl_category = "Shotpass"
    bl_label = "shotpass"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.shotpass
        layout = self.layout
        col = layout.column()
        col.prop(s, "project")
        col.prop(s, "shot")
        row = col.row(align=True)
        row.prop(s, "plate_kind")
        if s.plate_kind == "IMAGE":
            col.prop_search(s, "plate_image", bpy.data, "images")
        elif s.plate_kind == "STRIP":
            col.prop(s, "plate_strip")
        else:
            col.operator("shotpass.render_plate", icon="RENDER_ANIMATION")
            for problem in plates.missing_passes(context.scene):  # never drop an enabled pass silently
                col.label(text=problem, icon="ERROR")
        # Pass and model: menus of what the server offers (typed in when it was never asked).
        row = col.row(align=True)
        if len(s.server_passes):
            row.prop_search(s, "pass_name", s, "server_passes")
        else:
            row.prop(s, "pass_name")
        row.operator("shotpass.load_options", text="", icon="FILE_REFRESH")
        if len(s.server_models):
            col.prop_search(s, "model", s, "server_models")
        else:
            col.prop(s, "model")
        draw_handles(col, s)
        row = col.row(align=True)
        row.prop(s, "prompt")
        row.operator("shotpass.prompt_key", text="", icon="KEYFRAME_HLT")
        for key in sorted(s.prompt_keys, key=lambda k: k.frame):
            row = col.row(align=True)
            row.label(text=f"{key.frame}: {key.prompt}", icon="KEYFRAME")
        for prop in ("strength", "use_seed", "seed", "reference", "mask", "mask_from_alpha"):
            col.prop(s, prop)
        if s.reference_render:
            row = col.row(align=True)
            row.label(text=f"Reference: {s.reference_render} frame {s.reference_frame}", icon="SOLO_ON")
            row.prop(s, "reference_render", text="")
        draw_options(col, s)
        row = col.row(align=True)
        row.operator("shotpass.preview", icon="IMAGE_DATA")
        row.operator("shotpass.submit", icon="PLAY")
        row = col.row(align=True)
        row.operator("shotpass.edit_render", icon="NODETREE")
        row.operator("shotpass.reuse_settings", icon="DUPLICATE")
        row = col.row(align=True)
        row.operator("shotpass.connect_result", text="Result Drives Compositor",
                     depress=s.drive_compositor).connect = not s.drive_compositor
        draw_progress(col, context.scene)
        if s.status:
            col.label(text=s.status)
        draw_versions(col, s)


class SHOTPASS_PT_view3d(_ShotpassPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class SHOTPASS_PT_sequencer(_ShotpassPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"


class SHOTPASS_PT_nodes(_ShotpassPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"


CLASSES = (SHOTPASS_UL_versions, SHOTPASS_PT_view3d, SHOTPASS_PT_sequencer, SHOTPASS_PT_nodes)
