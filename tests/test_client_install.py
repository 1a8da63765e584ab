"""The client-only install: `pip install shotpass` (grpcio + protobuf) renders against a real server.

A wheel of this checkout goes into a fresh venv without extras; numpy, OpenEXR and torch must be absent there,
and its `shotpass` command still uploads, renders and fetches. The server comes from the dev venv.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BEACHBALL, ROOT, require_data
from helpers import serve_process

HEAVY = ("numpy", "OpenEXR", "PyOpenColorIO", "torch", "cv2", "tqdm")


def test_client_cli_imports_no_server_libraries() -> None:
    code = (
        "import sys, shotpass_client.cli as cli\n"
        "cli.build_parser()\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the client CLI pulled in {out.strip()}"


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only this checkout's wheel and what it declares (grpcio, protobuf)."""
    tmp = tmp_path_factory.mktemp("client-install")
    # Built from a clean copy of the sources: an in-tree build/ folder could hold modules removed since.
    source = tmp / "source"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", ".venv*")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        source.mkdir(exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for name in ("shared", "server"):
        shutil.copytree(ROOT / name, source / name, ignore=skip)
    wheels = tmp / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(wheels), str(source)], check=True, capture_output=True)
    wheel = next(wheels.glob("shotpass-*.whl"))
    venv = tmp / "venv"
    # The base interpreter, not the dev venv's: the new venv must not see the dev venv's packages.
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], capture_output=True,
                         text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    return venv


def test_client_only_install_renders_against_a_real_server(client_venv: Path, tmp_path: Path) -> None:
    require_data()
    python = client_venv / "bin" / "python"
    for module in ("numpy", "OpenEXR", "torch"):
        found = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} is installed in the client-only venv"

    plate = tmp_path / "plate"
    plate.mkdir()
    for frame in (1, 2, 3):
        name = f"singlepart.{frame:04d}.exr"
        (plate / name).symlink_to(BEACHBALL / name)
    proc, address = serve_process(tmp_path / "data", tmp_path / "server.log")
    try:
        run = subprocess.run(
            [str(client_venv / "bin" / "shotpass"), "render", str(plate / "singlepart.####.exr"), "--frames", "1-3",
             "--pass", "passthrough", "--server", address, "--out", str(tmp_path / "out"), "--json"],
            capture_output=True, text=True, timeout=300,
        )
        stats = subprocess.run([str(client_venv / "bin" / "shotpass"), "stats", "--server", address, "--json"],
                               capture_output=True, text=True, timeout=120)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["state"] == "FINISHED"
    assert summary["frames"] == [1, 2, 3]
    for frame in (1, 2, 3):
        written = Path(summary["outputs"][str(frame)])
        assert written.name == f"singlepart.{frame:04d}.exr" and written.stat().st_size > 0
    assert stats.returncode == 0, stats.stderr
    (shot,) = json.loads(stats.stdout.strip().splitlines()[-1])["shots"]
    assert shot["shot"] == "singlepart" and shot["frames_done"] == 3


def test_server_commands_name_the_missing_extra(client_venv: Path) -> None:
    shotpass = str(client_venv / "bin" / "shotpass")
    for argv in (["serve", "--listen", "127.0.0.1:0"], ["gc", "--dry-run"]):
        run = subprocess.run([shotpass, *argv], capture_output=True, text=True, timeout=60)
        assert run.returncode == 2
        assert "pip install 'shotpass[server]'" in run.stderr
        assert len(run.stderr.strip().splitlines()) == 1, run.stderr  # one line, no traceback
    edit = subprocess.run([shotpass, "batch", "cut.otio", "--preset", "look.toml", "--dry-run"], capture_output=True,
                          text=True, timeout=60)
    assert edit.returncode == 1 and "pip install 'shotpass[pipeline]'" in edit.stderr and "Traceback" not in edit.stderr
    helped = subprocess.run([shotpass, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "render" in helped.stdout and "shotpass[server]" in helped.stdout
