"""Path mode: plates on shared storage are read by the server under its configured roots; nothing is uploaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BEACHBALL
from helpers import run_cli, windows


@pytest.fixture
def path_server(tmp_path):
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", path_roots=[BEACHBALL]))
    srv.start()
    yield srv
    srv.stop(0.5)


def test_mapped_plate_is_sent_as_paths_and_renders_aligned(capsys, path_server, tmp_path):
    # The client sees the storage under another mount point than the server does.
    client_mount = tmp_path / "mnt-client"
    client_mount.symlink_to(BEACHBALL)
    plate = str(client_mount / "singlepart.####.exr")
    code, out, err = run_cli(capsys, [
        "render", plate, "--frames", "2-4", "--pass", "passthrough", "--server", path_server.address,
        "--out", str(tmp_path / "o"), "--json", "--path-map", f"{client_mount}={BEACHBALL}",
    ])
    assert code == 0, err
    assert out["bytes_uploaded"] == 0
    assert out["frames"] == [2, 3, 4]
    for frame in (2, 3, 4):
        assert Path(out["outputs"][str(frame)]).name == f"singlepart.{frame:04d}.exr"
        assert windows(out["outputs"][str(frame)]) == windows(str(BEACHBALL / f"singlepart.{frame:04d}.exr"))


def test_paths_outside_the_roots_or_escaping_them_are_refused(capsys, path_server, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.0001.exr").write_bytes((BEACHBALL / "singlepart.0001.exr").read_bytes())
    code, _, err = run_cli(capsys, ["render", str(outside / "x.####.exr"), "--pass", "passthrough",
                                    "--server", path_server.address, "--out", str(tmp_path / "o"), "--json",
                                    "--path-map", f"{outside}={outside}"])
    assert code != 0 and "outside the server's readable roots" in err and "frame 1" in err
    # '..' and symlinks are resolved before the check, so they cannot escape a root either.
    sneaky = tmp_path / "sneaky"
    sneaky.mkdir()
    (sneaky / "y.0001.exr").symlink_to(outside / "x.0001.exr")
    code, _, err = run_cli(capsys, ["render", str(sneaky / "y.####.exr"), "--pass", "passthrough",
                                    "--server", path_server.address, "--out", str(tmp_path / "o"), "--json",
                                    "--path-map", f"{sneaky}={BEACHBALL}/../../../../../{sneaky.relative_to('/')}"])
    assert code != 0 and "outside the server's readable roots" in err


def test_unmapped_plates_are_uploaded_as_usual(capsys, path_server, beachball, tmp_path):
    code, out, err = run_cli(capsys, ["render", beachball, "--frames", "1", "--pass", "passthrough",
                                      "--server", path_server.address, "--out", str(tmp_path / "o"), "--json",
                                      "--path-map", "/nowhere=/mnt/nowhere"])
    assert code == 0, err
    assert out["bytes_uploaded"] > 0


def test_a_server_without_roots_reads_no_paths(capsys, server, tmp_path):
    code, _, err = run_cli(capsys, ["render", str(BEACHBALL / "singlepart.####.exr"), "--frames", "1",
                                    "--pass", "passthrough", "--server", server.address, "--out", str(tmp_path),
                                    "--json", "--path-map", f"{BEACHBALL}={BEACHBALL}"])
    assert code != 0 and "reads no paths" in err
