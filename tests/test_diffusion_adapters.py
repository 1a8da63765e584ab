"""A studio's adapters on a tiny SD base, loaded by the real server from a TOML registry: LoRAs (diffusers and
kohya form, several, weighted per render), a textual-inversion embedding, an IP-Adapter image prompt, a VAE
override and the sampler as an option."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator

import numpy as np
import OpenEXR
import pytest
import tiny_pipelines
from helpers import channels, model_server, run_cli

FAST = ["--option", "steps=2", "--option", "strength=0.6", "--seed", "5"]


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("adapters")
    tiny_pipelines.save_img2img(root / "sd15")
    tiny_pipelines.save_inpaint(root / "inpaint")
    ink = tiny_pipelines.save_lora(root / "lora-ink", seed=2)
    grain = tiny_pipelines.save_lora(root / "lora-grain", seed=3)
    tiny_pipelines.save_lora_kohya(ink, root / "ink-kohya.safetensors")
    xl_lora = tiny_pipelines.save_lora(root / "lora-xl", sdxl=True)
    tiny_pipelines.save_embedding(root / "ink-style.safetensors")
    tiny_pipelines.save_embedding(root / "wide.safetensors", width=48)
    ip, encoder = tiny_pipelines.save_ip_adapter(root / "ip")
    tiny_pipelines.save_vae(root / "vae-other")
    config = root / "shotpass.toml"
    config.write_text(f"""
[models.plain]
kind = "sd15-img2img"
path = "sd15"
steps = 2

[models.styled]
kind = "sd15-img2img"
path = "sd15"
steps = 2
loras = {{ ink = "{ink}", grain = {{ path = "{grain}", weight = 0.0 }} }}
embeddings = {{ "<ink-style>" = "ink-style.safetensors" }}

[models.kohya]
kind = "sd15-img2img"
path = "sd15"
steps = 2
loras = {{ ink = {{ path = "ink-kohya.safetensors", weight = 0.8 }} }}

[models.prompted]
kind = "sd15-img2img"
path = "sd15"
steps = 2
ip_adapter = {{ path = "{ip}", image_encoder = "{encoder}", strength = 0.8 }}

[models.inpaint-prompted]
kind = "sd-inpaint"
path = "inpaint"
steps = 2
ip_adapter = {{ path = "{ip}", image_encoder = "{encoder}" }}
loras = {{ ink = "{ink}" }}

[models.other-vae]
kind = "sd15-img2img"
path = "sd15"
steps = 2
vae = "vae-other"
scheduler = "euler-a"

[models.xl-lora-on-sd15]
kind = "sd15-img2img"
path = "sd15"
loras = {{ xl = "{xl_lora}" }}

[models.wide-embedding]
kind = "sd15-img2img"
path = "sd15"
embeddings = {{ "<wide>" = "wide.safetensors" }}
""")
    return config


@pytest.fixture(scope="module")
def aserver(registry_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with model_server(registry_file, tmp_path_factory.mktemp("adata")) as srv:
        yield srv


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("plate")
    rng = np.random.default_rng(1)
    alpha = np.zeros((32, 48), np.float16)
    alpha[8:24, 10:30] = 1
    for name, scale in (("plate", 1.0), ("ref", 0.2)):
        ch = {c: (rng.random((32, 48), dtype=np.float32) * scale).astype(np.float16) for c in "RGB"}
        ch["A"] = alpha
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, ch) as f:
            f.write(str(folder / f"{name}.0001.exr"))
    return str(folder / "plate.####.exr")


def _run(capsys: Any, srv: Any, plate: str, out: Path, model: str, *extra: str) -> np.ndarray:
    code, result, err = run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json",
                                         "--model", model, "--prompt", "an ink drawing", *FAST, *extra])
    assert code == 0, err
    c = channels(result["outputs"]["1"])
    return np.stack([c["R"], c["G"], c["B"]], axis=-1).astype(np.float32)


def test_lora_weight_zero_is_the_base_bit_for_bit_and_weights_mix(capsys, aserver, plate, tmp_path):
    base = _run(capsys, aserver, plate, tmp_path / "a", "plain")
    off = _run(capsys, aserver, plate, tmp_path / "b", "styled", "--option", "lora_ink=0")
    assert np.array_equal(base.view(np.uint32), off.view(np.uint32))  # weight 0: the base model, bit for bit
    ink = _run(capsys, aserver, plate, tmp_path / "c", "styled")  # ink's default weight in the TOML: 0 -> set
    assert np.array_equal(ink, base)  # the entry's default for ink is 0 (a bare path)
    ink = _run(capsys, aserver, plate, tmp_path / "d", "styled", "--option", "lora_ink=0.8")
    both = _run(capsys, aserver, plate, tmp_path / "e", "styled", "--option", "lora_ink=0.8",
                "--option", "lora_grain=1.5")
    assert np.abs(ink - base).mean() > 1e-3
    assert np.abs(both - ink).mean() > 1e-3  # a second LoRA on top changes it again
    again = _run(capsys, aserver, plate, tmp_path / "f", "styled", "--option", "lora_ink=0")
    assert np.array_equal(again, base)  # switching LoRAs off after use leaves nothing behind
    # The same LoRA saved in kohya form (lora_unet_*, lora_down/lora_up, alpha) renders the same image.
    kohya = _run(capsys, aserver, plate, tmp_path / "g", "kohya")
    assert np.abs(kohya - ink).max() < 2e-3


def test_embedding_token_in_the_prompt_changes_the_result(capsys, aserver, plate, tmp_path):
    without = _run(capsys, aserver, plate, tmp_path / "a", "styled", "--prompt", "an ink drawing x")
    with_token = _run(capsys, aserver, plate, tmp_path / "b", "styled", "--prompt", "an ink drawing <ink-style>")
    assert np.abs(without - with_token).mean() > 1e-4


def test_ip_adapter_takes_the_reference_as_image_prompt(capsys, aserver, plate, tmp_path):
    ref = plate.replace("plate.####", "ref.0001")
    plain = _run(capsys, aserver, plate, tmp_path / "a", "prompted", "--option", "reference_strength=0")
    zero = _run(capsys, aserver, plate, tmp_path / "b", "prompted", "--reference", ref,
                "--option", "reference_strength=0", "--option", "ip_adapter_strength=0")
    steered = _run(capsys, aserver, plate, tmp_path / "c", "prompted", "--reference", ref,
                   "--option", "reference_strength=0", "--option", "ip_adapter_strength=1")
    assert np.array_equal(plain, zero)  # strength 0 (or no reference): the adapter adds nothing
    assert np.abs(steered - plain).mean() > 1e-4
    # Inpaint takes the same adapter (and a LoRA) on its own base.
    filled = _run(capsys, aserver, plate, tmp_path / "d", "inpaint-prompted", "--reference", ref,
                  "--option", "lora_ink=0.5", "--option", "ip_adapter_strength=1")
    assert filled.shape == plain.shape


@pytest.mark.parametrize("scheduler", ["euler", "euler-a", "dpm++-2m-karras", "ddim", "unipc", "lcm"])
def test_every_scheduler_runs_and_the_choice_matters(capsys, aserver, plate, tmp_path, scheduler):
    own = _run(capsys, aserver, plate, tmp_path / "a", "plain", "--option", "steps=3")
    chosen = _run(capsys, aserver, plate, tmp_path / "b", "plain", "--option", "steps=3",
                  "--option", f"scheduler={scheduler}")
    assert np.isfinite(chosen).all()
    if scheduler != "ddim":  # the tiny model's own scheduler is DDIM
        assert np.abs(chosen - own).mean() > 1e-4
    else:
        assert np.array_equal(chosen, own)


def test_vae_override_and_entry_scheduler(capsys, aserver, plate, tmp_path):
    plain = _run(capsys, aserver, plate, tmp_path / "a", "plain", "--option", "scheduler=euler-a")
    other = _run(capsys, aserver, plate, tmp_path / "b", "other-vae")  # its entry's scheduler is euler-a
    assert np.abs(plain - other).mean() > 1e-3


def test_adapters_are_listed_with_their_options_and_misfits_refused(capsys, aserver, registry_file):
    code, out, err = run_cli(capsys, ["models", "--server", aserver.address, "--json"])
    assert code == 0, err
    models: Dict[str, Any] = {m["name"]: m for m in out["models"]}
    styled = models["styled"]
    assert styled["options"]["lora_ink"] == "0.0" and styled["options"]["lora_grain"] == "0.0"
    assert styled["options"]["scheduler"] == "default"
    assert "LoRAs ink, grain" in styled["description"] and "<ink-style>" in styled["description"]
    assert models["prompted"]["options"]["ip_adapter_strength"] == "0.8"
    assert models["other-vae"]["options"]["scheduler"] == "euler-a"
    root = registry_file.parent
    assert models["xl-lora-on-sd15"]["unavailable"] == (
        f"model xl-lora-on-sd15: LoRA xl {root / 'lora-xl' / 'pytorch_lora_weights.safetensors'} was trained on a "
        f"base of cross-attention width 64, but {root / 'sd15'} is an SD 1.x/2.x base (cross-attention width 32)"
    )
    assert models["wide-embedding"]["unavailable"] == (
        f"model wide-embedding: embedding <wide> {root / 'wide.safetensors'} is 48 wide, but the text_encoder of "
        f"{root / 'sd15'} is 32"
    )
    with_schedulers = [o for o in _infos(aserver) if o.name == "plain"][0]
    choices = {o.name: list(o.choices) for o in with_schedulers.options}["scheduler"]
    assert {"euler", "euler-a", "dpm++-2m-karras", "ddim", "lcm"} <= set(choices)


def _infos(srv: Any) -> list:
    from shotpass_client import Client

    with Client(srv.address) as client:
        return client.list_models()
