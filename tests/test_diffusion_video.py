"""Diffusion video (tiny random-weight pipelines through the production path): AnimateDiff pickups that read
handles and cut back into the full render, and consistent noise across frames for img2img."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tiny_pipelines
import torch  # installed by `make test` (the diffusion extra)
from helpers import model_server, run_cli
from test_temporal import _plate, _rgb

FAST = ["--option", "steps=2", "--option", "strength=0.5"]


@pytest.fixture(scope="module")
def vserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("models")
    tiny_pipelines.save_animatediff(root / "animatediff")
    tiny_pipelines.save_img2img(root / "sd15")
    tiny_pipelines.save_img2img(root / "sd15-smooth", smooth=True)
    (root / "shotpass.toml").write_text(
        '[models.tiny-animatediff]\nkind = "animatediff-v2v"\npath = "animatediff"\nsteps = 2\nstrength = 0.5\n'
        'context_size = 2\ncontext_overlap = 1\n\n'
        '[models.tiny-sd15]\nkind = "sd15-img2img"\npath = "sd15"\nsteps = 2\nstrength = 0.5\n\n'
        '[models.tiny-smooth]\nkind = "sd15-img2img"\npath = "sd15-smooth"\nsteps = 2\nstrength = 1.0\nguidance = 1.0\n'
    )
    # Chunks of 2 frames: a video model's clip must not be cut by them.
    with model_server(root / "shotpass.toml", root / "server-data", chunk_frames=2) as srv:
        yield srv


def _render(capsys: Any, srv: Any, plate: str, out: Path, *extra: str) -> dict:
    code, payload, err = run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json",
                                          "--seed", "9", "--prompt", "a painted landscape", *FAST, *extra])
    assert code == 0, err
    return payload


# ------------------------------------------------------------------ pickups with handles


def test_a_pickup_with_handles_gives_the_full_renders_frames_and_without_them_it_pops(capsys, vserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 9), h=32, w=48)
    video = ["--model", "tiny-animatediff"]
    full = _render(capsys, vserver, plate, tmp_path / "full", *video)
    pickup = _render(capsys, vserver, plate, tmp_path / "pickup", *video, "--frames", "3-6", "--context-handles", "2")
    bare = _render(capsys, vserver, plate, tmp_path / "bare", *video, "--frames", "3-6")

    assert sorted(int(f) for f in pickup["outputs"]) == [3, 4, 5, 6]  # N out = the frames asked, handles not output
    assert sorted(f.name for f in (tmp_path / "pickup").iterdir()) == [f"plate.{f:04d}.exr" for f in range(3, 7)]
    render = vserver.catalog.get_render(pickup["render"])
    assert [f.frame for f in render.frames] == [3, 4, 5, 6] and render.frames_total == 4
    for f in range(3, 7):  # same clip, same windows, same seeds: the pickup cuts back in bit for bit
        assert np.array_equal(_rgb(full["outputs"][str(f)]), _rgb(pickup["outputs"][str(f)])), f
    # Without handles the clip starts at frame 3, so its windows and neighbours differ: the handles were read.
    assert not np.array_equal(_rgb(full["outputs"]["3"]), _rgb(bare["outputs"]["3"]))
    assert not np.array_equal(_rgb(full["outputs"]["6"]), _rgb(bare["outputs"]["6"]))
    import OpenEXR

    with OpenEXR.File(pickup["outputs"]["3"]) as f:  # the output says which frames its clip read
        assert f.parts[0].header["shotpass/temporal"] == "clip 1-8"
    # The handles' blobs are the render's: blob GC keeps them while the render exists.
    handles = render.settings["context_frames"]
    assert [h["frame"] for h in handles] == [1, 2, 7, 8]
    assert {h["digest"] for h in handles} <= vserver.catalog.referenced_digests()


def test_a_host_pickup_through_the_shared_background_render_reads_its_handles(capsys, vserver, tmp_path):
    from shotpass_client.background import DONE, BackgroundRender, JobRequest
    from shotpass_client.jobs import RenderSpec, handles_around, plate_frames

    pattern = _plate(tmp_path / "p", range(1, 7), h=32, w=48)
    full = _render(capsys, vserver, pattern, tmp_path / "full", "--model", "tiny-animatediff")
    on_disk = plate_frames(pattern)
    frames = [3, 4]
    # What a host does: its input's range is what it can read; the shared code picks the handles from it.
    handles = handles_around(frames, range(1, 7), 9)
    assert handles == [1, 2, 5, 6]
    spec = RenderSpec(model="tiny-animatediff", prompt="a painted landscape", seed=9,
                      options={"steps": "2", "strength": "0.5"})
    job = BackgroundRender(JobRequest(vserver.address, spec, str(tmp_path / "host"),
                                      plate={f: on_disk[f] for f in frames},
                                      context={f: on_disk[f] for f in handles})).start()
    job.join(120)
    updates = []
    while not job.updates.empty():
        updates.append(job.updates.get())
    assert updates[-1].kind == DONE, updates[-1].message
    assert sorted(updates[-1].outputs) == frames
    for f in frames:
        assert np.array_equal(_rgb(full["outputs"][str(f)]), _rgb(updates[-1].outputs[f])), f


def test_handles_stop_at_the_plates_ends_and_a_still_has_none(tmp_path):
    from shotpass_client.jobs import PlateError, handle_frames

    plate = _plate(tmp_path / "p", range(1, 9), h=8, w=8)
    assert sorted(handle_frames(plate, [3, 4, 5, 6], 4)) == [1, 2, 7, 8]
    assert sorted(handle_frames(plate, [1, 2], 2)) == [3, 4]
    assert handle_frames(plate, [3, 4], 0) == {}
    with pytest.raises(PlateError, match="0 or more"):
        handle_frames(plate, [3], -1)
    (tmp_path / "p" / "plate.0002.exr").unlink()  # a hole ends the head handles there
    assert sorted(handle_frames(plate, [4, 5], 3)) == [3, 6, 7, 8]


def test_handles_that_are_not_next_to_the_range_overlap_it_or_repeat_are_refused():
    from shotpass_server.errors import InvalidInput
    from shotpass_server.renders import FrameSpec
    from shotpass_server.temporal.context import MAX_CONTEXT_FRAMES, check_context_frames, clip_around

    frames = {3, 4, 5, 6}
    ok = check_context_frames([FrameSpec(8, name="p.8"), FrameSpec(1, name="p.1"), FrameSpec(2, name="p.2"),
                               FrameSpec(7, name="p.7")], frames)
    assert [s.frame for s in ok] == [1, 2, 7, 8]
    with pytest.raises(InvalidInput, match=r"context frame\(s\) 9-10 are not next to the frames to render \(3-6\)"):
        check_context_frames([FrameSpec(9), FrameSpec(10)], frames)
    with pytest.raises(InvalidInput, match="context frame 4 .* is also a frame to render"):
        check_context_frames([FrameSpec(4, name="p.4")], frames)
    with pytest.raises(InvalidInput, match="context frame 2 is listed twice"):
        check_context_frames([FrameSpec(2), FrameSpec(2)], frames)
    with pytest.raises(InvalidInput, match=f"at most {MAX_CONTEXT_FRAMES}"):
        check_context_frames([FrameSpec(-f) for f in range(MAX_CONTEXT_FRAMES + 1)], frames)
    # A clip reaches across every readable neighbour (handles, the render's finished frames), never past a hole.
    assert clip_around([5, 6], {1, 2, 4, 5, 6, 7, 9}) == [4, 5, 6, 7]


def test_a_per_frame_model_warns_that_it_reads_no_handles(capsys, vserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 5), h=32, w=48)
    out = _render(capsys, vserver, plate, tmp_path / "o", "--model", "tiny-sd15", "--option", "temporal=off",
                  "--frames", "2-3", "--context-handles", "1")
    assert sorted(int(f) for f in out["outputs"]) == [2, 3]
    assert any("reads no context frames" in w for w in out["warnings"]), out["warnings"]
    assert "context_frames" not in vserver.catalog.get_render(out["render"]).settings


# ------------------------------------------------------------------ consistent noise across frames


def _moving_plate(folder: Path, frames: range, h: int = 64, w: int = 96, dx: int = 5, dy: int = 2) -> str:
    """A texture sliding right by dx and down by dy pixels a frame: known motion, not a whole latent cell."""
    from test_temporal import _texture, _write

    folder.mkdir(parents=True, exist_ok=True)
    n = len(frames)
    big = _texture(h + dy * n + 8, w + dx * n + 8, seed=4)
    for i, f in enumerate(frames):
        y0, x0 = dy * (n - i), dx * (n - i)
        _write(folder / f"plate.{f:04d}.exr", np.ascontiguousarray(big[y0: y0 + h, x0: x0 + w]))
    return str(folder / "plate.####.exr")


def test_flow_noise_follows_the_motion_and_drops_flicker_against_per_frame_and_fixed_noise(capsys, vserver, tmp_path):
    # A whole latent cell (8 px) a frame: the tiny random-weight net follows such a shift exactly (its own
    # response to smaller shifts is arbitrary, unlike a trained model's), so what is left of the flicker is
    # what the starting noise adds. strength=1: the frame is drawn from the noise, as a heavy restyle is.
    plate = _moving_plate(tmp_path / "p", range(1, 7), dx=8, dy=0)
    runs = {mode: _render(capsys, vserver, plate, tmp_path / mode, "--model", "tiny-smooth", "--option", "temporal=off",
                          "--option", f"noise={mode}", "--option", "strength=1")
            for mode in ("per-frame", "fixed", "flow")}
    ratio = {mode: out["qc"]["flicker_ratio"] for mode, out in runs.items()}
    assert ratio["flow"] < 0.5 * ratio["per-frame"], ratio  # measured: 192 -> 46
    assert ratio["flow"] < 0.5 * ratio["fixed"], ratio  # noise stuck on screen while the picture moves: 214
    again = _render(capsys, vserver, plate, tmp_path / "again", "--model", "tiny-smooth", "--option", "temporal=off",
                    "--option", "noise=flow", "--option", "strength=1")
    for f in range(1, 7):  # deterministic
        assert np.array_equal(_rgb(runs["flow"]["outputs"][str(f)]), _rgb(again["outputs"][str(f)])), f
    # The first frame has nothing to follow: its noise is its own, as with per-frame noise (but not the pipeline's
    # draw, so not bit for bit); every later frame differs from per-frame.
    assert not np.array_equal(_rgb(runs["flow"]["outputs"]["3"]), _rgb(runs["per-frame"]["outputs"]["3"]))


def _plates(pattern: str, frames: range) -> dict:
    from shotpass_server.frames.colour import ColourSpaces
    from shotpass_server.temporal.frames import load_plate

    colours = ColourSpaces()
    return {f: load_plate(Path(pattern.replace("####", f"{f:04d}")).read_bytes(), f"plate.{f}", f"{pattern}:{f}", f, "",
                          colours.scene_linear, colours, vectors=False) for f in frames}


def test_noise_warps_carry_sub_cell_motion_refill_what_enters_the_frame_and_resume_exactly(tmp_path):
    from shotpass_server.temporal.noise import NoiseWarps, warped_noise

    plates = _plates(_moving_plate(tmp_path / "p", range(1, 7), dx=3, dy=0), range(1, 7))
    frames = list(range(1, 7))
    in_order, cold = NoiseWarps(), NoiseWarps()
    warps = {f: in_order.warp("r", frames, f, plates.__getitem__, lambda f: 100 + f, False) for f in frames}
    # A restarted worker (nothing kept) walks from the first frame and lands on the very same warp.
    resumed = cold.warp("r", frames, 6, plates.__getitem__, lambda f: 100 + f, False)
    assert np.array_equal(resumed.origin, warps[6].origin) and np.array_equal(resumed.coords, warps[6].coords)
    # 3 px a frame: after 5 frames an interior cell sits 15 px = 1.875 cells left of where it started.
    assert warps[6].origin[3, 6] == 1
    assert abs(float(warps[6].coords[3, 6, 0]) - (6 - 15 / 8)) < 0.1
    assert (warps[6].origin[:, 0] != 1).all()  # the left edge came in from outside frame 1: fresh noise
    noise = {f: warped_noise(warps[f], (1, 4, 8, 16), 64) for f in (5, 6)}
    assert abs(float(noise[6].std()) - 1.0) < 0.1  # values are read, never blended: still unit Gaussian


def test_list_models_offers_flow_noise_for_img2img_with_its_help(vserver):
    from shotpass_client import Client

    with Client(vserver.address) as client:
        models = {m.name: m for m in client.list_models("")}
    noise = {o.name: o for o in models["tiny-sd15"].options}["noise"]
    assert list(noise.choices) == ["per-frame", "fixed", "flow"] and noise.default_value == "per-frame"
    assert "along the plate's motion" in noise.description and "seeded once per render" in noise.description
    assert "noise" not in {o.name for o in models["tiny-animatediff"].options}  # a video model has its own


# ------------------------------------------------------------------ cross-frame attention


def test_cross_frame_attention_to_the_first_frame_changes_later_frames_deterministically(capsys, vserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 4), h=32, w=48)
    base = ["--model", "tiny-sd15", "--option", "temporal=off"]
    off = _render(capsys, vserver, plate, tmp_path / "off", *base)
    first = _render(capsys, vserver, plate, tmp_path / "first", *base, "--option", "cross_frame=first")
    again = _render(capsys, vserver, plate, tmp_path / "again", *base, "--option", "cross_frame=first")
    off_again = _render(capsys, vserver, plate, tmp_path / "off2", *base)
    rgb = {name: {f: _rgb(run["outputs"][str(f)]) for f in (1, 2, 3)}
           for name, run in (("off", off), ("first", first), ("again", again), ("off_again", off_again))}
    assert np.array_equal(rgb["off"][1], rgb["first"][1])  # the anchor frame renders as it does alone
    for f in (2, 3):
        # It attended to frame 1: far more than the rounding of a batched call (~1e-6).
        assert np.abs(rgb["off"][f] - rgb["first"][f]).mean() > 5e-4, np.abs(rgb["off"][f] - rgb["first"][f]).mean()
        assert np.array_equal(rgb["first"][f], rgb["again"][f]), f  # deterministic
        assert np.array_equal(rgb["off"][f], rgb["off_again"][f]), f  # the cached pipeline's attention came back
    assert first["qc"]["contract_ok"] and first["qc"]["nonfinite_outputs"] == 0


def test_cross_frame_attention_is_refused_on_plates_larger_than_one_tile(capsys, vserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 3), h=32, w=48)
    code, _, err = run_cli(capsys, ["render", plate, "--server", vserver.address, "--out", str(tmp_path / "o"),
                                    "--model", "tiny-sd15", "--option", "cross_frame=first", "--option", "tile=16"])
    assert code != 0
    assert "plate.0001.exr (frame 1): cross_frame=first runs on plates within one tile (16 px; this one is 48x32)" \
        in err


def test_anchor_attention_leaves_the_anchor_alone_and_pulls_the_frame_towards_it(tmp_path):
    from diffusers import UNet2DConditionModel

    from shotpass_server.passes.diffusion.cross_frame import anchored

    unet = UNet2DConditionModel.from_pretrained(str(tiny_pipelines.save_img2img(tmp_path / "sd15")), subfolder="unet")
    torch.manual_seed(3)
    latents, text = torch.randn(2, 4, 8, 8), torch.randn(2, 16, tiny_pipelines.HIDDEN)
    t = torch.tensor(500)
    with torch.no_grad():
        plain = unet(latents, t, encoder_hidden_states=text).sample
        with anchored(unet):
            pair = unet(latents, t, encoder_hidden_states=text).sample
            same = unet(latents[:1].repeat(2, 1, 1, 1), t, encoder_hidden_states=text[:1].repeat(2, 1, 1)).sample
        restored = unet(latents, t, encoder_hidden_states=text).sample
    assert torch.allclose(pair[0], plain[0], atol=1e-5)  # the anchor row: unchanged
    assert (pair[1] - plain[1]).abs().mean() > 100 * (pair[0] - plain[0]).abs().mean().clamp(min=1e-7)
    assert torch.allclose(same[1], plain[0], atol=1e-5)  # a frame anchored on itself: as alone
    assert torch.equal(restored, plain)  # the processors came back


def test_context_windows_are_in_effect_and_their_overlap_counts(capsys, vserver, tmp_path):
    # 4 frames, chunks of 2: one clip whatever the chunking. context_size=4 is one window (no windowing);
    # 2 frames overlapping by 1 or by 0 lay out other windows, and each layout gives other frames.
    plate = _plate(tmp_path / "p", range(1, 5), h=32, w=48)
    runs = {(size, overlap): _render(capsys, vserver, plate, tmp_path / f"w{size}{overlap}", "--model",
                                     "tiny-animatediff", "--option", f"context_size={size}", "--option",
                                     f"context_overlap={overlap}")
            for size, overlap in ((4, 1), (2, 1), (2, 0))}
    for f in (2, 3):
        frames = [_rgb(run["outputs"][str(f)]) for run in runs.values()]
        assert not np.array_equal(frames[0], frames[1]) and not np.array_equal(frames[1], frames[2]), f
    for run in runs.values():
        assert run["qc"]["contract_ok"] and run["qc"]["nonfinite_outputs"] == 0


def test_a_flow_noise_render_resumed_after_a_restart_gives_the_uninterrupted_frames(vserver, tmp_path):
    import threading
    from dataclasses import replace

    from test_temporal import _interrupt_after, _pixels

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_server.app import ShotpassServer

    plate = _moving_plate(tmp_path / "p", range(1, 11), dx=3, dy=1)
    spec = RenderSpec(model="tiny-sd15", seed=3, prompt="a painted landscape",
                      options={"temporal": "off", "noise": "flow", "steps": "2", "strength": "0.5"})

    def start() -> Any:  # one worker, one frame a chunk, on its own data folder; a restart starts with no warps
        srv = ShotpassServer(replace(vserver.cfg, listen="127.0.0.1:0", data_dir=tmp_path / "data", chunk_frames=1,
                                     workers=1))
        srv.start()
        return srv

    srv = start()
    try:
        with Client(srv.address) as client:
            render_id = submit_render(client, spec, plate_frames(plate)).render_id
            stopper = threading.Thread(target=lambda: srv.stop(grace=0.5, work_grace=0))
            _interrupt_after(srv, client, render_id, 3, stopper.start)
        stopper.join(30)
    finally:
        if srv.ready:
            srv.stop(grace=0.5)
    srv2 = start()  # its noise warps start empty: frames after the stop walk the flow from frame 1 again
    try:
        assert srv2.manager.wait_final(render_id, 120).state == "FINISHED"
        assert [e for e in srv2.catalog.events_after(render_id, 0) if e.kind == "RESUMED"], "nothing was resumed"
        with Client(srv2.address) as client:
            straight = submit_render(client, spec, plate_frames(plate)).render_id
        assert srv2.manager.wait_final(straight, 120).state == "FINISHED"
        resumed, expected = _pixels(srv2, render_id), _pixels(srv2, straight)
    finally:
        srv2.stop(grace=0.5)
    assert sorted(resumed) == sorted(expected) == list(range(1, 11))
    for f in expected:
        assert np.array_equal(resumed[f], expected[f]), f
