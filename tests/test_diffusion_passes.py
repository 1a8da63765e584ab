"""Diffusion passes end to end: tiny random-weight pipelines, saved to disk, listed in a TOML model config,
loaded by the real server through from_pretrained(local_files_only=True) and driven through the real CLI."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import OpenEXR
import pytest
import tiny_pipelines
from conftest import BEACHBALL
from helpers import channels, header, model_server, run_cli, scaled, window_seam_ratio, windows

from shotpass_server.frame_pipeline import frame_seed

FAST = ["--option", "steps=2", "--option", "strength=0.5"]  # one denoising step: enough to run every path


@pytest.fixture(scope="module")
def model_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny_pipelines.save_img2img(root / "sd15")
    tiny_pipelines.save_inpaint(root / "sd-inpaint")
    tiny_pipelines.save_upscaler(root / "x4")
    tiny_pipelines.save_upscaler(root / "x4-light", attention=False)
    tiny_pipelines.save_controlnet(root / "cn-canny")
    tiny_pipelines.save_controlnet(root / "cn-depth")
    tiny_pipelines.save_animatediff(root / "animatediff")
    tiny_pipelines.save_sdxl_img2img(root / "sdxl")
    tiny_pipelines.save_img2img(root / "sd15-smooth", smooth=True)
    config = root / "shotpass.toml"
    config.write_text(
        """
[models.tiny-sd15]
kind = "sd15-img2img"
path = "sd15"
steps = 2
strength = 0.5
tile = 256  # Beachball's frames still run in blended windows, fewer than at the tiny model's native 128
controlnets = { canny = "cn-canny", depth = "cn-depth" }

[models.tiny-inpaint]
kind = "sd-inpaint"
pass = "inpaint"
path = "sd-inpaint"
steps = 2
strength = 1.0

[models.tiny-x4]
kind = "sd-x4-upscaler"
path = "x4"
steps = 2
tile = 48
tile_overlap = 16

[models.tiny-x4-light]
kind = "sd-x4-upscaler"
path = "x4-light"
steps = 2

[models.tiny-x2]
kind = "sd-x4-upscaler"
path = "x4"
scale = 2
steps = 2

[models.tiny-sdxl]
kind = "sdxl-img2img"
path = "sdxl"
steps = 2
strength = 0.5

[models.tiny-smooth]
kind = "sd15-img2img"
path = "sd15-smooth"
steps = 4
strength = 1.0
guidance = 1.0

[models.tiny-animatediff]
kind = "animatediff-v2v"
path = "animatediff"
steps = 2
strength = 0.5
context_size = 2
context_overlap = 1
"""
    )
    return config


@pytest.fixture
def dserver(model_config: Path, tmp_path: Path) -> Iterator[Any]:
    with model_server(model_config, tmp_path / "server-data", chunk_frames=3) as srv:
        yield srv


def _render(capsys: Any, srv: Any, plate: str, out: Path, *extra: str) -> tuple:
    return run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json", "--seed", "11",
                            *extra])


def _write_plate(folder: Path, frames: range, w: int, h: int, z: bool = False, alpha: Any = None) -> str:
    """A small RGB(A)(Z) half-float plate of w x h with an offset data window; returns its pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for frame in frames:
        ch: Dict[str, np.ndarray] = {c: rng.random((h, w), dtype=np.float32).astype(np.float16) for c in "RGB"}
        if alpha is not None:
            ch["A"] = alpha.astype(np.float16)
        if z:
            yy, xx = np.mgrid[0:h, 0:w]
            ch["Z"] = (1.0 + xx / w * 9.0 + yy / h).astype(np.float32)  # a ramp: near on the left
        hdr = {
            "compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
            "dataWindow": (np.array([3, 2], dtype=np.int32), np.array([3 + w - 1, 2 + h - 1], dtype=np.int32)),
            "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([w + 9, h + 9], dtype=np.int32)),
        }
        with OpenEXR.File(hdr, ch) as f:
            f.write(str(folder / f"plate.{frame:04d}.exr"))
    return str(folder / "plate.####.exr")


def _rgb(path: str) -> np.ndarray:
    c = channels(path)
    return np.stack([c["R"], c["G"], c["B"]], axis=-1).astype(np.float32)


def _assert_frame_perfect(
    out: Dict[str, Any], frames: list, source: Any, scale: int, model: str, prompt: str = ""
) -> None:
    assert out["state"] == "FINISHED"
    assert sorted(int(k) for k in out["outputs"]) == frames
    for frame in frames:
        written = out["outputs"][str(frame)]
        s_dw, s_disp, _ = windows(source(frame))
        o_dw, o_disp, _ = windows(written)
        assert o_dw == scaled(s_dw, scale) and o_disp == scaled(s_disp, scale), f"frame {frame}: windows moved"
        h = header(written)
        assert h["shotpass/sourceFrame"] == str(frame)
        assert h["shotpass/model"] == model
        assert h["shotpass/seed"] == str(frame_seed(11, frame))
        if prompt:
            assert h["shotpass/prompt"] == prompt
        assert np.isfinite(_rgb(written)).all()


@pytest.mark.parametrize(
    "model, extra",
    [
        ("tiny-sd15", []),
        ("tiny-sd15", ["--option", "controlnet=canny"]),
        ("tiny-inpaint", []),  # Beachball has an alpha: it is the mask
        ("tiny-sd15", ["--reference", str(BEACHBALL / "singlepart.0005.exr"), "--frames", "1-2"]),
        ("tiny-x4-light", ["--frames", "1-2"]),  # 128 px tiles, windows x4
    ],
)
def test_beachball_frames_in_equal_frames_out(capsys, dserver, beachball, tmp_path, model, extra):
    frames = [1, 2, 3]
    scale = 4 if "x4" in model else 1
    if "--frames" in extra:  # the slower cases run fewer frames
        last = extra[extra.index("--frames") + 1].split("-")[-1]
        frames = list(range(1, int(last) + 1))
    else:
        extra = ["--frames", "1-3", *extra]
    code, out, err = _render(capsys, dserver, beachball, tmp_path / "out", "--model", model,
                             "--prompt", "a watercolour beach ball", *FAST[:2], *extra)
    assert code == 0, err
    _assert_frame_perfect(out, frames, lambda f: str(BEACHBALL / f"singlepart.{f:04d}.exr"), scale, model,
                          "a watercolour beach ball")


def test_video_stylize_keeps_frames_by_number_across_context_windows_and_chunks(capsys, dserver, beachball, tmp_path):
    # 5 frames, chunks of 3 (server) and context windows of 2 overlapping by 1: windows, chunks and a tail chunk.
    plate = _write_plate(tmp_path / "v", range(1001, 1006), 45, 29)
    code, out, err = _render(capsys, dserver, plate, tmp_path / "out", "--model", "tiny-animatediff")
    assert code == 0, err
    _assert_frame_perfect(out, list(range(1001, 1006)), lambda f: plate.replace("####", f"{f:04d}"), 1,
                          "tiny-animatediff")
    frames = [_rgb(out["outputs"][str(f)]) for f in range(1001, 1006)]
    assert all(not np.array_equal(frames[0], f) for f in frames[1:])


def test_video_stylize_on_beachball_whose_data_window_moves_every_frame(capsys, dserver, beachball, tmp_path):
    # Frames 1-3 have data windows of different sizes and offsets: the clip runs on their union and each
    # output is cropped back to its own frame's windows.
    sizes = {windows(str(BEACHBALL / f"singlepart.{f:04d}.exr"))[0] for f in (1, 2, 3)}
    assert len(sizes) == 3
    code, out, err = _render(capsys, dserver, beachball, tmp_path / "out", "--model", "tiny-animatediff",
                             "--frames", "1-3", "--prompt", "a watercolour beach ball", *FAST,
                             "--option", "context_size=2", "--option", "context_overlap=1")
    assert code == 0, err
    _assert_frame_perfect(out, [1, 2, 3], lambda f: str(BEACHBALL / f"singlepart.{f:04d}.exr"), 1,
                          "tiny-animatediff", "a watercolour beach ball")


def test_clip_canvas_places_frames_at_their_pixel_positions_and_crops_them_back():
    from shotpass_server.frame_pipeline import clip_canvas, from_canvas, to_canvas

    rng = np.random.default_rng(0)
    boxes = [(10, 20, 19, 27), (14, 18, 30, 22), (-3, 25, 4, 40)]  # different sizes and offsets, one negative
    canvas = clip_canvas(boxes)
    assert canvas == (-3, 18, 30, 40)
    cw, ch = 34, 23
    for box in boxes:
        w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
        rgb = rng.random((h, w, 3), dtype=np.float32)
        placed = to_canvas(rgb, box, canvas)
        assert placed.shape == (ch, cw, 3)
        x, y = box[0] - canvas[0], box[1] - canvas[1]
        assert np.array_equal(placed[y: y + h, x: x + w], rgb)  # at its own pixel position
        assert np.array_equal(from_canvas(placed, box, canvas), rgb)
        assert np.array_equal(placed[:y, x: x + w], np.broadcast_to(rgb[:1], (y, w, 3)))  # edge-padded above
        alpha = to_canvas(np.ones((h, w), np.float32), box, canvas, 0.0)
        assert alpha.sum() == w * h  # transparent outside the window
        # A x4 result on the canvas crops back to the window x4.
        big = np.kron(placed, np.ones((4, 4, 1), np.float32))
        assert np.array_equal(from_canvas(big, box, canvas, 4), np.kron(rgb, np.ones((4, 4, 1), np.float32)))


@pytest.mark.parametrize("model, scale", [("tiny-sd15", 1), ("tiny-inpaint", 1), ("tiny-x4", 4), ("tiny-x2", 2)])
def test_odd_size_comes_back_at_the_same_size_times_scale(capsys, dserver, tmp_path, model, scale):
    alpha = np.zeros((67, 101), dtype=np.float32)
    alpha[20:40, 30:70] = 1.0
    plate = _write_plate(tmp_path / "odd", range(1, 2), 101, 67, alpha=alpha)
    code, out, err = _render(capsys, dserver, plate, tmp_path / "out", "--model", model, "--option", "steps=2")
    assert code == 0, err
    _assert_frame_perfect(out, [1], lambda f: plate.replace("####", f"{f:04d}"), scale, model)
    assert _rgb(out["outputs"]["1"]).shape == (67 * scale, 101 * scale, 3)


def test_same_seed_gives_identical_frames_and_another_seed_does_not(capsys, dserver, tmp_path):
    plate = _write_plate(tmp_path / "p", range(1, 3), 64, 48)
    runs = []
    for name, seed in (("a", "11"), ("b", "11"), ("c", "12")):
        code, out, err = run_cli(capsys, ["render", plate, "--server", dserver.address, "--out", str(tmp_path / name),
                                          "--json", "--model", "tiny-sd15", "--seed", seed, *FAST])
        assert code == 0, err
        runs.append([_rgb(out["outputs"][str(f)]) for f in (1, 2)])
    for x, y in zip(runs[0], runs[1]):
        assert np.array_equal(x, y)
    assert not np.array_equal(runs[0][0], runs[2][0])
    assert not np.array_equal(runs[0][0], runs[0][1])  # per-frame noise differs by frame number


def test_inpaint_keeps_pixels_outside_the_grown_feathered_mask_bit_exact(capsys, dserver, tmp_path):
    from shotpass_server.passes.diffusion.inpaint import soft_mask

    alpha = np.zeros((50, 70), dtype=np.float32)
    alpha[15:30, 20:45] = 1.0
    plate = _write_plate(tmp_path / "p", range(1, 2), 70, 50, alpha=alpha)
    code, out, err = _render(capsys, dserver, plate, tmp_path / "out", "--model", "tiny-inpaint",
                             "--option", "grow=3", "--option", "feather=4")
    assert code == 0, err
    src, dst = channels(plate.replace("####", "0001")), channels(out["outputs"]["1"])
    touched = soft_mask(alpha, 3, 4) > 0
    for c in "RGB":
        assert dst[c].dtype == src[c].dtype
        assert np.array_equal(dst[c][~touched].view(np.uint16), src[c][~touched].view(np.uint16)), c
        assert not np.array_equal(dst[c][alpha > 0], src[c][alpha > 0]), f"{c}: nothing was inpainted"
    assert touched.sum() > (alpha > 0).sum()  # grow/feather really widened the filled region


def test_cancel_mid_step_stops_within_a_step_and_keeps_finished_frames(dserver, tmp_path):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    plate = _write_plate(tmp_path / "p", range(1, 4), 96, 64)
    spec = RenderSpec(model="tiny-sd15", seed=3, options={"steps": "400", "strength": "1.0"})
    with Client(dserver.address) as client:
        sub = submit_render(client, spec, plate_frames(plate))
        done = set()
        for event in client.watch(sub.render_id):
            if event.kind == pb.RenderEvent.FRAME_DONE:
                done.add(event.frame)
            if event.kind == pb.RenderEvent.STEP and event.frame == 2 and 0 < event.step < event.total_steps:
                client.cancel(sub.render_id)  # frame 2 is between denoising steps
                break
        final = client.wait(sub.render_id)
    assert final.state == pb.CANCELLED
    by_frame = {f.frame: f for f in final.frames}
    assert by_frame[1].state == pb.FRAME_DONE and by_frame[1].output_digest  # finished frames are kept
    assert by_frame[2].state == pb.FRAME_CANCELLED and not by_frame[2].output_digest
    assert by_frame[3].state == pb.FRAME_CANCELLED


def test_reference_changes_the_result(capsys, dserver, tmp_path):
    plate = _write_plate(tmp_path / "p", range(1, 2), 64, 48)
    ref_folder = tmp_path / "ref"
    _write_plate(ref_folder, range(1, 2), 64, 48)
    ref = ref_folder / "plate.0001.exr"
    with OpenEXR.File(str(ref), separate_channels=True) as f:  # a dark, blue reference
        hdr = dict(f.parts[0].header)
        ch = {n: np.array(c.pixels) for n, c in f.parts[0].channels.items()}
    ch["R"], ch["G"], ch["B"] = ch["R"] * 0.05, ch["G"] * 0.1, np.full_like(ch["B"], 0.8)
    with OpenEXR.File(hdr, ch) as f:
        f.write(str(ref))
    code, plain, err = _render(capsys, dserver, plate, tmp_path / "a", "--model", "tiny-sd15", *FAST)
    assert code == 0, err
    code, steered, err = _render(capsys, dserver, plate, tmp_path / "b", "--model", "tiny-sd15", *FAST,
                                 "--reference", str(ref), "--option", "reference_strength=1")
    assert code == 0, err
    a, b = _rgb(plain["outputs"]["1"]), _rgb(steered["outputs"]["1"])
    assert np.abs(a - b).mean() > 1e-3


def test_z_channel_is_the_depth_condition(capsys, dserver, tmp_path):
    from shotpass_server.passes.base import FrameJob
    from shotpass_server.passes.diffusion.img2img import control_image, depth_condition

    with_z = _write_plate(tmp_path / "z", range(1, 2), 64, 48, z=True)
    without = _write_plate(tmp_path / "noz", range(1, 2), 64, 48)  # same seed: same RGB, no Z
    src_z, src_plain = channels(with_z.replace("####", "0001")), channels(without.replace("####", "0001"))
    assert np.array_equal(src_z["R"], src_plain["R"])
    # The condition is the plate's inverse depth: the nearest pixel is 1, the farthest 0, near brighter than far.
    z = src_z["Z"]
    cond = depth_condition(z)
    assert cond.flat[np.argmin(z)] == 1.0 and cond.flat[np.argmax(z)] == 0.0
    assert cond[:, 0].mean() > cond[:, -1].mean() + 0.5
    job = FrameJob(frame=1, rgb=np.zeros((48, 64, 3), np.float32), alpha=None, depth=src_z["Z"])
    assert np.array_equal(control_image("depth", job)[..., 0], cond)

    outs = []
    for name, plate in (("z", with_z), ("noz", without)):
        code, out, err = _render(capsys, dserver, plate, tmp_path / f"o-{name}", "--model", "tiny-sd15", *FAST,
                                 "--option", "controlnet=auto")
        assert code == 0, err
        outs.append(_rgb(out["outputs"]["1"]))
    assert not np.array_equal(outs[0], outs[1])  # auto: depth from Z vs edges without it

    # controlnet=depth on a plate without Z is refused at submit, naming the file and frame: no render is queued.
    from shotpass_client import Client

    with Client(dserver.address) as client:
        before = len(client.list_renders())
        code, out, err = _render(capsys, dserver, without, tmp_path / "o-fail", "--model", "tiny-sd15", *FAST,
                                 "--option", "controlnet=depth")
        assert code != 0
        assert "plate.0001.exr (frame 1): controlnet=depth needs a Z channel" in err
        assert len(client.list_renders()) == before


def test_instruction_prompt_warns_and_the_cli_shows_it(capsys, dserver, tmp_path):
    plate = _write_plate(tmp_path / "p", range(1, 2), 40, 32)
    code, out, err = run_cli(capsys, ["render", plate, "--server", dserver.address, "--out", str(tmp_path / "o"),
                                      "--model", "tiny-sd15", "--prompt", "make it look like a watercolour", *FAST])
    assert code == 0, err
    assert "reads like an instruction" in err


def test_models_lists_the_configured_models_with_their_options(capsys, dserver):
    code, out, err = run_cli(capsys, ["models", "--server", dserver.address, "--json"])
    assert code == 0, err
    by_name = {m["name"]: m for m in out["models"]}
    assert by_name["tiny-sd15"]["family"] == "descriptive"
    assert by_name["tiny-sd15"]["options"]["steps"] == "2"
    assert by_name["tiny-x4"]["scale"] == 4 and by_name["tiny-x2"]["scale"] == 2
    assert by_name["tiny-inpaint"]["needs_mask"]


def test_loading_works_with_the_network_denied(model_config, monkeypatch):
    from shotpass_server.passes.base import FrameJob, PassContext
    from shotpass_server.passes.diffusion.common import PIPELINES
    from shotpass_server.passes.registry import ModelRegistry

    attempts = []
    real_connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else str(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"network denied by the test: {address}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # local_files_only alone must be enough
    PIPELINES.clear()  # really load from disk under the guard
    registry = ModelRegistry(_models(model_config))
    rgb = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    mask = np.zeros((40, 56), np.float32)
    mask[10:20, 10:30] = 1
    for name in ("tiny-sd15", "tiny-inpaint", "tiny-x4", "tiny-animatediff"):
        model = registry.get(name)
        opts = {o.name: o.default for o in model.options}
        out = model.process(FrameJob(frame=1, rgb=rgb, alpha=None, mask=mask), PassContext(options=opts, seed=1))
        assert out.rgb.shape == (40 * model.scale, 56 * model.scale, 3)
    assert attempts == []
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # the loader forces offline mode for the process


def _models(config: Path) -> list:
    from shotpass_server.config import load_config
    from shotpass_server.passes.diffusion import diffusion_model

    return [diffusion_model(s) for s in load_config(config).models]


def test_missing_or_broken_model_folder_is_an_exact_message(capsys, model_config, tmp_path):
    from shotpass_server.config import load_config
    from shotpass_server.errors import ModelUnavailable
    from shotpass_server.passes.registry import ModelRegistry

    broken = tmp_path / "sd15"
    shutil.copytree(model_config.parent / "sd15", broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[models.mine]\nkind = "sd15-img2img"\npath = "{broken}"\n'
                   f'[models.gone]\nkind = "sd15-img2img"\npath = "{tmp_path / "nowhere"}"\n')
    # The config still loads: each broken entry is an unavailable model with its exact reason.
    specs = {s.name: s for s in load_config(cfg).models}
    assert specs["mine"].unavailable == (
        f"model mine: unet: {broken / 'unet' / 'diffusion_pytorch_model.safetensors'} is missing "
        f"(no weights in {broken / 'unet'})"
    )
    assert specs["gone"].unavailable.startswith(f"model gone: {tmp_path / 'nowhere'} does not exist")
    registry = ModelRegistry(_models(cfg))
    with pytest.raises(ModelUnavailable) as err:
        registry.get("gone")
    assert str(err.value).startswith(specs["gone"].unavailable)


def test_sdxl_img2img_keeps_frames_and_windows_on_an_odd_size(capsys, dserver, tmp_path):
    plate = _write_plate(tmp_path / "sdxl", range(1001, 1004), 101, 67)
    code, out, err = _render(capsys, dserver, plate, tmp_path / "out", "--model", "tiny-sdxl", "--frames", "1001-1003",
                             "--prompt", "an oil painting", *FAST)
    assert code == 0, err
    _assert_frame_perfect(out, [1001, 1002, 1003], lambda f: plate.replace("####", f"{f:04d}"), 1, "tiny-sdxl",
                          "an oil painting")
    frames = {f: _rgb(out["outputs"][str(f)]) for f in (1001, 1002, 1003)}
    assert all(a.shape == (67, 101, 3) for a in frames.values())
    src = _rgb(plate.replace("####", "1001"))
    assert np.abs(frames[1001] - src).mean() > 1e-3  # SDXL really ran
    assert not np.array_equal(frames[1001], frames[1002])


@pytest.mark.parametrize("model", ["tiny-sd15", "tiny-sdxl", "tiny-inpaint", "tiny-x4", "tiny-animatediff"])
def test_vae_tiling_above_the_threshold_keeps_the_frame_size(capsys, dserver, tmp_path, model):
    # The tiny VAEs tile at 32 px; a frame above a 40 px threshold runs its VAE in tiles, which changes its
    # pixels (tile blending) but never its size or windows.
    scale = 4 if model == "tiny-x4" else 1
    w, h = (72, 40) if scale == 1 else (36, 20)  # the upscaler's VAE decodes 144 x 80: above the threshold too
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[4 : h - 6, 6 : w - 8] = 1.0
    plate = _write_plate(tmp_path / "p", range(1, 2), w, h, alpha=alpha)
    outs = []
    for name, above in (("whole", "1536"), ("tiled", "40")):
        code, out, err = _render(capsys, dserver, plate, tmp_path / name, "--model", model, "--option", "steps=2",
                                 "--option", f"vae_tiling_above={above}")
        assert code == 0, err
        _assert_frame_perfect(out, [1], lambda f: plate.replace("####", f"{f:04d}"), scale, model)
        outs.append(_rgb(out["outputs"]["1"]))
    assert outs[1].shape == outs[0].shape == (h * scale, w * scale, 3)
    assert np.abs(outs[0] - outs[1]).max() > 1e-4  # the tiled VAE really ran


def test_approved_preview_steers_a_following_render_of_the_shot(capsys, dserver, tmp_path):
    from shotpass_client import Client

    plate = _write_plate(tmp_path / "p", range(1, 3), 64, 48)
    steer = ["--model", "tiny-sd15", *FAST, "--option", "reference_strength=1"]
    code, preview, err = run_cli(capsys, ["preview", plate, "--frame", "1", "--shot", "sh010", "--server",
                                          dserver.address, "--out", str(tmp_path / "pv"), "--json", "--seed", "5",
                                          "--model", "tiny-sd15", "--option", "strength=1.0",
                                          "--prompt", "a dark night"])
    assert code == 0, err
    code, _, err = run_cli(capsys, ["review", preview["render"], "--approve", "--server", dserver.address, "--json"])
    assert code == 0, err
    code, steered, err = _render(capsys, dserver, plate, tmp_path / "a", "--shot", "sh010", *steer)
    assert code == 0, err
    code, plain, err = _render(capsys, dserver, plate, tmp_path / "b", "--shot", "sh011", *steer)
    assert code == 0, err
    with Client(dserver.address) as client:
        approved = client.get_render(preview["render"]).frames[0].output_digest
        assert approved and client.get_render(steered["render"]).reference_digest == approved
        assert client.get_render(plain["render"]).reference_digest == ""  # nothing approved on sh011
    for f in (1, 2):
        assert np.abs(_rgb(steered["outputs"][str(f)]) - _rgb(plain["outputs"][str(f)])).mean() > 1e-3


CARROTS = Path(__file__).resolve().parents[1].parent / "shared/data/exr/openexr-images/ScanLines/Carrots.exr"


def _seam_ratio(out: np.ndarray, tile: int, overlap: int, scale: int = 4) -> float:
    """Mean |gradient| across the tile borders over the mean |gradient| everywhere else (rows and columns).

    Borders are where a tile starts or ends (output pixels), from the very tiling the upscaler uses.
    """
    from shotpass_server.frames.tiling import tile_starts

    ratios = []
    for axis in (0, 1):
        n = out.shape[axis] // scale
        starts = tile_starts(n, tile, min(overlap, tile // 2))
        edges = {s * scale for s in starts[1:]} | {(s + tile) * scale for s in starts[:-1]}
        grad = np.abs(np.diff(out, axis=axis)).mean(axis=(1 - axis, 2))  # grad[i]: between i and i + 1
        at = np.zeros(grad.shape, dtype=bool)
        at[[e - 1 for e in edges]] = True
        ratios.append(grad[at].mean() / grad[~at].mean())
    return float(np.mean(ratios))


def test_upscale_tiles_leave_no_seam_on_a_real_plate(capsys, dserver, tmp_path):
    # A 56 x 56 crop of a real photograph, upscaled x4 in 32 px tiles (2 x 2 tiles sharing 8 px).
    with OpenEXR.File(str(CARROTS)) as f:
        rgba = np.array(f.channels()["RGBA"].pixels)
    crop = rgba[150:206, 250:306]
    folder = tmp_path / "carrots"
    folder.mkdir()
    hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(hdr, {c: np.ascontiguousarray(crop[..., i]) for i, c in enumerate("RGB")}) as f:
        f.write(str(folder / "carrots.0001.exr"))
    plate = str(folder / "carrots.####.exr")
    ratios = {}
    for overlap in (8, 0):  # 0: hard cuts (the last tile still shifts inward: both tiles are averaged there)
        code, out, err = _render(capsys, dserver, plate, tmp_path / f"o{overlap}", "--model", "tiny-x4",
                                 "--option", "tile=32", "--option", f"tile_overlap={overlap}",
                                 "--option", "guidance=1")
        assert code == 0, err
        rgb = _rgb(out["outputs"]["1"])
        assert rgb.shape == (224, 224, 3)
        ratios[overlap] = _seam_ratio(rgb, 32, overlap)
    assert ratios[8] < 1.15, ratios  # feathered: the borders are no rougher than the rest of the frame
    assert ratios[0] > 1.25, ratios  # the same measure does see the seams of hard cuts


def _carrots_plate(folder: Path, y: int, x: int, h: int, w: int, frames: int = 1) -> str:
    """A crop of a real photograph as a plate (the same picture each frame) with an offset data window."""
    with OpenEXR.File(str(CARROTS)) as f:
        rgba = np.array(f.channels()["RGBA"].pixels)
    crop = np.clip(rgba[y: y + h, x: x + w], 0, None)
    folder.mkdir(parents=True, exist_ok=True)
    hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
           "dataWindow": (np.array([5, 3], dtype=np.int32), np.array([5 + w - 1, 3 + h - 1], dtype=np.int32)),
           "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([w + 19, h + 9], dtype=np.int32))}
    for frame in range(1, frames + 1):
        with OpenEXR.File(hdr, {c: np.ascontiguousarray(crop[..., i]) for i, c in enumerate("RGB")}) as f:
            f.write(str(folder / f"carrots.{frame:04d}.exr"))
    return str(folder / "carrots.####.exr")


def test_stylize_on_a_plate_larger_than_the_tile_blends_windows_without_seams(capsys, dserver, tmp_path):
    # 256 x 192 of a real photograph in 64 px windows (the tiny model's native size is 128): strength 1, so
    # every pixel is the model's own; windows sharing 32 px agree, hard-cut windows show their borders.
    from shotpass_server.frames.tiling import tile_starts

    plate = _carrots_plate(tmp_path / "carrots", 100, 200, 192, 256, frames=3)  # 3 frames: 3 seeds measured

    code, out, err = _render(capsys, dserver, plate, tmp_path / "o", "--model", "tiny-smooth",
                             "--option", "tile=64", "--option", "tile_overlap=32")
    assert code == 0, err
    _assert_frame_perfect(out, [1, 2, 3], lambda f: plate.replace("####", f"{f:04d}"), 1, "tiny-smooth")
    outs = [_rgb(out["outputs"][str(f)]) for f in (1, 2, 3)]
    assert all(o.shape == (192, 256, 3) for o in outs)
    assert np.abs(outs[0] - _rgb(plate.replace("####", "0001"))).mean() > 1e-2  # the model really redrew it
    ratio = float(np.mean([window_seam_ratio(o, 64, 32) for o in outs]))
    assert ratio < 1.05, ratio  # blended windows: borders no rougher than the rest of the frame
    # The measure does see seams: each window of the same frames off by its own small constant (what
    # independently denoised windows look like) reads far above the threshold.
    stepped = []
    for o in outs:
        o = o.copy()
        for i, y in enumerate(tile_starts(24, 8, 0)):
            for j, x in enumerate(tile_starts(32, 8, 0)):
                o[y * 8: y * 8 + 64, x * 8: x * 8 + 64] += 0.02 * (-1) ** (i + j)  # a 0.04 step at each border
        stepped.append(window_seam_ratio(o, 64, 0))
    assert min(stepped) > 1.1, stepped


def test_region_inpaint_on_a_large_plate_keeps_outside_pixels_bit_exact(capsys, dserver, tmp_path):
    # 300 x 200 (larger than the tiny model's native 128): only the mask's box plus context is inpainted,
    # scaled to 128 and pasted back.
    alpha = np.zeros((200, 300), dtype=np.float32)
    alpha[120:150, 200:260] = 1.0
    plate = _write_plate(tmp_path / "p", range(1, 2), 300, 200, alpha=alpha)
    outs = {}
    for region in ("auto", "off"):
        code, out, err = _render(capsys, dserver, plate, tmp_path / region, "--model", "tiny-inpaint",
                                 "--option", f"region={region}", "--option", "context=16")
        assert code == 0, err
        _assert_frame_perfect(out, [1], lambda f: plate.replace("####", f"{f:04d}"), 1, "tiny-inpaint")
        src, dst = channels(plate.replace("####", "0001")), channels(out["outputs"]["1"])
        for c in "RGB":
            assert np.array_equal(dst[c][alpha == 0].view(np.uint16), src[c][alpha == 0].view(np.uint16)), c
            assert not np.array_equal(dst[c][alpha > 0], src[c][alpha > 0]), f"{c}: nothing was inpainted"
        outs[region] = _rgb(out["outputs"]["1"])
    assert np.abs(outs["auto"] - outs["off"])[alpha > 0].mean() > 1e-3  # the region really ran at another scale
