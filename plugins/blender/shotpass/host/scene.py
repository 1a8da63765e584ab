"""Blender data in and out: read an image/strip plate, put results where the artist can use them.

Results never take over the artist's render: the compositor gets an Image node that drives the output
only when asked, and sequencer strips go into a review scene of their own, never into the scene's
sequencer (which would replace its F12 and animation renders). Paths under the .blend's folder are
stored relative (//).
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Mapping

import bpy

from ..core import image_user_frames, sequence_pattern, strip_elements

RESULT_NODE = "shotpass result"


class PlateProblem(Exception):
    """A plate that cannot be taken as asked; the message goes to the user as is."""


def _strips(scene: bpy.types.Scene) -> bpy.types.bpy_prop_collection:
    se = scene.sequence_editor or scene.sequence_editor_create()
    return se.strips if hasattr(se, "strips") else se.sequences  # 5.x / 4.x


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


def find_strip(scene: bpy.types.Scene, name: str) -> bpy.types.Strip:
    strips = _strips(scene)
    strip = strips.get(name) if name else scene.sequence_editor.active_strip
    if strip is None:
        raise PlateProblem(f"no sequencer strip named {name!r}" if name else "no active sequencer strip")
    return strip


def blend_relative(path: str) -> str:
    """``//relative`` for a file under the saved .blend's folder, else the absolute path."""
    if bpy.data.filepath:
        folder = os.path.dirname(os.path.abspath(bpy.data.filepath))
        absolute = os.path.abspath(path)
        if os.path.commonpath([folder, absolute]) == folder:
            return bpy.path.relpath(absolute)
    return path


def result_image(name: str, outputs: Mapping[int, str]) -> bpy.types.Image:
    """The results as one image-sequence datablock; an existing one is repointed (new version in place)."""
    first = outputs[min(outputs)]
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(first, check_existing=False)
        image.name = name
    image.filepath = blend_relative(first)
    image.source = "SEQUENCE" if len(outputs) > 1 else "FILE"
    image.reload()
    return image


def _comp_tree_5x(scene: bpy.types.Scene) -> tuple:
    """Blender 5.x: the compositor is a node group (scene.compositing_node_group) ending in a Group Output."""
    tree = scene.compositing_node_group
    if tree is None:  # a new compositor passes the render through, as Blender's default one does
        tree = bpy.data.node_groups.new(f"{scene.name} compositor", "CompositorNodeTree")
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers, out = tree.nodes.new("CompositorNodeRLayers"), tree.nodes.new("NodeGroupOutput")
        layers.location, out.location = (-300, 0), (200, 0)
        tree.links.new(layers.outputs["Image"], out.inputs[0])
        scene.compositing_node_group = tree
    if not any(i.in_out == "OUTPUT" for i in tree.interface.items_tree if i.item_type == "SOCKET"):
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    out = next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"), None)
    out = out or tree.nodes.new("NodeGroupOutput")
    return tree, out, out.inputs[0]


def _comp_tree_4x(scene: bpy.types.Scene) -> tuple:
    """Blender 4.2-4.5: the scene's own node tree (scene.use_nodes, scene.node_tree) ending in a Composite node."""
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


def result_node(scene: bpy.types.Scene) -> object:
    """The compositor's result node, or None (without creating a compositor)."""
    tree = (scene.compositing_node_group if "compositing_node_group" in scene.bl_rna.properties
            else scene.node_tree)  # 4.x: kept while the compositor is off
    return tree.nodes.get(RESULT_NODE) if tree is not None else None


def wire_compositor(scene: bpy.types.Scene, image: bpy.types.Image, frames: Iterable[int],
                    connect: bool = False) -> bool:
    """Put the results in an Image node, left unconnected so F12 still renders the scene; with ``connect``
    (the artist asked) it drives the output unless something else is already wired there.

    Returns whether the result node drives the compositor output.
    """
    use_nodes = getattr(scene, "use_nodes", None)
    tree, out, socket = _comp_tree(scene)
    node = tree.nodes.get(RESULT_NODE) or tree.nodes.new("CompositorNodeImage")
    node.name = node.label = RESULT_NODE
    node.image = image
    node.frame_start, node.frame_offset, node.frame_duration = image_user_frames(list(frames))
    node.use_cyclic = False
    node.location = (out.location.x - 300, out.location.y - 300)
    # A multilayer/multi-view EXR (Beachball) names its sockets after its layers, and Blender 5.0 builds
    # none for passes it cannot type: then the node stays unconnected and the status says so.
    image_out = node.outputs.get("Image") or next((o for o in node.outputs if o.enabled), None)
    linked_from = socket.links[0].from_node if socket.is_linked else None
    if not connect:
        if use_nodes is False:
            scene.use_nodes = False  # 4.x: the artist's compositor stays off until asked
        return linked_from == node
    passthrough = linked_from is not None and linked_from.bl_idname == "CompositorNodeRLayers"
    if image_out is None or (linked_from is not None and linked_from != node and not passthrough):
        return False
    if linked_from != node:
        tree.links.new(image_out, socket)
    scene.render.use_compositing = True
    return True


def connect_result(scene: bpy.types.Scene) -> bool:
    """Drive the compositor output with the existing result node (the artist asked)."""
    node = result_node(scene)
    if node is None or node.image is None:
        return False
    return wire_compositor(scene, node.image, _node_frames(node), connect=True)


def disconnect_result(scene: bpy.types.Scene) -> None:
    node = result_node(scene)
    if node is None:
        return
    tree = node.id_data
    for link in [lk for lk in tree.links if lk.from_node == node]:
        tree.links.remove(link)


def _node_frames(node: bpy.types.Node) -> range:
    return range(node.frame_start, node.frame_start + node.frame_duration)


def review_scene(scene: bpy.types.Scene, name: str) -> bpy.types.Scene:
    """The scene whose sequencer shows the results: the source scene's size, rate and frame range."""
    review = bpy.data.scenes.get(name)
    if review is None:
        review = bpy.data.scenes.new(name)
    r, src = review.render, scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = src.resolution_x, src.resolution_y, 100
    r.fps, r.fps_base = src.fps, src.fps_base
    review.frame_start, review.frame_end = scene.frame_start, scene.frame_end
    review.sequence_editor_create()
    return review


def wire_sequencer(review: bpy.types.Scene, name: str, outputs: Mapping[int, str], channel: int) -> bpy.types.Strip:
    """An image strip on the plate's frames; an earlier version of the same strip is replaced in place."""
    strips = _strips(review)
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
    strip.directory = blend_relative(directory) + os.sep if bpy.data.filepath else strip.directory
    review.frame_start = min(review.frame_start, first)
    review.frame_end = max(review.frame_end, first + len(names) - 1)
    return strip


def free_channel(scene: bpy.types.Scene, above: int = 0) -> int:
    used = {s.channel for s in _strips(scene)}
    channel = max(above + 1, 1)
    while channel in used:
        channel += 1
    return channel


def show_in_image_editor(image: bpy.types.Image) -> bool:
    """Show an image in an Image editor that is already open; no editor is ever turned into another type."""
    wm = bpy.context.window_manager
    if bpy.app.background or not wm.windows:
        return False
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "IMAGE_EDITOR":
                area.spaces.active.image = image
                return True
    return False
