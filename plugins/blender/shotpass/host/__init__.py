"""The bpy adapter layer: the only modules of the extension that import bpy."""

from __future__ import annotations

import bpy

from . import ops, prefs, props, runner, ui

CLASSES = (prefs.ShotpassPreferences, props.ShotpassVersion, props.ShotpassNamed, props.ShotpassOption,
           props.ShotpassPromptKey, props.ShotpassSceneSettings) + ops.CLASSES + ui.CLASSES


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.shotpass = bpy.props.PointerProperty(type=props.ShotpassSceneSettings)
    runner.add_handlers()


def unregister() -> None:
    runner.stop_all()
    del bpy.types.Scene.shotpass
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
