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


BAD_NAMES = ["../../x.0001.exr", "/tmp/x.0001.exr", "sub/x.0001.exr", "..", ".", "C:x.0001.exr", "a\\b.0001.exr",
             "x\x00.exr"]


def test_the_server_refuses_frame_names_that_are_not_plain_file_names(server, client):
    from shotpass_client import ClientError
    from shotpass_client.proto import shotpass_pb2 as pb

    digest = client.upload_bytes((BEACHBALL / "singlepart.0001.exr").read_bytes())
    for bad in BAD_NAMES:
        request = pb.SubmitRenderRequest(project="p", shot="s", settings=pb.RenderSettings(pass_name="passthrough"),
                                         frames=[pb.FrameInput(frame=1, digest=digest, name=bad)])
        with pytest.raises(ClientError) as err:
            client.submit(request)
        assert err.value.code == "INVALID_ARGUMENT", bad
        assert "frames[0] (frame 1).name" in str(err.value), bad


def test_the_client_writes_nothing_outside_its_output_folder_whatever_the_server_says(tmp_path):
    from shotpass_client.jobs import UnsafeOutputName, fetch_outputs, output_path
    from shotpass_client.proto import shotpass_pb2 as pb

    out = str(tmp_path / "out")
    assert output_path(out, "plate.1001.exr") == os.path.join(out, "plate.1001.exr")
    for bad in [*BAD_NAMES, "", str(tmp_path / "abs.exr")]:
        with pytest.raises(UnsafeOutputName, match="not a plain file name"):
            output_path(out, bad)
    # One bad name among good ones: refused before the first download, so no partial output is left behind.
    render = pb.Render(id="r-1", shot="s", frames=[
        pb.FrameRecord(frame=1, input_name="ok.0001.exr", output_digest="a" * 64),
        pb.FrameRecord(frame=2, input_name="../escaped.0002.exr", output_digest="b" * 64),
    ])
    with pytest.raises(UnsafeOutputName):
        fetch_outputs(None, render, out)  # type: ignore[arg-type]  # never reaches the client
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped.0002.exr").exists()


def test_fetch_and_chain_refuse_a_recorded_name_that_escapes_out(capsys, server, beachball, tmp_path):
    # A render recorded by an older server with a hostile name: the client still writes only inside --out.
    import sqlite3

    code, out, err = _render(capsys, server, beachball, tmp_path / "first", "--frames", "1-2", "--pass", "passthrough")
    assert code == 0, err
    with sqlite3.connect(str(server.cfg.data_dir / "catalog.sqlite")) as db:
        db.execute("UPDATE frames SET input_name = '../../escaped.0001.exr' WHERE render_id = ? AND frame = 1",
                   (out["render"],))
    target = tmp_path / "fetched" / "a" / "b"
    code, _, err = run_cli(capsys, ["fetch", out["render"], "--server", server.address, "--out", str(target)])
    assert code != 0 and "'../../escaped.0001.exr', which is not a plain file name" in err
    code, _, err = run_cli(capsys, ["render", "--from-render", out["render"], "--pass", "passthrough",
                                    "--server", server.address, "--out", str(target), "--json"])
    assert code != 0 and "not a plain file name" in err
    assert not list(tmp_path.rglob("escaped.0001.exr"))
    assert not target.exists() or not list(target.iterdir())


def test_an_option_value_the_model_cannot_take_is_refused_at_submit(capsys, server, client, beachball, tmp_path):
    before = len(client.list_renders())
    for value in ("99", "3:0.5,40:0.5", "seven", "3:-1"):
        code, _, err = _render(capsys, server, beachball, tmp_path / "o", "--model", "styletransfer-preset",
                               "--frames", "1", "--option", f"style={value}")
        assert code != 0 and len(err.strip().splitlines()) == 1, err
        assert f"option style='{value}'" in err and "index 0-25" in err, err
    assert len(client.list_renders()) == before  # refused before a render (and its FAILED version) existed


def test_names_and_arguments_that_are_not_utf8_get_one_clear_line(capsys, server, tmp_path):
    # A Latin-1 file name on disk reaches Python with a surrogate in place of the byte 0xe9.
    folder = tmp_path / "plate"
    folder.mkdir()
    raw = os.path.join(os.fsencode(folder), b"pl\xe9te.0001.exr")
    with open(raw, "wb") as fh:
        fh.write((BEACHBALL / "singlepart.0001.exr").read_bytes())
    plate = os.fsdecode(os.path.join(os.fsencode(folder), b"pl\xe9te.####.exr"))
    cases = [
        (["render", plate, "--pass", "passthrough"], "plate file 'pl\\xe9te.0001.exr' is not valid UTF-8"),
        (["render", str(BEACHBALL / "singlepart.####.exr"), "--frames", "1", "--pass", "passthrough",
          "--prompt", "caf\udce9"], "prompt 'caf\\xe9' is not valid UTF-8"),
        (["fetch", "r-\udce9"], "not valid UTF-8"),
        (["renders", "--project", "show\udce9"], "not valid UTF-8"),
    ]
    for argv, expect in cases:
        extra = ["--out", str(tmp_path / "o")] if argv[0] in ("render", "fetch") else []
        code, _, err = run_cli(capsys, [*argv, *extra, "--server", server.address, "--json"])
        assert code != 0
        assert expect in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_an_unnumbered_still_renders_as_one_frame_under_its_own_name(capsys, server, tmp_path):
    import shutil

    from conftest import EXR

    from shotpass_client.patterns import FramePattern, PatternError

    still = tmp_path / "in" / "matte.exr"
    still.parent.mkdir()
    shutil.copy(EXR / "openexr" / "test.exr", still)
    # Frame 1 by default, or the one frame asked for; the output keeps the input's name.
    for extra, frame in (([], 1), (["--frames", "1001"], 1001)):
        out_dir = tmp_path / f"out{frame}"
        code, out, err = _render(capsys, server, str(still), out_dir, "--pass", "passthrough", *extra)
        assert code == 0, err
        assert out["frames"] == [frame] and out["outputs"] == {str(frame): str(out_dir / "matte.exr")}
        assert windows(str(out_dir / "matte.exr")) == windows(str(still))
    code, _, err = _render(capsys, server, str(still), tmp_path / "o", "--pass", "passthrough", "--frames", "1-3")
    assert code != 0 and "a still (no frame number in its name) is one frame" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    # A still mask (a garbage matte) holds for every frame of a sequence plate.
    for frame in (1, 2):
        shutil.copy(EXR / "openexr" / "test.exr", tmp_path / "in" / f"plate.{frame:04d}.exr")
    code, out, err = _render(capsys, server, str(tmp_path / "in" / "plate.####.exr"), tmp_path / "inpainted",
                             "--pass", "inpaint", "--mask", str(still))
    assert code == 0, err
    assert out["frames"] == [1, 2] and sorted(out["outputs"]) == ["1", "2"]
    # Patterns: a still names one file whatever the frame; a name without extension is still no pattern.
    pattern = FramePattern.parse(str(still))
    assert pattern.still and pattern.path(7) == str(still) and pattern.hashes() == str(still)
    assert not FramePattern.parse(str(tmp_path / "plate.1001.exr")).still
    with pytest.raises(PatternError, match="not a frame pattern"):
        FramePattern.parse(str(tmp_path / "matte"))
