"""Blender data in and out: render a plate, read an image/strip plate, wire results into comp and sequencer."""

from __future__ import annotations

import os
from typing import Dict, Mapping, Optional

import bpy

from ..core import image_user_frames, sequence_pattern, strip_elements

RESULT_NODE = "shotpass result"


class PlateProblem(Exception):
    """A plate that cannot be taken as asked; the message goes to the user as is."""


def _strips(scene: bpy.types.Scene) -> bpy.types.bpy_prop_collection:
    se = scene.sequence_editor or scene.sequence_editor_create()
    return se.strips if hasattr(se, "strips") else se.sequences  # 5.x / 4.x


def _set_exr_output(settings: bpy.types.ImageFormatSettings, depth: str) -> None:
    if hasattr(settings, "media_type"):  # 5.x: multilayer is a media type, not a file format
        settings.media_type = "IMAGE"
    settings.file_format = "OPEN_EXR"
    settings.color_mode = "RGBA"
    settings.color_depth = depth
    settings.exr_codec = "ZIP"


def render_frames(scene: bpy.types.Scene, out_dir: str, name: str,
                  frame: Optional[int] = None) -> Dict[int, str]:
    """Render the frame range (or one frame) to single-layer RGBA half EXRs named by the real frame numbers.

    The compositor and sequencer are switched off meanwhile: once results are wired in, they would
    otherwise be rendered into the plate that produced them.
    """
    r = scene.render
    im = r.image_settings
    saved = (r.filepath, r.use_file_extension, r.use_compositing, r.use_sequencer, im.file_format,
             im.color_mode, im.color_depth, im.exr_codec, getattr(im, "media_type", None), scene.frame_current)
    os.makedirs(out_dir, exist_ok=True)
    try:
        r.filepath = os.path.join(out_dir, name + ".####")
        r.use_file_extension = True
        r.use_compositing = False
        r.use_sequencer = False
        _set_exr_output(im, "16")
        if frame is None:
            bpy.ops.render.render(animation=True, scene=scene.name)
            frames = range(scene.frame_start, scene.frame_end + 1, scene.frame_step)
        else:
            scene.frame_set(frame)
            r.filepath = os.path.join(out_dir, f"{name}.{frame:04d}")
            bpy.ops.render.render(write_still=True, scene=scene.name)
            frames = range(frame, frame + 1)
    finally:
        (r.filepath, r.use_file_extension, r.use_compositing, r.use_sequencer, im.file_format) = saved[:5]
        im.color_mode, im.color_depth, im.exr_codec = saved[5:8]
        if saved[8] is not None:
            im.media_type = saved[8]
        scene.frame_set(saved[9])
    plate = {f: os.path.join(out_dir, f"{name}.{f:04d}.exr") for f in frames}
    missing = [f for f, p in plate.items() if not os.path.isfile(p)]
    if missing:
        raise PlateProblem(f"the render wrote no file for frame(s) {missing}")
    return plate


def image_plate(image: bpy.types.Image, scene: bpy.types.Scene) -> Dict[int, str]:
    """An image sequence by its files' own frame numbers; a single image as the current frame."""
    path = bpy.path.abspath(image.filepath, library=image.library)
    if image.source == "SEQUENCE":
        frames = sequence_pattern(path).existing()
        if not frames:
            raise PlateProblem(f"image {image.name!r}: no files of its sequence found next to {path}")
        return frames
    if image.source == "FILE" and os.path.isfile(path):
        return {scene.frame_current: path}
    raise PlateProblem(f"image {image.name!r} is not an image file or sequence on disk (source {image.source})")


# Strips whose frames are not files on disk: rendered through the sequencer to EXR first.
RENDERED_STRIP_TYPES = {"MOVIE"}


def strip_frames(strip: bpy.types.Strip) -> range:
    """The timeline frames a strip covers (its own scene frame numbers, after trims and offsets)."""
    return range(int(strip.frame_final_start), int(strip.frame_final_end))


def strip_is_rendered(strip: bpy.types.Strip) -> bool:
    """True for a strip taken by rendering it through the sequencer, False for an image strip read as files."""
    if strip.type == "IMAGE":
        return False
    if strip.type in RENDERED_STRIP_TYPES:
        return True
    raise PlateProblem(f"strip {strip.name!r} is a {strip.type.lower()} strip; use an image-sequence or movie strip")


def strip_plate(strip: bpy.types.Strip) -> Dict[int, str]:
    """An image strip by the timeline frames it covers, so the results land back on those frames."""
    if strip_is_rendered(strip):
        raise PlateProblem(f"strip {strip.name!r} is a {strip.type.lower()} strip: render it with render_strip")
    directory = bpy.path.abspath(strip.directory)
    plate: Dict[int, str] = {}
    for f in strip_frames(strip):
        plate[f] = os.path.join(directory, strip.strip_elem_from_frame(f).filename)
    return plate


def render_strip(scene: bpy.types.Scene, strip: bpy.types.Strip, out_dir: str, name: str,
                 frame: Optional[int] = None) -> Dict[int, str]:
    """Render a (movie) strip alone through the sequencer to RGBA half EXRs named by its scene frame numbers.

    The render runs on a temporary copy of the scene, so the strip keeps everything the artist set on it
    (trims, offsets, fit, transform, colour space, modifiers) and the scene's resolution and frame rate,
    while every other strip is muted, the compositor is off, and the artist's scene is left untouched.
    """
    frames = strip_frames(strip)
    if frame is not None:
        if frame not in frames:
            raise PlateProblem(f"strip {strip.name!r} has no frame {frame} "
                               f"(it covers {frames.start}-{frames.stop - 1})")
        frames = range(frame, frame + 1)
    os.makedirs(out_dir, exist_ok=True)
    temp = scene.copy()  # copies the sequencer's strips, links (does not copy) the objects
    try:
        temp.name = f"{scene.name} shotpass strip"
        for s in _strips(temp):
            s.mute = s.name != strip.name
        temp.frame_start, temp.frame_end, temp.frame_step = frames.start, frames.stop - 1, 1
        r = temp.render
        r.filepath = os.path.join(out_dir, name + ".####")
        r.use_file_extension = True
        r.use_compositing = False
        r.use_sequencer = True
        _set_exr_output(r.image_settings, "16")
        bpy.ops.render.render(animation=True, scene=temp.name)
    finally:
        bpy.data.scenes.remove(temp, do_unlink=True)
    plate = {f: os.path.join(out_dir, f"{name}.{f:04d}.exr") for f in frames}
    missing = [f for f, p in plate.items() if not os.path.isfile(p)]
    if missing:
        raise PlateProblem(f"rendering strip {strip.name!r} wrote no file for frame(s) {missing}")
    return plate


def find_strip(scene: bpy.types.Scene, name: str) -> bpy.types.Strip:
    strips = _strips(scene)
    strip = strips.get(name) if name else scene.sequence_editor.active_strip
    if strip is None:
        raise PlateProblem(f"no sequencer strip named {name!r}" if name else "no active sequencer strip")
    return strip


def result_image(name: str, outputs: Mapping[int, str]) -> bpy.types.Image:
    """The results as one image-sequence datablock; an existing one is repointed (new version in place)."""
    first = outputs[min(outputs)]
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(first, check_existing=False)
        image.name = name
    else:
        image.filepath = first
    image.source = "SEQUENCE" if len(outputs) > 1 else "FILE"
    image.reload()
    return image


def _comp_tree_5x(scene: bpy.types.Scene) -> tuple:
    """Blender 5.x: the compositor is a node group (scene.compositing_node_group) ending in a Group Output."""
    tree = scene.compositing_node_group
    if tree is None:
        tree = bpy.data.node_groups.new(f"{scene.name} compositor", "CompositorNodeTree")
        scene.compositing_node_group = tree
    if not any(i.in_out == "OUTPUT" for i in tree.interface.items_tree if i.item_type == "SOCKET"):
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    out = next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"), None)
    out = out or tree.nodes.new("NodeGroupOutput")
    return tree, out, out.inputs[0]


def _comp_tree_4x(scene: bpy.types.Scene) -> tuple:
    """Blender 4.2-4.5: the scene's own node tree (scene.use_nodes, scene.node_tree) ending in a Composite node.

    Not exercised by the tests (they run bpy 5.0.1, which has no scene.node_tree); see the README's limits.
    """
    scene.use_nodes = True
    tree = scene.node_tree
    out = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
    out = out or tree.nodes.new("CompositorNodeComposite")
    return tree, out, out.inputs["Image"]


def _comp_tree(scene: bpy.types.Scene) -> tuple:
    """(node tree, output node, output socket) of the scene's compositor, created when missing."""
    if "compositing_node_group" in scene.bl_rna.properties:
        return _comp_tree_5x(scene)
    return _comp_tree_4x(scene)


def wire_compositor(scene: bpy.types.Scene, image: bpy.types.Image, frames: Mapping[int, str]) -> bool:
    """Put the results in an Image node; connect it to the output unless the artist wired something else there.

    Returns whether the result node drives the compositor output.
    """
    tree, out, socket = _comp_tree(scene)
    node = tree.nodes.get(RESULT_NODE) or tree.nodes.new("CompositorNodeImage")
    node.name = node.label = RESULT_NODE
    node.image = image
    node.frame_start, node.frame_offset, node.frame_duration = image_user_frames(list(frames))
    node.use_cyclic = False
    node.location = (out.location.x - 300, out.location.y)
    # A multilayer/multi-view EXR (Beachball) names its sockets after its layers, and Blender 5.0 builds
    # none for passes it cannot type: then the node stays unconnected and the status says so.
    image_out = node.outputs.get("Image") or next((o for o in node.outputs if o.enabled), None)
    linked_from = socket.links[0].from_node if socket.is_linked else None
    if image_out is None or (linked_from is not None and linked_from != node):
        return False
    if linked_from is None:
        tree.links.new(image_out, socket)
    scene.render.use_compositing = True
    return True


def wire_sequencer(scene: bpy.types.Scene, name: str, outputs: Mapping[int, str], channel: int) -> bpy.types.Strip:
    """An image strip on the plate's frames; an earlier version of the same strip is replaced in place."""
    strips = _strips(scene)
    old = strips.get(name)
    if old is not None:
        channel = old.channel
        strips.remove(old)
    first, names = strip_elements(outputs)
    directory = os.path.dirname(outputs[min(outputs)])
    strip = strips.new_image(name=name, filepath=os.path.join(directory, names[0]), channel=channel,
                             frame_start=first, fit_method="ORIGINAL")
    for n in names[1:]:
        strip.elements.append(n)
    return strip


def free_channel(scene: bpy.types.Scene, above: int = 0) -> int:
    used = {s.channel for s in _strips(scene)}
    channel = max(above + 1, 1)
    while channel in used:
        channel += 1
    return channel


def show_in_image_editor(image: bpy.types.Image) -> bool:
    """Show an image in an Image editor of the open UI (none in background mode)."""
    wm = bpy.context.window_manager
    if bpy.app.background or not wm.windows:
        return False
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                return True
    # No Image editor open: turn the largest non-3D-view area into one rather than opening a window.
    areas = [a for w in wm.windows for a in w.screen.areas if a.type not in {"VIEW_3D", "PROPERTIES"}]
    if not areas:
        return False
    area = max(areas, key=lambda a: a.width * a.height)
    area.type = "IMAGE_EDITOR"
    area.spaces.active.image = image
    return True
