"""Frame contract through the whole server: identity is bit-exact, masks keep untouched pixels exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenEXR
import pytest
from helpers import run_cli
from test_frames_exr import EXR_DIR, PROVENANCE_TEXT, ROUND_TRIP_FILES, assert_same_image, bits

from shotpass_server.frames.exr import decode_exr


def _plate(tmp_path: Path, source: Path, name: str = "img.0001.exr") -> str:
    folder = tmp_path / "plate"
    folder.mkdir(exist_ok=True)
    (folder / name).symlink_to(source)
    return str(folder / name.replace("0001", "####"))


@pytest.mark.parametrize("rel", ROUND_TRIP_FILES)
def test_passthrough_render_is_bit_exact_for_every_readable_file(capsys, server, tmp_path, rel):
    code, out, err = run_cli(capsys, ["render", _plate(tmp_path, EXR_DIR / rel), "--pass", "passthrough",
                                      "--server", server.address, "--out", str(tmp_path / "out"), "--json"])
    assert code == 0, err
    assert list(out["outputs"]) == ["1"]
    source = decode_exr((EXR_DIR / rel).read_bytes(), rel)
    result = decode_exr(Path(out["outputs"]["1"]).read_bytes(), "output")
    assert_same_image(source, result)
    for after in result.parts:
        assert after.header["shotpass/renderId"] == out["render"]
        assert after.header["shotpass/sourceFrame"] == "1"
        assert set(PROVENANCE_TEXT) & set(after.header)


def _write_exr(path: Path, channels: dict, dw: tuple) -> None:
    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "dataWindow": (np.array(dw[:2], dtype=np.int32), np.array(dw[2:], dtype=np.int32)),
        "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([199, 149], dtype=np.int32)),
    }
    with OpenEXR.File(header, channels) as f:
        f.write(str(path))


@pytest.mark.parametrize("mask_channel", ["Y", "A", "matte"])  # luminance, alpha only, a lone named matte
def test_inpaint_with_a_mask_plate_keeps_unmasked_pixels_bit_exact(capsys, server, tmp_path, mask_channel):
    rng = np.random.default_rng(3)
    h, w = 120, 160
    folder = tmp_path / "p"
    folder.mkdir()
    for frame in (1, 2):
        rgb = (rng.random((h, w, 3)) * 4 - 0.5).astype(np.float16)  # HDR and negative values
        rgb[5, 5, 0] = np.float16(np.nan)
        channels = {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2], "A": np.ones((h, w), np.float16)}
        _write_exr(folder / f"plate.{frame:04d}.exr", channels, (20, 10, 20 + w - 1, 10 + h - 1))
        mask = np.zeros((100, 100), np.float16)
        mask[40:60, 30 + frame * 10: 50 + frame * 10] = 1
        # The mask plate has its own, smaller data window: it is placed by pixel coordinates.
        _write_exr(folder / f"mask.{frame:04d}.exr", {mask_channel: mask}, (40, 30, 139, 129))
    code, out, err = run_cli(capsys, ["render", str(folder / "plate.####.exr"), "--mask", str(folder / "mask.####.exr"),
                                      "--pass", "inpaint", "--server", server.address, "--out", str(tmp_path / "o"),
                                      "--json"])
    assert code == 0, err
    for frame in (1, 2):
        src = decode_exr((folder / f"plate.{frame:04d}.exr").read_bytes(), "src").parts[0].channels
        res = decode_exr(Path(out["outputs"][str(frame)]).read_bytes(), "res").parts[0].channels
        hole = np.zeros((h, w), bool)
        # Mask pixels (x, y) = (40 + c, 30 + r) -> plate array (y - 10, x - 20).
        hole[30 + 40 - 10: 30 + 60 - 10, 40 + 30 + frame * 10 - 20: 40 + 50 + frame * 10 - 20] = True
        for name in ("R", "G", "B", "A"):
            assert res[name].dtype == np.float16
            assert bits(res[name][~hole]) == bits(src[name][~hole]), f"frame {frame} {name} changed outside the mask"
        changed = np.abs(res["R"][hole].astype(np.float32) - src["R"][hole].astype(np.float32))
        assert changed.mean() > 0.05, "the hole was not filled"
        assert np.isfinite(res["R"].astype(np.float32)[hole]).all()


def test_a_mask_plate_without_a_usable_channel_is_refused_at_submit(capsys, server, tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    ones = np.ones((20, 30), np.float16)
    _write_exr(folder / "plate.0001.exr", {"R": ones, "G": ones, "B": ones}, (0, 0, 29, 19))
    _write_exr(folder / "mask.0001.exr", {"u": ones, "v": ones}, (0, 0, 29, 19))  # motion vectors, not a matte
    code, _, err = run_cli(capsys, ["render", str(folder / "plate.####.exr"), "--mask", str(folder / "mask.####.exr"),
                                    "--pass", "inpaint", "--server", server.address, "--out", str(tmp_path / "o"),
                                    "--json"])
    assert code != 0
    assert "mask mask.0001.exr (frame 1): a mask plate needs an alpha (A), RGB or Y channel" in err
    assert "it has u, v" in err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_outputs_are_written_with_the_users_umask(capsys, server, tmp_path, umask, mode):
    import os
    import stat

    folder = tmp_path / "p"
    folder.mkdir()
    ones = np.ones((8, 8), np.float16)
    _write_exr(folder / "plate.0001.exr", {"R": ones, "G": ones, "B": ones}, (0, 0, 7, 7))
    old = os.umask(umask)
    try:
        code, out, err = run_cli(capsys, ["render", str(folder / "plate.####.exr"), "--pass", "passthrough",
                                          "--server", server.address, "--out", str(tmp_path / "o"), "--json"])
    finally:
        os.umask(old)
    assert code == 0, err
    assert stat.S_IMODE(os.stat(out["outputs"]["1"]).st_mode) == mode
