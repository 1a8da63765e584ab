"""End to end through the real CLI and server: frame-perfect passes over the Beachball sequence."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import BEACHBALL
from helpers import channels, header, run_cli, scaled, windows

FRAMES = list(range(1, 9))


def _render(capsys, server, plate, out, *extra):
    return run_cli(capsys, ["render", plate, "--server", server.address, "--out", str(out), "--json", *extra])


@pytest.mark.parametrize(
    "pass_name, model, scale",
    [
        ("passthrough", "passthrough", 1),
        ("stylize", "styletransfer-preset", 1),
        ("inpaint", "opencv-telea", 1),
        ("upscale", "realesrgan-animevideov3-x2", 2),
    ],
)
def test_each_starter_pass_keeps_every_frame_aligned(capsys, server, beachball, tmp_path, pass_name, model, scale):
    code, out, err = _render(capsys, server, beachball, tmp_path / "out", "--pass", pass_name, "--model", model,
                             "--frames", "1-8")
    assert code == 0, err
    assert out["state"] == "FINISHED"
    assert out["frames"] == FRAMES
    assert sorted(int(k) for k in out["outputs"]) == FRAMES
    for frame in FRAMES:
        written = out["outputs"][str(frame)]
        assert os.path.basename(written) == f"singlepart.{frame:04d}.exr"
        src = str(BEACHBALL / f"singlepart.{frame:04d}.exr")
        s_dw, s_disp, s_aspect = windows(src)
        o_dw, o_disp, o_aspect = windows(written)
        assert o_dw == scaled(s_dw, scale), f"frame {frame}: data window moved"
        assert o_disp == scaled(s_disp, scale), f"frame {frame}: display window moved"
        assert o_aspect == s_aspect
        h = header(written)
        assert h["shotpass/sourceFrame"] == str(frame)
        assert h["shotpass/model"] == model
        assert h["shotpass/renderId"] == out["render"]
        assert h["shotpass/sourceDigest"]
        if pass_name != "passthrough":
            assert channels(written)["R"].dtype == np.float16  # half stays half


def test_rerender_with_other_settings_uploads_nothing_and_chain_records_its_parent(capsys, server, beachball, tmp_path):
    code, first, err = _render(capsys, server, beachball, tmp_path / "a", "--pass", "stylize", "--frames", "1-3",
                               "--option", "style=3")
    assert code == 0, err
    assert first["bytes_uploaded"] > 0
    code, second, err = _render(capsys, server, beachball, tmp_path / "b", "--pass", "stylize", "--frames", "1-3",
                                "--option", "style=7", "--option", "strength=0.5")
    assert code == 0, err
    assert second["bytes_uploaded"] == 0
    assert second["version"] == first["version"] + 1

    code, chained, err = run_cli(capsys, [
        "render", "--from-render", first["render"], "--pass", "upscale", "--model", "realesrgan-animevideov3-x2",
        "--server", server.address, "--out", str(tmp_path / "c"), "--json", "--shot", "singlepart",
    ])
    assert code == 0, err
    assert chained["bytes_uploaded"] == 0
    assert chained["parent"] == first["render"]
    assert chained["frames"] == [1, 2, 3]
    for frame in (1, 2, 3):
        stylized = windows(first["outputs"][str(frame)])
        upscaled = windows(chained["outputs"][str(frame)])
        assert upscaled[0] == scaled(stylized[0], 2)
        assert os.path.basename(chained["outputs"][str(frame)]) == f"singlepart.{frame:04d}.exr"

    code, listing, err = run_cli(capsys, ["renders", "--server", server.address, "--json"])
    by_id = {r["render"]: r for r in listing["renders"]}
    assert by_id[chained["render"]]["parent"] == first["render"]


def test_settings_lineage_review_and_cost_are_readable_back(capsys, server, client, beachball, tmp_path):
    code, out, err = _render(capsys, server, beachball, tmp_path / "o", "--pass", "stylize", "--frames", "2",
                             "--option", "style=5", "--seed", "42", "--project", "show", "--shot", "sh010",
                             "--prompt", "make it look like a painting")
    assert code == 0, err
    assert any("takes no prompt" in w for w in out["warnings"])
    render = client.get_render(out["render"])
    assert render.settings.options["style"] == "5"
    assert render.settings.seed == 42
    assert render.settings.colour_space == "ACEScg"
    assert render.project == "show" and render.shot == "sh010"
    assert render.compute_seconds > 0
    assert render.frames[0].compute_seconds > 0
    code, reviewed, err = run_cli(capsys, ["review", out["render"], "--rating", "4", "--pin", "--note", "nice",
                                           "--server", server.address, "--json"])
    assert code == 0, err
    assert reviewed["review"] == {"rating": 4, "pinned": True, "note": "nice", "approved": False}
    code, _, err = run_cli(capsys, ["review", out["render"], "--rating", "9", "--server", server.address, "--json"])
    assert code != 0 and "rating 9" in err


def test_missing_frames_and_bad_options_fail_with_one_clear_line(capsys, server, beachball, tmp_path):
    code, _, err = _render(capsys, server, beachball, tmp_path / "o", "--pass", "stylize", "--frames", "7-12")
    assert code != 0
    assert "9-12" in err and "singlepart" in err and len(err.strip().splitlines()) == 1
    code, _, err = _render(capsys, server, beachball, tmp_path / "o", "--pass", "stylize", "--frames", "1",
                           "--option", "strength=7")
    assert code != 0 and "strength" in err
    code, _, err = _render(capsys, server, beachball, tmp_path / "o", "--pass", "nope", "--frames", "1")
    assert code != 0 and "nope" in err
    assert not (tmp_path / "o").exists() or not any(Path(tmp_path / "o").iterdir())


def test_plate_colour_space_is_a_render_option(capsys, server, beachball, tmp_path):
    runs = {}
    for space in ("ACEScg", "Linear Rec.709 (sRGB)"):
        code, out, err = _render(capsys, server, beachball, tmp_path / space.split()[0], "--pass", "stylize",
                                 "--frames", "1", "--colour-space", space, "--seed", "1")
        assert code == 0, err
        assert header(out["outputs"]["1"])["shotpass/colourSpace"] == space
        runs[space] = channels(out["outputs"]["1"])["R"].astype(np.float32)
    assert np.abs(runs["ACEScg"] - runs["Linear Rec.709 (sRGB)"]).mean() > 1e-3
    code, _, err = _render(capsys, server, beachball, tmp_path / "bad", "--pass", "stylize", "--frames", "1",
                           "--colour-space", "Kodak 5219")
    assert code != 0 and "unknown colour space 'Kodak 5219'" in err and "ACEScg" in err
