"""`shotpass demo` end to end: plate made in code, preview -> approve -> stylize -> chained upscale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import channels, scaled, windows


def _frames(folder: Path) -> dict:
    return {int(p.name.split(".")[1]): p for p in sorted(folder.glob("demo_plate.*.exr"))}


def test_demo_renders_stylizes_upscales_and_writes_a_contact_sheet(tmp_path, capsys):
    from PIL import Image

    from shotpass_server.demo import contact_sheet_size, run_demo

    assert run_demo(tmp_path, frames=3) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "uploaded 0 bytes" in out

    plate, stylized, upscaled = (_frames(tmp_path / d) for d in ("plate", "stylized", "upscaled"))
    assert sorted(plate) == sorted(stylized) == sorted(upscaled) == [1001, 1002, 1003]
    for frame, src in plate.items():
        src_window = windows(str(src))[0]
        assert windows(str(stylized[frame]))[0] == src_window
        assert windows(str(upscaled[frame]))[0] == scaled(src_window, 2)
        before, after = channels(str(src)), channels(str(stylized[frame]))
        assert not np.array_equal(before["R"], after["R"]), f"frame {frame} was not stylized"

    sheet = tmp_path / "contact_sheet.png"
    with Image.open(sheet) as image:
        assert image.size == contact_sheet_size(3)
        pixels = np.asarray(image.convert("RGB"))
    assert 20 < pixels.mean() < 235, "the contact sheet is (nearly) black or white"


def test_demo_failure_is_one_line_on_stderr_and_exit_code_1(tmp_path, capsys):
    from shotpass_server.demo import run_demo

    assert run_demo(tmp_path, frames=0) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("shotpass demo: error:") and "--frames" in err and len(err.splitlines()) == 1
