"""SD3/Flux stylize on plates larger than the model's native size: MultiDiffusion windows with flow matching
(passes/diffusion/flow_windows.py), and SD3/Flux inpaint on a 2K plate running its region at the native size.

Tiny random-weight SD3 and Flux pipelines saved as studios keep them, loaded offline by the real server and
driven through the real CLI and client; real EXR plates cut from a photograph."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import OpenEXR
import pytest
import tiny_pipelines
import torch
from helpers import channels, header, model_server, run_cli, window_seam_ratio, windows

CARROTS = Path(__file__).resolve().parents[1].parent / "shared/data/exr/openexr-images/ScanLines/Carrots.exr"
STYLIZE = ("tiny-sd3", "tiny-flux")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flow-windows")
    tiny_pipelines.save_sd3(folder / "sd3")
    tiny_pipelines.save_flux(folder / "flux")
    tiny_pipelines.save_flow_lora(folder / "lora-sd3", flux=False)
    tiny_pipelines.save_flow_lora(folder / "lora-flux", flux=True)
    lora_sd3 = folder / "lora-sd3" / "pytorch_lora_weights.safetensors"
    lora_flux = folder / "lora-flux" / "pytorch_lora_weights.safetensors"
    (folder / "shotpass.toml").write_text(f"""
[models.tiny-sd3]
kind = "sd3-img2img"
path = "sd3"
steps = 2
strength = 0.6
loras = {{ ink = "{lora_sd3}" }}

[models.tiny-flux]
kind = "flux-img2img"
path = "flux"
steps = 2
strength = 0.6
loras = {{ ink = "{lora_flux}" }}

[models.tiny-sd3-inpaint]
kind = "sd3-inpaint"
path = "sd3"
steps = 2
strength = 1.0

[models.tiny-flux-inpaint]
kind = "flux-inpaint"
path = "flux"
steps = 2
strength = 1.0
""")
    return folder


@pytest.fixture(scope="module")
def models(root: Path) -> Dict[str, Any]:
    from shotpass_server.config import load_config
    from shotpass_server.passes.diffusion import diffusion_model

    return {s.name: diffusion_model(s) for s in load_config(root / "shotpass.toml").models}


@pytest.fixture(scope="module")
def server(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with model_server(root / "shotpass.toml", tmp_path_factory.mktemp("flow-windows-data"), chunk_frames=2) as srv:
        yield srv


def carrots_plate(folder: Path, frames: range, h: int, w: int, alpha: Any = None) -> str:
    """A crop of a real photograph as a half-float plate (the same picture each frame) with an offset data window,
    a wider display window, an anamorphic pixel aspect and a comment; returns its pattern."""
    with OpenEXR.File(str(CARROTS)) as f:
        rgba = np.array(f.channels()["RGBA"].pixels)
    crop = np.clip(rgba[100: 100 + h, 200: 200 + w], 0, None)
    if crop.shape[:2] != (h, w):  # larger than the photograph: the crop tiled, mirrored, to the size asked for
        reps = (-(-h // crop.shape[0]), -(-w // crop.shape[1]), 1)
        crop = np.tile(np.concatenate([crop, crop[::-1]], axis=0), reps)[:h, :w]
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        ch: Dict[str, np.ndarray] = {c: np.ascontiguousarray(crop[..., i]).astype(np.float16)
                                     for i, c in enumerate("RGB")}
        if alpha is not None:
            ch["A"] = alpha.astype(np.float16)
        hdr = {
            "compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "pixelAspectRatio": 2.0,
            "comments": f"plate frame {frame}",
            "dataWindow": (np.array([5, 3], dtype=np.int32), np.array([5 + w - 1, 3 + h - 1], dtype=np.int32)),
            "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([w + 19, h + 9], dtype=np.int32)),
        }
        with OpenEXR.File(hdr, ch) as f:
            f.write(str(folder / f"carrots.{frame:04d}.exr"))
    return str(folder / "carrots.####.exr")


def rgb_of(path: str) -> np.ndarray:
    c = channels(path)
    return np.stack([c["R"], c["G"], c["B"]], axis=-1).astype(np.float32)


def render(capsys: Any, srv: Any, plate: str, out: Path, *extra: str) -> tuple:
    return run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json", "--seed", "11",
                            *extra])


def context(model: Any, progress: Any = None, seed: int = 3, **options: Any) -> Any:
    from shotpass_server.passes.base import PassContext

    negative = options.pop("negative_prompt", "")
    reference = options.pop("reference", None)
    return PassContext(options={**{o.name: o.default for o in model.options}, **options}, seed=seed,
                       prompt="a painting", negative_prompt=negative, reference_rgb=reference,
                       **({"progress": progress} if progress else {}))


@pytest.mark.parametrize("model", STYLIZE)
@pytest.mark.parametrize("options", [
    {},  # SD3: classifier-free guidance in one batch; Flux dev: guidance as a model input
    {"guidance": 1.0, "steps": 4, "strength": 0.9},
    {"true_cfg": 3.0, "negative_prompt": "blurry"},  # Flux: a second call with the negative prompt (SD3: unused)
    {"lora_ink": 0.8, "scheduler": "euler-karras"},
    {"reference_strength": 0.7, "reference": "carrots"},
], ids=["default", "no-guidance", "negative", "lora-karras", "reference"])
def test_a_plate_within_one_window_is_the_pipeline_bit_for_bit(models, model, options):
    from shotpass_server.passes.base import FrameJob

    torch.set_num_threads(2)
    m = models[model]
    rng = np.random.default_rng(1)
    rgb = rng.random((40, 60, 3), dtype=np.float32)  # padded to 48 x 64: one window of the native 128
    if model == "tiny-sd3":
        options = {k: v for k, v in options.items() if k != "true_cfg"}
    if options.get("reference") == "carrots":
        options = {**options, "reference": rng.random((30, 50, 3), dtype=np.float32)}
    whole = m.process(FrameJob(frame=1, rgb=rgb, alpha=None), context(m, **options)).rgb  # the pipeline's call
    steps: List[tuple] = []
    ctx = context(m, progress=lambda step, total: steps.append((step, total)), **options)
    windowed = m.render_in_windows(FrameJob(frame=1, rgb=rgb, alpha=None), ctx, 128).rgb
    assert windowed.shape == (40, 60, 3)
    assert np.array_equal(windowed, whole)
    n = ctx.options["steps"] - int(ctx.options["steps"] * (1 - ctx.options["strength"]))  # as diffusers cuts them
    assert steps == [(i, n) for i in range(1, n + 1)]  # one window: one report per step
    # The windowed path really ran: a smaller window over the same plate gives another picture.
    assert np.abs(m.render_in_windows(FrameJob(frame=1, rgb=rgb, alpha=None), context(m, **options), 32).rgb
                  - whole).mean() > 1e-4


@pytest.mark.parametrize("model", STYLIZE)
def test_a_plate_larger_than_the_tile_renders_frame_perfect_in_windows_without_seams(capsys, server, tmp_path,
                                                                                     model):
    from shotpass_server.frame_pipeline import frame_seed
    from shotpass_server.frames.tiling import tile_starts

    # 256 x 192 of a real photograph in 64 px windows sharing 32 (the tiny models' native size is 128): strength 1,
    # so every pixel is the model's own; windows that agree leave no border, windows that did not would.
    plate = carrots_plate(tmp_path / "carrots", range(1, 4), 192, 256)  # 3 frames: 3 seeds measured
    code, out, err = render(capsys, server, plate, tmp_path / "o", "--model", model, "--option", "tile=64",
                            "--option", "tile_overlap=32", "--option", "strength=1", "--prompt", "an oil painting")
    assert code == 0, err
    assert out["state"] == "FINISHED" and sorted(int(k) for k in out["outputs"]) == [1, 2, 3]
    outs = []
    for frame in (1, 2, 3):
        src, written = plate.replace("####", f"{frame:04d}"), out["outputs"][str(frame)]
        assert windows(written) == windows(src) == ((5, 3, 5 + 255, 3 + 191), (0, 0, 256 + 19, 192 + 9), 2.0)
        head = header(written)
        assert head["comments"] == f"plate frame {frame}" and head["shotpass/model"] == model
        assert head["shotpass/seed"] == str(frame_seed(11, frame))
        outs.append(rgb_of(written))
        assert outs[-1].shape == (192, 256, 3) and np.isfinite(outs[-1]).all()
    assert np.abs(outs[0] - rgb_of(plate.replace("####", "0001"))).mean() > 1e-2  # the model really redrew it
    assert np.abs(outs[0] - outs[1]).mean() > 1e-3  # each frame its own noise
    # A random-weight transformer draws its own 2 x 2-patch grid everywhere, so the measure reads a little above 1
    # at any patch border: the same borders in a render without windows (the pipeline on the whole plate) are the
    # bar the windowed render is held to.
    code, plain, err = render(capsys, server, plate, tmp_path / "whole", "--model", model, "--option", "tile=256",
                              "--option", "strength=1", "--prompt", "an oil painting")
    assert code == 0, err
    wholes = [rgb_of(plain["outputs"][str(f)]) for f in (1, 2, 3)]
    bar = float(np.mean([window_seam_ratio(o, 64, 32) for o in wholes]))
    ratio = float(np.mean([window_seam_ratio(o, 64, 32) for o in outs]))
    assert ratio < bar + 0.02, (ratio, bar)  # blended windows: their borders no rougher than without windows
    # The measure does see seams: each window of the same frames off by its own small constant (what
    # independently denoised windows look like) reads far above it.
    stepped = []
    for o in outs:
        o = o.copy()
        for i, y in enumerate(tile_starts(24, 8, 0)):
            for j, x in enumerate(tile_starts(32, 8, 0)):
                o[y * 8: y * 8 + 64, x * 8: x * 8 + 64] += 0.02 * (-1) ** (i + j)  # a 0.04 step at each border
        stepped.append(window_seam_ratio(o, 64, 0))
    assert min(stepped) > bar + 0.05, (stepped, bar)

    # Deterministic: the same frame again (the first: later ones also take the temporal pass from their
    # predecessor) gives the same pixels, bit for bit.
    code, again, err = render(capsys, server, plate, tmp_path / "again", "--model", model, "--frames", "1",
                              "--option", "tile=64", "--option", "tile_overlap=32", "--option", "strength=1",
                              "--prompt", "an oil painting")
    assert code == 0, err
    assert np.array_equal(rgb_of(again["outputs"]["1"]), outs[0])


def test_windows_default_to_the_native_size_with_a_quarter_shared(models, monkeypatch):
    from shotpass_server.passes.base import FrameJob
    from shotpass_server.passes.diffusion import flow_windows

    torch.set_num_threads(2)
    m = models["tiny-sd3"]
    rgb = np.random.default_rng(5).random((150, 200, 3), dtype=np.float32)
    seen: List[tuple] = []
    real = flow_windows.windowed_flow

    def spy(pipe: Any, latents: Any, ctx: Any, tile_px: int, overlap_px: int, true_cfg: float = 1.0) -> Any:
        seen.append((tuple(latents.shape), tile_px, overlap_px))
        return real(pipe, latents, ctx, tile_px, overlap_px, true_cfg)

    monkeypatch.setattr("shotpass_server.passes.diffusion.flow.windowed_flow", spy)
    out = m.process(FrameJob(frame=1, rgb=rgb, alpha=None), context(m)).rgb
    assert out.shape == (150, 200, 3)
    assert seen == [((1, 16, 20, 26), 128, 32)]  # padded to 160 x 208; tile=0: the native 128, a quarter shared
    small = m.process(FrameJob(frame=1, rgb=rgb[:100, :120], alpha=None), context(m)).rgb
    assert small.shape == (100, 120, 3) and len(seen) == 1  # within one window: the pipeline's own call


def test_out_of_memory_retries_with_the_vae_in_tiles_then_windows_of_half_the_size(models, monkeypatch, caplog):
    import logging

    from diffusers import SD3Transformer2DModel

    from shotpass_server.passes.base import FrameJob

    torch.set_num_threads(2)
    m = models["tiny-sd3"]
    job = FrameJob(frame=1, rgb=np.random.default_rng(6).random((150, 200, 3), dtype=np.float32), alpha=None)
    expected = m.process(job, context(m, tile=64, vae_tiling_above=0)).rgb
    real_forward = SD3Transformer2DModel.forward
    failed: list = []

    def forward(net: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs["hidden_states"].shape[-1] > 64 // 8:  # a window wider than 64 px does not fit, as 4K would not
            failed.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_forward(net, *args, **kwargs)

    monkeypatch.setattr(SD3Transformer2DModel, "forward", forward)
    with caplog.at_level(logging.WARNING, "shotpass.diffusion"):
        retried = m.process(job, context(m)).rgb
    assert len(failed) == 2  # native windows, then native windows with the VAE in tiles
    assert "retrying with {'vae_tiling_above': 0}" in caplog.text and "retrying with {'tile': 64}" in caplog.text
    assert np.array_equal(retried, expected)  # the retry is the 64 px windowed render, bit for bit
    assert m.lighter({"vae_tiling_above": 0, "tile": 64}) is None  # never below 64 px windows


@pytest.mark.parametrize("model,options", [
    ("tiny-sd3", {"tile": 64}), ("tiny-flux", {"tile": 64}),  # in windows
    ("tiny-sd3", {}), ("tiny-flux", {}), ("tiny-sd3-inpaint", {}), ("tiny-flux-inpaint", {}),  # the pipelines' calls
])
def test_a_sampler_drawing_fresh_noise_each_step_draws_it_from_the_frame_seed(models, model, options):
    from shotpass_server.passes.base import FrameJob

    torch.set_num_threads(2)
    m = models[model]
    rgb = np.random.default_rng(7).random((100, 120, 3), dtype=np.float32)  # within the native 128
    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[20:60, 30:90] = 1
    job = FrameJob(frame=1, rgb=rgb, alpha=None, mask=mask if model.endswith("inpaint") else None)

    def run(seed: int, global_seed: int) -> np.ndarray:
        torch.manual_seed(global_seed)  # torch's global generator plays no part
        return m.process(job, context(m, seed=seed, scheduler="lcm", steps=3, **options)).rgb

    first = run(3, 1)
    assert np.array_equal(run(3, 2), first)
    assert np.abs(run(4, 1) - first).mean() > 1e-3


def test_cancel_between_two_windows_of_a_step_stops_there_and_the_render_requeues(server, tmp_path, monkeypatch):
    from diffusers import SD3Transformer2DModel

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    # 160 x 96 in 64 px windows sharing 32: 2 x 4 windows a step, 4 steps; cancel while the 11th window (the
    # 3rd of step 2) runs: nothing after it runs, nothing is stored, and the requeued render is the whole one.
    plate = plate_frames(carrots_plate(tmp_path / "p", range(1, 2), 96, 160))
    spec = RenderSpec(model="tiny-sd3", seed=5, options={"steps": "4", "strength": "1", "tile": "64",
                                                         "tile_overlap": "32"})
    real_forward = SD3Transformer2DModel.forward
    calls: list = []
    cancel = {"at": 0, "render": ""}
    submitted = threading.Event()

    def forward(net: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == cancel["at"]:
            assert submitted.wait(60)
            with Client(server.address) as c:  # the artist presses cancel while this window is denoised
                c.cancel(cancel["render"])
        return real_forward(net, *args, **kwargs)

    monkeypatch.setattr(SD3Transformer2DModel, "forward", forward)
    with Client(server.address) as client:
        whole = client.wait(submit_render(client, spec, plate).render_id)
        assert whole.state == pb.FINISHED
        assert len(calls) == 4 * 8, len(calls)  # one transformer call (both guidance halves) per window per step
        path = tmp_path / "whole.exr"
        client.download(whole.frames[0].output_digest, str(path))
        expected = rgb_of(str(path))

        calls.clear()
        cancel["at"] = 11
        sub = submit_render(client, spec, plate)
        cancel["render"] = sub.render_id
        submitted.set()
        steps = []
        for event in client.watch(sub.render_id):
            if event.kind == pb.RenderEvent.STEP:
                steps.append((event.step, event.total_steps))
        final = client.wait(sub.render_id)
        assert final.state == pb.CANCELLED
        assert len(calls) == 11, f"{len(calls)} windows ran after the cancel in window 11"
        assert steps and all(total == 4 * 8 for _, total in steps) and max(s for s, _ in steps) <= 10, steps
        frame = final.frames[0]
        assert frame.state == pb.FRAME_CANCELLED and not frame.output_digest  # nothing half-made is stored

        cancel["at"] = 0
        client.requeue(sub.render_id)
        again = client.wait(sub.render_id)
        assert again.state == pb.FINISHED and again.frames[0].state == pb.FRAME_DONE
        path = tmp_path / "again.exr"
        client.download(again.frames[0].output_digest, str(path))
        assert np.array_equal(rgb_of(str(path)), expected)


def test_models_lists_the_window_options_for_the_stylize_kinds(capsys, server):
    code, out, err = run_cli(capsys, ["models", "--server", server.address, "--json"])
    assert code == 0, err
    by_name = {m["name"]: m for m in out["models"]}
    for name in STYLIZE:
        assert by_name[name]["options"]["tile"] == "0" and by_name[name]["options"]["tile_overlap"] == "-1"
    schema = {o.name: o for o in server.manager.registry.get("tiny-flux").options}
    tile = schema["tile"]
    assert "native size" in tile.description and (tile.minimum, tile.maximum) == (0, 16384)
    for name in ("tiny-sd3-inpaint", "tiny-flux-inpaint"):  # inpaint runs its region at the model's size
        assert "tile" not in by_name[name]["options"] and by_name[name]["options"]["region_size"] == "0"


@pytest.mark.parametrize("model,native", [("tiny-sd3-inpaint", 128), ("tiny-flux-inpaint", 1024)])
def test_inpaint_on_a_2k_plate_runs_the_hole_at_native_size_and_keeps_outside_pixels_bit_exact(
        capsys, server, tmp_path, monkeypatch, model, native):
    import diffusers

    # A 2K plate (2048 x 1080) with a 40 x 24 hole, default options: the hole's box plus context is inpainted at
    # the model's native size (SD3 tiny: 128; Flux: 1024, its pipeline's default size), not at plate size.
    h, w = 1080, 2048
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[600:624, 1500:1540] = 1.0
    plate = carrots_plate(tmp_path / "p", range(1, 2), h, w, alpha=alpha)
    cls = getattr(diffusers, "StableDiffusion3InpaintPipeline" if "sd3" in model else "FluxInpaintPipeline")
    real_call = cls.__call__
    sizes: list = []

    def call(pipe: Any, *args: Any, **kwargs: Any) -> Any:
        sizes.append((kwargs["height"], kwargs["width"], tuple(kwargs["image"].shape[-2:])))
        return real_call(pipe, *args, **kwargs)

    monkeypatch.setattr(cls, "__call__", call)
    code, out, err = render(capsys, server, plate, tmp_path / "o", "--model", model)
    assert code == 0, err
    assert len(sizes) == 1 and max(sizes[0][:2]) == native and sizes[0][2] == sizes[0][:2], sizes
    src, dst = channels(plate.replace("####", "0001")), channels(out["outputs"]["1"])
    assert windows(out["outputs"]["1"]) == windows(plate.replace("####", "0001"))
    for c in "RGB":
        assert np.array_equal(dst[c][alpha == 0].view(np.uint16), src[c][alpha == 0].view(np.uint16)), c
        assert not np.array_equal(dst[c][alpha > 0], src[c][alpha > 0]), f"{c}: nothing was inpainted"
