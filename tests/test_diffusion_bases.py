"""The newer bases end to end: SD3/SD3.5 and Flux (img2img and inpaint) and SDXL with ControlNets (depth from Z,
Canny), as tiny random-weight pipelines saved as studios keep them (text-to-image folders, ControlNet folders),
listed in a TOML registry, probed, loaded offline by the real server and driven through the real CLI and client;
and a cancel that lands while a tiled VAE decodes."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import OpenEXR
import pytest
import tiny_pipelines
import torch
from helpers import channels, header, model_server, run_cli, windows

FLOW_MODELS = ("tiny-sd3", "tiny-sd3-inpaint", "tiny-sd3-inpaint33", "tiny-flux", "tiny-flux-inpaint")
INPAINT = {"tiny-sd3-inpaint", "tiny-sd3-inpaint33", "tiny-flux-inpaint"}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("flow")
    tiny_pipelines.save_sd3(folder / "sd3")
    tiny_pipelines.save_sd3(folder / "sd3-inpaint33", in_channels=33)  # an inpaint-trained SD3 (latents+mask+image)
    tiny_pipelines.save_flux(folder / "flux")
    tiny_pipelines.save_flux(folder / "flux-schnell", guidance=False)
    tiny_pipelines.save_flux(folder / "flux-fill", in_channels=128)  # a Flux Fill/Control-shaped transformer
    tiny_pipelines.save_img2img(folder / "sd15")
    tiny_pipelines.save_flow_lora(folder / "lora-sd3", flux=False)
    tiny_pipelines.save_flow_lora(folder / "lora-flux", flux=True)
    tiny_pipelines.save_lora(folder / "lora-sd15")
    tiny_pipelines.save_embedding(folder / "emb.safetensors")
    tiny_pipelines.save_sdxl_img2img(folder / "sdxl")
    tiny_pipelines.save_controlnet(folder / "cn-xl-depth", sdxl=True, seed=1)
    tiny_pipelines.save_controlnet(folder / "cn-xl-canny", sdxl=True, seed=2)
    return folder


def registry_text(root: Path) -> str:
    lora_sd3 = root / "lora-sd3" / "pytorch_lora_weights.safetensors"
    lora_flux = root / "lora-flux" / "pytorch_lora_weights.safetensors"
    lora_sd15 = root / "lora-sd15" / "pytorch_lora_weights.safetensors"
    return f"""
[models.tiny-sd3]
kind = "sd3-img2img"
path = "sd3"
steps = 2
strength = 0.6
loras = {{ ink = "{lora_sd3}" }}

[models.tiny-sd3-inpaint]
kind = "sd3-inpaint"
path = "sd3"
steps = 2
strength = 1.0

[models.tiny-sd3-inpaint33]
kind = "sd3-inpaint"
path = "sd3-inpaint33"
steps = 2
strength = 1.0

[models.sd3-img2img-on-inpaint33]
kind = "sd3-img2img"
path = "sd3-inpaint33"

[models.tiny-flux]
kind = "flux-img2img"
path = "flux"
steps = 2
strength = 0.6
loras = {{ ink = "{lora_flux}" }}

[models.tiny-flux-inpaint]
kind = "flux-inpaint"
path = "flux"
steps = 2
strength = 1.0
scheduler = "euler-karras"

[models.tiny-flux-schnell]
kind = "flux-img2img"
path = "flux-schnell"
steps = 2

[models.sd3-on-flux]
kind = "sd3-img2img"
path = "flux"

[models.flux-on-sd3]
kind = "flux-inpaint"
path = "sd3"

[models.sd15-on-sd3]
kind = "sd15-img2img"
path = "sd3"

[models.flux-on-sd15]
kind = "flux-img2img"
path = "sd15"

[models.flux-fill]
kind = "flux-inpaint"
path = "flux-fill"

[models.unet-lora-on-flux]
kind = "flux-img2img"
path = "flux"
loras = {{ ink = "{lora_sd15}" }}

[models.flux-lora-on-sd3]
kind = "sd3-img2img"
path = "sd3"
loras = {{ ink = "{lora_flux}" }}

[models.flux-lora-on-sd15]
kind = "sd15-img2img"
path = "sd15"
loras = {{ ink = "{lora_flux}" }}

[models.tiny-sdxl-cn]
kind = "sdxl-img2img"
path = "sdxl"
steps = 2
strength = 0.6
controlnets = {{ depth = "cn-xl-depth", canny = "cn-xl-canny" }}

[models.xl-net-on-sd15]
kind = "sd15-img2img"
path = "sd15"
controlnets = {{ depth = "cn-xl-depth" }}
"""


@pytest.fixture(scope="module")
def config(root: Path) -> Path:
    path = root / "shotpass.toml"
    path.write_text(registry_text(root))
    return path


@pytest.fixture(scope="module")
def fserver(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with model_server(config, tmp_path_factory.mktemp("flow-data"), chunk_frames=2) as srv:
        yield srv


def write_plate(folder: Path, frames: range, w: int, h: int, alpha: Any = None, z: bool = False) -> str:
    """A half-float RGB(A)(Z) plate with an offset data window, a wide display window, an anamorphic pixel aspect
    and a comment; returns its pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for frame in frames:
        ch: Dict[str, np.ndarray] = {c: rng.random((h, w), dtype=np.float32).astype(np.float16) for c in "RGB"}
        if alpha is not None:
            ch["A"] = alpha.astype(np.float16)
        if z:  # a sphere in front of a slanted wall, moving with the frame
            yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
            wall = 20.0 + xx / w * 30.0
            r2 = ((xx - w * 0.4 - frame % 7) ** 2 + (yy - h * 0.5) ** 2) / (min(h, w) * 0.35) ** 2
            ch["Z"] = np.where(r2 < 1, 5.0 + 3.0 * r2, wall).astype(np.float32)
        hdr = {
            "compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage, "pixelAspectRatio": 2.0,
            "comments": f"plate frame {frame}",
            "dataWindow": (np.array([7, 4], dtype=np.int32), np.array([7 + w - 1, 4 + h - 1], dtype=np.int32)),
            "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([w + 15, h + 11], dtype=np.int32)),
        }
        with OpenEXR.File(hdr, ch) as f:
            f.write(str(folder / f"plate.{frame:04d}.exr"))
    return str(folder / "plate.####.exr")


def rgb_of(path: str) -> np.ndarray:
    c = channels(path)
    return np.stack([c["R"], c["G"], c["B"]], axis=-1).astype(np.float32)


def render(capsys: Any, srv: Any, plate: str, out: Path, *extra: str) -> tuple:
    return run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json", "--seed", "11",
                            *extra])


def box_mask(h: int, w: int) -> np.ndarray:
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[h // 4: h // 2 + 5, w // 3: w // 3 + 30] = 1.0
    return alpha


@pytest.mark.parametrize("model", FLOW_MODELS)
def test_flow_kinds_render_frame_perfect_and_inpaint_keeps_outside_pixels(capsys, fserver, tmp_path, model):
    from shotpass_server.frame_pipeline import frame_seed

    # 3 frames in chunks of 2, an odd size (the transformers want multiples of 16), an anamorphic plate.
    w, h = 83, 45
    alpha = box_mask(h, w)
    plate = write_plate(tmp_path / "p", range(1001, 1004), w, h, alpha=alpha)
    code, out, err = render(capsys, fserver, plate, tmp_path / "out", "--model", model, "--prompt", "an oil painting")
    assert code == 0, err
    assert out["state"] == "FINISHED"
    assert sorted(int(k) for k in out["outputs"]) == [1001, 1002, 1003]
    results = {}
    for frame in (1001, 1002, 1003):
        src, written = plate.replace("####", str(frame)), out["outputs"][str(frame)]
        assert windows(written) == windows(src) == ((7, 4, 7 + w - 1, 4 + h - 1), (0, 0, w + 15, h + 11), 2.0)
        head = header(written)
        assert head["comments"] == f"plate frame {frame}"  # the plate's own metadata travels
        assert head["shotpass/sourceFrame"] == str(frame) and head["shotpass/model"] == model
        assert head["shotpass/seed"] == str(frame_seed(11, frame)) and head["shotpass/prompt"] == "an oil painting"
        results[frame] = rgb_of(written)
        assert results[frame].shape == (h, w, 3) and np.isfinite(results[frame]).all()
        before, after = channels(src), channels(written)
        assert np.abs(results[frame] - rgb_of(src))[alpha > 0].mean() > 1e-2  # the model really redrew it
        if model in INPAINT:
            for c in "RGB":  # outside the mask: the plate's own half floats, bit for bit
                assert np.array_equal(after[c][alpha == 0].view(np.uint16), before[c][alpha == 0].view(np.uint16))
    assert not np.array_equal(results[1001], results[1002])


@pytest.mark.parametrize("model", ["tiny-sd3-inpaint", "tiny-flux-inpaint"])
def test_region_inpaint_on_a_plate_larger_than_the_region_keeps_outside_pixels_bit_exact(capsys, fserver, tmp_path,
                                                                                        model):
    # 300 x 200 inpainted in region mode at 128 px: the mask's box plus context, scaled, run and pasted back.
    alpha = np.zeros((200, 300), dtype=np.float32)
    alpha[120:150, 200:260] = 1.0
    plate = write_plate(tmp_path / "p", range(1, 2), 300, 200, alpha=alpha)
    code, out, err = render(capsys, fserver, plate, tmp_path / "o", "--model", model, "--option", "region_size=128",
                            "--option", "context=16")
    assert code == 0, err
    src, dst = channels(plate.replace("####", "0001")), channels(out["outputs"]["1"])
    for c in "RGB":
        assert np.array_equal(dst[c][alpha == 0].view(np.uint16), src[c][alpha == 0].view(np.uint16)), c
        assert not np.array_equal(dst[c][alpha > 0], src[c][alpha > 0]), f"{c}: nothing was inpainted"


def test_progress_per_step_and_cancel_within_a_step(fserver, tmp_path):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    plate = write_plate(tmp_path / "p", range(1, 4), 48, 32)
    spec = RenderSpec(model="tiny-flux", seed=3, options={"steps": "300", "strength": "1.0"})
    steps = []
    with Client(fserver.address) as client:
        sub = submit_render(client, spec, plate_frames(plate))
        for event in client.watch(sub.render_id):
            if event.kind == pb.RenderEvent.STEP and event.frame == 1:
                steps.append((event.step, event.total_steps))
                if 0 < event.step < event.total_steps:
                    client.cancel(sub.render_id)  # between two denoising steps of frame 1
                    break
        final = client.wait(sub.render_id)
    assert steps and all(total == 300 for _, total in steps)
    assert final.state == pb.CANCELLED
    assert all(f.state == pb.FRAME_CANCELLED and not f.output_digest for f in final.frames)


def _registry(root: Path) -> Dict[str, Any]:
    from shotpass_server.config import load_config
    from shotpass_server.passes.diffusion import diffusion_model

    config = root / "shotpass.toml"
    config.write_text(registry_text(root))
    return {s.name: diffusion_model(s) for s in load_config(config).models if not s.unavailable}


def _run(model: Any, rgb: np.ndarray, **options: Any) -> np.ndarray:
    from shotpass_server.passes.base import FrameJob, PassContext

    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[8:24, 8:40] = 1
    opts = {**{o.name: o.default for o in model.options}, **options}
    ctx = PassContext(options=opts, seed=3, prompt="a painting")
    return model.process(FrameJob(frame=1, rgb=rgb, alpha=None, mask=mask), ctx).rgb


@pytest.mark.parametrize("model", ["tiny-sd3", "tiny-flux-inpaint"])
def test_out_of_memory_retries_with_the_vae_in_tiles(root, model, monkeypatch, caplog):
    from diffusers import AutoencoderKL

    torch.set_num_threads(2)
    m = _registry(root)[model]
    rgb = np.random.default_rng(1).random((48, 64, 3), dtype=np.float32)
    tiled = _run(m, rgb, vae_tiling_above=0)
    real_decode = AutoencoderKL.decode
    failed = []

    def decode(vae: Any, *args: Any, **kwargs: Any) -> Any:
        if not vae.use_tiling:  # the whole-image decode runs out of memory, as a 4K plate would on a small GPU
            failed.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return real_decode(vae, *args, **kwargs)

    monkeypatch.setattr(AutoencoderKL, "decode", decode)
    with caplog.at_level(logging.WARNING, "shotpass.diffusion"):
        retried = _run(m, rgb)
    assert failed and "retrying with {'vae_tiling_above': 0}" in caplog.text
    assert np.array_equal(retried, tiled)  # the retry is the tiled render, bit for bit


@pytest.mark.parametrize("model", ["tiny-sd3", "tiny-flux"])
def test_lora_weight_zero_is_the_base_bit_for_bit_and_a_weight_changes_it(root, model):
    torch.set_num_threads(2)
    m = _registry(root)[model]
    rgb = np.random.default_rng(2).random((32, 48, 3), dtype=np.float32)
    off = _run(m, rgb, lora_ink=0.0)
    on = _run(m, rgb, lora_ink=1.0)
    assert np.array_equal(_run(m, rgb, lora_ink=0.0), off)
    assert np.abs(on - off).mean() > 1e-3


@pytest.mark.parametrize("model", ["tiny-sd3", "tiny-flux"])
def test_every_flow_scheduler_runs_and_euler_is_the_default(root, model):
    from shotpass_server.passes.diffusion.adapters import FLOW_SCHEDULERS

    torch.set_num_threads(2)
    m = _registry(root)[model]
    rgb = np.random.default_rng(3).random((32, 48, 3), dtype=np.float32)
    default = _run(m, rgb, steps=3)
    for name in FLOW_SCHEDULERS:
        out = _run(m, rgb, steps=3, scheduler=name)
        assert np.isfinite(out).all(), name
        if name == "euler":  # the models' own sampler, from their own config
            assert np.array_equal(out, default)
        else:
            assert np.abs(out - default).mean() > 1e-4, name
    assert np.array_equal(_run(m, rgb, steps=3), default)  # the own scheduler comes back


def test_models_lists_the_flow_kinds_with_their_options_and_wrong_folders_with_what_they_are(capsys, fserver, root):
    from shotpass_server.passes.diffusion.adapters import FLOW_SCHEDULER_CHOICES

    code, out, err = run_cli(capsys, ["models", "--server", fserver.address, "--json"])
    assert code == 0, err
    by_name = {m["name"]: m for m in out["models"]}
    for name in FLOW_MODELS:
        assert by_name[name]["unavailable"] == "", by_name[name]
    assert by_name["tiny-sd3-inpaint"]["needs_mask"] and by_name["tiny-flux-inpaint"]["needs_mask"]
    assert by_name["tiny-flux"]["options"]["guidance"] == "3.5"  # Flux's own default, not SD's 7
    assert "true_cfg" in by_name["tiny-flux"]["options"] and "true_cfg" not in by_name["tiny-sd3"]["options"]
    assert by_name["tiny-sd3"]["options"]["lora_ink"] == "0.0"
    assert by_name["tiny-flux-inpaint"]["options"]["scheduler"] == "euler-karras"
    for name in FLOW_MODELS:  # no ControlNet on a transformer; stylize denoises in windows, inpaint in its region
        options = by_name[name]["options"]
        assert "controlnet" not in options, name
        if name in INPAINT:
            assert not {"tile", "tile_overlap"} & set(options) and options["region_size"] == "0", name
        else:
            assert options["tile"] == "0" and options["tile_overlap"] == "-1", name  # native size, a quarter shared
    schema = {o.name: o for o in fserver.manager.registry.get("tiny-sd3").options}
    assert tuple(schema["scheduler"].choices) == FLOW_SCHEDULER_CHOICES

    says = {
        "sd3-on-flux": f"{root / 'flux'} is a FluxPipeline whose FluxTransformer2DModel takes 64 input channels "
                       "(kinds flux-img2img, flux-inpaint); kind sd3-img2img needs an SD3/SD3.5 pipeline",
        "flux-on-sd3": f"{root / 'sd3'} is a StableDiffusion3Pipeline whose SD3Transformer2DModel takes 16 "
                       "input channels (kinds sd3-img2img, sd3-inpaint); kind flux-inpaint needs a Flux pipeline",
        "sd15-on-sd3": f"{root / 'sd3'} is a StableDiffusion3Pipeline whose SD3Transformer2DModel takes 16",
        "flux-on-sd15": f"{root / 'sd15'} is a StableDiffusionImg2ImgPipeline whose SD 1.x/2.x UNet takes 4 input "
                        "channels (kind sd15-img2img); kind flux-img2img needs a Flux pipeline",
        "sd3-img2img-on-inpaint33": f"{root / 'sd3-inpaint33'} is a StableDiffusion3Pipeline whose "
                                    "SD3Transformer2DModel takes 33 input channels (kinds sd3-inpaint)",
        "flux-fill": f"{root / 'flux-fill'} is a FluxPipeline whose FluxTransformer2DModel takes 128 input "
                     "channels (no shotpass kind runs it)",
        "unet-lora-on-flux": f"LoRA ink {root / 'lora-sd15' / 'pytorch_lora_weights.safetensors'} was trained on a "
                             f"UNet base (SD 1.x/2.x or SDXL), but {root / 'flux'} is a FluxTransformer2DModel base",
        "flux-lora-on-sd3": f"LoRA ink {root / 'lora-flux' / 'pytorch_lora_weights.safetensors'} was trained on a "
                            f"transformer 32 wide, but the SD3Transformer2DModel of {root / 'sd3'} is 16 wide",
        "xl-net-on-sd15": f"depth controlnet {root / 'cn-xl-depth'} is a ControlNet for an SDXL base (cross-attention "
                          f"width 64), but {root / 'sd15'} is an SD 1.x/2.x base (cross-attention width 32)",
        "flux-lora-on-sd15": f"LoRA ink {root / 'lora-flux' / 'pytorch_lora_weights.safetensors'} was trained on a "
                             f"transformer base (SD3 or Flux), but {root / 'sd15'} is an SD 1.x/2.x base",
    }
    for name, text in says.items():
        reason = by_name[name]["unavailable"]
        assert reason.startswith(f"model {name}: ") and text in reason and "\n" not in reason, reason


def test_unet_only_settings_on_a_flow_kind_are_refused_naming_the_key(root):
    from shotpass_server.config import load_config
    from shotpass_server.errors import InvalidInput

    config = root / "bad.toml"
    for line, says in (
        (f'embeddings = {{ "<ink>" = "{root / "emb.safetensors"}" }}', "kind sd3-img2img takes no textual-inversion"),
        ('controlnets = { canny = "cn" }', "controlnets work with the img2img kinds only"),
        ('scheduler = "dpm++-2m-karras"', "scheduler 'dpm++-2m-karras' is not one of default, euler, euler-karras"),
        ('attention = "eager"', "attention 'eager' is for UNet models; kind sd3-img2img takes sdpa"),
    ):
        config.write_text(f'[models.m]\nkind = "sd3-img2img"\npath = "{root / "sd3"}"\n{line}\n')
        with pytest.raises(InvalidInput) as err:
            load_config(config)
        assert says in str(err.value) and "[models.m]" in str(err.value), str(err.value)
    # Stylize denoises in windows as the UNet kinds do; inpaint runs its region at the model's size instead.
    config.write_text(f'[models.m]\nkind = "flux-img2img"\npath = "{root / "flux"}"\ntile = 512\ntile_overlap = 64\n')
    spec = load_config(config).models[0]
    assert (spec.tile, spec.tile_overlap) == (512, 64)
    for key in ("tile = 512", "tile_overlap = 64"):
        config.write_text(f'[models.m]\nkind = "sd3-inpaint"\npath = "{root / "sd3"}"\n{key}\n')
        with pytest.raises(InvalidInput) as err:
            load_config(config)
        assert "kind sd3-inpaint takes no denoising windows: it inpaints the mask's region at the model's size " \
               f"(region_size) ({key.split()[0]})" in str(err.value), str(err.value)


def _pixels(client: Any, digest: str, tmp_path: Path) -> np.ndarray:
    path = tmp_path / f"{digest[:12]}.exr"
    client.download(digest, str(path))
    return rgb_of(str(path))


def test_cancel_during_a_tiled_vae_decode_stops_between_tiles_and_the_render_requeues(fserver, tmp_path,
                                                                                       monkeypatch):
    from diffusers.models.autoencoders.vae import Decoder

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    # 160 x 112 with the VAE tiled at any size: the tiny VAE decodes it in many 32 px tiles, one decoder call each.
    plate = plate_frames(write_plate(tmp_path / "p", range(1, 2), 160, 112))
    spec = RenderSpec(model="tiny-sd3", seed=5, options={"steps": "2", "vae_tiling_above": "0"})
    real_forward = Decoder.forward
    calls: list = []
    cancel = {"at": 0, "render": ""}
    submitted = threading.Event()

    def forward(decoder: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == cancel["at"]:
            assert submitted.wait(60)
            with Client(fserver.address) as c:  # the artist presses cancel while this tile decodes
                c.cancel(cancel["render"])
        return real_forward(decoder, *args, **kwargs)

    monkeypatch.setattr(Decoder, "forward", forward)
    with Client(fserver.address) as client:
        whole = client.wait(submit_render(client, spec, plate).render_id)
        assert whole.state == pb.FINISHED
        tiles = len(calls)
        assert tiles >= 12, tiles  # really tiled
        expected = _pixels(client, whole.frames[0].output_digest, tmp_path)

        calls.clear()
        cancel["at"] = 3
        sub = submit_render(client, spec, plate)
        cancel["render"] = sub.render_id
        submitted.set()
        final = client.wait(sub.render_id)
        assert final.state == pb.CANCELLED
        assert len(calls) == 3, f"{len(calls)} of {tiles} tiles decoded after the cancel at tile 3"
        frame = final.frames[0]
        assert frame.state == pb.FRAME_CANCELLED and not frame.output_digest  # nothing half-made is stored

        cancel["at"] = 0
        client.requeue(sub.render_id)
        again = client.wait(sub.render_id)
        assert again.state == pb.FINISHED and again.frames[0].state == pb.FRAME_DONE
        assert np.array_equal(_pixels(client, again.frames[0].output_digest, tmp_path), expected)


def test_sdxl_controlnets_depth_from_z_and_canny_render_frame_perfect_whole_and_in_windows(capsys, fserver, tmp_path):
    from shotpass_server.frame_pipeline import frame_seed

    w, h = 83, 45
    plate = write_plate(tmp_path / "p", range(1001, 1004), w, h, z=True)
    results: Dict[str, Dict[int, np.ndarray]] = {}
    for choice in ("depth", "canny", "auto", "none"):
        code, out, err = render(capsys, fserver, plate, tmp_path / choice, "--model", "tiny-sdxl-cn",
                                "--option", f"controlnet={choice}", "--prompt", "a clay model")
        assert code == 0, err
        assert out["state"] == "FINISHED" and sorted(int(k) for k in out["outputs"]) == [1001, 1002, 1003]
        results[choice] = {}
        for frame in (1001, 1002, 1003):
            src, written = plate.replace("####", str(frame)), out["outputs"][str(frame)]
            assert windows(written) == windows(src)
            head = header(written)
            assert head["comments"] == f"plate frame {frame}" and head["shotpass/model"] == "tiny-sdxl-cn"
            assert head["shotpass/seed"] == str(frame_seed(11, frame))
            results[choice][frame] = rgb_of(written)
            assert results[choice][frame].shape == (h, w, 3) and np.isfinite(results[choice][frame]).all()
    for frame in (1001, 1002, 1003):  # each condition steers the frame its own way; auto takes Z when there is one
        assert np.abs(results["depth"][frame] - results["none"][frame]).mean() > 1e-3
        assert np.abs(results["canny"][frame] - results["none"][frame]).mean() > 1e-3
        assert np.abs(results["depth"][frame] - results["canny"][frame]).mean() > 1e-3
        assert np.array_equal(results["auto"][frame], results["depth"][frame])

    # Larger than the window: MultiDiffusion windows, each with its crop of the condition and SDXL's crop ids.
    big = write_plate(tmp_path / "big", range(1, 3), 150, 100, z=True)
    for choice in ("depth", "canny"):
        code, out, err = render(capsys, fserver, big, tmp_path / f"big-{choice}", "--model", "tiny-sdxl-cn",
                                "--option", f"controlnet={choice}", "--option", "tile=64",
                                "--option", "tile_overlap=32")
        assert code == 0, err
        for frame in (1, 2):
            written = out["outputs"][str(frame)]
            assert windows(written) == windows(big.replace("####", f"{frame:04d}"))
            assert rgb_of(written).shape == (100, 150, 3) and np.isfinite(rgb_of(written)).all()


def test_flux_true_cfg_uses_the_negative_prompt_and_one_is_off(root):
    from shotpass_server.passes.base import FrameJob, PassContext

    torch.set_num_threads(2)
    m = _registry(root)["tiny-flux"]
    rgb = np.random.default_rng(4).random((32, 48, 3), dtype=np.float32)
    opts = {o.name: o.default for o in m.options}

    def run(negative: str, true_cfg: float) -> np.ndarray:
        ctx = PassContext(options={**opts, "true_cfg": true_cfg}, seed=3, prompt="a painting",
                          negative_prompt=negative)
        return m.process(FrameJob(frame=1, rgb=rgb, alpha=None), ctx).rgb

    plain = run("", 1.0)
    assert np.array_equal(run("blurry", 1.0), plain)  # 1 = off: the negative prompt is not used
    assert np.abs(run("blurry", 4.0) - plain).mean() > 1e-4


def test_flow_models_load_with_the_network_denied(root, monkeypatch):
    import os
    import socket

    from shotpass_server.passes.diffusion.common import PIPELINES

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
    models = _registry(root)
    rgb = np.random.default_rng(0).random((40, 56, 3), dtype=np.float32)
    for name in ("tiny-sd3", "tiny-flux-inpaint", "tiny-flux-schnell"):  # schnell: no guidance input
        assert _run(models[name], rgb).shape == (40, 56, 3)
    assert attempts == []
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
