"""Per-scene settings of the next render, and the versions list."""

from __future__ import annotations

import bpy

PLATE_KINDS = [
    ("RENDER", "Scene Render", "Render the scene's frame range to EXR and send it"),
    ("IMAGE", "Image", "An image or image sequence datablock"),
    ("STRIP", "Sequencer Strip", "An image-sequence strip, or a movie strip rendered to EXR through the sequencer"),
]


class ShotpassVersion(bpy.types.PropertyGroup):
    """One render of the shot as the server reported it (the version browser's rows)."""

    render_id: bpy.props.StringProperty()  # type: ignore[valid-type]
    line: bpy.props.StringProperty()  # type: ignore[valid-type]
    version: bpy.props.IntProperty()  # type: ignore[valid-type]
    lane: bpy.props.StringProperty()  # type: ignore[valid-type]
    state: bpy.props.StringProperty()  # type: ignore[valid-type]
    rating: bpy.props.IntProperty(min=0, max=5)  # type: ignore[valid-type]
    pinned: bpy.props.BoolProperty()  # type: ignore[valid-type]
    approved: bpy.props.BoolProperty()  # type: ignore[valid-type]
    note: bpy.props.StringProperty()  # type: ignore[valid-type]
    parent: bpy.props.StringProperty()  # type: ignore[valid-type]
    model: bpy.props.StringProperty()  # type: ignore[valid-type]
    qc: bpy.props.StringProperty(description="Frames done/total, failed frames, warnings")  # type: ignore[valid-type]
    warnings: bpy.props.StringProperty()  # type: ignore[valid-type]


class ShotpassNamed(bpy.types.PropertyGroup):
    """A pass or model the server offers (menus of the panel; kept in the file for when it is offline)."""

    description: bpy.props.StringProperty()  # type: ignore[valid-type]
    pass_name: bpy.props.StringProperty()  # type: ignore[valid-type]
    # A video model (ListModels' reads_context_frames): it reads handles around the range.
    reads_context: bpy.props.BoolProperty()  # type: ignore[valid-type]


def _choices(self: ShotpassOption, context: object) -> list:
    from . import options

    return options.choice_items(self)


class ShotpassOption(bpy.types.PropertyGroup):
    """One model option, typed as the server's schema says (its default and help travel with it)."""

    kind: bpy.props.EnumProperty(items=[(k, k.title(), "") for k in ("STRING", "INT", "FLOAT", "BOOL", "CHOICE")])  # type: ignore[valid-type]
    description: bpy.props.StringProperty()  # type: ignore[valid-type]
    default: bpy.props.StringProperty()  # type: ignore[valid-type]
    choices: bpy.props.StringProperty(description="Choices, one per line")  # type: ignore[valid-type]
    has_min: bpy.props.BoolProperty()  # type: ignore[valid-type]
    has_max: bpy.props.BoolProperty()  # type: ignore[valid-type]
    minimum: bpy.props.FloatProperty()  # type: ignore[valid-type]
    maximum: bpy.props.FloatProperty()  # type: ignore[valid-type]
    string_value: bpy.props.StringProperty(name="Value")  # type: ignore[valid-type]
    int_value: bpy.props.IntProperty(name="Value")  # type: ignore[valid-type]
    float_value: bpy.props.FloatProperty(name="Value")  # type: ignore[valid-type]
    bool_value: bpy.props.BoolProperty(name="Value")  # type: ignore[valid-type]
    choice_value: bpy.props.EnumProperty(name="Value", items=_choices)  # type: ignore[valid-type]


class ShotpassPromptKey(bpy.types.PropertyGroup):
    """The prompt from this frame on, up to the next key (Blender cannot keyframe text)."""

    frame: bpy.props.IntProperty(name="Frame")  # type: ignore[valid-type]
    prompt: bpy.props.StringProperty(name="Prompt")  # type: ignore[valid-type]


def _model_changed(settings: ShotpassSceneSettings, context: object) -> None:
    from . import options

    problem = options.sync(settings)
    if problem:  # e.g. a model the server lists as unavailable: say why where the artist looks
        settings.status = problem


class ShotpassSceneSettings(bpy.types.PropertyGroup):
    project: bpy.props.StringProperty(name="Project", default="blender")  # type: ignore[valid-type]
    shot: bpy.props.StringProperty(name="Shot", default="shot")  # type: ignore[valid-type]
    pass_name: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Pass", description="stylize, inpaint or upscale (empty: the model's pass)", default="stylize")
    model: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Model", description="Empty: the pass's default model", update=_model_changed)
    prompt: bpy.props.StringProperty(name="Prompt", description="Describe the result")  # type: ignore[valid-type]
    strength: bpy.props.FloatProperty(  # type: ignore[valid-type]
        name="Strength", default=-1.0, min=-1.0, max=1.0,
        description="Below 0: the model's default. Keyframe it to send a value per frame")
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
    handles: bpy.props.IntProperty(  # type: ignore[valid-type]
        name="Handles", default=0, min=0, soft_max=48,
        description="Video models: frames before and after the scene's range that the plate render also renders and "
                    "the model reads as context without rendering them, so a pickup cuts back into the full render "
                    "(none before frame 0; a model that renders frame by frame reads none)")
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
    server_passes: bpy.props.CollectionProperty(type=ShotpassNamed)  # type: ignore[valid-type]
    server_models: bpy.props.CollectionProperty(type=ShotpassNamed)  # type: ignore[valid-type]
    option_values: bpy.props.CollectionProperty(type=ShotpassOption)  # type: ignore[valid-type]
    prompt_keys: bpy.props.CollectionProperty(type=ShotpassPromptKey)  # type: ignore[valid-type]
    show_option_help: bpy.props.BoolProperty(name="Option Help", default=False)  # type: ignore[valid-type]
    reference_render: bpy.props.StringProperty(  # type: ignore[valid-type]
        name="Reference Render", description="An approved preview that steers the next renders (empty: none)")
    reference_frame: bpy.props.IntProperty(name="Reference Frame")  # type: ignore[valid-type]
    versions_index: bpy.props.IntProperty()  # type: ignore[valid-type]
