"""Runs inside Blender's Python (the bpy test venv): install the built extension and drive it headless.

Usage: python shotpass_scene.py MODE ARGS_JSON RESULT_JSON
Modes: scene (render -> submit -> comp/sequencer, chain), plate (Beachball strip round trip), movie (a movie
strip as the plate), preview, inpaint (mask sequence), reference, review, cancel, tls (mutual TLS), down.
Writes what it observed to RESULT_JSON; the pytest side makes the assertions.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict

import bpy


def install(zip_path: str) -> Any:
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    module = "bl_ext.user_default.shotpass"
    assert module in bpy.context.preferences.addons, "extension did not enable"
    return sys.modules[module]


def configure(ext: Any, server: str, cache: str) -> None:
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    prefs.server_address = server
    prefs.cache_dir = cache


def tiny_scene() -> bpy.types.Scene:
    """Factory scene, Cycles CPU at 64x48, 3 frames with a moving cube so every frame differs."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 2
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 64, 48, 100
    scene.frame_start, scene.frame_end = 11, 13  # not 1: frame numbers must survive, not positions
    cube = bpy.data.objects["Cube"]
    for frame, x in ((11, -1.5), (13, 1.5)):
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    return scene


def call(op: Any, **kw: Any) -> str:
    """Run an operator; a reported error comes back as text (bpy.ops raises RuntimeError for it)."""
    try:
        op(**kw)
        return ""
    except RuntimeError as err:
        return str(err)


def comp_state(scene: bpy.types.Scene) -> Dict[str, Any]:
    tree = scene.compositing_node_group
    if tree is None:
        return {}  # nothing was wired (a failed or refused render)
    node = tree.nodes["shotpass result"]
    out = next(n for n in tree.nodes if n.bl_idname == "NodeGroupOutput")
    strips = scene.sequence_editor.strips
    strip = strips.get(f"shotpass {scene.shotpass.shot}")
    return {
        "nodes": len(tree.nodes),
        "linked": out.inputs[0].is_linked and out.inputs[0].links[0].from_node == node,
        "image": bpy.path.abspath(node.image.filepath),
        "image_source": node.image.source,
        "frame_start": node.frame_start, "frame_offset": node.frame_offset, "frame_duration": node.frame_duration,
        "strips": len(strips),
        "strip": {
            "start": int(strip.frame_final_start), "end": int(strip.frame_final_end), "channel": strip.channel,
            "files": [os.path.join(bpy.path.abspath(strip.directory), e.filename) for e in strip.elements],
        },
    }


def render_comp(scene: bpy.types.Scene, out_dir: str) -> Dict[int, str]:
    """Render the compositor (float EXR) for every frame of the range."""
    r = scene.render
    r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "32"
    r.use_compositing, r.use_sequencer = True, False
    written = {}
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        r.filepath = os.path.join(out_dir, f"comp.{f:04d}.exr")
        bpy.ops.render.render(write_still=True)
        written[f] = r.filepath
    return written


def mode_scene(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = tiny_scene()
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "sh010", "", "passthrough"
    res: Dict[str, Any] = {"render_plate": call(bpy.ops.shotpass.render_plate)}
    res["plate"] = {f: p for f, p in ext.core.sequence_pattern(s.plate_pattern).existing().items()}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["first_render"] = s.last_render_id
    res["first"] = comp_state(scene)
    res["comp"] = render_comp(scene, os.path.join(tmp, "comp"))
    # Chain on the finished render (nothing re-uploaded), then check the version swapped in place.
    s.pass_name, s.model, s.use_seed, s.seed = "stylize", "styletransfer-preset", True, 3
    res["chain"] = call(bpy.ops.shotpass.edit_render)
    res["chain_wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["second_render"] = s.last_render_id
    res["second"] = comp_state(scene)
    res["versions_call"] = call(bpy.ops.shotpass.list_versions)
    res["versions"] = [v.line for v in s.versions]
    res["reuse"] = call(bpy.ops.shotpass.reuse_settings, render_id=res["first_render"])
    res["reused_model"] = s.model
    return res


def beachball_strip(scene: bpy.types.Scene, files: list, start: int) -> bpy.types.Strip:
    se = scene.sequence_editor_create()
    strip = se.strips.new_image(name="beachball", filepath=files[0], channel=1, frame_start=start,
                                fit_method="ORIGINAL")
    for f in files[1:]:
        strip.elements.append(os.path.basename(f))
    return strip


def mode_plate(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = bpy.context.scene
    strip = beachball_strip(scene, args["files"], args["strip_start"])
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "beachball", "", "passthrough"
    res = {"use_plate": call(bpy.ops.shotpass.use_plate, kind="STRIP", name=strip.name)}
    res["plate"] = ext.host.ops.scene_plate(scene)
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["state"] = comp_state(scene)
    res["source_strip"] = {"start": int(strip.frame_final_start), "end": int(strip.frame_final_end),
                           "channel": strip.channel}
    return res


def render_sequencer(scene: bpy.types.Scene, out_dir: str, frames: list) -> Dict[int, str]:
    """Render the sequencer alone (no compositor) to float EXR for the given frames."""
    r = scene.render
    r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "32"
    r.use_compositing, r.use_sequencer = False, True
    written = {}
    for f in frames:
        scene.frame_set(f)
        r.filepath = os.path.join(out_dir, f"seq.{f:04d}.exr")
        bpy.ops.render.render(write_still=True)
        written[f] = r.filepath
    return written


def last_job(ext: Any) -> Any:
    return ext.host.runner.BOARD.jobs[-1]


def mode_movie(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """A movie strip placed with an offset and trimmed to a few frames: rendered to EXR, sent, wired back."""
    scene = bpy.context.scene
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = args["size"][0], args["size"][1], 100
    r.fps, r.fps_base = 25, 1.0
    se = scene.sequence_editor_create()
    strip = se.strips.new_movie(name="bikes", filepath=args["movie"], channel=2, frame_start=args["strip_start"],
                                fit_method="FIT")
    strip.frame_final_start = args["first"]  # trim the head: scene frame `first` shows clip frame first-start
    strip.frame_final_duration = args["count"]
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "bikes", "", "passthrough"
    res: Dict[str, Any] = {"use_plate": call(bpy.ops.shotpass.use_plate, kind="STRIP", name=strip.name)}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    job = last_job(ext)
    res["plate"] = dict(job.worker.request.plate)
    res["outputs"] = job.outputs
    res["scenes"] = [sc.name for sc in bpy.data.scenes]  # the temporary render scene is gone
    res["source_muted"] = strip.mute  # and the artist's strip was not touched
    res["source_strip"] = {"start": int(strip.frame_final_start), "end": int(strip.frame_final_end),
                           "channel": strip.channel}
    res["state"] = comp_state(scene)
    strip.mute = True  # what the sequencer shows on frame N must now come from the result strip alone
    res["seq"] = render_sequencer(scene, os.path.join(tmp, "seq"), list(range(args["first"] - 1,
                                                                              args["first"] + args["count"] + 1)))
    return res


def mode_preview(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = tiny_scene()
    scene.frame_set(12)
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "pv", "", "passthrough"
    res: Dict[str, Any] = {"preview": call(bpy.ops.shotpass.preview)}
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    job = last_job(ext)
    res["render_id"], res["outputs"], res["status"] = job.render_id, job.outputs, s.status
    shot_dir = os.path.join(args["cache"], s.project, s.shot)
    res["cache"] = {d: sorted(os.listdir(os.path.join(shot_dir, d))) for d in ("preview", "plate")
                    if os.path.isdir(os.path.join(shot_dir, d))}
    image = bpy.data.images.get("shotpass preview pv")
    res["image"] = None if image is None else {
        "file": bpy.path.abspath(image.filepath), "source": image.source, "size": list(image.size),
        "pixels": list(image.pixels),
    }
    res["background"] = bpy.app.background
    res["last_render_id"] = s.last_render_id  # a preview is not a version of the shot
    res["strips"] = 0 if scene.sequence_editor is None else len(scene.sequence_editor.strips)
    tree = scene.compositing_node_group
    res["comp_node"] = tree is not None and "shotpass result" in tree.nodes
    return res


def image_sequence_plate(scene: bpy.types.Scene, first_file: str) -> str:
    image = bpy.data.images.load(first_file, check_existing=False)
    image.source = "SEQUENCE"
    return image.name


def mode_inpaint(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = bpy.context.scene
    s = scene.shotpass
    s.shot, s.pass_name, s.model, s.mask = "inp", "inpaint", "opencv-telea", args["mask"]
    res = {"use_plate": call(bpy.ops.shotpass.use_plate, kind="IMAGE", name=image_sequence_plate(scene, args["plate"]))}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    job = last_job(ext)
    res["render_id"], res["outputs"] = job.render_id, job.outputs
    res["sent_mask"] = dict(job.worker.request.mask)
    return res


def mode_reference(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = bpy.context.scene
    s = scene.shotpass
    s.shot, s.pass_name, s.model, s.reference = "ref", "stylize", "styletransfer-reference", args["reference"]
    res = {"use_plate": call(bpy.ops.shotpass.use_plate, kind="IMAGE", name=image_sequence_plate(scene, args["plate"]))}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["render_id"], res["outputs"] = last_job(ext).render_id, last_job(ext).outputs
    return res


def mode_review(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = bpy.context.scene
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "rev", "", "passthrough"
    res = {"use_plate": call(bpy.ops.shotpass.use_plate, kind="IMAGE", name=image_sequence_plate(scene, args["plate"]))}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["render_id"] = s.last_render_id
    res["review1"] = call(bpy.ops.shotpass.review, rating=4, pinned="PIN", note="too blue, keep the grain")
    res["review2"] = call(bpy.ops.shotpass.review, rating=2)  # only the rating changes
    res["versions_call"] = call(bpy.ops.shotpass.list_versions)
    res["versions"] = [v.line for v in s.versions]
    res["no_render"] = call(bpy.ops.shotpass.review, render_id="no-such-render", rating=1)
    return res


def mode_cancel(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = bpy.context.scene
    strip = beachball_strip(scene, args["files"], 1)
    s = scene.shotpass
    s.shot, s.pass_name, s.model, s.plate_kind, s.plate_strip = "cancelme", "stylize", "", "STRIP", strip.name
    res = {"submit": call(bpy.ops.shotpass.submit)}
    job = ext.host.runner.BOARD.jobs[-1]
    while not job.render_id and not job.finished:  # cancel once the server has the render
        ext.host.runner.drain()
    res["cancel"] = call(bpy.ops.shotpass.cancel)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["render_id"] = job.render_id
    res["status"] = s.status
    res["result_strip"] = f"shotpass {s.shot}" in scene.sequence_editor.strips
    return res


def mode_tls(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """A render against a mutual-TLS server with the TLS preferences set (by main), then without the key pair."""
    scene = bpy.context.scene
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "tls", "", "passthrough"
    res = {"use_plate": call(bpy.ops.shotpass.use_plate, kind="IMAGE", name=image_sequence_plate(scene, args["plate"]))}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["render_id"], res["outputs"] = last_job(ext).render_id, last_job(ext).outputs
    res["versions_call"] = call(bpy.ops.shotpass.list_versions)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    prefs.tls_cert = prefs.tls_key = ""
    res["no_client_cert"] = call(bpy.ops.shotpass.list_versions)
    return res


def mode_enable(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """Enabled from the zip in a bpy with nothing else: the dependencies come from the zip's wheels."""
    import google.protobuf
    import grpc

    scene = tiny_scene()
    scene.frame_start, scene.frame_end = 1, 2
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "en", "", "passthrough"
    res: Dict[str, Any] = {"enabled": "bl_ext.user_default.shotpass" in bpy.context.preferences.addons,
                           "bpy": bpy.app.version_string, "grpc_file": grpc.__file__,
                           "protobuf_file": google.protobuf.__file__}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["outputs"] = last_job(ext).outputs
    return res


def mode_down(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 1
    scene.render.resolution_x, scene.render.resolution_y = 32, 24
    scene.frame_start = scene.frame_end = 1
    res = {"list": call(bpy.ops.shotpass.list_versions)}
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=60)
    res["status"] = scene.shotpass.status
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    prefs.server_address = "render.example.com:50051"
    res["online_access"] = bpy.app.online_access
    res["remote"] = call(bpy.ops.shotpass.submit)
    return res


def main() -> None:
    mode, args_path, result_path = sys.argv[1:4]
    with open(args_path) as fh:
        args = json.load(fh)
    ext = install(args["zip"])
    configure(ext, args["server"], args["cache"])
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    prefs.path_map = args.get("path_map", "")
    for name, path in args.get("tls", {}).items():  # tls_ca, tls_cert, tls_key
        setattr(prefs, name, path)
    result = {"mode": mode, "extension_file": ext.__file__, "client_file": sys.modules["shotpass_client"].__file__}
    result.update(globals()[f"mode_{mode}"](ext, args, args["tmp"]))
    with open(result_path, "w") as fh:
        json.dump(result, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
