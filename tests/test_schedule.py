"""Per-frame values (an animated prompt or option) through the real CLI and server, and the shared rules."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import BEACHBALL
from helpers import channels, run_cli

from shotpass_client import Client
from shotpass_client.schedule import ScheduleError, frame_values, parse_option_at, parse_prompt_at, value_at


def test_a_key_holds_until_the_next_and_frames_before_it_keep_the_constant() -> None:
    keys = {"1005": "b", "1001": "a"}  # stored settings hold frame numbers as text
    assert [value_at(keys, f, "c") for f in (1000, 1001, 1004, 1005, 2000)] == ["c", "a", "a", "b", "b"]
    settings = {"prompt": "dusk", "prompt_by_frame": {"10": "night"}, "options": {"strength": "1"},
                "options_by_frame": {"strength": {"5": "0.2", "8": "0.6"}}}
    assert frame_values(settings, 4) == ("dusk", {})
    assert frame_values(settings, 9) == ("dusk", {"strength": "0.6"})
    assert frame_values(settings, 10) == ("night", {"strength": "0.6"})
    assert parse_prompt_at(["1001:a: colon kept"]) == {1001: "a: colon kept"}
    assert parse_option_at(["1001:strength=0.4", "1010:strength=0.8", "1:style=3"]) == {
        "strength": {1001: "0.4", 1010: "0.8"}, "style": {1: "3"}}
    for bad in (["x:strength=1"], ["1001strength=1"], ["1001:=1"]):
        with pytest.raises(ScheduleError, match="--option-at"):
            parse_option_at(bad)
    with pytest.raises(ScheduleError, match="--prompt-at"):
        parse_prompt_at(["no frame here"])


def rgb(path: str) -> np.ndarray:
    ch = channels(path)
    return np.stack([ch[c].astype(np.float32) for c in "RGB"], axis=-1)


def test_cli_schedule_reaches_each_frame_and_json_shows_it(capsys, server, beachball, tmp_path) -> None:
    code, out, err = run_cli(capsys, [
        "render", beachball, "--server", server.address, "--out", str(tmp_path / "out"), "--json", "--frames", "1-4",
        "--pass", "stylize", "--model", "styletransfer-preset", "--option", "strength=1.0",
        "--option", "temporal=off",  # each frame as the model makes it: no blend with the frame before
        "--option-at", "2:strength=0.0", "--option-at", "4:strength=1.0", "--prompt", "day",
        "--prompt-at", "3:night"])
    assert code == 0, err
    assert out["options_by_frame"] == {"strength": {"2": "0.0", "4": "1.0"}}
    assert out["prompt_by_frame"] == {"3": "night"}
    outputs = {int(f): p for f, p in out["outputs"].items()}
    plate = {f: str(BEACHBALL / f"singlepart.{f:04d}.exr") for f in outputs}
    # Strength 0 on frames 2-3 (held from key 2): the input comes back; 1 and 4 are stylized.
    for f in (2, 3):
        np.testing.assert_allclose(rgb(outputs[f]), rgb(plate[f]), atol=2e-3, err_msg=f"frame {f}")
    for f in (1, 4):
        assert np.abs(rgb(outputs[f]) - rgb(plate[f])).mean() > 0.02, f
    with Client(server.address) as client:
        render = client.get_render(out["render"])
    assert dict(render.settings.options_by_frame["strength"].values) == {2: "0.0", 4: "1.0"}
    assert dict(render.settings.prompt_by_frame) == {3: "night"}


def test_a_bad_key_is_refused_naming_its_frame_and_the_server_stays_up(capsys, server, beachball, tmp_path) -> None:
    code, out, err = run_cli(capsys, [
        "render", beachball, "--server", server.address, "--out", str(tmp_path / "a"), "--json", "--frames", "1-2",
        "--pass", "stylize", "--model", "styletransfer-preset", "--option-at", "2:strength=lots"])
    assert code != 0 and "strength" in err and "frame 2" in err, err
    code, out, err = run_cli(capsys, [
        "render", beachball, "--server", server.address, "--out", str(tmp_path / "b"), "--json", "--frames", "1-2",
        "--pass", "stylize", "--model", "styletransfer-preset", "--option-at", "2:no_such=1"])
    assert code != 0 and "no_such" in err, err
    code, out, err = run_cli(capsys, [
        "render", beachball, "--server", server.address, "--out", str(tmp_path / "c"), "--json", "--frames", "1-2",
        "--pass", "passthrough", "--option-at", "two:x=1"])
    assert code != 0 and "--option-at" in err, err
    code, out, err = run_cli(capsys, [
        "render", beachball, "--server", server.address, "--out", str(tmp_path / "d"), "--json", "--frames", "1-2",
        "--pass", "passthrough"])
    assert code == 0 and out["state"] == "FINISHED", err
