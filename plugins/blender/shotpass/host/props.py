"""Per-scene settings of the next render, and the versions list."""

from __future__ import annotations

import bpy

PLATE_KINDS = [
    ("RENDER", "Scene Render", "Render the scene's frame range to EXR and send it"),
    ("IMAGE", "Image", "An image or image sequence datablock"),
    ("STRIP", "Sequencer Strip", "An image-sequence strip, or a movie strip rendered to EXR through the sequencer"),
]


class ShotpassVersion(bpy.types.PropertyGroup):
    render_id: bpy.props.StringProperty()  # type: ignore[valid-type]
    line: bpy.props.StringProperty()  # type: ignore[valid-type]


class ShotpassSceneSettings(bpy.types.PropertyGroup):
    project: bpy.props.StringProperty(name="Project", default="blender")  # type: ignore[valid-type]
    shot: bpy.props.StringProperty(name="Shot", default="shot")  # type: ignore[valid-type]
    pass_name: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Pass", description="stylize, inpaint or upscale (empty: the model's pass)", default="stylize")
    model: bpy.props.StringProperty(name="Model", description="Empty: the pass's default model")  # type: ignore[valid-type]
    prompt: bpy.props.StringProperty(name="Prompt", description="Describe the result")  # type: ignore[valid-type]
    strength: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Strength", default=-1.0, min=-1.0, max=1.0, description="Below 0: the model's default")
    seed: bpy.props.IntProperty(name="Seed", default=0, min=0)  # type: ignore[valid-type]
    use_seed: bpy.props.BoolProperty(name="Fixed Seed", default=False)  # type: ignore[valid-type]
    options: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Options", description='Model options: JSON ({"style": "mosaic"}) or key=value, key=value')
    reference: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Reference", subtype="FILE_PATH", description="Style/keyframe reference image")
    mask: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Mask", subtype="FILE_PATH", description="One file of a mask image sequence (frame numbers match)")
    mask_from_alpha: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Mask from Plate Alpha", default=False)
    plate_kind: bpy.props.EnumProperty(name="Plate", items=PLATE_KINDS, default="RENDER")  # type: ignore[valid-type]
    plate_image: bpy.props.StringProperty(name="Image")  # type: ignore[valid-type]
    plate_strip: bpy.props.StringProperty(name="Strip")  # type: ignore[valid-type]
    plate_pattern: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Plate Files", description="The last rendered plate (####: frame number)")
    last_render_id: bpy.props.StringProperty(name="Last Render")  # type: ignore[valid-type]
    last_preview_id: bpy.props.StringProperty(name="Last Preview")  # type: ignore[valid-type]
    drive_compositor: bpy.props.BoolProperty(  # type: ignore[valid-type]
        name="Result Drives Compositor", default=False,
        description="Connect the result node to the compositor's output (F12 then shows the result)")
    status: bpy.props.StringProperty(name="Status")  # type: ignore[valid-type]
    versions: bpy.props.CollectionProperty(type=ShotpassVersion)  # type: ignore[valid-type]
    versions_index: bpy.props.IntProperty()  # type: ignore[valid-type]
