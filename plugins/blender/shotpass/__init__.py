"""shotpass for Blender: send the scene's frames or a strip to a shotpass server, get the results back aligned.

Operators: ``bpy.ops.shotpass.*`` (see README). Only the ``host`` package imports bpy; ``core`` is plain Python.
"""

from __future__ import annotations


def register() -> None:
    from . import host

    host.register()


def unregister() -> None:
    from . import host

    host.unregister()
