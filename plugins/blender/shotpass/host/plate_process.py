"""Render a plate in its own Blender process (started by host/plates.py; never imported by the extension).

    blender --background --python-exit-code 1 --python plate_process.py -- SPEC.json
    python plate_process.py SPEC.json          # Blender as a Python module (bpy from PyPI)

SPEC names a copy of the artist's .blend, the scene, the frames and the staging folder. The scene is
rendered as it is, with the compositor and sequencer off (the plate is the raw render, never results fed
back), to RGBA half EXRs named by the real frame numbers. A movie strip is rendered through the sequencer
alone on a copy of the scene. When the view layer has the Depth or Vector pass on, a single-part multilayer
EXR (float) carries every enabled pass straight from the render result, with no compositor involved.
"""

from __future__ import annotations

import json
import os
import sys

import bpy


def set_exr_output(settings: bpy.types.ImageFormatSettings, multilayer: bool) -> None:
    if hasattr(settings, "media_type"):  # 5.x: multilayer is a media type, not a file format
        settings.media_type = "MULTI_LAYER_IMAGE" if multilayer else "IMAGE"
        settings.file_format = "OPEN_EXR_MULTILAYER" if multilayer else "OPEN_EXR"
    else:
        settings.file_format = "OPEN_EXR_MULTILAYER" if multilayer else "OPEN_EXR"
    settings.color_mode = "RGBA"
    settings.color_depth = "16" if not multilayer else "32"  # depth and vectors need full float
    settings.exr_codec = "ZIP"
    if multilayer and hasattr(settings, "use_exr_interleave"):
        # 5.x writes each pass as its own part by default; the server reads the colour and the Depth and
        # Vector passes beside it from one part, as 4.x always wrote them.
        settings.use_exr_interleave = True


def strips(scene: bpy.types.Scene) -> bpy.types.bpy_prop_collection:
    se = scene.sequence_editor or scene.sequence_editor_create()
    return se.strips if hasattr(se, "strips") else se.sequences  # 5.x / 4.x


def strip_scene(scene: bpy.types.Scene, strip_name: str) -> bpy.types.Scene:
    """A copy of the scene whose sequencer shows only this strip (trims, transform, modifiers kept)."""
    temp = scene.copy()
    temp.name = f"{scene.name} shotpass strip"
    for s in strips(temp):
        s.mute = s.name != strip_name
    temp.render.use_sequencer = True
    return temp


def uses_passes(scene: bpy.types.Scene) -> bool:
    layer = scene.view_layers[0] if len(scene.view_layers) else None
    return layer is not None and (layer.use_pass_z or layer.use_pass_vector)


def main() -> int:
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    with open(args[0], encoding="utf-8") as fh:
        spec = json.load(fh)
    bpy.ops.wm.open_mainfile(filepath=spec["blend"], load_ui=False)
    scene = bpy.data.scenes[spec["scene"]]
    if spec.get("strip"):
        scene = strip_scene(scene, spec["strip"])
    else:
        scene.render.use_sequencer = False
    r = scene.render
    r.use_compositing = False
    first, last, step = spec["frames"]
    scene.frame_start, scene.frame_end, scene.frame_step = first, last, step
    r.filepath = os.path.join(spec["out_dir"], spec["name"] + ".####")
    r.use_file_extension = True
    set_exr_output(r.image_settings, bool(spec.get("multilayer")) and not spec.get("strip") and uses_passes(scene))
    bpy.ops.render.render(animation=True, scene=scene.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
