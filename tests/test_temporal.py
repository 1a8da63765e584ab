"""Temporal consistency and the flicker QC: flow on known motion, motion vectors from EXRs, flow and keyframes
renders through the real server, order, determinism, resume and cancel in a propagated range, and bad input.

Plates are small synthetic moving textures (a smooth random texture sliding by a known amount per frame), so
the true motion is known exactly and every render takes well under a second.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np
import OpenEXR
import pytest
from helpers import channels, header, run_cli, windows

DX, DY = 2, 1  # the texture moves right by DX and down by DY pixels per frame


def _texture(h: int, w: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.5)
    base = (base - base.min()) / (base.max() - base.min())
    return (base * 0.7 + 0.02).astype(np.float32)  # scene-linear 0.02-0.72


def _frame(f: int, h: int, w: int) -> np.ndarray:
    """Frame f of the moving texture: content at (x, y) in frame f-1 is at (x + DX, y + DY) in frame f."""
    big = _texture(h + 40 + 12 * DY, w + 40 + 12 * DX)
    y0, x0 = 20 + 12 * DY - f * DY, 20 + 12 * DX - f * DX
    return np.ascontiguousarray(big[y0: y0 + h, x0: x0 + w])


def _write(path: Path, rgb: np.ndarray, window: Tuple[int, int] = (0, 0), display: Tuple[int, int] = (0, 0),
           extra: Optional[Dict[str, np.ndarray]] = None, parts: Optional[list] = None) -> None:
    h, w = rgb.shape[:2]
    x0, y0 = window
    ch = {c: rgb[..., i].astype(np.float16) for i, c in enumerate("RGB")}
    ch.update(extra or {})
    hdr = {
        "compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
        "dataWindow": (np.array([x0, y0], dtype=np.int32), np.array([x0 + w - 1, y0 + h - 1], dtype=np.int32)),
        "displayWindow": (np.array([0, 0], dtype=np.int32),
                          np.array([max(display[0], x0 + w) - 1, max(display[1], y0 + h) - 1], dtype=np.int32)),
    }
    if parts:
        with OpenEXR.File([OpenEXR.Part(hdr, ch, name="rgba"), *parts]) as f:
            f.write(str(path))
        return
    with OpenEXR.File(hdr, ch) as f:
        f.write(str(path))


def _plate(folder: Path, frames: range, h: int = 48, w: int = 64, vectors: str = "",
           moving_window: bool = False) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        extra: Dict[str, np.ndarray] = {}
        if vectors == "blender":  # offset to the previous frame, pixels, y up (Vector.XY); ZW: to the next
            for name, value in (("X", -DX), ("Y", DY), ("Z", DX), ("W", -DY)):
                extra[f"ViewLayer.Vector.{name}"] = np.full((h, w), value, np.float32)
        elif vectors == "nuke":  # offset to the previous frame, pixels, y up
            extra = {"backward.u": np.full((h, w), -DX, np.float32), "backward.v": np.full((h, w), DY, np.float32)}
        window = (3 * f, 2 * f) if moving_window else (0, 0)
        _write(folder / f"plate.{f:04d}.exr", _frame(f, h, w), window, display=(w + 40, h + 30), extra=extra)
    return str(folder / "plate.####.exr")


def _rgb(path: str) -> np.ndarray:
    c = channels(path)
    return np.stack([c["R"], c["G"], c["B"]], axis=-1).astype(np.float32)


def _render(capsys, server, plate: str, out: Path, *extra: str) -> Tuple[int, dict, str]:
    return run_cli(capsys, ["render", plate, "--server", server.address, "--out", str(out), "--json", "--seed", "5",
                            *extra])


def _plates(pattern: str, frames: range, vectors: bool = True) -> List[object]:
    from shotpass_server.frames.colour import ColourSpaces
    from shotpass_server.temporal.frames import load_plate

    colours = ColourSpaces()
    out = []
    for f in frames:
        data = Path(pattern.replace("####", f"{f:04d}")).read_bytes()
        out.append(load_plate(data, f"plate.{f:04d}.exr", f"digest-{pattern}-{f}", f, "", colours.scene_linear,
                              colours, vectors))
    return out


# ---------------------------------------------------------------------------- flow


def test_computed_flow_follows_a_known_motion_and_marks_uncovered_pixels(tmp_path):
    from shotpass_server.temporal.flow import pair_flow

    a, b = _plates(_plate(tmp_path / "p", range(1, 3), h=64, w=96), range(1, 3), vectors=False)
    flow = pair_flow(a, b)
    assert flow.source == "computed"
    inner = (slice(8, -8), slice(8, -8))
    trusted = flow.valid[inner] > 0
    assert trusted.mean() > 0.9
    err = np.abs(flow.backward[inner][trusted] - np.array([-DX, -DY], np.float32))
    assert err.mean() < 0.15, err.mean()
    # The DX columns on the left are new content (they came in from outside the frame): not trusted.
    assert flow.valid[:, :DX].mean() < 0.2


@pytest.mark.parametrize("kind, layer", [("blender", "ViewLayer.Vector.X/Y"), ("nuke", "backward.u/v")])
def test_motion_vectors_read_from_the_exr_give_the_exact_motion(tmp_path, kind, layer):
    from shotpass_server.temporal.flow import pair_flow

    a, b = _plates(_plate(tmp_path / "p", range(1, 3), vectors=kind), range(1, 3))
    assert b.vectors is not None and b.vectors.layer == layer
    flow = pair_flow(a, b)
    assert flow.source == f"vectors {layer}"
    assert np.array_equal(flow.backward[..., 0], np.full(flow.backward.shape[:2], -DX, np.float32))
    assert np.array_equal(flow.backward[..., 1], np.full(flow.backward.shape[:2], -DY, np.float32))
    assert flow.valid[4:-4, 4:-4].mean() > 0.95


def test_a_chain_of_flows_follows_the_motion_over_several_frames(tmp_path):
    from shotpass_server.temporal.flow import chain_flow

    plates = _plates(_plate(tmp_path / "p", range(1, 5), h=64, w=96), range(1, 5), vectors=False)
    flow = chain_flow(list(reversed(plates)))  # frame 4 back to frame 1: three steps
    inner = (slice(12, -12), slice(12, -12))
    trusted = flow.valid[inner] > 0
    assert trusted.mean() > 0.8
    assert np.abs(flow.backward[inner][trusted] - np.array([-3 * DX, -3 * DY])).mean() < 0.3


def test_a_chain_counts_the_steps_that_lost_each_pixel(tmp_path):
    from dataclasses import replace

    from shotpass_server.temporal.flow import chain_flow

    plates = _plates(_plate(tmp_path / "p", range(1, 6), h=64, w=96, vectors="nuke"), range(1, 6))
    grey = plates[2].gray.copy()
    grey[20:30, 40:50] = 255 - grey[20:30, 40:50]  # frame 3 disagrees with its neighbours there: both its steps fail
    plates[2] = replace(plates[2], gray=grey, digest="frame 3 with a flash")
    flow = chain_flow(list(reversed(plates)))  # frame 5 back to frame 1: frame 3's patch is at +2 DX, +2 DY in 5
    assert flow.failed is not None
    lost = flow.failed[20 + 2 * DY: 30 + 2 * DY, 40 + 2 * DX: 50 + 2 * DX]
    assert (lost == 2).all() and not flow.valid[20 + 2 * DY: 30 + 2 * DY, 40 + 2 * DX: 50 + 2 * DX].any()
    around = flow.failed[12:40, 30:62].copy()
    around[8 + 2 * DY: 18 + 2 * DY, 10 + 2 * DX: 20 + 2 * DX] = 0
    assert not around.any()  # only the walks through the patch lost their way


def test_a_chain_forgives_one_lost_step_only_where_the_plate_still_agrees(tmp_path):
    from dataclasses import replace

    from shotpass_server.temporal.flow import chain_flow, rejoined

    plates = _plates(_plate(tmp_path / "p", range(1, 6), h=64, w=96, vectors="nuke"), range(1, 6))
    flow = chain_flow(list(reversed(plates)))  # frame 5 back to frame 1 along exact vectors
    assert flow.failed is not None
    inner = (slice(12, -12), slice(16, -16))
    assert flow.valid[inner].all() and not flow.failed[inner].any()
    failed = flow.failed.copy()
    failed[20:30, 30:40] = 1  # one step lost these pixels
    failed[20:30, 50:60] = 2  # two steps lost these
    lost = replace(flow, failed=failed, valid=(failed == 0).astype(np.float32))
    trust = rejoined(lost, plates[-1], plates[0])
    assert trust[20:30, 30:40].all() and not trust[20:30, 50:60].any()
    elsewhere = replace(plates[-1], gray=np.ascontiguousarray(255 - plates[-1].gray))  # the walk ends on other colour
    assert not rejoined(lost, elsewhere, plates[0])[20:30, 30:40].any()


# ---------------------------------------------------------------------------- QC


def test_flicker_ratio_of_an_identity_is_one_and_of_per_frame_noise_far_above(tmp_path):
    from shotpass_server.frames.colour import ColourSpaces
    from shotpass_server.temporal.qc import QcFrame, render_qc

    pattern = _plate(tmp_path / "p", range(1, 6))
    sources = {f: Path(pattern.replace("####", f"{f:04d}")).read_bytes() for f in range(1, 6)}
    colours = ColourSpaces()
    rng = np.random.default_rng(0)
    noisy = {}
    for f in range(1, 6):
        path = tmp_path / f"noisy.{f}.exr"
        _write(path, _frame(f, 48, 64) + rng.normal(0, 0.05, (48, 64, 3)).astype(np.float32), display=(104, 78))
        noisy[f] = path.read_bytes()

    def qc(outputs):
        frames = [QcFrame(f, sources[f], f"plate.{f}", f"d{f}", outputs[f]) for f in range(1, 6)]
        return render_qc(frames, 1, "", colours.scene_linear, colours)

    same = qc(sources)
    assert same.flicker_ratio == pytest.approx(1.0, abs=1e-9)
    assert len(same.pairs) == 4 and same.contract_errors == [] and same.nonfinite_outputs == 0
    noise = qc(noisy)
    assert noise.flicker_ratio > 10, noise.flicker_ratio
    assert noise.worst_pairs[0].ratio >= noise.worst_pairs[-1].ratio


def test_every_render_reports_its_flicker_in_get_render_json_and_the_renders_list(capsys, server, client, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 5))
    code, out, err = _render(capsys, server, plate, tmp_path / "o", "--pass", "passthrough")
    assert code == 0, err
    qc = out["qc"]
    assert qc["flicker_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert len(qc["pairs"]) == 3 and qc["worst_pairs"] and qc["contract_ok"] and qc["nonfinite_outputs"] == 0
    render = client.get_render(out["render"])
    assert render.HasField("qc") and [p.frame_b for p in render.qc.pairs] == [2, 3, 4]
    code, listed, _ = run_cli(capsys, ["renders", "--server", server.address, "--json"])
    assert listed["renders"][0]["qc"]["flicker_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert listed["renders"][0]["qc"]["worst_pairs"]  # the list carries the worst pairs, not every pair
    from shotpass_server.cli import main

    main(["renders", "--server", server.address])
    assert "flicker 1.0x" in capsys.readouterr().out
    from shotpass_client.ui_model import render_summary, version_label

    assert "flicker 1.0x" in version_label(render_summary(render))


# ---------------------------------------------------------------------------- renders


def test_flow_and_keyframes_steady_a_stylize_and_keyframes_are_bit_exact(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 10))
    results = {}
    for mode, extra in {"off": [], "flow": [], "keyframes": ["--option", "keyframe_every=4"]}.items():
        code, out, err = _render(capsys, server, plate, tmp_path / mode, "--pass", "stylize", "--option",
                                 f"temporal={mode}", *extra)
        assert code == 0, err
        results[mode] = out
    off, flow, keys = (results[m]["qc"]["flicker_ratio"] for m in ("off", "flow", "keyframes"))
    assert flow < off / 2 and keys < off / 2, (off, flow, keys)
    for f in range(1, 10):  # keyframes 1, 5, 9: exactly what the model made; the frames between are propagated
        per_frame, propagated = _rgb(results["off"]["outputs"][str(f)]), _rgb(results["keyframes"]["outputs"][str(f)])
        if f in (1, 5, 9):
            assert np.array_equal(per_frame, propagated), f
            assert header(results["keyframes"]["outputs"][str(f)])["shotpass/temporal"] == "keyframe"
        else:
            assert not np.array_equal(per_frame, propagated), f
            assert "propagated from keyframes" in header(results["keyframes"]["outputs"][str(f)])["shotpass/temporal"]
    assert np.array_equal(_rgb(results["off"]["outputs"]["1"]), _rgb(results["flow"]["outputs"]["1"]))


def _sliding_plate(folder: Path, frames: range, step: float, h: int = 40, w: int = 72) -> str:
    """A texture sliding right by a sub-pixel ``step`` per frame, with exact Nuke backward vectors."""
    folder.mkdir(parents=True, exist_ok=True)
    big = _texture(h, w + 40, seed=4)
    for f in frames:
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        rgb = cv2.remap(big, gx + 20 - step * f, gy, cv2.INTER_CUBIC)
        extra = {"backward.u": np.full((h, w), -step, np.float32), "backward.v": np.zeros((h, w), np.float32)}
        _write(folder / f"plate.{f:04d}.exr", rgb, extra=extra)
    return str(folder / "plate.####.exr")


def test_a_propagated_frame_samples_its_keyframe_once_along_the_composed_motion(capsys, server, tmp_path):
    # Half a pixel per frame: frame 5 is 2 whole pixels from keyframe 1. Composed into one map, that is an exact
    # shift of the keyframe; warping frame by frame would resample it four times at half-pixel offsets (a blur).
    plate = _sliding_plate(tmp_path / "p", range(1, 6), 0.5)
    code, out, err = _render(capsys, server, plate, tmp_path / "o", "--pass", "stylize", "--option",
                             "temporal=keyframes", "--option", "keyframes=1")
    assert code == 0, err
    key, last = _rgb(out["outputs"]["1"]), _rgb(out["outputs"]["5"])
    inner = (slice(2, -2), slice(8, -8))
    exact = np.roll(key, 2, axis=1)[inner]
    half_step = np.meshgrid(np.arange(key.shape[1], dtype=np.float32) - 0.5, np.arange(key.shape[0], dtype=np.float32))
    chained = key
    for _ in range(4):  # what frame-by-frame warping would give: the same 2 pixels, blurred on the way
        chained = cv2.remap(chained, *half_step, cv2.INTER_LINEAR)
    error = np.abs(last[inner] - exact).mean()
    assert error < 0.1 * np.abs(chained[inner] - exact).mean(), error
    assert "propagated from keyframes 1" in header(out["outputs"]["5"])["shotpass/temporal"]


def test_refined_keyframes_agree_and_only_the_first_is_the_models(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 10))
    results = {}
    for name, extra in {"off": ["temporal=off"], "keyframes": ["temporal=keyframes", "keyframe_every=4"],
                        "refined": ["temporal=keyframes", "keyframe_every=4", "keyframe_refine=flow"]}.items():
        options = [a for o in extra for a in ("--option", o)]
        code, out, err = _render(capsys, server, plate, tmp_path / name, "--pass", "stylize", *options)
        assert code == 0, err
        results[name] = out
    off, keys, refined = (results[m]["qc"]["flicker_ratio"] for m in ("off", "keyframes", "refined"))
    assert refined < keys < off, (off, keys, refined)
    outputs = {m: {f: _rgb(results[m]["outputs"][str(f)]) for f in (1, 5, 9)} for m in results}
    assert np.array_equal(outputs["off"][1], outputs["refined"][1])
    assert header(results["refined"]["outputs"]["1"])["shotpass/temporal"] == "keyframe"
    for f, before in ((5, 1), (9, 5)):
        assert not np.array_equal(outputs["off"][f], outputs["refined"][f]), f
        assert header(results["refined"]["outputs"][str(f)])["shotpass/temporal"] == (
            f"keyframe refined by flow strength 0.92 from keyframe {before}")
    # Neighbouring keyframes agree better along the motion: keyframe 5 carried onto 9 vs keyframe 9.
    from shotpass_server.temporal.flow import chain_flow, warp

    plates = _plates(plate, range(5, 10), vectors=False)[::-1]
    flow = chain_flow(plates)

    def disagreement(a: np.ndarray, b: np.ndarray) -> float:
        return float((np.abs(warp(a, flow.backward) - b).mean(axis=-1) * flow.valid).sum() / flow.valid.sum())

    assert disagreement(outputs["refined"][5], outputs["refined"][9]) < 0.5 * disagreement(
        outputs["keyframes"][5], outputs["keyframes"][9])


def test_keyframes_run_first_and_temporal_renders_are_deterministic(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 8))
    outs = []
    for _ in range(2):
        code, out, err = _render(capsys, server, plate, tmp_path / f"o{len(outs)}", "--pass", "stylize", "--option",
                                 "temporal=keyframes", "--option", "keyframes=2,6")
        assert code == 0, err
        outs.append(out)
    frames = {f.frame: f for f in server.catalog.frames(outs[0]["render"])}
    keys = [frames[2], frames[6]]
    others = [frames[f] for f in (1, 3, 4, 5, 7)]
    assert max(f.started_at for f in keys) <= min(f.started_at for f in others)
    for f in range(1, 8):
        assert np.array_equal(_rgb(outs[0]["outputs"][str(f)]), _rgb(outs[1]["outputs"][str(f)])), f


def test_temporal_modes_keep_n_in_n_out_on_beachballs_moving_windows(capsys, server, beachball, tmp_path):
    for mode in ("flow", "keyframes"):
        code, out, err = _render(capsys, server, beachball, tmp_path / mode, "--pass", "stylize", "--frames", "1-4",
                                 "--option", f"temporal={mode}", "--option", "keyframe_every=3")
        assert code == 0, err
        assert sorted(out["outputs"]) == ["1", "2", "3", "4"]
        for f in range(1, 5):
            src = beachball.replace("####", f"{f:04d}")
            assert windows(out["outputs"][str(f)])[:2] == windows(src)[:2], (mode, f)
        assert out["qc"]["contract_ok"] and out["qc"]["flicker_ratio"] > 0


def test_flow_uses_the_plates_motion_vectors_and_an_upscale_flows_at_output_size(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 4), h=24, w=32, vectors="blender", moving_window=True)
    code, out, err = _render(capsys, server, plate, tmp_path / "s", "--pass", "stylize", "--option", "temporal=flow")
    assert code == 0, err
    assert "Vector" in out["qc"]["flow_source"]
    code, out, err = _render(capsys, server, plate, tmp_path / "u", "--model", "realesrgan-animevideov3-x2",
                             "--option", "temporal=flow")
    assert code == 0, err
    assert out["qc"]["contract_ok"], out["qc"]
    assert windows(out["outputs"]["2"])[0] == (12, 8, 12 + 64 - 1, 8 + 48 - 1)  # window x2


# ---------------------------------------------------------------------------- interrupted renders


def _interrupt_after(server, client, render_id: str, frames_done: int, action) -> None:
    """Watch a render and call action() once `frames_done` of its frames are done."""
    from shotpass_client.proto import shotpass_pb2 as pb

    done = 0
    for event in client.watch(render_id):
        if event.kind == pb.RenderEvent.FRAME_DONE:
            done += 1
            if done == frames_done:
                action()
                return


@pytest.fixture
def one_worker(tmp_path: Path) -> Iterator[object]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    servers = []

    def start() -> object:
        srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", chunk_frames=1,
                                          workers=1))
        srv.start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        if srv.ready:
            srv.stop(grace=0.5)


def _submit(client, plate: str, options: Dict[str, str]) -> str:
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    return submit_render(client, RenderSpec(pass_name="stylize", options=options, seed=3),
                         plate_frames(plate)).render_id


def _pixels(srv, render_id: str) -> Dict[int, np.ndarray]:
    from shotpass_server.frames.exr import decode_exr, select_colour

    out = {}
    for f in srv.catalog.frames(render_id):
        if f.output_digest:
            out[f.frame] = select_colour(decode_exr(srv.blobs.get(f.output_digest), "o"), None).rgb
    return out


@pytest.mark.parametrize("options", [{"temporal": "keyframes", "keyframe_every": "3"}, {"temporal": "flow"},
                                     {"temporal": "keyframes", "keyframe_every": "3", "keyframe_refine": "flow"}])
def test_a_render_resumed_after_a_restart_mid_range_gives_the_uninterrupted_frames(tmp_path, one_worker, options):
    from shotpass_client import Client

    plate = _plate(tmp_path / "p", range(1, 9), h=160, w=224)
    srv = one_worker()
    with Client(srv.address) as client:
        render_id = _submit(client, plate, options)
        # Stop with the range half done: keyframes 1, 4, 7, 8 are done first, then propagated frame 2.
        stopper = threading.Thread(target=lambda: srv.stop(grace=0.5, work_grace=0))
        _interrupt_after(srv, client, render_id, 5, stopper.start)
    stopper.join(30)
    srv2 = one_worker()
    assert srv2.manager.wait_final(render_id, 60).state == "FINISHED"
    done_at_stop = [e for e in srv2.catalog.events_after(render_id, 0) if e.kind == "RESUMED"]
    assert done_at_stop, "the render finished before the stop: nothing was resumed"
    with Client(srv2.address) as client:
        straight = _submit(client, plate, options)
    assert srv2.manager.wait_final(straight, 60).state == "FINISHED"
    resumed, expected = _pixels(srv2, render_id), _pixels(srv2, straight)
    assert sorted(resumed) == sorted(expected) == list(range(1, 9))
    for f in expected:
        assert np.array_equal(resumed[f], expected[f]), f


def test_cancel_in_a_propagated_range_keeps_only_finished_frames_and_they_match(tmp_path, one_worker):
    from shotpass_client import Client

    plate = _plate(tmp_path / "p", range(1, 9), h=160, w=224)
    srv = one_worker()
    options = {"temporal": "keyframes", "keyframe_every": "3"}
    with Client(srv.address) as client:
        render_id = _submit(client, plate, options)
        _interrupt_after(srv, client, render_id, 5, lambda: client.cancel(render_id))
        final = srv.manager.wait_final(render_id, 60)
        assert final.state == "CANCELLED"
        kept = _pixels(srv, render_id)
        assert 5 <= len(kept) < 8
        assert all(f.state != "FRAME_DONE" for f in final.frames if f.frame not in kept)
        straight = _submit(client, plate, options)
        assert srv.manager.wait_final(straight, 60).state == "FINISHED"
    expected = _pixels(srv, straight)
    for f, pixels in kept.items():
        assert np.array_equal(pixels, expected[f]), f


# ---------------------------------------------------------------------------- options and bad input


def test_models_publish_the_temporal_options_with_per_pass_defaults(client):
    models = {m.name: m for m in client.list_models()}
    defaults = {name: {o.name: o.default_value for o in m.options} for name, m in models.items()}
    assert defaults["styletransfer-preset"]["temporal"] == "flow"
    assert defaults["opencv-telea"]["temporal"] == "off"
    assert defaults["realesrgan-animevideov3-x4"]["temporal"] == "off"
    assert "temporal" not in defaults["passthrough"]
    spec = next(o for o in models["styletransfer-preset"].options if o.name == "temporal")
    assert list(spec.choices) == ["off", "flow", "keyframes"]


def test_a_keyframe_outside_the_range_is_refused_naming_it(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 5))
    code, _, err = _render(capsys, server, plate, tmp_path / "o", "--pass", "stylize", "--option",
                           "temporal=keyframes", "--option", "keyframes=2,50")
    assert code != 0
    assert "keyframes: frame(s) 50 are not frames of this render (1-4)" in err


def test_motion_vectors_of_the_wrong_size_are_refused_naming_the_file_and_frame(capsys, server, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for f in (1, 2):
        small = {"Vector.X": np.zeros((10, 12), np.float32), "Vector.Y": np.zeros((10, 12), np.float32)}
        vhdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                "dataWindow": (np.array([0, 0], dtype=np.int32), np.array([11, 9], dtype=np.int32)),
                "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([63, 47], dtype=np.int32))}
        _write(folder / f"mv.{f:04d}.exr", _frame(f, 48, 64), parts=[OpenEXR.Part(vhdr, small, name="vectors")])
    code, _, err = _render(capsys, server, str(folder / "mv.####.exr"), tmp_path / "o", "--pass", "stylize",
                           "--option", "temporal=flow")
    assert code != 0
    assert "mv.0001.exr (frame 1): motion-vector channels Vector.X/Y are 12x10" in err
    assert "flow_source=computed" in err
    code, _, err = _render(capsys, server, str(folder / "mv.####.exr"), tmp_path / "o", "--pass", "stylize",
                           "--option", "temporal=flow", "--option", "flow_source=computed")
    assert code == 0, err


def test_flow_source_vectors_without_channels_is_refused(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 3))
    code, _, err = _render(capsys, server, plate, tmp_path / "o", "--pass", "stylize", "--option",
                           "temporal=flow", "--option", "flow_source=vectors")
    assert code != 0 and "(frame 1): flow_source=vectors but the plate has no motion-vector channels" in err


def test_plan_orders_keyframes_first_and_flow_one_chunk_at_a_time():
    from shotpass_server.temporal.plan import SETTINGS_KEY, TemporalPlan, make_plan

    keys = make_plan({"temporal": "keyframes", "keyframe_every": 4}, range(1, 11), {})
    assert keys is not None and keys.keyframes == [1, 5, 9, 10]
    assert keys.next_chunk(list(range(1, 11)), set(), 3) == [1, 5, 9]
    assert keys.next_chunk([2, 3, 4, 6, 7, 8], {10}, 3) == []  # keyframe 10 still runs: nothing depends-free yet
    assert keys.next_chunk([2, 3, 4, 6, 7, 8], set(), 3) == [2, 3, 4]
    assert keys.neighbours(6) == (5, 9)
    refined = make_plan({"temporal": "keyframes", "keyframe_every": 4, "keyframe_refine": "flow"}, range(1, 11), {})
    assert refined is not None and refined.refine and refined.keyframes == [1, 5, 9, 10]
    assert refined.next_chunk(list(range(2, 11)), {1}, 3) == []  # keyframe 5 is blended with keyframe 1's output
    assert refined.next_chunk(list(range(2, 11)), set(), 3) == [5, 9, 10]  # one chunk, run in order
    assert refined.next_chunk([2, 3, 4, 6, 7, 8], set(), 3) == [2, 3, 4]  # the frames between: side by side
    stored = TemporalPlan.from_settings({SETTINGS_KEY: refined.to_settings()}, range(1, 11))
    assert stored == refined
    flow = make_plan({"temporal": "flow"}, [3, 1, 2], {})
    assert flow is not None and flow.next_chunk([2, 3], {1}, 4) == []
    assert flow.next_chunk([2, 3], set(), 4) == [2, 3]
    assert make_plan({"temporal": "flow"}, [7], {}) is None  # one frame: nothing to keep steady
    with_preview = make_plan({"temporal": "keyframes", "keyframe_every": 8}, range(1, 11), {4: "abc", 99: "x"})
    assert with_preview is not None and with_preview.keyframes == [1, 4, 9, 10] and with_preview.previews == {4: "abc"}


def test_an_approved_preview_is_the_keyframe_of_its_frame_as_it_is(capsys, server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 8))
    common = ["--server", server.address, "--json", "--shot", "sh010", "--pass", "stylize"]
    code, preview, err = run_cli(capsys, ["preview", plate, "--frame", "4", "--option", "style=3",
                                          "--out", str(tmp_path / "pv"), *common])
    assert code == 0, err
    code, _, err = run_cli(capsys, ["review", preview["render"], "--approve", "--server", server.address, "--json"])
    assert code == 0, err
    code, out, err = run_cli(capsys, ["render", plate, "--option", "temporal=keyframes", "--option",
                                      "keyframe_every=6", "--out", str(tmp_path / "o"), *common])
    assert code == 0, err
    frames = {f.frame: f for f in server.catalog.frames(out["render"])}
    approved = server.catalog.frames(preview["render"])[0]
    assert frames[4].output_digest == approved.output_digest  # the approved look, bit for bit
    assert frames[1].output_digest != approved.output_digest
    assert server.catalog.get_render(out["render"]).settings["temporal_plan"]["keyframes"] == [1, 4, 7]


def test_a_video_models_contiguous_runs_are_never_cut_into_chunks():
    from shotpass_server.temporal.plan import clip_plan

    plan = clip_plan([1, 2, 3, 4, 5, 6, 7, 9, 10])
    assert plan is not None and plan.mode == "clip"
    assert plan.next_chunk([1, 2, 3, 4, 5, 6, 7, 9, 10], set(), 3) == [1, 2, 3, 4, 5, 6, 7]  # not 3 frames
    assert plan.next_chunk([9, 10], {1, 2, 3}, 3) == [9, 10]  # another run may go to another worker
    assert clip_plan([5]) is None


def test_qc_counts_nan_and_inf_and_names_frames_that_break_the_contract(tmp_path):
    from shotpass_server.frames.colour import ColourSpaces
    from shotpass_server.temporal.qc import QcFrame, render_qc

    pattern = _plate(tmp_path / "p", range(1, 5))
    sources = {f: Path(pattern.replace("####", f"{f:04d}")).read_bytes() for f in range(1, 5)}
    bad = _frame(2, 48, 64)
    bad[3, 4, 0], bad[5, 6, 1] = np.nan, np.inf
    _write(tmp_path / "nan.exr", bad, display=(104, 78))
    _write(tmp_path / "moved.exr", _frame(3, 48, 64), window=(1, 0), display=(104, 78))
    outputs = {1: sources[1], 2: (tmp_path / "nan.exr").read_bytes(), 3: (tmp_path / "moved.exr").read_bytes(),
               4: None}
    colours = ColourSpaces()
    qc = render_qc([QcFrame(f, sources[f], f"plate.{f}", f"d{f}", outputs[f]) for f in range(1, 5)], 1, "",
                   colours.scene_linear, colours)
    assert qc.nonfinite_outputs == 2 and qc.nonfinite_sources == 0
    assert "frame 3: output data window (1, 0, 64, 47), expected (0, 0, 63, 47)" in qc.contract_errors
    assert "frame 4: no output" in qc.contract_errors
    assert [(p.frame_a, p.frame_b) for p in qc.pairs] == [(1, 2)]  # only pairs of two good frames are measured


def test_keyframe_lists_are_matched_against_the_range_never_expanded_on_their_own():
    from shotpass_server.errors import InvalidInput
    from shotpass_server.temporal.plan import make_plan

    frames = list(range(1001, 1101, 2))  # 1001-1099x2
    plan = make_plan({"temporal": "keyframes", "keyframes": "1001-1099x16,1099"}, frames, {})
    assert plan is not None and plan.keyframes == [1001, 1017, 1033, 1049, 1065, 1081, 1097, 1099]
    with pytest.raises(InvalidInput, match=r"frame\(s\) 1002 are not frames of this render \(1001-1099x2\)"):
        make_plan({"temporal": "keyframes", "keyframes": "1001,1002"}, frames, {})
    with pytest.raises(InvalidInput, match="'1-999999999' are not frames of this render"):
        make_plan({"temporal": "keyframes", "keyframes": "1-999999999"}, frames, {})
    with pytest.raises(InvalidInput, match="is not a frame or a range"):
        make_plan({"temporal": "keyframes", "keyframes": "every 8"}, frames, {})


def test_keyframes_too_far_apart_are_refused_at_submit():
    from shotpass_server.errors import InvalidInput
    from shotpass_server.temporal.plan import make_plan

    assert make_plan({"temporal": "keyframes", "keyframe_every": 100}, range(1, 201), {}) is not None
    with pytest.raises(InvalidInput, match="frames 2-200 are 199 frames without a keyframe"):
        make_plan({"temporal": "keyframes", "keyframes": "1"}, range(1, 201), {})
