"""The Blender extension in real Blender: bpy 5.0.1 from PyPI in its own venv, the real server as a subprocess.

The bpy venv is made by plugins/blender/dev/make_bpy_env.sh (bpy pins numpy<2, the server needs numpy 2).
Each test runs tests/blender_scripts/shotpass_scene.py in a fresh Blender process with its user folders
in tmp_path; that script installs the built zip, drives ``bpy.ops.shotpass.*`` and reports what it saw.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import numpy as np
import pytest
from conftest import BEACHBALL, ROOT, require_data
from helpers import channels

BLENDER_DIR = ROOT / "plugins" / "blender"
BPY_VENV = Path(os.environ.get("SHOTPASS_BPY_VENV", BLENDER_DIR / ".venv-bpy"))
SCRIPT = ROOT / "tests" / "blender_scripts" / "shotpass_scene.py"


def bpy_python() -> Path:
    python = BPY_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no bpy test environment at {BPY_VENV}: create it with "
                    f"plugins/blender/dev/make_bpy_env.sh {BPY_VENV} (or set SHOTPASS_BPY_VENV)")
    return python


def blender_env(home: Path) -> Dict[str, str]:
    # bpy writes into ~/.config/blender and ~/.cache otherwise: keep every run inside its own folder.
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(home), "BLENDER_USER_RESOURCES": str(home / "blender"),
            "XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def ext_zip(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, str]:
    python = bpy_python()
    if not list((BLENDER_DIR / "wheels").glob("*.whl")):
        pytest.fail("no bundled wheels: run plugins/blender/build_wheels.sh first")
    out = tmp_path_factory.mktemp("ext")
    proc = subprocess.run([str(python), str(BLENDER_DIR / "build_extension.py"), "--output-dir", str(out / "dist")],
                          capture_output=True, text=True, env=blender_env(out / "home"), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = list((out / "dist").glob("shotpass-*.zip"))
    assert len(zips) == 1, proc.stdout
    return zips[0], proc.stdout


@pytest.fixture(scope="module")
def server_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("server")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=(data / "server.log").open("ab"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    line = proc.stdout.readline()
    try:
        assert "serving on" in line, f"server did not start: {line!r}"
        yield line.split("serving on ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(30)


def run_blender(mode: str, tmp_path: Path, ext: Path, server: str, **extra: Any) -> Tuple[Dict[str, Any], str]:
    args = {"zip": str(ext), "server": server, "cache": str(tmp_path / "cache"), "tmp": str(tmp_path), **extra}
    args_file, result_file = tmp_path / "args.json", tmp_path / "result.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.run([str(bpy_python()), str(SCRIPT), mode, str(args_file), str(result_file)],
                          capture_output=True, text=True, env=blender_env(tmp_path / "home"), timeout=540)
    assert proc.returncode == 0 and result_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result_file.read_text()), proc.stdout + proc.stderr


def rgba(path: str) -> np.ndarray:
    ch = channels(path)
    return np.stack([ch[c].astype(np.float32) for c in "RGBA"], axis=-1)


def beachball_files() -> list:
    require_data()
    return [str(p) for p in sorted(BEACHBALL.glob("singlepart.*.exr"))]


def test_extension_zip_builds_and_validates(ext_zip: Tuple[Path, str]) -> None:
    path, log = ext_zip
    # Validated by Blender's own extension tooling, source first, then the built zip.
    assert log.count("Success parsing TOML") == 2, log
    names = set(zipfile.ZipFile(path).namelist())
    manifest = zipfile.ZipFile(path).read("blender_manifest.toml").decode()
    bundled = sorted(n for n in names if n.startswith("wheels/") and n.endswith(".whl"))
    assert any("grpcio" in n and "manylinux" in n for n in bundled)
    assert any("grpcio" in n and "win_amd64" in n for n in bundled)
    assert any(n.startswith("wheels/protobuf-") for n in bundled)
    for whl in bundled:
        assert f'"./{whl}"' in manifest, f"{whl} bundled but not listed in the manifest"
    assert "_vendor/shotpass_client/client.py" in names
    assert "_vendor/shotpass_client/proto/shotpass_pb2_grpc.py" in names
    assert not any("__pycache__" in n for n in names)


def test_render_submit_results_aligned_in_comp_and_sequencer(tmp_path: Path, ext_zip: Tuple[Path, str],
                                                           server_address: str) -> None:
    res, log = run_blender("scene", tmp_path, ext_zip[0], server_address)
    # Installed and enabled from the zip; the client came from the zip's vendored copy.
    assert "/extensions/user_default/shotpass/" in res["extension_file"]
    assert "/extensions/user_default/shotpass/_vendor/shotpass_client/" in res["client_file"]
    assert res["render_plate"] == res["submit"] == res["wait"] == "", log
    plate = {int(f): p for f, p in res["plate"].items()}
    assert sorted(plate) == [11, 12, 13]
    for p in plate.values():  # RGBA half, one layer
        ch = channels(p)
        assert sorted(ch) == ["A", "B", "G", "R"] and ch["R"].dtype == np.float16

    first = res["first"]
    assert first["linked"] and first["image_source"] == "SEQUENCE"
    assert (first["frame_start"], first["frame_offset"], first["frame_duration"]) == (11, 10, 3)
    strip = first["strip"]
    assert (strip["start"], strip["end"]) == (11, 14)
    outputs = {11 + i: f for i, f in enumerate(strip["files"])}
    assert [Path(f).name for f in outputs.values()] == ["sh010.0011.exr", "sh010.0012.exr", "sh010.0013.exr"]

    comp = {int(f): rgba(p) for f, p in res["comp"].items()}
    out = {f: rgba(p) for f, p in outputs.items()}
    for f in (11, 12, 13):
        assert comp[f].shape == out[f].shape == (48, 64, 4)
        np.testing.assert_allclose(comp[f], out[f], atol=1e-3, err_msg=f"compositor frame {f} != output {f}")
        np.testing.assert_allclose(out[f], rgba(plate[f]), atol=1e-3)  # passthrough
        for g in (11, 12, 13):
            if g != f:  # the cube moves, so a one-frame slip could not pass the equality above
                assert np.abs(comp[f] - out[g]).max() > 0.05

    # Edit this Render (chained by reference) swaps the version in place: same node and strip counts.
    assert res["chain"] == res["chain_wait"] == "", log
    second = res["second"]
    assert res["second_render"] != res["first_render"]
    assert (second["nodes"], second["strips"]) == (first["nodes"], first["strips"])
    assert second["image"] != first["image"] and second["linked"]
    assert second["strip"]["channel"] == strip["channel"]
    assert (second["strip"]["start"], second["strip"]["end"]) == (11, 14)
    assert not np.allclose(rgba(second["strip"]["files"][0]), out[11], atol=1e-3)  # stylized, not passthrough
    assert res["versions_call"] == "" and len(res["versions"]) == 2
    assert "FINISHED" in res["versions"][0] and res["first_render"] in res["versions"][0]
    assert res["second_render"] in res["versions"][1] and "<-" in res["versions"][1]  # lineage shown
    assert res["reuse"] == "" and res["reused_model"] == "passthrough"


def test_beachball_strip_plate_round_trip(tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    files = beachball_files()
    res, log = run_blender("plate", tmp_path, ext_zip[0], server_address, files=files, strip_start=101)
    assert res["use_plate"] == res["submit"] == res["wait"] == "", log
    plate = {int(f): p for f, p in res["plate"].items()}
    assert plate == {101 + i: f for i, f in enumerate(files)}
    src, got = res["source_strip"], res["state"]["strip"]
    assert (got["start"], got["end"]) == (src["start"], src["end"]) == (101, 109)
    assert got["channel"] > src["channel"]
    assert (res["state"]["frame_start"], res["state"]["frame_offset"]) == (101, 100)
    for i, out_file in enumerate(got["files"]):
        assert Path(out_file).name == f"beachball.{101 + i:04d}.exr"
        np.testing.assert_allclose(rgba(out_file), rgba(files[i]), atol=1e-3, err_msg=out_file)


def test_cancel_reports_and_wires_nothing(tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    res, log = run_blender("cancel", tmp_path, ext_zip[0], server_address, files=beachball_files())
    assert res["submit"] == res["cancel"] == "", log
    assert res["render_id"]
    assert "cancelled" in res["wait"].lower() and res["render_id"] in res["wait"]
    assert "cancelled" in res["status"].lower()
    assert res["result_strip"] is False


def test_server_down_gives_one_clear_report(tmp_path: Path, ext_zip: Tuple[Path, str]) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    res, log = run_blender("down", tmp_path, ext_zip[0], dead)
    for key in ("list", "wait"):
        assert "cannot reach a shotpass server" in res[key] and dead in res[key], res[key]
    assert res["submit"] == ""  # the failure arrives from the worker, through the queue
    assert "cannot reach" in res["status"]
    assert res["online_access"] is False and "online access is off" in res["remote"]
    assert "Traceback" not in log, log


def test_core_helpers_without_blender() -> None:
    sys.path.insert(0, str(BLENDER_DIR))
    try:
        from shotpass import core
        from shotpass_client.pathmap import PathMap
    finally:
        sys.path.remove(str(BLENDER_DIR))
    assert core.is_local_address("localhost:50051") and core.is_local_address("[::1]:1")
    assert not core.is_local_address("gpu01.studio:50051")
    assert core.online_access_problem("gpu01:50051", online_access=True) is None
    assert "online access" in core.online_access_problem("gpu01:50051", online_access=False)
    assert core.image_user_frames([1001, 1002, 1003]) == (1001, 1000, 3)
    assert core.strip_elements({5: "/o/a.0005.exr", 7: "/o/a.0007.exr"}) == (5, ["a.0005.exr"] * 2 + ["a.0007.exr"])
    pm = PathMap.parse("P:\\shows=/mnt/shows; /Volumes/x=/x")
    assert pm.to_server("P:\\shows\\sh010\\a.exr") == "/mnt/shows/sh010/a.exr"
    assert pm.to_server("/Volumes/xy/a.exr") == "/Volumes/xy/a.exr"  # whole components only
    assert pm.to_local("/x/a.exr") == "/Volumes/x/a.exr"
    assert core.path_map_problem("nonsense") and core.path_map_problem("a=b") is None
    assert core.parse_options('{"style": 3}') == {"style": "3"} == core.parse_options("style=3")
