"""The Nuke plugin installs on a stock Nuke: its vendored packages are complete for each Nuke Python, and the
menu appears without qtpy or without any Qt at all.

Each Nuke Python (Nuke 14 = 3.9, 15 = 3.10, 16 = 3.11) is run as a bare interpreter (`-S -E -s`: no
site-packages, no PYTHONPATH) with only the plugin folder on sys.path, as Nuke's own Python would see it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pytest
from helpers import channels

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "plugins" / "nuke"
FAKE = Path(__file__).resolve().parent / "fake_nuke"
BARE = Path(__file__).resolve().parent / "nuke_bare"
if str(PLUGIN) not in sys.path:
    sys.path.insert(0, str(PLUGIN))

import vendor_wheels  # noqa: E402

from shotpass_nuke import bootstrap  # noqa: E402

NUKE_PYTHONS = {"3.9": "Nuke 14", "3.10": "Nuke 15", "3.11": "Nuke 16"}


def find_python(version: str) -> Optional[str]:
    """An interpreter of exactly this version (PATH, then pyenv's folders: its shims only run active versions)."""
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    candidates = [shutil.which(f"python{version}")] + sorted(
        glob.glob(os.path.join(pyenv, "versions", f"{version}.*", "bin", f"python{version}")), reverse=True)
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return exe
    return None


def bare_python(version: str) -> str:
    exe = find_python(version)
    if exe is None:
        message = f"no Python {version} interpreter ({NUKE_PYTHONS[version]}'s Python) on this machine"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


@pytest.fixture(scope="module")
def vendored() -> Dict[str, Path]:
    """vendor/cpXY-<this platform> for the three Nuke Pythons (from the wheel cache after the first run)."""
    platform = bootstrap.platform_name()
    folders = {v: Path(vendor_wheels.vendor(v, platform, str(PLUGIN / "vendor"))) for v in NUKE_PYTHONS}
    vendor_wheels.copy_client(str(PLUGIN / "vendor"))  # the client as it is in this checkout
    return folders


def run_bare(exe: str, script: Path, *args: str) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run([exe, "-S", "-E", "-s", str(script), *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(script.parent))
    assert done.returncode == 0, f"{exe} {script.name} failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("version", sorted(NUKE_PYTHONS, key=lambda v: tuple(map(int, v.split(".")))))
def test_vendored_closure_renders_through_a_real_server_in_a_bare_interpreter(version, vendored, server, beachball,
                                                                              tmp_path):
    exe = bare_python(version)
    plate = beachball.replace("####", "0007")
    result = run_bare(exe, BARE / "roundtrip.py", str(PLUGIN), server.address, plate, str(tmp_path / "out"))
    assert result["python"] == [int(x) for x in version.split(".")]
    folder = str(vendored[version])
    for module in ("grpc", "typing_extensions"):
        assert result[module].startswith(folder), f"{module} came from {result[module]}, not {folder}"
    assert result["client"].startswith(str(ROOT / "shared")), "from a checkout the checkout's client is used"
    # Nothing but the interpreter's own library and the plugin folder was loaded.
    allowed = (result["base_prefix"], os.path.realpath(PLUGIN), str(BARE / "roundtrip.py"),
               os.path.realpath(ROOT / "shared" / "shotpass_client"))
    strays = [f for f in result["loaded"] if not f.startswith(allowed)]
    assert strays == []
    out = result["outputs"]["7"]
    assert np.array_equal(channels(out)["R"], channels(plate)["R"])


def test_an_installed_plugin_uses_its_own_copy_of_the_client(vendored, tmp_path, server, beachball):
    """A plugin folder copied out of the checkout (how studios install it) runs on vendor/ alone."""
    installed = tmp_path / "site" / "nuke" / "shotpass"
    keep = {"common", vendored["3.11"].name}

    def ignore(folder: str, names: list) -> list:
        other_vendors = [n for n in names if Path(folder).name == "vendor" and n not in keep]
        return other_vendors + [n for n in names if n == "__pycache__"]

    shutil.copytree(PLUGIN, installed, symlinks=True, ignore=ignore)
    exe = bare_python("3.11")
    plate = beachball.replace("####", "0003")
    result = run_bare(exe, BARE / "roundtrip.py", str(installed), server.address, plate, str(tmp_path / "out"))
    assert result["client"].startswith(str(installed / "vendor" / "common"))
    assert result["grpc"].startswith(str(installed / "vendor"))
    allowed = (result["base_prefix"], os.path.realpath(installed), str(BARE / "roundtrip.py"))
    assert [f for f in result["loaded"] if not f.startswith(allowed)] == []


def test_every_vendored_folder_holds_its_whole_dependency_closure(vendored):
    for version, folder in vendored.items():
        assert vendor_wheels.missing_requirements(str(folder), version, bootstrap.platform_name()) == []
        names = {p.name.split("-")[0].lower() for p in folder.glob("*.dist-info")}
        assert {"grpcio", "protobuf", "typing_extensions"} <= names, (version, names)


def test_the_closure_check_names_a_missing_dependency(vendored, tmp_path):
    copy = tmp_path / "cp311"
    shutil.copytree(vendored["3.11"], copy, ignore=shutil.ignore_patterns("typing_extensions*"))
    missing = vendor_wheels.missing_requirements(str(copy), "3.11", bootstrap.platform_name())
    assert any(m.startswith("typing-extensions") or m.startswith("typing_extensions") for m in missing), missing


def test_a_second_vendoring_run_uses_the_cache_and_keeps_the_folder(vendored, monkeypatch):
    stamp = vendored["3.10"] / vendor_wheels.STAMP
    before = stamp.stat().st_mtime_ns

    def no_pip(*args, **kwargs):
        raise AssertionError(f"pip was run although the wheels are cached: {args}")

    monkeypatch.setattr(vendor_wheels.subprocess, "run", no_pip)
    assert Path(vendor_wheels.vendor("3.10", bootstrap.platform_name(), str(PLUGIN / "vendor"))) == vendored["3.10"]
    assert stamp.stat().st_mtime_ns == before


def test_pip_resolves_dependencies_for_every_nuke_python_and_platform():
    for version in NUKE_PYTHONS:
        for platform in vendor_wheels.PLATFORMS:
            cmd = vendor_wheels.pip_command(version, platform, "/tmp/x")
            assert "--no-deps" not in cmd
            assert cmd[cmd.index("--python-version") + 1] == version and "--only-binary=:all:" in cmd
            assert any(c.startswith("grpcio==") for c in cmd) and any(c.startswith("protobuf==") for c in cmd)
    mac = vendor_wheels.pip_command("3.11", "macosx_x86_64", "/tmp/x")
    assert "macosx_11_0_universal2" in mac  # grpcio ships macOS wheels as universal2 only


@pytest.mark.parametrize("version", ["3.9", "3.11"])
def test_menu_appears_in_a_bare_nuke_python_without_any_qt(version, vendored):
    exe = bare_python(version)
    result = run_bare(exe, BARE / "menu_without_qt.py", str(PLUGIN), str(FAKE))
    assert result["qt_loaded"] == []
    assert result["nodes"] == ["ShotPass"]
    assert result["nuke"] == ["ShotPass node"]  # the queue panel entry is left out without Qt
    assert result["panels"] == []


def test_queue_panel_loads_through_the_shim_without_qtpy(tmp_path):
    """Nuke ships PySide2/PySide6 but not qtpy: the panel must load from the binding itself."""
    code = ("import sys; sys.modules['qtpy'] = None; sys.path[:0] = sys.argv[1:3]; "
            "import shotpass_nuke.host as h; h.install_menu(); import nuke, nukescripts; "
            "from shotpass_nuke import qt; "
            "print(qt.BINDING, sorted(nuke.menu('Nuke').findItem('shotpass').items_), "
            "sorted(nukescripts.panels.registered))")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code, str(PLUGIN), str(FAKE)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[-2] == "PySide6 ['Queue panel', 'ShotPass node'] ['io.shotpass.queue']"
