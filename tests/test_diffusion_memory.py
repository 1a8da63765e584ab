"""Memory and speed settings per registry entry (dtype, attention, VAE slicing/tiling, CPU offload, compile) and
the out-of-memory retry that every kind runs, recognising CPU allocation failures as well as CUDA ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import tiny_pipelines
import torch


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("memory")
    tiny_pipelines.save_img2img(folder / "sd15")
    tiny_pipelines.save_inpaint(folder / "inpaint")
    tiny_pipelines.save_upscaler(folder / "x4", attention=False)
    tiny_pipelines.save_animatediff(folder / "animatediff")
    return folder


def _registry(root: Path, text: str) -> Any:
    from shotpass_server.config import load_config
    from shotpass_server.passes.diffusion import diffusion_model

    config = root / "shotpass.toml"
    config.write_text(text)
    return {s.name: diffusion_model(s) for s in load_config(config).models}


def _run(model: Any, rgb: np.ndarray, **options: Any) -> np.ndarray:
    from shotpass_server.passes.base import FrameJob, PassContext

    mask = np.zeros(rgb.shape[:2], np.float32)
    mask[8:20, 8:30] = 1
    opts = {**{o.name: o.default for o in model.options}, **options}
    return model.process(FrameJob(frame=1, rgb=rgb, alpha=None, mask=mask), PassContext(options=opts, seed=3)).rgb


def test_cpu_and_cuda_allocation_failures_are_out_of_memory():
    from shotpass_server.passes.diffusion.common import is_oom

    errors: List[BaseException] = []
    for allocate in (lambda: torch.empty(1 << 62, dtype=torch.uint8), lambda: np.empty(1 << 62, dtype=np.uint8)):
        try:
            allocate()
        except (RuntimeError, MemoryError) as err:  # torch's DefaultCPUAllocator, numpy's MemoryError
            errors.append(err)
    assert len(errors) == 2
    assert "DefaultCPUAllocator" in str(errors[0]) or "allocate" in str(errors[0])
    assert all(is_oom(e) for e in errors)
    assert is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))


def test_every_kind_has_a_ladder_of_lighter_settings_that_ends(root):
    models = _registry(root, f"""
[models.img2img]
kind = "sd15-img2img"
path = "{root / 'sd15'}"
[models.inpaint]
kind = "sd-inpaint"
path = "{root / 'inpaint'}"
[models.x4]
kind = "sd-x4-upscaler"
path = "{root / 'x4'}"
[models.video]
kind = "animatediff-v2v"
path = "{root / 'animatediff'}"
context_size = 16
""")
    for name, model in models.items():
        options: Dict[str, Any] = {o.name: o.default for o in model.options}
        ladder = []
        while (options := model.lighter(options)) is not None:
            ladder.append(options)
            assert len(ladder) < 20, name
        assert ladder and ladder[0]["vae_tiling_above"] == 0, name  # first: the VAE in tiles at any size
    video = {o.name: o.default for o in models["video"].options}
    sizes = []
    while (video := models["video"].lighter(video)) is not None:
        sizes.append(video["context_size"])
    assert sizes == [16, 8, 4, 2]


def test_memory_settings_load_and_render_the_same_frame(root):
    from shotpass_server.passes.diffusion.common import PIPELINES

    torch.set_num_threads(2)
    PIPELINES.clear()
    models = _registry(root, f"""
[models.plain]
kind = "sd15-img2img"
path = "{root / 'sd15'}"
steps = 2
[models.eager]
kind = "sd15-img2img"
path = "{root / 'sd15'}"
steps = 2
attention = "eager"
vae_slicing = true
vae_tiling_above = 40
[models.sliced]
kind = "sd15-img2img"
path = "{root / 'sd15'}"
steps = 2
attention = "slicing"
[models.bf16]
kind = "sd15-img2img"
path = "{root / 'sd15'}"
steps = 2
dtype = "bf16"
cpu_offload = "model"
""")
    rgb = np.random.default_rng(0).random((32, 48, 3), dtype=np.float32)
    plain = _run(models["plain"], rgb)
    eager = _run(models["eager"], rgb, vae_tiling_above=1536)
    assert models["eager"].options[2].default == 40  # the entry's vae_tiling_above is the option's default
    assert np.abs(eager - plain).max() < 1e-3  # another attention implementation, the same image
    assert np.abs(_run(models["sliced"], rgb) - plain).max() < 1e-3
    half = _run(models["bf16"], rgb)  # bf16 weights on the CPU; offload is for CUDA devices and is skipped here
    assert np.isfinite(half).all() and np.abs(half - plain).mean() < 0.05
    assert models["bf16"].pipeline("cpu").unet.dtype == torch.bfloat16  # the cached pipeline, not a new load


def test_bad_memory_settings_are_refused_naming_the_key(root):
    from shotpass_server.config import load_config
    from shotpass_server.errors import InvalidInput

    config = root / "bad.toml"
    for line, says in (('attention = "turbo"', "attention 'turbo' is not one of sdpa, eager"),
                       ('cpu_offload = "always"', "cpu_offload must be none, model or sequential"),
                       ('compile = "yes"', "compile must be true or false"),
                       ('dtype = "fp8"', "dtype must be auto, fp16, bf16 or fp32")):
        config.write_text(f'[models.m]\nkind = "sd15-img2img"\npath = "{root / "sd15"}"\n{line}\n')
        with pytest.raises(InvalidInput) as err:
            load_config(config)
        assert says in str(err.value) and "[models.m]" in str(err.value)
