"""The Blender extension in real Blender: bpy from PyPI in venvs that hold only bpy, the real server as a subprocess.

The bpy venvs are made by `make bpy-env` (plugins/blender/dev/make_bpy_env.sh): bpy 5.0.1 on Python 3.11 and
bpy 5.3.0 on Python 3.13; bpy 4.2 LTS (Python 3.11) when SHOTPASS_BPY_42=1. They hold no grpcio, protobuf or
typing-extensions, so the extension must bring its whole dependency closure in its zip. Each test runs
tests/blender_scripts/shotpass_scene.py in a fresh Blender process with its user folders in tmp_path; that
script installs the built zip for this machine's platform, drives ``bpy.ops.shotpass.*`` and reports what it saw.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterator, Tuple

import numpy as np
import OpenEXR
import pytest
from conftest import BEACHBALL, ROOT, require_data
from helpers import channels

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = pytest.importorskip("tomli")

BLENDER_DIR = ROOT / "plugins" / "blender"
# Blender version -> (venv, Python): one host per Blender Python in the default run, 4.2 LTS opt-in.
BPY_HOSTS = {
    "5.0": (BLENDER_DIR / ".venv-bpy-5.0", "3.11"),
    "5.3": (BLENDER_DIR / ".venv-bpy-5.3", "3.13"),
    "4.2": (BLENDER_DIR / ".venv-bpy-4.2", "3.11"),
}
MATRIX = ["5.0", "5.3"] + (["4.2"] if os.environ.get("SHOTPASS_BPY_42") else [])
PRIMARY = os.environ.get("SHOTPASS_BPY_HOST", "5.0")  # the host the flow tests run on
SCRIPT = ROOT / "tests" / "blender_scripts" / "shotpass_scene.py"
BIKES = Path(__file__).resolve().parents[1].parent / "shared/data/footage/bikes.mp4"  # 640x272, 25 fps


def bpy_python(host: str = PRIMARY) -> Path:
    venv, py = BPY_HOSTS[host]
    python = venv / "bin" / "python"
    if not python.exists():
        pytest.fail(f"no bpy {host} test environment at {venv}: run `make bpy-env` "
                    f"(4.2: `make bpy-env SHOTPASS_BPY_42=1`; it needs Python {py})")
    return python


def blender_env(home: Path) -> Dict[str, str]:
    # bpy writes into ~/.config/blender and ~/.cache otherwise: keep every run inside its own folder.
    home.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "HOME": str(home), "BLENDER_USER_RESOURCES": str(home / "blender"),
            "XDG_CACHE_HOME": str(home / "cache"), "PYTHONUNBUFFERED": "1"}


def this_platform() -> str:
    """This machine as Blender names platforms (linux-x64, macos-arm64, windows-x64)."""
    import platform

    machine = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64"}.get(platform.machine().lower(),
                                                                       platform.machine().lower())
    system = {"darwin": "macos"}.get(platform.system().lower(), platform.system().lower())
    return f"{system}-{machine}"


@pytest.fixture(scope="module")
def ext_build(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Dict[str, Path], str]:
    """Every platform's zip (platform -> path) and the build log."""
    python = bpy_python()
    if not list((BLENDER_DIR / "wheels").glob("*.whl")):
        pytest.fail("no bundled wheels: run plugins/blender/build_wheels.sh first")
    out = tmp_path_factory.mktemp("ext")
    proc = subprocess.run([str(python), str(BLENDER_DIR / "build_extension.py"), "--output-dir", str(out / "dist")],
                          capture_output=True, text=True, env=blender_env(out / "home"), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    zips = {z.name[:-4].rsplit("-", 1)[1].replace("_", "-"): z for z in (out / "dist").glob("shotpass-*.zip")}
    return zips, proc.stdout


@pytest.fixture(scope="module")
def ext_zip(ext_build: Tuple[Dict[str, Path], str]) -> Tuple[Path, str]:
    """The zip for this machine's platform, as an artist would pick it."""
    zips, log = ext_build
    assert this_platform() in zips, f"no zip for {this_platform()}: {sorted(zips)}"
    return zips[this_platform()], log


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


def run_blender(mode: str, tmp_path: Path, ext: Path, server: str, host: str = PRIMARY,
                **extra: Any) -> Tuple[Dict[str, Any], str]:
    args = {"zip": str(ext), "server": server, "cache": str(tmp_path / "cache"), "tmp": str(tmp_path), **extra}
    tmp_path.mkdir(parents=True, exist_ok=True)
    args_file, result_file = tmp_path / "args.json", tmp_path / "result.json"
    args_file.write_text(json.dumps(args))
    proc = subprocess.run([str(bpy_python(host)), str(SCRIPT), mode, str(args_file), str(result_file)],
                          capture_output=True, text=True, env=blender_env(tmp_path / "home"), timeout=540)
    assert proc.returncode == 0 and result_file.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(result_file.read_text()), proc.stdout + proc.stderr


def rgba(path: str) -> np.ndarray:
    ch = channels(path)
    return np.stack([ch[c].astype(np.float32) for c in "RGBA"], axis=-1)


def beachball_files() -> list:
    require_data()
    return [str(p) for p in sorted(BEACHBALL.glob("singlepart.*.exr"))]


def wheel_tags(name: str) -> Tuple[str, str, str]:
    """(distribution, python tag, platform tag) of a wheel file name."""
    dist, _version, python, _abi, platform = Path(name).name[:-4].split("-")
    return dist, python, platform


def test_one_zip_per_platform_with_the_whole_closure(ext_build: Tuple[Dict[str, Path], str]) -> None:
    zips, log = ext_build
    source = tomllib.loads((BLENDER_DIR / "shotpass" / "blender_manifest.toml").read_text())
    assert source["blender_version_min"] == "4.2.0"
    assert set(zips) == set(source["platforms"]), "one zip per claimed platform, and no other"
    # Validated by Blender's own extension tooling: the staged source, then every zip.
    assert log.count("Success parsing TOML") == 1 + len(zips), log
    closure = {re.split("[=<>]", line)[0].strip().replace("-", "_") for line in
               (BLENDER_DIR / "wheels.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {"grpcio", "protobuf", "typing_extensions"} <= closure
    for platform, path in zips.items():
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            manifest = tomllib.loads(zf.read("blender_manifest.toml").decode())
        generated = manifest["build"]["generated"]
        assert generated["platforms"] == [platform]
        bundled = sorted(n for n in names if n.startswith("wheels/"))
        assert sorted(w[2:] for w in generated["wheels"]) == bundled, platform
        assert {wheel_tags(w)[0] for w in bundled} == closure, (platform, bundled)
        grpc = [wheel_tags(w) for w in bundled if w.startswith("wheels/grpcio-")]
        # A compiled wheel for each Blender Python (3.11: 4.2-5.0, 3.13: 5.1+), and only for this platform.
        assert sorted(py for _, py, _ in grpc) == ["cp311", "cp313"], (platform, grpc)
        arch = platform.split("-")[1]
        for _, _, tag in grpc:
            assert tag.startswith({"linux": "manylinux", "macos": "macosx", "windows": "win"}[platform.split("-")[0]])
            assert tag.endswith({"x64": ("x86_64", "amd64", "universal2"),
                                 "arm64": ("aarch64", "arm64", "universal2")}[arch]), (platform, tag)
        assert "_vendor/shotpass_client/client.py" in names
        assert "_vendor/shotpass_client/proto/shotpass_pb2_grpc.py" in names
        assert not any("__pycache__" in n for n in names)


@pytest.mark.parametrize("host", MATRIX)
def test_enables_in_a_venv_with_only_bpy(host: str, tmp_path: Path, ext_zip: Tuple[Path, str],
                                        server_address: str) -> None:
    """Installed from the zip into a bpy that has none of the dependencies, then one render round trip."""
    venv, python = BPY_HOSTS[host]
    probe = subprocess.run([str(bpy_python(host)), "-c", "import importlib.util as u, sys, bpy; "
                            "print(sys.version_info[:2], bpy.app.version[:2], u.find_spec('grpc'), "
                            "u.find_spec('google'))"], capture_output=True, text=True, env=blender_env(tmp_path / "p"))
    major, minor = python.split(".")
    assert probe.stdout.startswith(f"({major}, {minor}) ({host.replace('.', ', ')}) None None"), probe.stdout
    res, log = run_blender("enable", tmp_path / "enable", ext_zip[0], server_address, host=host)
    assert res["enabled"] and res["bpy"].startswith(host), res
    assert "/extensions/" in res["grpc_file"] and "/extensions/" in res["protobuf_file"], res  # from the zip
    assert res["submit"] == res["wait"] == "", log
    assert sorted(int(f) for f in res["outputs"]) == [1, 2]
    if host != PRIMARY:  # the whole artist flow on this Blender too (the primary runs it below)
        res, log = run_blender("scene", tmp_path / "scene", ext_zip[0], server_address, host=host,
                               project=f"bpy-{host}")
        check_scene_flow(res, log)


def check_scene_flow(res: Dict[str, Any], log: str) -> None:
    """Render the plate, submit, chain, F12, undo/redo, connect on request, versions, save and reopen."""
    assert "/extensions/user_default/shotpass/" in res["extension_file"]
    assert "/extensions/user_default/shotpass/_vendor/shotpass_client/" in res["client_file"]
    assert res["render_plate"] == res["plate_wait"] == res["submit"] == res["wait"] == "", log
    # The plate was rendered by a separate Blender process, and reused by the submit (it was current).
    assert res["plate_job"] == {"kind": "plate", "separate_process": True}
    assert res["submit_rendered_plate"] is False
    plate = {int(f): p for f, p in res["plate"].items()}
    assert sorted(plate) == [11, 12, 13]
    for p in plate.values():  # RGBA half, one layer
        ch = channels(p)
        assert sorted(ch) == ["A", "B", "G", "R"] and ch["R"].dtype == np.float16

    first = res["first"]
    assert first["image_source"] == "SEQUENCE"
    assert not first["linked"], "the result must not drive the compositor unless asked"
    assert (first["frame_start"], first["frame_offset"], first["frame_duration"]) == (11, 10, 3)
    # Paths under the .blend's folder are relative; the strip lives in the review scene, not the artist's.
    assert first["image_path"].startswith("//") and first["strip"]["directory"].startswith("//")
    assert first["scene_strips"] == [] and first["strips"] == 1
    strip = first["strip"]
    assert (strip["start"], strip["end"]) == (11, 14)
    outputs = {11 + i: f for i, f in enumerate(strip["files"])}
    assert [Path(f).name for f in outputs.values()] == ["sh010.0011.exr", "sh010.0012.exr", "sh010.0013.exr"]
    for f in (11, 12, 13):
        np.testing.assert_allclose(rgba(outputs[f]), rgba(plate[f]), atol=1e-3)  # passthrough

    # Edit this Render (chained by reference) swaps the version in place: same node and strip counts.
    assert res["chain"] == res["chain_wait"] == "", log
    second = res["second"]
    assert res["second_render"] != res["first_render"]
    assert (second["nodes"], second["strips"]) == (first["nodes"], first["strips"])
    assert second["image"] != first["image"] and not second["linked"]
    assert (second["strip"]["start"], second["strip"]["end"]) == (11, 14)
    stylized = {11 + i: rgba(f) for i, f in enumerate(second["strip"]["files"])}
    assert not np.allclose(stylized[11], rgba(outputs[11]), atol=1e-3)  # stylized, not passthrough

    # F12 with the scene's own settings still renders the scene: the plate, not the stylized result.
    for f, path in res["f12"].items():
        shown = rgba(path)
        np.testing.assert_allclose(shown[..., :3], rgba(plate[int(f)])[..., :3], atol=2e-2, err_msg=f"F12 {f}")
        assert np.abs(shown[..., :3] - stylized[int(f)][..., :3]).mean() > 0.02

    # Undo right after the result arrived takes back exactly that result; redo brings it back.
    assert res["undo"] == res["redo"] == "", log
    assert res["after_undo"]["last_render_id"] == res["first_render"]
    assert res["after_undo"]["state"]["image"] == first["image"]
    assert res["after_redo"] == res["second_render"]

    # Asked for: the result node drives the compositor, output N on scene frame N.
    assert res["connect"] == "" and res["connected"] is True
    comp = {int(f): rgba(p) for f, p in res["comp"].items()}
    for f in (11, 12, 13):
        assert comp[f].shape == stylized[f].shape == (48, 64, 4)
        np.testing.assert_allclose(comp[f], stylized[f], atol=1e-3, err_msg=f"compositor frame {f} != output {f}")
        for g in (11, 12, 13):
            if g != f:  # the cube moves, so a one-frame slip could not pass the equality above
                assert np.abs(comp[f] - stylized[g]).max() > 0.05

    # List Versions answers at once and fills in from the background.
    assert res["versions_call"] == res["versions_wait"] == "" and "listing" in res["versions_status"]
    assert len(res["versions"]) == 2
    assert "FINISHED" in res["versions"][0] and res["first_render"] in res["versions"][0]
    assert res["second_render"] in res["versions"][1] and "<-" in res["versions"][1]  # lineage shown
    assert res["reuse"] == "" and res["reused_model"] == "passthrough"

    # Saved and reopened: settings, node, review strip and the (still current) plate are all there.
    reopened = res["reopened"]
    assert reopened["last_render_id"] == res["second_render"]
    assert reopened["state"]["image"] == second["image"] and reopened["state"]["linked"]
    assert reopened["state"]["strip"]["files"] == second["strip"]["files"]
    assert reopened["plate_current"], reopened["why"]
    assert {int(f): p for f, p in reopened["plate"].items()} == plate


def test_render_submit_chain_f12_undo_reopen(tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    res, log = run_blender("scene", tmp_path, ext_zip[0], server_address)
    check_scene_flow(res, log)


@pytest.mark.parametrize("host", MATRIX)
def test_panel_menus_typed_options_approve_reference_chain_upscale_browser(
        host: str, tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    from shotpass_client import Client

    res, log = run_blender("panel", tmp_path, ext_zip[0], server_address, host=host, project=f"panel-{host}")
    assert res["load_options"] == "" and "loading" in res["asking"] and res["options_wait"] == "", log
    assert {"stylize", "upscale", "inpaint"} <= set(res["passes"])
    assert res["models"]["styletransfer-preset"] == "stylize" and res["models"]["opencv-telea"] == "inpaint"
    assert res["default_model_options"], "the pass's default model brought its options"
    opts = res["options"]
    assert "strength" not in opts  # the panel has its own field for it
    assert opts["tile_size"]["kind"] == "INT"
    assert opts["tile_size"]["value"] == 1024 == int(opts["tile_size"]["default"])
    assert opts["preserve_colour"]["kind"] == "BOOL" and opts["preserve_colour"]["value"] is False
    assert opts["style"]["kind"] == "STRING" and opts["tile_size"]["help"]
    sent = res["sent_options"]
    assert {k: sent[k] for k in ("style", "preserve_colour", "tile_size")} == {
        "style": "0", "preserve_colour": "true", "tile_size": "128"}
    assert set(sent) <= set(opts) and "temporal" in sent  # every option the model lists, temporal ones too
    assert res["preview"] == res["approve"] == res["submit"] == res["chain"] == "", log
    assert res["reference"] == [res["preview_id"], 12]
    with Client(server_address) as client:
        preview = client.get_render(res["preview_id"])
        styled = client.get_render(res["styled_id"])
        upscaled = client.get_render(res["upscaled_id"])
    assert preview.review.approved and preview.lane == "preview"
    assert styled.reference_digest == preview.frames[0].output_digest  # steered by the approved frame
    assert res["upscale_options"] == {"tile_size": "INT", "temporal": "CHOICE", "temporal_strength": "FLOAT",
                                      "keyframe_every": "INT", "keyframes": "STRING", "keyframe_refine": "CHOICE",
                                      "flow_source": "CHOICE"}
    assert upscaled.parent_render == res["styled_id"] and upscaled.settings.pass_name == "upscale"
    outputs = {int(f): p for f, p in res["upscaled"].items()}
    assert sorted(outputs) == [11, 12, 13] and all(rgba(p).shape == (96, 128, 4) for p in outputs.values())
    rows = {v["id"]: v for v in res["versions"]}
    assert rows[res["preview_id"]]["lane"] == "preview" and rows[res["preview_id"]]["approved"]
    assert rows[res["upscaled_id"]]["parent"] == res["styled_id"]
    assert rows[res["styled_id"]]["qc"].startswith("3/3 frames, QC flicker ") and rows[res["styled_id"]]["state"] == \
        "finished"
    assert res["rate"] == "" and res["rated"] == 4
    assert res["reselected"] == res["styled_id"]  # a refresh that moved every row kept the selected render
    assert res["load"] == "" and res["loaded"]["last_render_id"] == res["styled_id"]
    loaded = res["loaded"]["state"]
    assert Path(loaded["image"]).name == "pn.0011.exr" and rgba(loaded["image"]).shape == (48, 64, 4)


def test_server_reads_a_blender_multilayer_plate_and_its_depth(tmp_path: Path) -> None:
    """Blender names a multilayer plate's colour '<view layer>.Combined.R'; Z sits in '<view layer>.Depth.Z'."""
    from shotpass_server.frame_pipeline import _depth_for
    from shotpass_server.frames.exr import decode_exr, select_colour

    rng = np.random.default_rng(3)
    rgba_in, z = rng.uniform(0, 1, (4, 12, 16)), rng.uniform(1, 9, (12, 16))
    chans = {f"ViewLayer.Combined.{c}": rgba_in[i] for i, c in enumerate("RGBA")}
    chans.update({"ViewLayer.Depth.Z": z, **{f"ViewLayer.Vector.{c}": z for c in "XYZW"}})
    path = Path(write_exr(tmp_path / "plate.0001.exr", chans))
    image = decode_exr(path.read_bytes(), path.name)
    plane = select_colour(image, None)
    assert plane.prefix == "ViewLayer.Combined." and plane.alpha is not None
    np.testing.assert_allclose(plane.rgb[..., 0], rgba_in[0].astype(np.float16), rtol=1e-3)
    np.testing.assert_allclose(_depth_for(image, plane), z.astype(np.float16), rtol=1e-3)


def cube_centroid(depth: np.ndarray) -> np.ndarray:
    """(x, y) in array coordinates of what stands in front of the background (the cube)."""
    rows, cols = np.nonzero(depth < 1e3)
    return np.array([cols.mean(), rows.mean()])


@pytest.mark.parametrize("host", MATRIX)
def test_depth_and_vector_passes_travel_in_the_plate(host: str, tmp_path: Path, ext_zip: Tuple[Path, str],
                                                     server_address: str) -> None:
    """A moving cube rendered by the extension: the plate carries Depth and Vector as the server reads them,
    with the motion the cube really made; engines and settings that cannot give a pass say so."""
    from shotpass_client import Client
    from shotpass_server.frame_pipeline import _depth_for
    from shotpass_server.frames.exr import decode_exr, select_colour
    from shotpass_server.temporal.vectors import find_motion_vectors

    res, log = run_blender("passes", tmp_path, ext_zip[0], server_address, host=host, project=f"passes-{host}")
    assert res["plate"] == res["submit"] == "", log
    assert res["engine"] == "CYCLES" and not any("Vector" in label for label in res["panel_ok"]), res["panel_ok"]
    plate = {int(f): p for f, p in res["files"].items()}
    assert sorted(plate) == [11, 12, 13]
    layer = res["layer"]
    reads = {}
    for f, path in plate.items():
        ch = channels(path)  # one part: colour, Depth and Vector side by side
        assert set(ch) == {f"{layer}.Combined.{c}" for c in "RGBA"} | {f"{layer}.Depth.Z"} | {
            f"{layer}.Vector.{c}" for c in "XYZW"}, sorted(ch)
        assert ch[f"{layer}.Vector.X"].dtype == np.float32  # full float: half would round vectors and depth
        image = decode_exr(Path(path).read_bytes(), Path(path).name)
        plane = select_colour(image, None)
        assert plane.prefix == f"{layer}.Combined."
        depth = _depth_for(image, plane)
        assert depth is not None and depth.shape == (48, 64) and np.isfinite(depth).all()
        np.testing.assert_array_equal(depth, ch[f"{layer}.Depth.Z"])
        assert 5 < depth.min() < 20 and depth.max() > 50  # the cube ~10 units from the camera, then the world
        reads[f] = (depth, find_motion_vectors(image, plane, Path(path).name, f))
    for prev, f in ((11, 12), (12, 13)):
        depth, vectors = reads[f]
        assert vectors is not None and vectors.layer == f"{layer}.Vector.X/Y"
        cube = depth < 1e3
        moving = np.abs(vectors.backward[cube]).sum(axis=-1) > 0.5
        assert moving.mean() > 0.9, "the moving cube has motion vectors"
        still = np.abs(vectors.backward[~cube]).sum(axis=-1) > 0.5  # (antialiased edge pixels aside)
        assert still.mean() < 0.03, "the static background has none"
        # The server's backward flow points to where the cube was a frame before, as the renders show it.
        moved = cube_centroid(reads[prev][0]) - cube_centroid(depth)
        mean = vectors.backward[cube].mean(axis=0)
        assert np.linalg.norm(moved) > 3
        np.testing.assert_allclose(mean, moved, atol=0.2 * np.linalg.norm(moved) + 0.5, err_msg=f"frame {f}")
    assert not res["submit_rendered_plate"] and sorted(int(f) for f in res["outputs"]) == [11, 12, 13]
    # A temporal render took its motion from the plate's Vector pass (flow_source=vectors refuses a plate
    # without one).
    assert res["flow_submit"] == "" and not res["flow_rendered_plate"], log
    with Client(server_address) as client:
        qc = client.get_render(res["flow_render"]).qc
    assert f"{layer}.Vector.X/Y" in qc.flow_source, qc.flow_source
    # Motion blur on: the engine writes zero vectors. The panel and the status say so before rendering.
    blur = "motion blur is on, so Cycles writes the Vector pass as zeros"
    assert any(blur in label for label in res["blur_panel"]), res["blur_panel"]
    assert res["blur_plate"] == "" and blur in res["blur_status"], res["blur_status"]
    for path in res["blur_files"].values():
        assert not np.any(channels(path)[f"{layer}.Vector.X"]), "the warning is about real zeros"
    # Workbench renders Depth but no Vector pass: told, not dropped silently.
    workbench = "Workbench renders no Vector pass"
    assert any(workbench in label for label in res["workbench_panel"]), res["workbench_panel"]
    assert res["workbench_plate"] == "" and workbench in res["workbench_status"], res["workbench_status"]
    for path in res["workbench_files"].values():
        ch = channels(path)
        assert f"{layer}.Depth.Z" in ch and not any(".Vector." in c for c in ch), sorted(ch)


def dead_address() -> str:
    import socket

    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("host", MATRIX)
def test_every_panel_draws_in_every_state(host: str, tmp_path: Path, ext_zip: Tuple[Path, str],
                                          server_address: str) -> None:
    """The real draw() of every panel, list and the preferences, with a layout as strict as Blender's (see
    tests/blender_scripts/strict_layout.py): not connected, server down, models loaded, a render running,
    versions listed, other plate kinds."""
    res, log = run_blender("draw", tmp_path, ext_zip[0], server_address, host=host, dead=dead_address(),
                           project=f"draw-{host}")
    # The strict layout refuses what Blender refuses, so the drawings below could fail.
    assert all(res["strictness"].values()), {k: v for k, v in res["strictness"].items() if not v}
    assert res["has_progress"], f"bpy {res['bpy']} has no UILayout.progress"
    states = {k: v for k, v in res.items() if isinstance(v, dict) and "errors" in v}
    states.update({f"version {i}": v for i, v in enumerate(res["versions_drawn"])})
    assert len(states) == 10 + len(res["versions_drawn"])
    for name, drawn in states.items():
        assert drawn["errors"] == [], (name, drawn["errors"])
        panels = [drawn[k] for k in ("SHOTPASS_PT_view3d", "SHOTPASS_PT_sequencer", "SHOTPASS_PT_nodes")]
        assert panels[0] == panels[1] == panels[2], name  # one panel in three editors
        assert "SCENE_SETTINGS_PG_shotpass" not in drawn
    panel = {name: drawn["SHOTPASS_PT_view3d"] for name, drawn in states.items()}

    idle = panel["idle"]
    assert "ShotpassSceneSettings.pass_name" in idle["props"] and "ShotpassSceneSettings.model" in idle["props"]
    assert "shotpass.render_plate" in idle["operators"] and idle["progress"] == []
    assert "shotpass.cancel" not in idle["operators"] and idle["list_items"] == 0
    assert states["idle"]["preferences"]["props"][:2] == ["ShotpassPreferences.server_address",
                                                           "ShotpassPreferences.token"]
    # Server down: the answer came from the background and the panel shows it.
    assert res["down_call"] and "cannot reach a shotpass server" in res["down_status"]
    assert res["down_status"] in panel["down"]["labels"]
    assert any("Online access is off" in t for t in states["remote"]["preferences"]["labels"])
    # Models loaded: menus of what the server offers, typed option fields with their help.
    assert res["loaded_call"] == "", log
    loaded = panel["loaded"]
    assert {"ShotpassSceneSettings.pass_name in server_passes", "ShotpassSceneSettings.model in server_models"} <= \
        set(loaded["searches"]), loaded["searches"]
    assert not any(".pass_name in" in t or ".model in" in t for t in idle["searches"])  # typed in before
    for field, kind in res["loaded_options"].items():
        assert f"ShotpassOption.{kind.lower()}_value" in loaded["props"], (field, kind)
    assert sum("(default " in t for t in loaded["labels"]) == len(res["loaded_options"])
    # Handles: a field while the model list is unknown; for a per-frame model a note instead, once they are set.
    assert "ShotpassSceneSettings.handles" in idle["props"]
    assert "ShotpassSceneSettings.handles" not in loaded["props"]
    assert not any("Handles" in t for t in loaded["labels"])
    assert "ShotpassSceneSettings.handles" not in panel["per_frame_handles"]["props"]
    assert any(t.startswith("Handles 3: styletransfer-preset renders frame by frame") for t in
               panel["per_frame_handles"]["labels"]), panel["per_frame_handles"]["labels"]
    # A render running: the progress bar with its text, and Cancel / Suspend / Resume.
    assert res["plate_call"] == res["plate_wait"] == res["submit_call"] == res["submit_wait"] == "", log
    for state in ("plate_running", "submit_running"):
        bar = panel[state]["progress"]
        assert len(bar) == 1 and bar[0]["type"] == "BAR" and 0.0 <= bar[0]["factor"] <= 1.0, (state, bar)
        assert {"shotpass.cancel", "shotpass.job_control"} <= set(panel[state]["operators"])
    assert panel["plate_running"]["progress"][0]["text"].startswith("plate ")
    assert res["submit_busy"] and panel["submit_running"]["progress"][0]["text"].startswith("render ")
    assert panel["finished"]["progress"] == []
    # Versions listed: the list draws a row per version; each selected version draws its actions.
    assert res["preview_call"] == res["list_call"] == "", log
    assert sorted(res["versions"]) == ["failed render", "finished preview", "finished render"], res["versions"]
    for state in (f"version {i}" for i in range(3)):
        assert panel[state]["list_items"] == 3 and "shotpass.load_version" in panel[state]["operators"]
    actions = {op for i in range(3) for op, props in panel[f"version {i}"]["operator_props"]
               if op != "shotpass.job_control" or props.get("action") == "REQUEUE"}
    assert {"shotpass.approve_reference", "shotpass.review", "shotpass.job_control"} <= actions
    # The other plate kinds.
    assert "ShotpassSceneSettings.plate_image" in panel["image_kind"]["props"]
    assert "ShotpassSceneSettings.plate_strip" in panel["strip_kind"]["props"]
    assert "shotpass.render_plate" not in panel["image_kind"]["operators"]


@pytest.fixture(scope="module")
def video_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A server with a tiny random-weight AnimateDiff model (a video model that reads handles) beside the
    starter models."""
    import tiny_pipelines

    root = tmp_path_factory.mktemp("video-server")
    tiny_pipelines.save_animatediff(root / "animatediff")
    (root / "shotpass.toml").write_text(
        '[models.tiny-animatediff]\nkind = "animatediff-v2v"\npath = "animatediff"\nsteps = 2\nstrength = 0.5\n'
        'context_size = 2\ncontext_overlap = 1\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir",
         str(root / "data"), "--config", str(root / "shotpass.toml")],
        stdout=subprocess.PIPE, stderr=(root / "server.log").open("ab"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"},
    )
    line = proc.stdout.readline()
    try:
        assert "serving on" in line, f"server did not start: {line!r}"
        yield line.split("serving on ")[1].split()[0]
    finally:
        proc.terminate()
        proc.wait(30)


def test_handles_render_around_the_range_and_go_as_context_to_a_video_model(
        tmp_path: Path, ext_zip: Tuple[Path, str], video_server: str) -> None:
    """Scene range 3-6, Handles 2: the plate process renders 1-8, the submit sends 3-6 as frames and 1-2, 7-8
    as context frames (the shared jobs code), the video model's clip reads 1-8 and exactly 3-6 come back and are
    wired; a per-frame model gets the same handles and its warning that it reads none reaches the panel."""
    from shotpass_client import Client

    res, log = run_blender("handles", tmp_path, ext_zip[0], video_server)
    assert res["options"] == res["submit"] == res["wait"] == "", log
    # The field: shown while the model list is unknown and for the video model (from ListModels).
    assert res["reads_context"]["tiny-animatediff"] is True and res["reads_context"]["passthrough"] is False
    assert "ShotpassSceneSettings.handles" in res["unknown_drawn"]["props"]
    assert "ShotpassSceneSettings.handles" in res["video_drawn"]["props"]
    assert res["handle_frames"] == [1, 2, 7, 8]
    assert res["plate_frames"] == list(range(1, 9))  # the background plate render renders the handles too
    assert "with 4 handle(s)" in res["submit_status"], res["submit_status"]
    assert res["sent_frames"] == [3, 4, 5, 6] and res["sent_context"] == [1, 2, 7, 8] and res["context_on_disk"]
    assert res["stamp"]["frames"] == [3, 6] and res["stamp"]["handles"] == "1-2,7-8", res["stamp"]
    assert "handles 1-2,7-8 -> 2,7" in res["fewer_why"], res["fewer_why"]
    # Exactly the range comes back and is wired on its own frames; the handles were read by the clip.
    outputs = {int(f): p for f, p in res["outputs"].items()}
    assert sorted(outputs) == [3, 4, 5, 6] and res["warnings"] == [], res["warnings"]
    comp = res["comp"]
    assert (comp["frame_start"], comp["frame_duration"]) == (3, 4) and comp["strip"]["start"] == 3
    assert len(comp["strip"]["files"]) == 4
    for path in outputs.values():
        with OpenEXR.File(path) as exr:
            assert exr.parts[0].header["shotpass/temporal"] == "clip 1-8"
    with Client(video_server) as client:
        render = client.get_render(res["render_id"])
        assert [f.frame for f in render.frames] == [3, 4, 5, 6] and render.frames_total == 4
        per_frame = client.get_render(res["pf_render_id"])
    # A per-frame model: the plate (handles too) was current, the handles went, the server said it reads none.
    assert "ShotpassSceneSettings.handles" not in res["per_frame_drawn"]["props"]
    assert any("passthrough renders frame by frame and reads none" in t for t in res["per_frame_drawn"]["labels"])
    assert res["pf_submit"] == res["pf_wait"] == "" and not res["pf_rendered_plate"], log
    assert res["pf_sent_context"] == [1, 2, 7, 8] and sorted(int(f) for f in res["pf_outputs"]) == [3, 4, 5, 6]
    handles_warning = [w for w in res["pf_warnings"] if "reads no context frames" in w]
    assert len(handles_warning) == 1 and "4 handle frame(s)" in handles_warning[0], res["pf_warnings"]
    assert "reads no context frames" in res["pf_status"], res["pf_status"]
    assert any("reads no context frames" in w for w in per_frame.warnings), list(per_frame.warnings)
    # The ends: no frame before 0 (Blender's first); a frame step is refused with what to do; saved in the file.
    assert res["at_frame_1"] == [0, 7, 8]
    assert "set the frame step to 1 or the handles to 0" in res["stepped"], res["stepped"]
    assert res["reopened_handles"] == 2


@pytest.mark.parametrize("host", MATRIX)
def test_progress_operator_leaves_esc_to_playback_and_ends_cleanly(
        host: str, tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    """The progress operator's real modal() and cancel() with events named as Blender names them: Esc and
    Space (playback) pass through and the render goes on; its own Cancel ends it; opening a file
    (read_homefile, open_mainfile) stops the render and cancel() cleans up."""
    res, log = run_blender("modal", tmp_path, ext_zip[0], server_address, host=host, project=f"modal-{host}")
    assert res["plate_call"] == "", log
    assert [r for _, _, r in res["events"]] == [["PASS_THROUGH"]] * len(res["events"]), res["events"]
    assert res["after_events"] == {"finished": False, "process_running": True, "following": True}
    assert res["cancel"] == "" and res["cancel_result"] == ["CANCELLED"], res
    assert res["cancel_reports"] == [[["ERROR"], "plate render cancelled"]] and res["cancel_cleaned"]
    assert res["cancel_process"] != 0
    # Followed to the end: the operator's timer drained the job, wired the result and reported it.
    assert res["submit_call"] == "" and res["submit_result"] == ["FINISHED"], res
    assert res["submit_render"] and res["last_render_id"] == res["submit_render"] and res["submit_cleaned"]
    assert res["submit_reports"][0][0] == ["INFO"] and res["submit_render"] in res["submit_reports"][0][1]
    for label in ("read_homefile", "open_mainfile"):
        opened = res[label]
        assert opened["start"] == "" and opened["cancel"] == "" and opened["cleaned"], (label, opened)
        assert opened["process"] not in (0, None) and opened["jobs"] == 0, (label, opened)
        assert opened["staging"] == [], (label, opened)  # nothing half-rendered is left to look like a plate
    assert "Traceback" not in log, log


def test_animated_strength_option_and_prompt_keys_go_per_frame(
        tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    from shotpass_client import Client

    res, log = run_blender("animated", tmp_path, ext_zip[0], server_address)
    assert res["options"] == res["key1"] == res["key2"] == res["submit"] == "", log
    with Client(server_address) as client:
        settings = client.get_render(res["render_id"]).settings
    strength = {f: float(v) for f, v in settings.options_by_frame["strength"].values.items()}
    assert sorted(strength) == [11, 12, 13] and strength[11] == 0.0 and strength[13] == 1.0
    assert 0.0 < strength[12] < 1.0  # Blender's interpolation, evaluated on frame 12
    tiles = {f: int(v) for f, v in settings.options_by_frame["tile_size"].values.items()}
    assert tiles[11] == 200 and tiles[13] == 300 and 200 < tiles[12] < 300
    assert dict(settings.prompt_by_frame) == {11: "a sunny street", 13: "the same street at night"}
    outputs = {int(f): p for f, p in res["outputs"].items()}
    plate = {int(f): p for f, p in res["plate"].items()}
    np.testing.assert_allclose(rgba(outputs[11])[..., :3], rgba(plate[11])[..., :3], atol=2e-3)  # strength 0
    assert np.abs(rgba(outputs[13])[..., :3] - rgba(plate[13])[..., :3]).mean() > 0.02  # strength 1


@pytest.mark.parametrize("host", MATRIX)
def test_stale_plate_is_rendered_again_and_cancel_stops_the_plate_render(
        host: str, tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    res, log = run_blender("stale", tmp_path, ext_zip[0], server_address, host=host, project=f"stale-{host}")
    assert res["plate"] == "", log
    current, changed, edited = res["current"], res["range"], res["edit"]
    assert not current["rendered_plate"] and current["call"] == current["wait"] == "", log
    assert current["outputs"] == [11, 12, 13]
    # The frame range grew: rendered again before sending, and the artist is told why.
    assert changed["rendered_plate"] and "frames 11-13 -> 11-14" in changed["status"], changed["status"]
    assert changed["wait"] == "" and changed["outputs"] == [11, 12, 13, 14]
    assert all(changed["sent"][f] > current["sent"][f] for f in current["sent"])  # new files, not the old ones
    assert edited["rendered_plate"] and "contents edited" in edited["status"], edited["status"]
    assert edited["wait"] == "" and edited["outputs"] == [11, 12, 13, 14]
    assert "resolution" in res["resolution_why"], res["resolution_why"]
    assert "motion_blur false -> true" in res["blur_why"], res["blur_why"]
    assert res["undo"] == "" and res["after_undo"]["current"], res["after_undo"]
    assert "contents edited" in res["modifier_why"] and res["modifier_digest_moved"]
    # Cancelled while the plate rendered: nothing reached the server, no staging folder is left behind.
    assert res["cancel_submit"] == res["cancel"] == "" and res["cancel_rendering"], log
    assert "plate render cancelled" in res["cancel_wait"] and "cancelled" in res["cancel_status"]
    assert res["cancel_render_id"] == ""
    assert not any(name.startswith(".rendering") for name in res["plate_dir"]), res["plate_dir"]
    assert "st.plate.json" in res["plate_dir"] and "frames 11-14 -> 11-60" in res["after_cancel_why"]
    # Another file opened while a plate rendered: its process was stopped and no job is left to wire.
    assert res["load_submit"] == "" and res["load_process"] not in (0, None) and res["load_jobs"] == 0, res


def test_beachball_strip_plate_round_trip(tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    files = beachball_files()
    res, log = run_blender("plate", tmp_path, ext_zip[0], server_address, files=files, strip_start=101)
    assert res["use_plate"] == res["submit"] == res["wait"] == "", log
    plate = {int(f): p for f, p in res["plate"].items()}
    assert plate == {101 + i: f for i, f in enumerate(files)}
    src, got = res["source_strip"], res["state"]["strip"]
    assert (got["start"], got["end"]) == (src["start"], src["end"]) == (101, 109)
    assert res["state"]["scene_strips"] == ["beachball"]  # the result went to the review scene
    assert (res["state"]["frame_start"], res["state"]["frame_offset"]) == (101, 100)
    for i, out_file in enumerate(got["files"]):
        assert Path(out_file).name == f"beachball.{101 + i:04d}.exr"
        np.testing.assert_allclose(rgba(out_file), rgba(files[i]), atol=1e-3, err_msg=out_file)


def write_exr(path: Path, pixels: Dict[str, np.ndarray]) -> str:
    """A scanline EXR of half channels (the plates and masks of the tests below)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {k: v.astype(np.float16) for k, v in pixels.items()}) as f:
        f.write(str(path))
    return str(path)


def noise_plate(folder: Path, frames: range, w: int = 64, h: int = 48) -> Dict[int, str]:
    """RGBA noise frames (every pixel differs, so any change by a pass shows) named by their frame numbers."""
    rng = np.random.default_rng(7)
    out = {}
    for f in frames:
        rgb = rng.uniform(0.05, 0.95, (h, w, 3))
        out[f] = write_exr(folder / f"plate.{f:04d}.exr", {"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2],
                                                           "A": np.ones((h, w))})
    return out


def srgb(linear: np.ndarray) -> np.ndarray:
    x = np.clip(linear, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def test_movie_strip_plate_lands_on_its_frames(tmp_path: Path, ext_zip: Tuple[Path, str],
                                               server_address: str) -> None:
    assert BIKES.is_file(), f"test clip missing: {BIKES}"
    start, first, count, size = 10, 20, 3, (64, 28)
    res, log = run_blender("movie", tmp_path, ext_zip[0], server_address, movie=str(BIKES), strip_start=start,
                           first=first, count=count, size=size)
    assert res["use_plate"] == res["submit"] == res["wait"] == "", log
    frames = list(range(first, first + count))
    # Rendered through the sequencer into the cache: RGBA half, one layer, named by the strip's scene frames.
    plate = {int(f): p for f, p in res["plate"].items()}
    assert sorted(plate) == frames
    assert all(Path(p).name == f"bikes.{f:04d}.exr" and str(tmp_path / "cache") in p for f, p in plate.items())
    for p in plate.values():
        ch = channels(p)
        assert sorted(ch) == ["A", "B", "G", "R"] and ch["R"].dtype == np.float16 and ch["R"].shape == (28, 64)
    assert res["scenes"] == ["Scene", "shotpass bikes"] and res["source_muted"] is False  # + the review scene
    # Plate frame N is clip frame N - start (the strip's offset), checked against an independent decoder.
    import cv2

    cap = cv2.VideoCapture(str(BIKES))
    clip = []
    for _ in range(first - start + count + 2):
        ok, bgr = cap.read()
        assert ok
        clip.append(cv2.resize(bgr[..., ::-1], size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
    for f, p in plate.items():
        shown = srgb(rgba(p)[3:-3, 4:-4, :3])  # away from the edges, where the two scalers differ most
        errors = [np.abs(shown - c[3:-3, 4:-4]).mean() for c in clip]
        assert int(np.argmin(errors)) == f - start, (f, errors)
    # N in = N out by frame number, and the result strip sits on the plate's frames above the source strip.
    outputs = {int(f): p for f, p in res["outputs"].items()}
    assert sorted(outputs) == frames and all(Path(p).name == f"bikes.{f:04d}.exr" for f, p in outputs.items())
    got, src = res["state"]["strip"], res["source_strip"]
    assert (got["start"], got["end"]) == (src["start"], src["end"]) == (first, first + count)
    assert res["state"]["scene_strips"] == ["bikes"]  # the artist's edit is left alone
    assert [Path(f).name for f in got["files"]] == [Path(outputs[f]).name for f in frames]
    # Frame N of the review scene's sequencer shows output N, and only N.
    seq = {int(f): rgba(p) for f, p in res["seq"].items()}
    for f in frames:
        out = rgba(outputs[f])
        np.testing.assert_allclose(out, rgba(plate[f]), atol=1e-3)  # passthrough
        np.testing.assert_allclose(seq[f], out, atol=2e-3, err_msg=f"sequencer frame {f} != output {f}")
        for g in frames:
            if g != f:
                assert np.abs(seq[f] - rgba(outputs[g])).max() > 0.05, (f, g)


@pytest.mark.parametrize("host", MATRIX)
def test_preview_renders_the_current_frame_into_an_image(host: str, tmp_path: Path, ext_zip: Tuple[Path, str],
                                                         server_address: str) -> None:
    from shotpass_client import Client

    res, log = run_blender("preview", tmp_path, ext_zip[0], server_address, host=host, project=f"preview-{host}")
    assert res["preview"] == res["wait"] == "", log
    # Only the current frame (12 of 11-13) was rendered and sent, on the preview lane.
    assert res["cache"] == {"preview": ["pv.0012.exr", "pv.plate.json"]}
    with Client(server_address) as client:
        render = client.get_render(res["render_id"])
    assert render.lane == "preview" and [fr.frame for fr in render.frames] == [12]
    assert render.frames_total == 1
    outputs = {int(f): p for f, p in res["outputs"].items()}
    assert list(outputs) == [12] and Path(outputs[12]).name == "pv.0012.exr"
    # Loaded as an Image datablock holding that output; no window headless, and nothing wired as a version.
    image = res["image"]
    assert image is not None and image["file"] == outputs[12] and image["source"] == "FILE"
    assert image["size"] == [64, 48]
    pixels = np.array(image["pixels"], dtype=np.float32).reshape(48, 64, 4)[::-1]  # Blender stores bottom-up
    np.testing.assert_allclose(pixels, rgba(outputs[12]), atol=1e-3)
    assert res["background"] and "shown in an Image editor" not in res["status"]  # no UI: no editor
    assert res["render_id"] in res["status"] and "frame 12" in res["status"]
    assert res["last_render_id"] == "" and res["strips"] == 0 and res["comp_node"] is False


def test_inpaint_with_a_mask_sequence_keeps_the_rest_bit_exact(tmp_path: Path, ext_zip: Tuple[Path, str],
                                                               server_address: str) -> None:
    frames = range(5, 8)
    plate = noise_plate(tmp_path / "plate", frames)
    masks = {}
    for f in frames:  # a box that moves with the frame number, so a frame slip between plate and mask shows
        m = np.zeros((48, 64))
        m[10:30, 8 + 6 * (f - 5): 28 + 6 * (f - 5)] = 1.0
        masks[f] = m
        write_exr(tmp_path / "mask" / f"mask.{f:04d}.exr", {"R": m, "G": m, "B": m})
    res, log = run_blender("inpaint", tmp_path, ext_zip[0], server_address, plate=plate[5],
                           mask=str(tmp_path / "mask" / "mask.0005.exr"))
    assert res["use_plate"] == res["submit"] == res["wait"] == "", log
    assert {int(f): Path(p).name for f, p in res["sent_mask"].items()} == {f: f"mask.{f:04d}.exr" for f in frames}
    outputs = {int(f): p for f, p in res["outputs"].items()}
    assert sorted(outputs) == list(frames)
    for f in frames:
        src, out, keep = channels(plate[f]), channels(outputs[f]), masks[f] == 0
        for c in "RGBA":
            assert out[c].dtype == src[c].dtype
            assert np.array_equal(out[c][keep].view(np.uint16), src[c][keep].view(np.uint16)), (f, c)
        assert np.abs(out["R"][~keep].astype(np.float32) - src["R"][~keep]).mean() > 0.05  # the box was filled


def test_reference_image_is_used(tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    from shotpass_client import Client
    from shotpass_client.client import file_digest

    plate = noise_plate(tmp_path / "plate", range(1, 3))
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w] / 16.0
    ref = write_exr(tmp_path / "ref" / "style.exr", {"R": (np.sin(xx * 3) > 0) * 0.9, "G": np.zeros((h, w)),
                                                     "B": (np.cos(yy * 3) > 0) * 0.7, "A": np.ones((h, w))})
    res, log = run_blender("reference", tmp_path, ext_zip[0], server_address, plate=plate[1], reference=ref)
    assert res["use_plate"] == res["submit"] == res["wait"] == "", log
    with Client(server_address) as client:
        render = client.get_render(res["render_id"])
    assert render.settings.model == "styletransfer-reference"
    assert render.reference_digest == file_digest(ref)
    outputs = {int(f): p for f, p in res["outputs"].items()}
    assert sorted(outputs) == [1, 2]
    for f, p in outputs.items():
        assert np.abs(rgba(p)[..., :3] - rgba(plate[f])[..., :3]).mean() > 0.02  # stylized


def test_review_reaches_the_server(tmp_path: Path, ext_zip: Tuple[Path, str], server_address: str) -> None:
    from shotpass_client import Client

    plate = noise_plate(tmp_path / "plate", range(1, 2), 16, 8)
    res, log = run_blender("review", tmp_path, ext_zip[0], server_address, plate=plate[1])
    assert res["use_plate"] == res["submit"] == res["wait"] == "", log
    assert res["review1"] == res["review2"] == res["versions_call"] == "", log
    with Client(server_address) as client:
        review = client.get_render(res["render_id"]).review
    # The second call changed only the rating: pin and note from the first are kept.
    assert (review.rating, review.pinned, review.note) == (2, True, "too blue, keep the grain")
    assert len(res["versions"]) == 1 and "** pinned" in res["versions"][0], res["versions"]
    assert "no-such-render" in res["no_render"]


@pytest.mark.parametrize("host", MATRIX)
def test_cancel_reports_and_wires_nothing(host: str, tmp_path: Path, ext_zip: Tuple[Path, str],
                                          server_address: str) -> None:
    res, log = run_blender("cancel", tmp_path, ext_zip[0], server_address, host=host, project=f"cancel-{host}",
                           files=beachball_files())
    assert res["submit"] == res["cancel"] == "", log
    assert res["render_id"]
    assert "cancelled" in res["wait"].lower() and res["render_id"] in res["wait"]
    assert "cancelled" in res["status"].lower()
    assert res["result_strip"] is False


def test_suspend_resume_requeue_and_qc_from_the_panel(tmp_path: Path, ext_zip: Tuple[Path, str],
                                                      server_address: str) -> None:
    from shotpass_client import Client
    from shotpass_client.proto import shotpass_pb2 as pb

    res, log = run_blender("jobs", tmp_path, ext_zip[0], server_address, files=beachball_files())
    assert res["submit"] == res["suspend"] == res["resume"] == res["wait"] == "", log
    assert res["suspended_state"] == "suspended" and "suspended" in res["suspend_status"], res
    assert res["held"] == res["held_later"] < 8, "the suspended render went on (or finished before the suspend)"
    with Client(server_address) as client:
        assert client.get_render(res["render_id"]).state == pb.FINISHED
    assert sorted(int(f) for f in res["outputs"]) == list(range(1, 9))
    assert res["failed_state"] == "failed" and res["failed_qc"].startswith("0/3 frames"), res
    assert res["list1"] == res["requeue"] == res["list2"] == "", log
    assert "frames 1, 2, 3 requeued; frame timeout lifted" in res["requeue_status"], res["requeue_status"]
    assert res["requeued_state"] == "finished"
    # The browser's QC column carries the flicker figure of both multi-frame renders.
    assert re.search(r"8/8 frames, QC flicker \d+\.\dx", res["qc"][res["render_id"]]), res["qc"]
    assert "3/3 frames" in next(q for rid, q in res["qc"].items() if rid != res["render_id"]), res["qc"]
    names = [name for name, _ in res["menu"]]
    assert names[-1] == "styletransfer-preset (unavailable)" and "styletransfer-preset" not in names
    assert res["menu"][-1][1] == "unavailable: weights missing"
    assert "styletransfer-preset is unavailable on this server (weights missing)" in res["unavailable_submit"], res
    assert "is unavailable on this server" in res["picked_status"], res["picked_status"]


@pytest.mark.parametrize("host", MATRIX)
def test_server_down_gives_one_clear_report(host: str, tmp_path: Path, ext_zip: Tuple[Path, str]) -> None:
    import socket

    with socket.socket() as s, socket.socket() as silent:  # a port nothing listens on; one that never answers
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        quiet = f"127.0.0.1:{silent.getsockname()[1]}"
        res, log = run_blender("down", tmp_path, ext_zip[0], dead, host=host, silent=quiet)
    # List Versions / Load Model Options return at once; the failure arrives from the background.
    assert res["list"] == res["options"] == res["silent_list"] == "", log
    assert "listing" in res["list_status"] and "listing" in res["silent_status"]
    for key in ("list_wait", "wait"):
        assert "cannot reach a shotpass server" in res[key] and dead in res[key], res[key]
    assert "cannot reach a shotpass server" in res["silent_wait"] or "unreachable" in res["silent_wait"], res
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
    # Passes an engine cannot give (the renders behind these rules: test_depth_and_vector_passes_...).
    assert core.pass_problems("CYCLES", True, True, motion_blur=False) == []
    assert core.pass_problems("BLENDER_WORKBENCH", True, False, motion_blur=True) == []  # Depth only: fine
    assert core.pass_problems("OCTANE", False, False, motion_blur=False) == []
    assert "cannot tell whether it writes the Depth and Vector pass" in core.pass_problems("OCTANE", True, True,
                                                                                           False)[0]
    assert "EEVEE writes the Vector pass as zeros" in core.pass_problems("BLENDER_EEVEE_NEXT", False, True, True)[0]


def test_path_map_sends_a_mapped_plate_as_server_paths(tmp_path: Path, ext_zip: Tuple[Path, str],
                                                       server_address: str) -> None:
    files = beachball_files()[:2]
    mapping = f"{BEACHBALL}={BEACHBALL}"
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    # A server that reads no paths refuses the submission: proof that paths, not bytes, were sent.
    res, log = run_blender("plate", tmp_path / "a", ext_zip[0], server_address, files=files, strip_start=1,
                           path_map=mapping)
    assert "reads no paths" in res["wait"] + res["submit"], log
    config = tmp_path / "paths.toml"
    config.write_text(f'[paths]\nroots = ["{BEACHBALL}"]\n')
    data = tmp_path / "rooted"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        address = proc.stdout.readline().split("serving on ")[1].split()[0]
        res, log = run_blender("plate", tmp_path / "b", ext_zip[0], address, files=files, strip_start=1,
                               path_map=mapping)
    finally:
        proc.terminate()
        proc.wait(30)
    assert res["submit"] == res["wait"] == "", log
    for i, out_file in enumerate(res["state"]["strip"]["files"]):
        np.testing.assert_allclose(rgba(out_file), rgba(files[i]), atol=1e-3, err_msg=out_file)


def test_tls_preferences_reach_a_mutual_tls_server(tmp_path: Path, ext_zip: Tuple[Path, str]) -> None:
    from helpers import tls_serve_args, write_pki

    from shotpass_client import Client
    from shotpass_client.client import tls_files

    pki = write_pki(tmp_path / "pki")
    plate = noise_plate(tmp_path / "plate", range(1, 3), 16, 8)
    data = tmp_path / "tls-data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         *tls_serve_args(pki, mutual=True)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "TLS mutual" in line, line
        address = line.split("serving on ")[1].split()[0]
        tls = {"tls_ca": str(pki["ca_cert"]), "tls_cert": str(pki["client_cert"]), "tls_key": str(pki["client_key"])}
        res, log = run_blender("tls", tmp_path, ext_zip[0], address, plate=plate[1], tls=tls)
        assert res["use_plate"] == res["submit"] == res["wait"] == res["versions_call"] == "", log
        outputs = {int(f): p for f, p in res["outputs"].items()}
        assert sorted(outputs) == [1, 2]
        for f, p in outputs.items():
            np.testing.assert_array_equal(rgba(p), rgba(plate[f]))  # passthrough, over TLS both ways
        with Client(address, **tls_files(*tls.values())) as client:  # type: ignore[arg-type]
            assert client.get_render(res["render_id"]).frames_done == 2
        # Without the client certificate the mutual-TLS server refuses: one clear report, no traceback.
        assert "cannot reach a shotpass server" in res["no_client_cert"] or "unreachable" in res["no_client_cert"]
        assert "Traceback" not in log
    finally:
        proc.terminate()
        proc.wait(30)
