"""A sequence from an edit and back: `shotpass batch` over an OTIO timeline and a CMX 3600 EDL (Beachball frames and
a generated plate, with handles, a gap, missing media, a plate with no frames, non-EXR media), then
`shotpass conform` onto the chosen versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

import numpy as np
import OpenEXR
import opentimelineio as otio
import pytest
from conftest import BEACHBALL, require_data
from helpers import header, run_cli

RATE = 24


def _write_plate(folder: Path, frames: range, w: int = 24, h: int = 16) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        value = np.full((h, w), frame / 2000.0, dtype=np.float16)
        channels = {"R": value, "G": value, "B": value}
        hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(hdr, channels) as f:
            f.write(str(folder / f"gen.{frame:04d}.exr"))
    return str(folder / "gen.####.exr")


def _t(frames: int) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, RATE)


def _range(start: int, duration: int) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_t(start), _t(duration))


@pytest.fixture
def edit(tmp_path: Path) -> Dict[str, Any]:
    """sh010: Beachball 1-8 as an image sequence, cut 3-6; a gap; sh020: a generated plate 1001-1012 by pattern,
    cut 1003-1008 (timecode = frame number); then three clips that cannot be shots."""
    require_data()
    bb = tmp_path / "plates" / "bb"
    bb.mkdir(parents=True)
    for src in sorted(BEACHBALL.glob("singlepart.*.exr")):
        (bb / src.name).symlink_to(src)
    gen = _write_plate(tmp_path / "plates" / "gen", range(1001, 1013))

    track = otio.schema.Track(name="V1")
    seq = otio.schema.ImageSequenceReference(
        target_url_base=str(bb) + "/", name_prefix="singlepart.", name_suffix=".exr", start_frame=1,
        rate=RATE, frame_zero_padding=4, available_range=_range(0, 8))
    track.append(otio.schema.Clip(name="sh010", media_reference=seq, source_range=_range(2, 4)))
    track.append(otio.schema.Gap(source_range=_range(0, 10)))
    track.append(otio.schema.Clip(name="sh020", media_reference=otio.schema.ExternalReference(target_url=gen.replace(
        "####", "%04d")), source_range=_range(1003, 6)))
    track.append(otio.schema.Clip(name="sh030", media_reference=otio.schema.MissingReference(),
                                  source_range=_range(0, 5)))
    nothing = str(tmp_path / "plates" / "none" / "none.####.exr")
    (tmp_path / "plates" / "none").mkdir()
    track.append(otio.schema.Clip(name="sh040", media_reference=otio.schema.ExternalReference(target_url=nothing),
                                  source_range=_range(1001, 5)))
    track.append(otio.schema.Clip(name="sh050", media_reference=otio.schema.ExternalReference(
        target_url=str(tmp_path / "plates" / "sh050.mov")), source_range=_range(0, 5)))
    timeline = otio.schema.Timeline(name="cut", tracks=[track])
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(timeline, str(path))
    return {"otio": str(path), "gen": gen, "bb": bb, "tmp": tmp_path}


def test_dry_run_lists_shots_with_handles_and_skips_bad_clips_with_reasons(capsys, edit) -> None:
    preset = edit["tmp"] / "look.toml"
    preset.write_text('pass = "passthrough"\nseed = 7\n')
    code, out, err = run_cli(capsys, ["batch", edit["otio"], "--handles", "2", "--preset", str(preset), "--dry-run",
                                      "--json"])
    assert code == 0, err
    shots = {s["shot"]: s for s in out["shots"]}
    assert sorted(shots) == ["sh010", "sh020"]
    assert shots["sh010"]["cut"] == [3, 6] and shots["sh010"]["frames"] == "1-8" and shots["sh010"]["handles"] == [2, 2]
    assert shots["sh020"]["cut"] == [1003, 1008] and shots["sh020"]["frames"] == "1001-1010"
    assert shots["sh010"]["settings"]["seed"] == 7
    reasons = {s["clip"] or "gap": s["reason"] for s in out["skipped"]}
    assert reasons["gap"].startswith("gap of 10 frames")
    assert "missing media" in reasons["sh030"]
    assert "no frames of" in reasons["sh040"] and "none.####.exr" in reasons["sh040"]
    assert "non-EXR media (.mov" in reasons["sh050"]
    # Handles stop where the plate ends: 8 handles on sh010 give 2 at head (frames 1-2) and 2 at tail (7-8).
    code, out, err = run_cli(capsys, ["batch", edit["otio"], "--handles", "8", "--preset", str(preset), "--dry-run",
                                      "--json"])
    assert {s["shot"]: s["handles"] for s in out["shots"]}["sh010"] == [2, 2]
    from shotpass_client.cli import main

    assert main(["batch", edit["otio"], "--handles", "2", "--preset", str(preset), "--dry-run"]) == 0
    table = capsys.readouterr().out
    assert "sh010" in table and "3-6" in table and "1-8 (2+2)" in table
    assert table.count("SKIPPED") == 4


def test_bad_inputs_are_one_line_errors(capsys, edit) -> None:
    bad = edit["tmp"] / "bad.toml"
    bad.write_text('pass = "passthrough"\nstrenght = 1\n')
    code, _, err = run_cli(capsys, ["batch", edit["otio"], "--preset", str(bad), "--dry-run"])
    assert code == 1 and "unknown key(s) strenght" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, ["batch", str(edit["tmp"] / "nope.otio"), "--preset", str(bad), "--dry-run"])
    assert code == 1 and "nope.otio: no such file" in err
    junk = edit["tmp"] / "junk.otio"
    junk.write_text("{not json")
    code, _, err = run_cli(capsys, ["batch", str(junk), "--preset", str(bad), "--dry-run"])
    assert code == 1 and "not a timeline OpenTimelineIO can read" in err
    sidecar = edit["tmp"] / "shots.toml"
    sidecar.write_text('[shots.sh999]\nprompt = "x"\n')
    good = edit["tmp"] / "look.toml"
    good.write_text('pass = "passthrough"\n')
    code, _, err = run_cli(capsys, ["batch", edit["otio"], "--preset", str(good), "--shots", str(sidecar),
                                    "--dry-run"])
    assert code == 1 and "[shots.sh999] names no clip or shot" in err


def test_batch_then_conform_round_trip(capsys, server, client, edit) -> None:
    preset = edit["tmp"] / "look.toml"
    preset.write_text('pass = "passthrough"\nproject = "show"\nlabel = "look A"\nframe_timeout = 600\n')
    sidecar = edit["tmp"] / "shots.toml"
    sidecar.write_text('[shots.sh020]\nseed = 99\n')
    code, out, err = run_cli(capsys, ["batch", edit["otio"], "--handles", "2", "--preset", str(preset), "--shots",
                                      str(sidecar), "--server", server.address, "--out",
                                      str(edit["tmp"] / "renders"), "--json"])
    assert code == 0, err
    fetched = sorted(p.name for p in (edit["tmp"] / "renders" / "sh020").iterdir())
    assert fetched == [f"gen.{f:04d}.exr" for f in range(1001, 1011)]  # the plate's names, handles included
    shots = {s["shot"]: s for s in out["shots"]}
    assert sorted(shots) == ["sh010", "sh020"] and len(out["skipped"]) == 4
    assert all(s["state"] == "FINISHED" and s["version"] == 1 for s in shots.values())
    r020 = client.get_render(shots["sh020"]["render"])
    assert r020.project == "show" and r020.settings.seed == 99 and r020.label == "look A"
    assert [f.frame for f in r020.frames] == list(range(1001, 1011))

    # sh010: v2 is pinned, v3 is the latest, v1 gets approved -> conform picks v1 (approved beats pinned).
    code, out2, err = run_cli(capsys, ["batch", edit["otio"], "--handles", "2", "--preset", str(preset),
                                       "--server", server.address, "--json"])
    code, out3, err = run_cli(capsys, ["batch", edit["otio"], "--handles", "1", "--preset", str(preset),
                                       "--server", server.address, "--json"])
    v2 = {s["shot"]: s for s in out2["shots"]}["sh010"]["render"]
    client.review(v2, pinned=True)
    client.review(shots["sh010"]["render"], approved=True)
    # sh020: nothing reviewed -> the latest finished version (v3).
    conformed = edit["tmp"] / "conformed.otio"
    code, report, err = run_cli(capsys, ["conform", edit["otio"], "--project", "show", "--out", str(conformed),
                                         "--server", server.address, "--json"])
    assert code == 0, err
    got = {c["clip"]: c for c in report["clips"]}
    assert got["sh010"]["version"] == 1 and got["sh010"]["chosen"] == "approved"
    assert got["sh020"]["version"] == 3 and got["sh020"]["chosen"] == "latest"
    assert got["sh030"]["render"] is None and "missing media" in got["sh030"]["reason"]

    original = otio.adapters.read_from_file(edit["otio"])
    cut = otio.adapters.read_from_file(str(conformed))
    clips = {c.name: c for c in cut.find_clips()}
    for name, first, last, render in (("sh010", 3, 6, shots["sh010"]["render"]),
                                      ("sh020", 1003, 1008, {s["shot"]: s for s in out3["shots"]}["sh020"]["render"])):
        clip = clips[name]
        ref = clip.media_reference
        assert isinstance(ref, otio.schema.ImageSequenceReference)
        before = next(c for c in original.find_clips() if c.name == name)
        assert clip.source_range == before.source_range, "the cut changed"
        assert clip.trimmed_range().duration.to_frames() == last - first + 1  # handles trimmed from the cut
        assert ref.frame_for_time(clip.source_range.start_time) == first
        assert ref.frame_for_time(clip.source_range.end_time_inclusive()) == last
        for frame in (first, last):
            path = Path(ref.target_url_for_image_number(frame - ref.start_frame))
            assert path.is_file(), path
            assert header(str(path))["shotpass/renderId"] == render
            assert header(str(path))["shotpass/sourceFrame"] == str(frame)
        assert clip.metadata["shotpass"]["render"] == render
    assert clips["sh030"].media_reference.is_missing_reference  # a clip without a version keeps its media

    # Cost of the sequence this edit holds: three batches of two shots.
    code, stats, err = run_cli(capsys, ["stats", "--project", "show", "--timeline", edit["otio"], "--server",
                                        server.address, "--json"])
    assert code == 0, err
    assert {s["shot"] for s in stats["shots"]} == {"sh010", "sh020"}
    seq = stats["sequence"]
    assert seq["shots"] == 2 and seq["renders"] == 6 and seq["device_seconds"] > 0
    assert seq["frames_done"] == 8 + 8 + 6 + 10 + 10 + 8  # sh010: 1-8, 1-8, 2-7; sh020: 1001-1010 twice, 1002-1009
    # The edit keeps its gap and its length.
    assert cut.duration() == original.duration()


def test_batch_reads_a_cmx_3600_edl(capsys, server, edit) -> None:
    edl = edit["tmp"] / "cut.edl"
    edl.write_text(
        "TITLE: cut\nFCM: NON-DROP FRAME\n\n"
        "001  AX       V     C        00:00:41:19 00:00:41:23 01:00:00:00 01:00:00:04\n"
        "* FROM CLIP NAME: sh020\n"
        f"* FROM FILE: {edit['gen']}\n\n"
        "002  AX       V     C        00:00:00:01 00:00:00:05 01:00:00:04 01:00:00:08\n"
        "* FROM CLIP NAME: sh060\n"
    )
    preset = edit["tmp"] / "look.toml"
    preset.write_text('pass = "passthrough"\n')
    code, out, err = run_cli(capsys, ["batch", str(edl), "--handles", "3", "--preset", str(preset), "--server",
                                      server.address, "--json"])
    assert code == 0, err
    (shot,) = out["shots"]
    assert shot["shot"] == "sh020" and shot["cut"] == [1003, 1006] and shot["state"] == "FINISHED"
    assert shot["frames"] == list(range(1000 + 1, 1010))  # 3 handles each side, 1001 is the plate's first frame
    assert [s["clip"] for s in out["skipped"]] == ["sh060"] and "missing media" in out["skipped"][0]["reason"]
    # --like copies a render's settings (seed included) to every shot of the edit: the next version of sh020.
    code, like, err = run_cli(capsys, ["batch", str(edl), "--like", shot["render"], "--server", server.address,
                                       "--json"])
    assert code == 0, err
    (again,) = like["shots"]
    assert again["version"] == 2 and again["frames"] == list(range(1003, 1007))
    from shotpass_client import Client

    with Client(server.address) as c:
        assert c.get_render(again["render"]).settings.seed == c.get_render(shot["render"]).settings.seed
    # Without --json: the shot table and one progress line per shot on stderr, a summary on stdout.
    from shotpass_client.cli import main

    assert main(["batch", str(edl), "--like", shot["render"], "--server", server.address]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("sh020 ")]
    assert progress and "v3" in progress[-1] and "FINISHED" in progress[-1] and "4/4" in progress[-1]
    assert "skipped sh060" in captured.err
    assert "batch: 1 shot(s) submitted, 1 finished, 1 item(s) skipped" in captured.out


def test_batch_reads_fcp_xml_with_media_ranges(capsys, edit) -> None:
    """FCP 7 XML through OTIO's adapter; the plate's media range starts at its first frame on disk."""
    track = otio.schema.Track(name="V1")
    ref = otio.schema.ExternalReference(target_url=edit["gen"], available_range=_range(1001, 12))
    track.append(otio.schema.Clip(name="sh020 comp", media_reference=ref, source_range=_range(1003, 6)))
    xml = edit["tmp"] / "cut.xml"
    otio.adapters.write_to_file(otio.schema.Timeline(name="cut", tracks=[track]), str(xml), adapter_name="fcp_xml")
    preset = edit["tmp"] / "look.toml"
    preset.write_text('pass = "passthrough"\n')
    code, out, err = run_cli(capsys, ["batch", str(xml), "--handles", "1", "--preset", str(preset), "--dry-run",
                                      "--json"])
    assert code == 0, err
    (shot,) = out["shots"]
    assert shot["shot"] == "sh020_comp" and shot["cut"] == [1003, 1008] and shot["frames"] == "1002-1009"
