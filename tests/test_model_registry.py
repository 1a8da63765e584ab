"""The model registry: every folder probed at start and at reload, one bad entry disables only that model,
`shotpass models --reload` (admin only) swaps the registry in while renders stay queued."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import OpenEXR
import pytest
import tiny_pipelines
import torch
from helpers import model_server, run_cli


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {
        "sd15": tiny_pipelines.save_img2img(root / "sd15"),
        "inpaint": tiny_pipelines.save_inpaint(root / "inpaint"),
        "sdxl": tiny_pipelines.save_sdxl_img2img(root / "sdxl"),
        "sdxl-inpaint": tiny_pipelines.save_sdxl_inpaint(root / "sdxl-inpaint"),
        "cn": tiny_pipelines.save_controlnet(root / "cn"),
    }


# Each kind pointed at a folder of another kind: (entry, kind, folder key, what the message must say it is).
WRONG = [
    ("img2img-on-inpaint", "sd15-img2img", "inpaint", "StableDiffusionInpaintPipeline whose SD 1.x/2.x UNet takes 9"),
    ("inpaint-on-img2img", "sd-inpaint", "sd15", "StableDiffusionImg2ImgPipeline whose SD 1.x/2.x UNet takes 4"),
    ("sdxl-on-sd15", "sdxl-img2img", "sd15", "(kind sd15-img2img)"),
    ("sdxl-inpaint-on-sdxl", "sdxl-inpaint", "sdxl", "(kind sdxl-img2img)"),
    ("x4-on-sd15", "sd-x4-upscaler", "sd15", "(kind sd15-img2img)"),
    ("animatediff-on-sd15", "animatediff-v2v", "sd15", "(kind sd15-img2img)"),
    ("pipeline-is-a-controlnet", "sd15-img2img", "cn", "is a single ControlNetModel folder, not a pipeline"),
]


def _config(path: Path, folders: Dict[str, Path], extra: str = "") -> Path:
    text = ['[models.good]\nkind = "sd15-img2img"\npath = "{}"\nsteps = 2\n'.format(folders["sd15"])]
    for name, kind, key, _ in WRONG:
        text.append(f'[models.{name}]\nkind = "{kind}"\npath = "{folders[key]}"\n')
    # A ControlNet of the wrong base (SD 1.x width on an SDXL model) and a pipeline folder given as a ControlNet.
    text.append(f'[models.sdxl-with-sd15-net]\nkind = "sdxl-img2img"\npath = "{folders["sdxl"]}"\n'
                f'controlnets = {{ canny = "{folders["cn"]}" }}\n')
    text.append(f'[models.net-is-a-pipeline]\nkind = "sd15-img2img"\npath = "{folders["sd15"]}"\n'
                f'controlnets = {{ depth = "{folders["sd15"]}" }}\n')
    path.write_text("\n".join(text) + extra)
    return path


@pytest.fixture
def probed_server(folders: Dict[str, Path], tmp_path: Path) -> Iterator[Any]:
    with model_server(_config(tmp_path / "shotpass.toml", folders), tmp_path / "data") as srv:
        yield srv


def test_a_wrong_folder_for_each_kind_is_refused_at_start_naming_the_entry_and_what_it_is(
    capsys, folders, probed_server
):
    code, out, err = run_cli(capsys, ["models", "--server", probed_server.address, "--json"])
    assert code == 0, err
    by_name = {m["name"]: m for m in out["models"]}
    assert by_name["good"]["unavailable"] == ""
    for name, kind, key, says in WRONG:
        reason = by_name[name]["unavailable"]
        assert reason.startswith(f"model {name}: {folders[key]}"), reason
        assert says in reason, reason
        if key != "cn":
            assert f"kind {kind} needs" in reason, reason
        assert "\n" not in reason
    assert by_name["sdxl-with-sd15-net"]["unavailable"] == (
        f"model sdxl-with-sd15-net: canny controlnet {folders['cn']} is a ControlNet for an SD 1.x/2.x base "
        f"(cross-attention width 32), but {folders['sdxl']} is an SDXL base (cross-attention width 64)"
    )
    assert by_name["net-is-a-pipeline"]["unavailable"] == (
        f"model net-is-a-pipeline: depth controlnet {folders['sd15']} is a StableDiffusionImg2ImgPipeline pipeline "
        "folder, not a ControlNet"
    )
    # The human listing says so too.
    code, _, err = run_cli(capsys, ["models", "--server", probed_server.address])
    assert code == 0


def test_an_unavailable_model_refuses_renders_with_its_reason_and_the_others_serve(capsys, probed_server, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 2))
    code, _, err = run_cli(capsys, ["render", plate, "--server", probed_server.address, "--model",
                                    "inpaint-on-img2img", "--out", str(tmp_path / "o1"), "--json"])
    assert code != 0
    assert "model inpaint-on-img2img: " in err and "kind sd-inpaint needs" in err
    assert "internal error" not in err
    code, out, err = run_cli(capsys, ["render", plate, "--server", probed_server.address, "--model", "good",
                                      "--out", str(tmp_path / "o2"), "--json", "--option", "steps=2"])
    assert code == 0, err
    assert out["state"] == "FINISHED"


def test_a_mismatched_single_file_checkpoint_is_refused(folders, tmp_path):
    from safetensors.torch import save_file

    from shotpass_server.model_config import ModelSpec, probe_reason

    ckpt = tmp_path / "inpaint.safetensors"  # an LDM-layout checkpoint whose UNet takes 9 channels
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(8, 9, 3, 3)}, str(ckpt))
    spec = ModelSpec(name="ckpt", kind="sd15-img2img", pass_name="stylize", path=ckpt, config=folders["sd15"])
    assert probe_reason(spec) == (
        f"model ckpt: checkpoint {ckpt} has a UNet with 9 input channels but its config folder {folders['sd15']} "
        "describes 4; kind sd15-img2img needs an SD 1.x/2.x text-to-image or img2img pipeline (UNet with 4 input "
        "channels)"
    )


def _plate(folder: Path, frames: range, w: int = 40, h: int = 32) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    for frame in frames:
        ch = {c: rng.random((h, w), dtype=np.float32).astype(np.float16) for c in "RGB"}
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, ch) as f:
            f.write(str(folder / f"plate.{frame:04d}.exr"))
    return str(folder / "plate.####.exr")


def _add_user(data: Path, name: str, *extra: str) -> str:
    from shotpass_server.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["users", "add", name, "--data-dir", str(data), "--json", *extra]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])["token"]


def test_reload_swaps_the_registry_and_keeps_the_queue_admin_only(capsys, folders, tmp_path):
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    torch.set_num_threads(2)
    data = tmp_path / "data"
    admin, user = _add_user(data, "root", "--admin"), _add_user(data, "artist")
    config = tmp_path / "shotpass.toml"
    config.write_text(f'[models.tiny]\nkind = "sd15-img2img"\npath = "{folders["sd15"]}"\nsteps = 2\n')
    cfg = load_config(config)
    cfg.listen, cfg.data_dir, cfg.chunk_frames = "127.0.0.1:0", data, 1
    srv = ShotpassServer(cfg)
    srv.start()
    try:
        plate = plate_frames(_plate(tmp_path / "p", range(1, 4), 48, 32))
        with Client(srv.address, user) as artist, Client(srv.address, admin) as root:
            slow = submit_render(artist, RenderSpec(project="show", model="tiny", seed=1,
                                                    options={"steps": "300", "strength": "1.0"}), plate)
            waiting = submit_render(artist, RenderSpec(project="show", model="tiny", seed=2), plate)
            for event in artist.watch(slow.render_id):
                if event.kind == pb.RenderEvent.STEP and event.step > 1:
                    break  # the first render is mid-frame; the second waits behind it

            # The config now adds a model, and the old one's folder is the wrong kind for a new entry.
            config.write_text(config.read_text() + f'\n[models.tiny-inpaint]\nkind = "sd-inpaint"\n'
                              f'path = "{folders["inpaint"]}"\nsteps = 2\n'
                              f'\n[models.broken]\nkind = "sd-inpaint"\npath = "{folders["sd15"]}"\n')
            with pytest.raises(ClientError) as err:
                artist.reload_models()
            assert err.value.code == "PERMISSION_DENIED"
            with pytest.raises(ClientError) as err:
                Client(srv.address).reload_models()  # no token at all
            assert err.value.code == "UNAUTHENTICATED"
            assert "tiny-inpaint" not in {m.name for m in artist.list_models()}

            code, out, err_text = run_cli(capsys, ["models", "--reload", "--server", srv.address, "--token", admin,
                                                   "--json"])
            assert code == 0, err_text
            by_name = {m["name"]: m for m in out["models"]}
            assert by_name["tiny-inpaint"]["unavailable"] == ""
            assert by_name["broken"]["unavailable"].startswith(f"model broken: {folders['sd15']} is a ")
            # Nothing was dropped: the running render is still running, the waiting one still waits.
            states = {r.id: r.state for r in root.list_renders()}
            assert states[slow.render_id] == pb.RUNNING
            assert states[waiting.render_id] in (pb.QUEUED, pb.RUNNING)
            artist.cancel(slow.render_id)
            assert artist.wait(waiting.render_id).state == pb.FINISHED  # it ran after the reload
            # A config that no longer parses keeps the registry that serves.
            config.write_text("[models.tiny\n")
            with pytest.raises(ClientError) as err:
                root.reload_models()
            assert err.value.code == "INVALID_ARGUMENT" and "not valid TOML" in str(err.value)
            assert {"tiny", "tiny-inpaint"} <= {m.name for m in root.list_models()}
            started = time.monotonic()
            assert artist.wait(slow.render_id).state == pb.CANCELLED
            assert time.monotonic() - started < 60
    finally:
        srv.stop(grace=0.5)


def test_sighup_reloads_the_registry_of_a_running_server(folders, tmp_path):
    import signal

    from helpers import SLOW_START_S, serve_process

    from shotpass_client import Client

    config = tmp_path / "shotpass.toml"
    config.write_text(f'[models.tiny]\nkind = "sd15-img2img"\npath = "{folders["sd15"]}"\n')
    proc, address = serve_process(tmp_path / "data", tmp_path / "log", "--config", str(config))
    try:
        config.write_text(config.read_text() + f'[models.later]\nkind = "sd-inpaint"\npath = "{folders["sd15"]}"\n')
        proc.send_signal(signal.SIGHUP)
        # A loaded machine may take the child seconds to answer while its reload thread probes the folders.
        with Client(address, connect_timeout=SLOW_START_S) as client:
            deadline = time.monotonic() + 30
            while "later" not in (models := {m.name: m for m in client.list_models()}):
                assert time.monotonic() < deadline, (tmp_path / "log").read_text()[-2000:]
                time.sleep(0.2)
        assert models["later"].unavailable.startswith(f"model later: {folders['sd15']} is a ")
        assert models["tiny"].unavailable == ""
        assert proc.poll() is None  # still serving
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_pipeline_error_names_the_model_and_frame_never_internal_error(capsys, folders, tmp_path):
    import shutil

    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    # A folder whose text encoder was swapped for one of another width: it loads, then fails in the UNet.
    swapped = tmp_path / "swapped"
    shutil.copytree(folders["sd15"], swapped)
    shutil.rmtree(swapped / "text_encoder")
    _, encoder = tiny_pipelines.tokenizer_and_text_encoder(tmp_path / "tok48", hidden=48)
    encoder.save_pretrained(swapped / "text_encoder")
    config = tmp_path / "shotpass.toml"
    config.write_text(f'[models.swapped]\nkind = "sd15-img2img"\npath = "{swapped}"\nsteps = 2\n')
    cfg = load_config(config)
    cfg.listen, cfg.data_dir = "127.0.0.1:0", tmp_path / "data"
    srv = ShotpassServer(cfg)
    srv.start()
    try:
        plate = _plate(tmp_path / "p", range(7, 8))
        code, out, err = run_cli(capsys, ["render", plate, "--server", srv.address, "--model", "swapped",
                                          "--out", str(tmp_path / "o"), "--json"])
    finally:
        srv.stop(grace=0.5)
    assert code != 0
    assert "model swapped, frame 7: the pipeline failed on cpu: RuntimeError: " in err, err
    assert "internal error" not in err


def test_sdxl_inpaint_and_animatediff_from_a_base_plus_motion_adapter_render(capsys, folders, tmp_path):
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    torch.set_num_threads(2)
    adapter = tiny_pipelines.save_motion_adapter(tmp_path / "motion")
    config = tmp_path / "shotpass.toml"
    config.write_text(f"""
[models.xl-fill]
kind = "sdxl-inpaint"
path = "{folders['sdxl-inpaint']}"
steps = 2
[models.video]
kind = "animatediff-v2v"
path = "{folders['sd15']}"
motion_adapter = "{adapter}"
steps = 2
context_size = 2
context_overlap = 1
[models.video-wrong-adapter]
kind = "animatediff-v2v"
path = "{folders['sd15']}"
motion_adapter = "{folders['cn']}"
""")
    cfg = load_config(config)
    cfg.listen, cfg.data_dir, cfg.chunk_frames = "127.0.0.1:0", tmp_path / "data", 3
    srv = ShotpassServer(cfg)
    srv.start()
    try:
        with_alpha = tmp_path / "p"
        with_alpha.mkdir()
        alpha = np.zeros((32, 40), np.float16)
        alpha[8:20, 10:30] = 1
        rng = np.random.default_rng(2)
        for frame in (1, 2, 3):
            ch = {c: rng.random((32, 40), dtype=np.float32).astype(np.float16) for c in "RGB"}
            ch["A"] = alpha
            with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, ch) as f:
                f.write(str(with_alpha / f"plate.{frame:04d}.exr"))
        plate = str(with_alpha / "plate.####.exr")
        for model in ("xl-fill", "video"):
            code, out, err = run_cli(capsys, ["render", plate, "--server", srv.address, "--model", model,
                                              "--out", str(tmp_path / model), "--json", "--prompt", "a garden"])
            assert code == 0, err
            assert out["state"] == "FINISHED" and sorted(out["outputs"]) == ["1", "2", "3"]
        code, out, err = run_cli(capsys, ["models", "--server", srv.address, "--json"])
        wrong = {m["name"]: m for m in out["models"]}["video-wrong-adapter"]["unavailable"]
        assert wrong == (f"model video-wrong-adapter: motion adapter {folders['cn']} is a ControlNetModel, "
                         "not a MotionAdapter")
    finally:
        srv.stop(grace=0.5)


def test_tiled_stylize_reports_every_window_of_every_step_and_cancel_stops_inside_a_step(folders, tmp_path):
    from shotpass_server.errors import RenderCancelled
    from shotpass_server.model_config import ModelSpec
    from shotpass_server.passes.base import FrameJob, PassContext
    from shotpass_server.passes.diffusion import diffusion_model
    from shotpass_server.passes.diffusion.multidiffusion import windows

    torch.set_num_threads(2)
    model = diffusion_model(ModelSpec(name="t", kind="sd15-img2img", pass_name="stylize", path=folders["sd15"]))
    options = {o.name: o.default for o in model.options}
    options.update(steps=3, strength=1.0, tile=64, tile_overlap=32)
    rgb = np.random.default_rng(0).random((100, 150, 3), dtype=np.float32)  # pads to 112 x 160: 14 x 20 latents
    calls: list = []
    out = model.process(FrameJob(frame=1, rgb=rgb, alpha=None),
                        PassContext(options=options, seed=1, progress=lambda s, t: calls.append((s, t))))
    views = len(windows(14, 20, 8, 4))
    assert views == 3 * 4 and out.rgb.shape == rgb.shape
    assert calls == [(i + 1, 3 * views) for i in range(3 * views)]  # one report per window per step

    def cancel_after_four(step: int, total: int) -> None:
        if step == 4:
            raise RenderCancelled("render cancelled")

    with pytest.raises(RenderCancelled):  # not a pipeline failure: the frame simply stops
        model.process(FrameJob(frame=1, rgb=rgb, alpha=None),
                      PassContext(options=options, seed=1, progress=cancel_after_four))
