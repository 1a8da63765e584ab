"""Shared fixtures: the real server in-process on a free loopback port, and the real test data."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import pytest

# Pin CPU threads so results are bit-identical between runs on the same machine.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("SHOTPASS_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
EXR = DATA / "exr"
BEACHBALL = EXR / "openexr-images" / "Beachball"


def require_data() -> None:
    if not EXR.is_dir():
        pytest.fail(f"test data not found at {DATA} (it sits beside the project checkout)")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    require_data()
    return DATA


@pytest.fixture
def beachball(tmp_path: Path) -> str:
    """The 8-frame Beachball sequence as a frame pattern (symlinked, never copied into the project)."""
    require_data()
    plate = tmp_path / "plate"
    plate.mkdir()
    for src in sorted(BEACHBALL.glob("singlepart.*.exr")):
        (plate / src.name).symlink_to(src)
    return str(plate / "singlepart.####.exr")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[object]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "server-data", chunk_frames=2))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(grace=0.5)


@pytest.fixture
def client(server: object) -> Iterator[object]:
    from shotpass_client import Client

    c = Client(server.address)  # type: ignore[attr-defined]
    try:
        yield c
    finally:
        c.close()


def copy_frames(src: Path, dst: Path, names: list) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(src / name, dst / name)
