"""Temporal options on diffusion models (tiny random-weight pipelines loaded through the production path):
flow and keyframes on img2img and inpaint, fixed noise across frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tiny_pipelines
from helpers import model_server, run_cli
from test_temporal import _plate, _rgb

FAST = ["--option", "steps=2", "--option", "strength=0.5"]


@pytest.fixture(scope="module")
def tserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("models")
    tiny_pipelines.save_img2img(root / "sd15")
    tiny_pipelines.save_inpaint(root / "sd-inpaint")
    (root / "shotpass.toml").write_text(
        '[models.tiny-sd15]\nkind = "sd15-img2img"\npath = "sd15"\nsteps = 2\nstrength = 0.5\n\n'
        '[models.tiny-inpaint]\nkind = "sd-inpaint"\npass = "inpaint"\npath = "sd-inpaint"\nsteps = 2\n'
    )
    with model_server(root / "shotpass.toml", root / "server-data", chunk_frames=2) as srv:
        yield srv


def _render(capsys: Any, srv: Any, plate: str, out: Path, *extra: str) -> dict:
    code, payload, err = run_cli(capsys, ["render", plate, "--server", srv.address, "--out", str(out), "--json",
                                          "--seed", "9", "--prompt", "a painted landscape", *FAST, *extra])
    assert code == 0, err
    return payload


def test_diffusion_img2img_takes_flow_keyframes_and_fixed_noise(capsys, tserver, tmp_path):
    plate = _plate(tmp_path / "p", range(1, 6), h=32, w=48)
    off = _render(capsys, tserver, plate, tmp_path / "off", "--model", "tiny-sd15", "--option", "temporal=off")
    flow = _render(capsys, tserver, plate, tmp_path / "flow", "--model", "tiny-sd15")  # stylize default: flow
    keys = _render(capsys, tserver, plate, tmp_path / "keys", "--model", "tiny-sd15", "--option",
                   "temporal=keyframes", "--option", "keyframe_every=4")
    assert "temporal" not in tserver.catalog.get_render(flow["render"]).settings["options"]  # the default did it
    assert flow["qc"]["flicker_ratio"] < off["qc"]["flicker_ratio"]
    assert keys["qc"]["flicker_ratio"] < off["qc"]["flicker_ratio"]
    for f in (1, 5):  # keyframes: exactly the model's frames
        assert np.array_equal(_rgb(off["outputs"][str(f)]), _rgb(keys["outputs"][str(f)]))


def test_fixed_noise_gives_a_still_plate_the_same_frame_every_frame(capsys, tserver, tmp_path):
    import shutil

    folder = tmp_path / "still"
    _plate(folder, range(1, 2), h=32, w=48)
    for f in (2, 3):
        shutil.copy(folder / "plate.0001.exr", folder / f"plate.{f:04d}.exr")
    plate = str(folder / "plate.####.exr")
    per_frame = _render(capsys, tserver, plate, tmp_path / "pf", "--model", "tiny-sd15", "--option", "temporal=off")
    fixed = _render(capsys, tserver, plate, tmp_path / "fx", "--model", "tiny-sd15", "--option", "temporal=off",
                    "--option", "noise=fixed")
    assert not np.array_equal(_rgb(per_frame["outputs"]["1"]), _rgb(per_frame["outputs"]["2"]))
    for f in (2, 3):
        assert np.array_equal(_rgb(fixed["outputs"]["1"]), _rgb(fixed["outputs"][str(f)])), f


def test_diffusion_inpaint_with_flow_keeps_the_unmasked_plate_bit_exact(capsys, tserver, tmp_path):
    from helpers import channels

    folder = tmp_path / "p"
    plate = _plate(folder, range(1, 4), h=32, w=48)
    import OpenEXR

    for f in range(1, 4):  # a hole in the alpha that moves with the texture
        path = folder / f"plate.{f:04d}.exr"
        ch = channels(str(path))
        alpha = np.zeros((32, 48), np.float16)
        alpha[10:20, 10 + 2 * f: 22 + 2 * f] = 1
        ch["A"] = alpha
        hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
               "dataWindow": (np.array([0, 0], dtype=np.int32), np.array([47, 31], dtype=np.int32)),
               "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([87, 61], dtype=np.int32))}
        with OpenEXR.File(hdr, ch) as fh:
            fh.write(str(path))
    out = _render(capsys, tserver, plate, tmp_path / "o", "--model", "tiny-inpaint", "--option", "temporal=flow")
    for f in range(1, 4):
        src, res = channels(str(folder / f"plate.{f:04d}.exr")), channels(out["outputs"][str(f)])
        keep = src["A"] == 0
        for c in "RGB":
            assert np.array_equal(src[c][keep], res[c][keep]), (f, c)
    assert out["qc"]["contract_ok"] and out["qc"]["nonfinite_outputs"] == 0
