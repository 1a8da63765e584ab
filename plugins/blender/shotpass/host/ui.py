"""The sidebar panel (3D view, sequencer and compositor: Shotpass tab)."""

from __future__ import annotations

import bpy


class _ShotpassPanel:
    bl_region_type = "UI"
    bl_category = "Shotpass"
    bl_label = "shotpass"

    def draw(self, context: bpy.types.Context) -> None:
        s = context.scene.shotpass
        layout = self.layout
        col = layout.column()
        for prop in ("project", "shot", "plate_kind"):
            col.prop(s, prop)
        if s.plate_kind == "IMAGE":
            col.prop_search(s, "plate_image", bpy.data, "images")
        elif s.plate_kind == "STRIP":
            col.prop(s, "plate_strip")
        else:
            col.operator("shotpass.render_plate", icon="RENDER_ANIMATION")
        for prop in ("pass_name", "model", "prompt", "strength", "use_seed", "seed", "options", "reference",
                     "mask", "mask_from_alpha"):
            col.prop(s, prop)
        col.operator("shotpass.load_options", icon="PRESET")
        row = col.row(align=True)
        row.operator("shotpass.preview", icon="IMAGE_DATA")
        row.operator("shotpass.submit", icon="PLAY")
        row = col.row(align=True)
        row.operator("shotpass.edit_render", icon="NODETREE")
        row.operator("shotpass.reuse_settings", icon="DUPLICATE")
        row.operator("shotpass.cancel", icon="CANCEL")
        if s.status:
            col.label(text=s.status)
        col.operator("shotpass.list_versions", icon="SORTTIME")
        for v in s.versions:
            col.label(text=v.line)


class SHOTPASS_PT_view3d(_ShotpassPanel, bpy.types.Panel):
    bl_space_type = "VIEW_3D"


class SHOTPASS_PT_sequencer(_ShotpassPanel, bpy.types.Panel):
    bl_space_type = "SEQUENCE_EDITOR"


class SHOTPASS_PT_nodes(_ShotpassPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"


CLASSES = (SHOTPASS_PT_view3d, SHOTPASS_PT_sequencer, SHOTPASS_PT_nodes)
