"""Plates rendered off the UI: what the plate depends on, and the separate Blender process that renders it.

Rendering never runs inside the artist's Blender: the scene is saved as a copy and a background Blender
(``bpy.app.binary_path``; with Blender as a Python module, this Python) renders it into a staging folder,
while the UI stays live. A plate on disk is reused only when its stamp matches the scene's current
settings and a digest of the scene's contents (nothing edited since it was rendered).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from array import array
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

import bpy

from ..core import PlateRender, frame_files, pass_problems, stale_reason  # core makes the vendored client importable

PROCESS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plate_process.py")


def frames_of(scene: bpy.types.Scene) -> List[int]:
    return list(range(scene.frame_start, scene.frame_end + 1, scene.frame_step))


def handle_frames(scene: bpy.types.Scene) -> List[int]:
    """The frames a scene-render plate also renders around the scene's range for a video model to read as
    context (the panel's Handles), chosen by the shared ``jobs.handles_around`` as the CLI and Nuke choose them.

    They may lie outside the scene's range (that is their point) but not outside the frames a Blender scene can
    have (from 0 on): a range starting at frame 1 gets one head handle at most."""
    from shotpass_client.jobs import PlateError, handles_around

    count = scene.shotpass.handles
    if not count or scene.shotpass.plate_kind != "RENDER":
        return []
    if scene.frame_step != 1:
        raise PlateError(f"handles {count}: a video model reads consecutive frames, but the scene renders every "
                         f"{scene.frame_step} frames: set the frame step to 1 or the handles to 0")
    frames = frames_of(scene)
    bounds = scene.bl_rna.properties["frame_start"]  # the frames a scene's range can hold
    first, last = max(bounds.hard_min, frames[0] - count), min(bounds.hard_max, frames[-1] + count)
    return handles_around(frames, range(first, last + 1), count)


def _values(struct: Any, names: Iterable[str]) -> List[Any]:
    out = []
    for name in names:
        value = getattr(struct, name, None)
        out.append(tuple(value) if hasattr(value, "__len__") and not isinstance(value, str) else value)
    return out


_SIMPLE = {"BOOLEAN", "INT", "FLOAT", "STRING", "ENUM"}


def _rna_simple(struct: Any, custom: bool = False) -> List[Any]:
    """The editable plain values of a struct (numbers, flags, enums, text), and the datablocks it points at
    by name; with ``custom``, its custom properties too (a geometry-nodes modifier's inputs live there;
    a datablock's own may appear on save, e.g. Cycles' legacy settings)."""
    out: List[Any] = []
    for prop in struct.bl_rna.properties:
        if prop.is_readonly or prop.identifier == "rna_type":
            continue
        value = getattr(struct, prop.identifier, None)
        if prop.type in _SIMPLE:
            out.append((prop.identifier, tuple(value) if hasattr(value, "__len__") and not isinstance(value, str)
                        else value))
        elif prop.type == "POINTER" and hasattr(value, "name_full"):
            out.append((prop.identifier, value.name_full))
    try:
        keys = list(struct.keys()) if custom else []
    except TypeError:
        return out  # no custom properties on this struct
    for key in keys:
        value = struct[key]
        # ID property groups and arrays by content: their repr names a memory address.
        for convert in ("to_dict", "to_list"):
            if hasattr(value, convert):
                value = getattr(value, convert)()
                break
        out.append((key, repr(value)))
    return out


def _node_tree(tree: Any) -> List[Any]:
    if tree is None:
        return []
    nodes = []
    for node in sorted(tree.nodes, key=lambda n: n.name):
        inputs = [(i.identifier, repr(_values(i, ["default_value"])[0])) for i in node.inputs
                  if hasattr(i, "default_value") and not i.is_linked]
        nodes.append((node.name, node.bl_idname, getattr(getattr(node, "image", None), "filepath", ""), inputs))
    links = sorted((lk.from_node.name, lk.from_socket.identifier, lk.to_node.name, lk.to_socket.identifier)
                   for lk in tree.links)
    return [nodes, links]


def _array(collection: Any, attr: str, width: int) -> bytes:
    values = array("f", [0.0]) * (len(collection) * width)
    collection.foreach_get(attr, values)
    return values.tobytes()


def content_digest(scene: bpy.types.Scene) -> str:
    """A hash of what the scene's render shows: objects, transforms, geometry, modifiers, materials, lights,
    cameras, world and animation. Computed from the data itself, so it survives undo, save and reopen, and
    an edit undone again counts as no edit."""
    h = hashlib.sha1()
    seen: Set[str] = set()

    def add(*items: Any) -> None:
        h.update(repr(items).encode())

    def add_action(owner: Any) -> None:
        anim = getattr(owner, "animation_data", None)
        action = anim.action if anim is not None else None
        if action is None or action.name in seen:
            return
        seen.add(action.name)
        fcurves = getattr(action, "fcurves", None)
        if fcurves is None:  # 5.x layered actions: the curves live in the layers' channelbags
            fcurves = [fc for layer in action.layers for strip in layer.strips
                       for bag in strip.channelbags for fc in bag.fcurves]
        for fc in fcurves:
            add(fc.data_path, fc.array_index, fc.mute, _array(fc.keyframe_points, "co", 2),
                _array(fc.keyframe_points, "handle_left", 2), _array(fc.keyframe_points, "handle_right", 2))

    def add_material(material: Any) -> None:
        if material is None or ("MA" + material.name) in seen:
            return
        seen.add("MA" + material.name)
        add(material.name, _values(material, ["diffuse_color", "metallic", "roughness"]),
            _node_tree(material.node_tree if material.use_nodes else None))

    add(scene.world.name if scene.world else "", _node_tree(scene.world.node_tree if scene.world else None))
    for obj in sorted(scene.objects, key=lambda o: o.name):
        if obj.hide_render:
            continue
        add(obj.name, obj.type, obj.parent.name if obj.parent else "", [tuple(row) for row in obj.matrix_basis],
            [(m.name, m.type, _rna_simple(m, custom=True)) for m in obj.modifiers], obj.data.name if obj.data else "")
        add_action(obj)
        for slot in obj.material_slots:
            add_material(slot.material)
        data = obj.data
        if data is None or ("DA" + data.name) in seen:
            continue
        seen.add("DA" + data.name)
        add_action(data)
        if obj.type == "MESH":
            add(len(data.vertices), len(data.polygons), _array(data.vertices, "co", 3))
            keys = data.shape_keys
            if keys is not None:
                add([(k.name, k.value, k.mute, _array(k.data, "co", 3)) for k in keys.key_blocks])
        elif obj.type in ("LIGHT", "CAMERA"):
            add(_rna_simple(data))
    return h.hexdigest()


def settings(scene: bpy.types.Scene, frames: List[int], strip: Optional[bpy.types.Strip] = None,
             handles: Sequence[int] = ()) -> Dict[str, Any]:
    """Everything a plate depends on; a change to any of it makes the plate on disk stale. ``frames`` are the
    range, ``handles`` the frames rendered around it (stamped only when there are some, so a plate rendered
    without handles stays current)."""
    r = scene.render
    layer = scene.view_layers[0]
    samples = scene.cycles.samples if r.engine == "CYCLES" and hasattr(scene, "cycles") else None
    out: Dict[str, Any] = {
        "scene": scene.name, "frames": [frames[0], frames[-1]], "step": scene.frame_step if not strip else 1,
        "resolution": [r.resolution_x, r.resolution_y, r.resolution_percentage], "engine": r.engine,
        "camera": scene.camera.name if scene.camera else "", "samples": samples,
        "film_transparent": r.film_transparent, "passes": [layer.use_pass_z, layer.use_pass_vector],
        "motion_blur": r.use_motion_blur,  # blurs the colour, and zeroes the Vector pass
        "contents_digest": content_digest(scene),
    }
    if handles:
        from shotpass_client.patterns import format_frame_list

        out["handles"] = format_frame_list(sorted(handles))
    if strip is not None:
        out["strip"] = [strip.name, getattr(strip, "filepath", ""), int(strip.frame_final_start),
                        int(strip.frame_final_end)]
    return out


def missing_passes(scene: bpy.types.Scene) -> List[str]:
    """The view layer's Depth/Vector passes that this engine and these settings will not put in the plate."""
    layer = scene.view_layers[0]  # the layer the plate process renders and settings() stamps
    return pass_problems(scene.render.engine, layer.use_pass_z, layer.use_pass_vector, scene.render.use_motion_blur)


def current_plate(plate_dir: str, name: str, stamp: Dict[str, Any], frames: List[int]) -> Tuple[Dict[int, str], str]:
    """(the plate's files, "") when the plate on disk is current, else ({}, why it is not)."""
    reason = stale_reason(plate_dir, name, stamp, frames)
    return ({}, reason) if reason else (frame_files(plate_dir, name, frames), "")


def command(spec_path: str) -> List[str]:
    if bpy.app.binary_path:  # Blender itself
        return [bpy.app.binary_path, "--background", "--python-exit-code", "1", "--python", PROCESS_SCRIPT,
                "--", spec_path]
    return [sys.executable, PROCESS_SCRIPT, spec_path]  # Blender as a Python module: this Python has bpy


def start_render(scene: bpy.types.Scene, plate_dir: str, name: str, frames: List[int], stamp: Dict[str, Any],
                 strip: Optional[bpy.types.Strip] = None) -> PlateRender:
    """Save a copy of the file as it is now (unsaved edits included) and render it in another process."""
    staging = os.path.join(plate_dir, f".rendering-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    n = 1
    while os.path.exists(staging):
        n += 1
        staging = f"{staging.rsplit('~', 1)[0]}~{n}"
    os.makedirs(staging)
    blend = os.path.join(staging, "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True, check_existing=False)
    spec = {"blend": blend, "scene": scene.name, "out_dir": staging, "name": name,
            "frames": [frames[0], frames[-1], scene.frame_step if strip is None else 1],
            "strip": strip.name if strip is not None else "", "multilayer": True}
    spec_path = os.path.join(staging, "spec.json")
    with open(spec_path, "w", encoding="utf-8") as fh:
        json.dump(spec, fh)
    return PlateRender(command(spec_path), staging, plate_dir, name, frames, stamp, env=os.environ)
