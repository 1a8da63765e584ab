"""Runs inside Blender's Python (the bpy test venv): install the built extension and drive it headless.

Usage: python shotpass_scene.py MODE ARGS_JSON RESULT_JSON
Modes: scene (render -> submit -> comp/sequencer, chain), plate (Beachball strip round trip), movie (a movie
strip as the plate), preview, inpaint (mask sequence), reference, review, cancel, jobs (suspend, resume,
requeue, QC), tls (mutual TLS), down, passes (Depth/Vector in the plate), draw (every panel drawn strictly,
see strict_layout.py), modal (the progress operator's Esc, cancel and file-open handling), handles (a pickup
with handles for a video model, and for a per-frame model).
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


def seq_strips(scene: Any) -> Any:
    se = scene.sequence_editor if scene is not None else None
    if se is None:
        return []
    return se.strips if hasattr(se, "strips") else se.sequences  # 5.x / 4.x


def review_strips(shot: str) -> Any:
    return seq_strips(bpy.data.scenes.get(f"shotpass {shot}"))


def comp_tree(scene: bpy.types.Scene) -> Any:
    if "compositing_node_group" in scene.bl_rna.properties:
        return scene.compositing_node_group
    return scene.node_tree


def comp_state(scene: bpy.types.Scene) -> Dict[str, Any]:
    tree = comp_tree(scene)
    if tree is None or "shotpass result" not in tree.nodes:
        return {}  # nothing was wired (a failed or refused render)
    node = tree.nodes["shotpass result"]
    out = next(n for n in tree.nodes if n.bl_idname in ("NodeGroupOutput", "CompositorNodeComposite"))
    strips = review_strips(scene.shotpass.shot)
    strip = strips.get(f"shotpass {scene.shotpass.shot}")
    own = seq_strips(scene)
    return {
        "nodes": len(tree.nodes),
        "linked": out.inputs[0].is_linked and out.inputs[0].links[0].from_node == node,
        "image_path": node.image.filepath,
        "image": bpy.path.abspath(node.image.filepath),
        "image_source": node.image.source,
        "frame_start": node.frame_start, "frame_offset": node.frame_offset, "frame_duration": node.frame_duration,
        "strips": len(strips), "scene_strips": [st.name for st in own],
        "strip": {
            "start": int(strip.frame_final_start), "end": int(strip.frame_final_end), "channel": strip.channel,
            "directory": strip.directory,
            "files": [os.path.join(bpy.path.abspath(strip.directory), e.filename) for e in strip.elements],
        },
    }


def render_f12(scene: bpy.types.Scene, out_dir: str) -> Dict[int, str]:
    """What F12 gives with the scene's own settings (compositor and sequencer as they are): one still per frame."""
    r = scene.render
    written = {}
    for f in range(scene.frame_start, scene.frame_end + 1):
        scene.frame_set(f)
        r.filepath = os.path.join(out_dir, f"f12.{f:04d}.exr")
        saved = (r.image_settings.file_format, r.image_settings.color_depth)
        r.image_settings.file_format, r.image_settings.color_depth = "OPEN_EXR", "32"
        bpy.ops.render.render(write_still=True)
        r.image_settings.file_format, r.image_settings.color_depth = saved
        written[f] = r.filepath
    return written


def render_comp(scene: bpy.types.Scene, out_dir: str) -> Dict[int, str]:
    """Render the compositor (float EXR) for every frame of the range."""
    r = scene.render
    if hasattr(r.image_settings, "media_type"):
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
    """Render the plate, submit, chain, F12, connect on request, undo, save and reopen."""
    scene = tiny_scene()
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(tmp, "shot.blend"))  # the cache lies beside it
    s = scene.shotpass
    s.project = args.get("project", "blender")
    s.shot, s.pass_name, s.model = "sh010", "", "passthrough"
    res: Dict[str, Any] = {"render_plate": call(bpy.ops.shotpass.render_plate)}
    res["plate_job"] = {"kind": last_job(ext).kind, "separate_process": last_job(ext).plate_render is not None}
    res["plate_wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["plate"] = dict(ext.core.sequence_pattern(s.plate_pattern).existing())
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["submit_rendered_plate"] = last_job(ext).plate_render is not None  # current: reused, not re-rendered
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["first_render"] = s.last_render_id
    res["first"] = comp_state(scene)
    # Chain on the finished render (nothing re-uploaded), then check the version swapped in place.
    s.pass_name, s.model, s.use_seed, s.seed = "stylize", "styletransfer-preset", True, 3
    res["chain"] = call(bpy.ops.shotpass.edit_render)
    res["chain_wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["second_render"] = s.last_render_id
    res["second"] = comp_state(scene)
    res["status"] = s.status
    # F12 / animation render with the scene's own settings: still the scene, not the result.
    res["f12"] = render_f12(scene, os.path.join(tmp, "f12"))
    # Undo right after a result arrived takes back that result alone; redo brings it back.
    res["undo"] = call(bpy.ops.ed.undo)
    scene = bpy.context.scene
    res["after_undo"] = {"last_render_id": scene.shotpass.last_render_id, "state": comp_state(scene)}
    res["redo"] = call(bpy.ops.ed.redo)
    scene = bpy.context.scene
    s = scene.shotpass
    res["after_redo"] = s.last_render_id
    # Asked: the result node drives the compositor, frame N on frame N.
    res["connect"] = call(bpy.ops.shotpass.connect_result)
    res["connected"] = comp_state(scene)["linked"]
    res["comp"] = render_comp(scene, os.path.join(tmp, "comp"))
    res["versions_call"] = call(bpy.ops.shotpass.list_versions)
    res["versions_status"] = s.status  # asked in the background: not there yet
    res["versions_wait"] = call(bpy.ops.shotpass.wait, timeout=60)
    res["versions"] = [v.line for v in s.versions]
    res["reuse"] = call(bpy.ops.shotpass.reuse_settings, render_id=res["first_render"])
    res["reused_model"] = s.model
    # Save and reopen: the settings, the result node, the review strip and the current plate survive.
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=os.path.join(tmp, "shot.blend"))
    scene = bpy.context.scene
    plate, plate_job, why = ext.host.ops.plan_plate(scene)
    res["reopened"] = {"last_render_id": scene.shotpass.last_render_id, "state": comp_state(scene),
                       "plate_current": plate_job is None, "why": why, "plate": plate}
    if plate_job is not None:
        plate_job.cancel()
    return res


def beachball_strip(scene: bpy.types.Scene, files: list, start: int) -> bpy.types.Strip:
    scene.sequence_editor_create()
    strip = seq_strips(scene).new_image(name="beachball", filepath=files[0], channel=1, frame_start=start,
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
    if hasattr(r.image_settings, "media_type"):
        r.image_settings.media_type = "IMAGE"
    r.image_settings.file_format = "OPEN_EXR"
    r.image_settings.color_mode = "RGBA"
    r.image_settings.color_depth = "32"
    r.use_compositing, r.use_sequencer = False, True
    written = {}
    for f in frames:
        scene.frame_set(f)
        r.filepath = os.path.join(out_dir, f"seq.{f:04d}.exr")
        with bpy.context.temp_override(scene=scene, view_layer=scene.view_layers[0]):  # as if switched to it
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
    scene.sequence_editor_create()
    strip = seq_strips(scene).new_movie(name="bikes", filepath=args["movie"], channel=2,
                                        frame_start=args["strip_start"], fit_method="FIT")
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
    # What the review scene's sequencer shows on frame N must come from output N.
    review = bpy.data.scenes[f"shotpass {s.shot}"]
    review.render.engine = scene.render.engine
    # (the review scene has no camera: only frames with a strip render)
    res["seq"] = render_sequencer(review, os.path.join(tmp, "seq"), list(range(args["first"],
                                                                               args["first"] + args["count"])))
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
    res["strips"] = len(seq_strips(scene))
    tree = comp_tree(scene)
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
    res["review1"] = (call(bpy.ops.shotpass.review, rating=4, pinned="PIN", note="too blue, keep the grain")
                      + call(bpy.ops.shotpass.wait, timeout=60))
    res["review2"] = call(bpy.ops.shotpass.review, rating=2) + call(bpy.ops.shotpass.wait, timeout=60)  # rating only
    res["versions_call"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    res["versions"] = [v.line for v in s.versions]
    res["no_render"] = (call(bpy.ops.shotpass.review, render_id="no-such-render", rating=1)
                        + call(bpy.ops.shotpass.wait, timeout=60))
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
    res["result_strip"] = f"shotpass {s.shot}" in seq_strips(scene) or f"shotpass {s.shot}" in review_strips(s.shot)
    return res


def mode_jobs(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """Suspend and resume the running render; requeue a failed version from the browser; QC in the browser."""
    import time

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.ui_model import STATE_NAMES

    scene = bpy.context.scene
    strip = beachball_strip(scene, args["files"], 1)
    s = scene.shotpass
    s.shot, s.pass_name, s.model, s.plate_kind, s.plate_strip = "jobs", "stylize", "", "STRIP", strip.name
    runner = ext.host.runner
    client = Client(args["server"])
    res: Dict[str, Any] = {"submit": call(bpy.ops.shotpass.submit)}
    job = runner.BOARD.jobs[-1]
    while not job.render_id and not job.finished:
        runner.drain()
    res["suspend"] = call(bpy.ops.shotpass.job_control, action="SUSPEND")
    deadline = time.monotonic() + 120
    # The watch reports the suspension once the running frame finished; the suspend call's own answer (the
    # status line) is a background task that can come back after it.
    while (job.state != "suspended" and not job.finished or runner.BOARD.tasks) and time.monotonic() < deadline:
        runner.drain()
        time.sleep(0.05)
    res["suspended_state"], res["suspend_status"] = job.state, s.status
    held = client.render_state(job.render_id).frames_done
    time.sleep(1.0)
    res["held"], res["held_later"] = held, client.render_state(job.render_id).frames_done
    res["resume"] = call(bpy.ops.shotpass.job_control, action="RESUME")
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["render_id"], res["outputs"] = job.render_id, dict(job.outputs)
    # A version whose frames ran past a too short frame timeout, sent by someone else (e.g. a farm).
    failed = submit_render(client, RenderSpec(project=s.project, shot=s.shot, pass_name="stylize",
                                              model="styletransfer-preset", seed=1, frame_timeout=0.000001),
                           {f: args["files"][f - 1] for f in (1, 2, 3)})
    res["failed_state"] = STATE_NAMES.get(client.wait(failed.render_id).state, "")
    res["list1"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    s.versions_index = next(i for i, v in enumerate(s.versions) if v.render_id == failed.render_id)
    res["failed_qc"] = s.versions[s.versions_index].qc
    res["requeue"] = call(bpy.ops.shotpass.job_control, action="REQUEUE") + call(bpy.ops.shotpass.wait, timeout=60)
    res["requeue_status"] = s.status
    res["requeued_state"] = STATE_NAMES.get(client.wait(failed.render_id).state, "")
    res["list2"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    res["qc"] = {v.render_id: v.qc for v in s.versions}
    # What a server with a model's weights missing lists: marked in the menu, refused at submit.
    info = client.server_info()
    next(m for m in info.models if m.name == "styletransfer-preset").unavailable = "weights missing"
    ext.host.options.set_server_info(info)
    ext.host.options.fill_menus(s, info)
    res["menu"] = [(m.name, m.description) for m in s.server_models if m.pass_name == "stylize"]
    s.model = "styletransfer-preset (unavailable)"
    res["picked_status"] = s.status
    res["unavailable_submit"] = call(bpy.ops.shotpass.submit)
    client.close()
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
    res["versions_call"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    prefs.tls_cert = prefs.tls_key = ""
    res["no_client_cert"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    return res


def mode_panel(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """What the panel drives: menus and typed options from the server, preview, approve as reference, a render
    steered by it, chain an upscale, the version browser (load, rate)."""
    scene = tiny_scene()
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "pn", "stylize", ""
    res: Dict[str, Any] = {"load_options": call(bpy.ops.shotpass.load_options), "asking": s.status}
    res["options_wait"] = call(bpy.ops.shotpass.wait, timeout=60)
    res["passes"] = sorted(p.name for p in s.server_passes)
    res["models"] = {m.name: m.pass_name for m in s.server_models}
    res["default_model_options"] = sorted(o.name for o in s.option_values)
    s.model = "styletransfer-preset"  # picked from the menu: its typed options follow
    res["options"] = {o.name: {"kind": o.kind, "default": o.default, "help": o.description,
                               "value": ext.host.options.value_of(o)} for o in s.option_values}
    s.option_values["tile_size"].int_value = 64  # below the schema's minimum: clamped when sent
    s.option_values["preserve_colour"].bool_value = True
    res["sent_options"] = ext.host.ops._settings(scene).spec().options
    # Preview, then approve it as the shot's reference.
    scene.frame_set(12)
    s.model = "passthrough"  # its pass comes with it
    res["preview"] = call(bpy.ops.shotpass.preview) + call(bpy.ops.shotpass.wait, timeout=300)
    res["preview_id"] = s.last_preview_id
    res["approve"] = call(bpy.ops.shotpass.approve_reference) + call(bpy.ops.shotpass.wait, timeout=60)
    res["reference"] = [s.reference_render, s.reference_frame]
    # A render steered by the approved frame.
    res["preview_pass"] = s.pass_name
    s.model = "styletransfer-reference"
    res["submit"] = call(bpy.ops.shotpass.submit) + call(bpy.ops.shotpass.wait, timeout=300)
    res["styled_id"] = s.last_render_id
    # Chain an upscale on it: typed options of the upscaler, 2x frames on the same frame numbers.
    s.pass_name, s.model = "upscale", "realesrgan-animevideov3-x2"
    res["upscale_options"] = {o.name: o.kind for o in s.option_values}
    s.reference_render = ""
    res["chain"] = call(bpy.ops.shotpass.edit_render) + call(bpy.ops.shotpass.wait, timeout=300)
    res["upscaled_id"] = s.last_render_id
    res["upscaled"] = dict(last_job(ext).outputs)
    # The version browser: list, rate, load an older version back.
    res["list"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    res["versions"] = [{"id": v.render_id, "lane": v.lane, "state": v.state, "parent": v.parent, "qc": v.qc,
                        "approved": v.approved, "model": v.model} for v in s.versions]
    s.versions_index = [v.render_id for v in s.versions].index(res["styled_id"])
    res["rate"] = call(bpy.ops.shotpass.review, rating=4) + call(bpy.ops.shotpass.wait, timeout=60)
    res["rated"] = s.versions[s.versions_index].rating
    # A refresh where the oldest version is no longer listed: every row moves up, the selection stays on its render.
    from shotpass_client import Client

    with Client(args["server"]) as client:
        listed = client.list_renders(s.project, s.shot)
    oldest = min(listed, key=lambda r: r.version)
    ext.host.ops.fill_versions(scene.name, [r for r in listed if r.id != oldest.id])
    res["reselected"] = s.versions[s.versions_index].render_id
    res["load"] = call(bpy.ops.shotpass.load_version) + call(bpy.ops.shotpass.wait, timeout=120)
    res["loaded"] = {"last_render_id": s.last_render_id, "state": comp_state(scene)}
    return res


def plate_channels(ext: Any, pattern: str) -> Dict[int, str]:
    return dict(ext.core.sequence_pattern(pattern).existing())


def mode_passes(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """Depth and vector passes on: the plate carries them; where an engine cannot, the artist is told."""
    scene = tiny_scene()
    scene.render.use_motion_blur = False  # Cycles and EEVEE write zero vectors with motion blur on
    layer = scene.view_layers[0]
    layer.use_pass_z = layer.use_pass_vector = True
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "zv", "", "passthrough"
    res: Dict[str, Any] = {"panel_ok": draw_panel(ext)["labels"]}
    res["plate"] = call(bpy.ops.shotpass.render_plate) + call(bpy.ops.shotpass.wait, timeout=300)
    res["files"] = plate_channels(ext, s.plate_pattern)
    res["submit"] = call(bpy.ops.shotpass.submit) + call(bpy.ops.shotpass.wait, timeout=300)
    res["submit_rendered_plate"] = last_job(ext).plate_render is not None
    res["outputs"] = dict(last_job(ext).outputs)
    res["layer"] = layer.name
    res["engine"] = scene.render.engine
    # The server's temporal flow takes its motion from the plate's Vector pass.
    s.pass_name, s.model, s.options = "stylize", "styletransfer-preset", "temporal=flow, flow_source=vectors"
    res["flow_submit"] = call(bpy.ops.shotpass.submit) + call(bpy.ops.shotpass.wait, timeout=300)
    res["flow_rendered_plate"] = last_job(ext).plate_render is not None
    res["flow_render"] = last_job(ext).render_id
    s.pass_name, s.model, s.options = "", "passthrough", ""
    # Motion blur on: the render's vectors are zeros. Said in the panel and when the plate renders.
    scene.render.use_motion_blur = True
    s.shot = "zvblur"
    res["blur_panel"] = draw_panel(ext)["labels"]
    res["blur_plate"] = call(bpy.ops.shotpass.render_plate)
    res["blur_status"] = s.status
    res["blur_plate"] += call(bpy.ops.shotpass.wait, timeout=300)
    res["blur_files"] = plate_channels(ext, s.plate_pattern)
    scene.render.use_motion_blur = False
    # Workbench has no Vector pass at all.
    scene.render.engine = "BLENDER_WORKBENCH"
    s.shot = "zvwb"
    res["workbench_panel"] = draw_panel(ext)["labels"]
    res["workbench_plate"] = call(bpy.ops.shotpass.render_plate)
    res["workbench_status"] = s.status
    res["workbench_plate"] += call(bpy.ops.shotpass.wait, timeout=300)
    res["workbench_files"] = plate_channels(ext, s.plate_pattern)
    return res


def draw_panel(ext: Any) -> Dict[str, Any]:
    """The sidebar panel as the 3D view draws it, with the strict layout (raises on what Blender refuses)."""
    import strict_layout

    return strict_layout.draw(ext.host.ui.SHOTPASS_PT_view3d.draw).summary()


def draw_everything(ext: Any) -> Dict[str, Any]:
    """Every panel, menu and list of the extension and its preferences, drawn strictly; errors as text."""
    import traceback

    import strict_layout

    panels = [c for c in ext.host.CLASSES if issubclass(c, (bpy.types.Panel, bpy.types.Menu))]
    out: Dict[str, Any] = {"errors": []}
    for cls in panels:
        try:
            out[cls.__name__] = strict_layout.draw(cls.draw).summary()
        except Exception:  # any exception is a broken panel in Blender: report it with where it came from
            out["errors"].append(f"{cls.__name__}: {traceback.format_exc(limit=-3)}")
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    try:
        out["preferences"] = strict_layout.draw(type(prefs).draw, owner=prefs).summary()
    except Exception:
        out["errors"].append(f"preferences: {traceback.format_exc(limit=-3)}")
    return out


def strictness(ext: Any) -> Dict[str, str]:
    """What real Blender refuses must fail the strict layout too (else the drawing tests could not fail)."""
    import strict_layout

    s = bpy.context.scene.shotpass
    layout = strict_layout.Recorder(bpy.context).layout()
    attempts = {
        "unknown property": lambda: layout.prop(s, "no_such_property"),
        "unknown operator": lambda: layout.operator("shotpass.no_such_operator"),
        "operator property typo": lambda: setattr(layout.operator("shotpass.job_control"), "actoin", "SUSPEND"),
        "operator enum value": lambda: setattr(layout.operator("shotpass.job_control"), "action", "PAUSE"),
        "unknown icon": lambda: layout.label(text="x", icon="NO_SUCH_ICON"),
        "unknown method": lambda: layout.no_such_method(),
        "unknown argument": lambda: layout.prop(s, "project", txt="Project"),
        "wrong type": lambda: layout.row(align="yes"),
        "unknown attribute": lambda: setattr(layout, "enabeld", False),
        "unknown menu": lambda: layout.menu("SHOTPASS_MT_no_such_menu"),
        "unknown list": lambda: layout.template_list("SHOTPASS_UL_none", "", s, "versions", s, "versions_index"),
        "list of unknown data": lambda: layout.template_list("SHOTPASS_UL_versions", "", s, "version", s,
                                                              "versions_index"),
        "search in unknown data": lambda: layout.prop_search(s, "pass_name", s, "server_pases"),
    }
    out = {}
    for name, attempt in attempts.items():
        try:
            attempt()
            out[name] = ""
        except (strict_layout.StrictLayoutError, AttributeError) as err:
            out[name] = f"{type(err).__name__}: {err}"
    return out


def mode_draw(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """The panels, list and preferences drawn in each state an artist meets: not connected, server down,
    models loaded, a render running, versions listed, other plate kinds."""
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    scene = tiny_scene()
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(tmp, "draw.blend"))
    s = scene.shotpass
    s.project, s.shot = args["project"], "dr"
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    res: Dict[str, Any] = {"bpy": bpy.app.version_string,
                           "has_progress": "progress" in bpy.types.UILayout.bl_rna.functions,
                           "strictness": strictness(ext)}
    res["idle"] = draw_everything(ext)
    prefs.server_address = args["dead"]
    res["down_call"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    res["down_status"] = s.status
    res["down"] = draw_everything(ext)
    prefs.server_address = "render.example.com:50051"  # remote with online access off: the preferences say so
    res["remote"] = draw_everything(ext)
    prefs.server_address = args["server"]
    res["loaded_call"] = call(bpy.ops.shotpass.load_options) + call(bpy.ops.shotpass.wait, timeout=60)
    s.pass_name, s.model, s.show_option_help = "stylize", "styletransfer-preset", True
    res["loaded_options"] = {o.name: o.kind for o in s.option_values}
    res["loaded"] = draw_everything(ext)
    s.handles = 3  # a per-frame model: the field makes way for a note that it reads no handles
    res["per_frame_handles"] = draw_everything(ext)
    s.handles = 0
    # A render running: the plate renders, then the frames go to the server. Drawn while it runs.
    s.pass_name, s.model = "", "passthrough"
    res["plate_call"] = call(bpy.ops.shotpass.render_plate)
    res["plate_running"] = draw_everything(ext)
    res["plate_wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["submit_call"] = call(bpy.ops.shotpass.submit)
    res["submit_running"] = draw_everything(ext)
    res["submit_busy"] = ext.host.runner.busy(scene) is not None
    res["submit_wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["finished"] = draw_everything(ext)
    # Versions listed: a render, a preview and a failed render (frame timeout far too short).
    res["preview_call"] = call(bpy.ops.shotpass.preview) + call(bpy.ops.shotpass.wait, timeout=300)
    plate = plate_channels(ext, s.plate_pattern)
    with Client(args["server"]) as client:
        failed = submit_render(client, RenderSpec(project=s.project, shot=s.shot, pass_name="stylize",
                                                  model="styletransfer-preset", seed=1, frame_timeout=0.000001),
                               plate)
        client.wait(failed.render_id)
    res["list_call"] = call(bpy.ops.shotpass.list_versions) + call(bpy.ops.shotpass.wait, timeout=60)
    res["versions"] = [v.state + " " + v.lane for v in s.versions]
    res["versions_drawn"] = []
    for index in range(len(s.versions)):
        s.versions_index = index
        res["versions_drawn"].append(draw_everything(ext))
    # The other plate kinds draw their own fields.
    image = bpy.data.images.load(plate[11], check_existing=False)
    s.plate_kind, s.plate_image = "IMAGE", image.name
    res["image_kind"] = draw_everything(ext)
    s.plate_kind = "STRIP"
    res["strip_kind"] = draw_everything(ext)
    return res


class StrictEvent:
    """An event as a modal operator sees it: a real event type and value name, and only Event's attributes."""

    def __init__(self, type: str, value: str = "PRESS") -> None:
        rna = bpy.types.Event.bl_rna.properties
        for name, given in (("type", type), ("value", value)):
            names = {item.identifier for item in rna[name].enum_items}
            assert given in names, f"{given!r} is not an event {name} of Blender {bpy.app.version_string}"
        self.type, self.value = type, value

    def __getattr__(self, name: str) -> Any:
        rna = bpy.types.Event.bl_rna.properties
        if name not in rna:
            raise AttributeError(f"Event has no attribute {name!r}")
        return rna[name].default


def follower(ext: Any, job: Any, timer: Any) -> Any:
    """The operator's state as Blender keeps it for a running modal operator (``self``): the extension's own
    follow mixin (an operator class cannot be instantiated outside Blender's call), reports collected."""

    class Follower(ext.host.ops._Follow):
        def __init__(self) -> None:
            self._job, self._timer, self.reports = job, timer, []

        def report(self, kind: set, message: str) -> None:
            self.reports.append([sorted(kind), message])

    return Follower()


def mode_modal(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """The progress operator's real modal() and cancel(): Esc meant for playback, its own Cancel, a file opened."""
    import time

    ops = ext.host.ops

    def long_plate() -> None:
        scene = bpy.context.scene
        scene.frame_end, scene.cycles.samples = 80, 128  # a plate render that lasts while the test acts

    def timer() -> Any:
        return bpy.context.window_manager.event_timer_add(0.25, window=None)  # (a file load replaces the wm)

    def until_done(op: Any, this: Any, limit: float = 120) -> list:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            result = op.modal(this, bpy.context, StrictEvent("TIMER", "NOTHING"))
            if result != {"PASS_THROUGH"}:
                return sorted(result)
            time.sleep(0.05)
        return ["still running"]

    scene = tiny_scene()
    s = scene.shotpass
    s.project = args.get("project", "blender")
    s.shot, s.pass_name, s.model = "md", "", "passthrough"
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(tmp, "modal.blend"))
    long_plate()
    res: Dict[str, Any] = {}
    # Keys and clicks while the plate renders: playback's Esc (and Space, clicks) go on to their own handlers.
    res["plate_call"] = call(bpy.ops.shotpass.render_plate)
    job = last_job(ext)
    this = follower(ext, job, timer())
    process = job.plate_render._proc
    op = ops.SHOTPASS_OT_render_plate
    events = [("ESC", "PRESS"), ("ESC", "RELEASE"), ("SPACE", "PRESS"), ("LEFTMOUSE", "PRESS"),
              ("MOUSEMOVE", "NOTHING"), ("RET", "PRESS"), ("TIMER", "NOTHING"), ("ESC", "PRESS")]
    res["events"] = [[t, v, sorted(op.modal(this, bpy.context, StrictEvent(t, v)))] for t, v in events]
    res["after_events"] = {"finished": job.finished, "process_running": process.poll() is None,
                           "following": this._job is job}
    # Its own Cancel control ends the render; the next timer event ends the operator, which says why.
    res["cancel"] = call(bpy.ops.shotpass.cancel)
    res["cancel_result"] = until_done(op, this)
    res["cancel_reports"], res["cancel_cleaned"] = this.reports, this._job is None and this._timer is None
    res["cancel_process"] = process.wait(timeout=30)
    # A render followed to its end: the operator's timer events drain the jobs and wire the result.
    scene.frame_end, scene.cycles.samples = 12, 2
    res["submit_call"] = call(bpy.ops.shotpass.submit)
    job = last_job(ext)
    this = follower(ext, job, timer())
    res["submit_result"] = until_done(ops.SHOTPASS_OT_submit, this, 300)
    res["submit_reports"], res["submit_cleaned"] = this.reports, this._job is None and this._timer is None
    res["submit_render"], res["last_render_id"] = job.render_id, scene.shotpass.last_render_id
    # Another file opened while a render runs: load_pre stops it, then Blender calls the operator's cancel().
    for label, load in (("read_homefile", lambda: bpy.ops.wm.read_homefile()),
                        ("open_mainfile", lambda: bpy.ops.wm.open_mainfile(filepath=os.path.join(tmp,
                                                                                                 "modal.blend")))):
        bpy.ops.wm.open_mainfile(filepath=os.path.join(tmp, "modal.blend"))
        long_plate()
        started = call(bpy.ops.shotpass.render_plate)
        job = last_job(ext)
        this = follower(ext, job, timer())
        process, plate_dir = job.plate_render._proc, job.plate_render.plate_dir
        load()
        try:
            ops.SHOTPASS_OT_render_plate.cancel(this, bpy.context)
            cancelled = ""
        except Exception as err:  # reported: a cancel() that raises leaves Blender's handler half removed
            cancelled = f"{type(err).__name__}: {err}"
        try:
            code = process.wait(timeout=30)
        except Exception as err:
            code = repr(err)
        res[label] = {"start": started, "cancel": cancelled, "cleaned": this._job is None and this._timer is None,
                      "process": code, "jobs": len(ext.host.runner.BOARD.jobs),
                      "staging": [n for n in os.listdir(plate_dir) if n.startswith(".rendering")]
                      if os.path.isdir(plate_dir) else []}
    return res


def mode_animated(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """Keyframed strength and a keyframed typed option, prompt keys: sent per frame."""
    scene = tiny_scene()
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "an", "stylize", "styletransfer-preset"
    res: Dict[str, Any] = {"options": call(bpy.ops.shotpass.load_options) + call(bpy.ops.shotpass.wait, timeout=60)}
    for frame, value in ((11, 0.0), (13, 1.0)):
        s.strength = value
        scene.keyframe_insert('shotpass.strength', frame=frame)
    for frame, value in ((11, 200), (13, 300)):
        s.option_values["tile_size"].int_value = value
        scene.keyframe_insert('shotpass.option_values["tile_size"].int_value', frame=frame)
    scene.frame_set(11)
    s.prompt = "a sunny street"
    res["key1"] = call(bpy.ops.shotpass.prompt_key)
    scene.frame_set(13)
    s.prompt = "the same street at night"
    res["key2"] = call(bpy.ops.shotpass.prompt_key)
    res["submit"] = call(bpy.ops.shotpass.submit) + call(bpy.ops.shotpass.wait, timeout=300)
    job = last_job(ext)
    res["render_id"], res["outputs"], res["plate"] = job.render_id, dict(job.outputs), dict(job.worker.request.plate)
    res["curves"] = [fc.data_path for fc in ext.host.animation.fcurves(scene)]
    res["sent"] = job.worker.request.spec.options_by_frame
    return res


def mode_stale(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """A plate on disk is reused only while it matches the scene; otherwise it is rendered again, and said so."""
    scene = tiny_scene()
    s = scene.shotpass
    s.shot, s.pass_name, s.model = "st", "", "passthrough"
    res: Dict[str, Any] = {"plate": call(bpy.ops.shotpass.render_plate) + call(bpy.ops.shotpass.wait, timeout=300)}

    def submit(label: str) -> None:
        res[label] = {"call": call(bpy.ops.shotpass.submit)}
        job = last_job(ext)
        res[label]["rendered_plate"] = job.plate_render is not None
        res[label]["status"] = s.status
        res[label]["wait"] = call(bpy.ops.shotpass.wait, timeout=300)
        res[label]["outputs"] = sorted(job.outputs)
        res[label]["sent"] = {f: os.path.getmtime(p) for f, p in job.worker.request.plate.items()}

    submit("current")
    scene.frame_end = 14  # frame range changed
    submit("range")
    bpy.data.objects["Cube"].scale = (0.5, 0.5, 0.5)  # an edit of what renders
    submit("edit")
    scene.render.resolution_percentage = 50
    _, job, res["resolution_why"] = ext.host.ops.plan_plate(scene)
    job.cancel()
    scene.render.resolution_percentage = 100
    scene.render.use_motion_blur = not scene.render.use_motion_blur  # blurs the colour, zeroes the vectors
    _, job, res["blur_why"] = ext.host.ops.plan_plate(scene)
    job.cancel()
    scene.render.use_motion_blur = not scene.render.use_motion_blur
    bpy.ops.ed.undo_push(message="before an edit")
    bpy.data.objects["Cube"].scale = (2.0, 2.0, 2.0)
    bpy.ops.ed.undo_push(message="edit")
    res["undo"] = call(bpy.ops.ed.undo)
    scene = bpy.context.scene  # undo replaced every datablock: older Python references are dead
    s = scene.shotpass
    _, job, why = ext.host.ops.plan_plate(scene)  # the edit was undone: the plate is current again
    res["after_undo"] = {"current": job is None, "why": why}
    if job is not None:
        job.cancel()
    # A modifier's setting is an edit too (its values, not only its presence, are in the digest).
    cube = bpy.data.objects["Cube"]
    bevel = cube.modifiers.new("bevel", "BEVEL")
    _, job, _ = ext.host.ops.plan_plate(scene)
    job.cancel()
    bevel.width = 0.3
    _, job, res["modifier_why"] = ext.host.ops.plan_plate(scene)
    res["modifier_digest_moved"] = ext.host.plates.settings(scene, [11])["contents_digest"]
    job.cancel()
    bevel.width = 0.1
    res["modifier_digest_moved"] = res["modifier_digest_moved"] != ext.host.plates.settings(scene, [11])[
        "contents_digest"]
    cube.modifiers.remove(bevel)
    # Cancel while the plate renders: the process stops, nothing is sent, nothing half-made stays.
    scene.frame_end = 60
    scene.cycles.samples = 64
    res["cancel_submit"] = call(bpy.ops.shotpass.submit)
    job = last_job(ext)
    res["cancel_rendering"] = job.plate_render is not None
    res["cancel"] = call(bpy.ops.shotpass.cancel)
    res["cancel_wait"] = call(bpy.ops.shotpass.wait, timeout=120)
    res["cancel_status"] = scene.shotpass.status
    res["cancel_render_id"] = job.render_id
    plate_dir = (os.path.dirname(s.plate_pattern) if s.plate_pattern
                 else os.path.join(args["cache"], s.project, "st", "plate"))
    res["plate_dir"] = sorted(os.listdir(plate_dir))
    _, job, why = ext.host.ops.plan_plate(scene)
    res["after_cancel_why"] = why
    if job is not None:
        job.cancel()
    # Opening another file while a plate renders: the job is stopped and forgotten (load_pre).
    res["load_submit"] = call(bpy.ops.shotpass.submit)
    process = last_job(ext).plate_render._proc
    bpy.ops.wm.read_homefile(use_empty=True)
    try:
        process.wait(timeout=30)
    except Exception as err:  # still running: reported, the test fails on it
        res["load_process"] = repr(err)
    else:
        res["load_process"] = process.returncode
    res["load_jobs"] = len(ext.host.runner.BOARD.jobs)
    return res


def mode_handles(ext: Any, args: Dict[str, Any], tmp: str) -> Dict[str, Any]:
    """A scene range 3-6 with 2 handles: the plate renders 1-8, 3-6 go as frames and 1-2, 7-8 as context; a
    video model reads them, a per-frame model says it reads none. The field is drawn for video models only."""
    import strict_layout

    scene = tiny_scene()
    cube = bpy.data.objects["Cube"]
    cube.animation_data_clear()
    for frame, x in ((1, -1.5), (8, 1.5)):  # every frame of the plate, handles too, differs
        cube.location.x = x
        cube.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 3, 6
    bpy.ops.wm.save_as_mainfile(filepath=os.path.join(tmp, "handles.blend"))
    s = scene.shotpass
    s.shot, s.prompt, s.use_seed, s.seed = "hd", "a painted landscape", True, 9
    res: Dict[str, Any] = {"unknown_drawn": draw_panel(ext)}  # the server never asked: the field is shown
    res["options"] = call(bpy.ops.shotpass.load_options) + call(bpy.ops.shotpass.wait, timeout=60)
    res["reads_context"] = {m.name: m.reads_context for m in s.server_models}
    s.pass_name, s.model, s.handles = "stylize", "tiny-animatediff", 2
    res["video_drawn"] = strict_layout.draw(ext.host.ui.SHOTPASS_PT_view3d.draw).summary()
    res["handle_frames"] = ext.host.plates.handle_frames(scene)
    res["submit"] = call(bpy.ops.shotpass.submit)
    job = last_job(ext)
    res["plate_frames"] = sorted(job.plate_render.frames) if job.plate_render is not None else []
    res["submit_status"] = s.status
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=400)
    request = job.worker.request
    res["sent_frames"], res["sent_context"] = sorted(request.plate), sorted(request.context)
    res["context_on_disk"] = all(os.path.isfile(p) for p in request.context.values())
    res["render_id"], res["outputs"], res["warnings"] = job.render_id, dict(job.outputs), list(job.warnings)
    res["status"], res["comp"] = s.status, comp_state(scene)
    plate_dir = os.path.dirname(next(iter(request.plate.values())))
    with open(os.path.join(plate_dir, "hd.plate.json"), encoding="utf-8") as fh:
        res["stamp"] = json.load(fh)["settings"]
    # Fewer handles: another plate (the stamp holds them), so the plate is rendered again.
    s.handles = 1
    _, plate_job, res["fewer_why"] = ext.host.ops.plan_plate(scene)
    if plate_job is not None:
        plate_job.cancel()
    s.handles = 2
    # A model that renders frame by frame: the same plate, the server's warning comes back to the panel.
    s.pass_name, s.model = "", "passthrough"
    res["per_frame_drawn"] = strict_layout.draw(ext.host.ui.SHOTPASS_PT_view3d.draw).summary()
    res["pf_submit"] = call(bpy.ops.shotpass.submit)
    job = last_job(ext)
    res["pf_rendered_plate"] = job.plate_render is not None
    res["pf_wait"] = call(bpy.ops.shotpass.wait, timeout=300)
    res["pf_sent_context"] = sorted(job.worker.request.context)
    res["pf_render_id"], res["pf_outputs"], res["pf_warnings"] = job.render_id, dict(job.outputs), list(job.warnings)
    res["pf_status"] = s.status
    # The ends: no frame before 0; a frame step other than 1 is refused with what to do.
    scene.frame_start = 1
    res["at_frame_1"] = ext.host.plates.handle_frames(scene)
    scene.frame_start, scene.frame_step = 3, 2
    res["stepped"] = call(bpy.ops.shotpass.submit)
    scene.frame_step = 1
    # Saved with the file.
    bpy.ops.wm.save_mainfile()
    bpy.ops.wm.open_mainfile(filepath=os.path.join(tmp, "handles.blend"))
    res["reopened_handles"] = bpy.context.scene.shotpass.handles
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
    # Answered at once, from the background: the operator returns before the server could have answered.
    res = {"list": call(bpy.ops.shotpass.list_versions), "list_status": scene.shotpass.status}
    res["options"] = call(bpy.ops.shotpass.load_options)
    res["list_wait"] = call(bpy.ops.shotpass.wait, timeout=60)
    prefs = bpy.context.preferences.addons["bl_ext.user_default.shotpass"].preferences
    prefs.server_address = args["silent"]  # accepts connections, never answers
    res["silent_list"] = call(bpy.ops.shotpass.list_versions)
    res["silent_status"] = scene.shotpass.status
    res["silent_wait"] = call(bpy.ops.shotpass.wait, timeout=60)
    prefs.server_address = args["server"]
    res["submit"] = call(bpy.ops.shotpass.submit)
    res["wait"] = call(bpy.ops.shotpass.wait, timeout=60)
    res["status"] = scene.shotpass.status
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
    if "project" in args:  # one project per Blender host: the tests share one server
        bpy.context.scene.shotpass.project = args["project"]
    result = {"mode": mode, "extension_file": ext.__file__, "client_file": sys.modules["shotpass_client"].__file__}
    result.update(globals()[f"mode_{mode}"](ext, args, args["tmp"]))
    with open(result_path, "w") as fh:
        json.dump(result, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
