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


@pytest.fixture
def project_server(tmp_path):
    """Global roots: none. Project p reads the Beachball folder, project q its own folder; r has roots, no members."""
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    q_root = tmp_path / "q-storage"
    q_root.mkdir()
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d",
                                      project_roots={"p": [BEACHBALL], "q": [q_root], "r": [tmp_path / "r"]}))
    tokens = {name: srv.accounts.add_user(name) for name in ("alice", "bob", "carol")}
    srv.accounts.add_member("p", "alice")
    srv.accounts.add_member("q", "bob")
    srv.start()
    yield srv, tokens, q_root
    srv.stop(0.5)


def _path_render(capsys, srv, token, project, folder, out, pattern="singlepart.####.exr"):
    return run_cli(capsys, ["render", str(folder / pattern), "--frames", "1", "--pass", "passthrough",
                            "--project", project, "--server", srv.address, "--token", token, "--out", str(out),
                            "--json", "--path-map", f"{folder}={folder}"])


def test_a_render_reads_its_own_projects_roots_only(capsys, project_server, tmp_path):
    srv, tokens, q_root = project_server
    code, out, err = _path_render(capsys, srv, tokens["alice"], "p", BEACHBALL, tmp_path / "o1")
    assert code == 0, err
    assert out["bytes_uploaded"] == 0
    # Bob, in project q, names a plate under p's storage: refused, naming the file and frame.
    code, _, err = _path_render(capsys, srv, tokens["bob"], "q", BEACHBALL, tmp_path / "o2")
    assert code != 0
    assert "outside the server's readable roots for project 'q'" in err and "singlepart.0001.exr (frame 1)" in err
    # Nor can he submit into p, which he is not a member of.
    code, _, err = _path_render(capsys, srv, tokens["bob"], "p", BEACHBALL, tmp_path / "o3")
    assert code != 0 and "not a member of project 'p'" in err
    # A symlink in q's storage that points into p's is resolved first: still p's plate, still refused.
    (q_root / "link.0001.exr").symlink_to(BEACHBALL / "singlepart.0001.exr")
    code, _, err = _path_render(capsys, srv, tokens["bob"], "q", q_root, tmp_path / "o4", "link.####.exr")
    assert code != 0 and "outside the server's readable roots" in err and "link.0001.exr" in err
    # So is '..' out of q's storage.
    code, _, err = run_cli(capsys, [
        "render", str(q_root / "link.####.exr"), "--frames", "1", "--pass", "passthrough", "--project", "q",
        "--server", srv.address, "--token", tokens["bob"], "--out", str(tmp_path / "o5"), "--json",
        "--path-map", f"{q_root}={q_root}/../../../../../../../{BEACHBALL.relative_to('/')}",
    ])
    assert code != 0 and "outside the server's readable roots" in err


def test_a_project_with_its_own_storage_is_not_claimed_by_a_first_render(capsys, project_server, tmp_path):
    srv, tokens, _ = project_server
    code, _, err = _path_render(capsys, srv, tokens["carol"], "r", BEACHBALL, tmp_path / "o")
    assert code != 0 and "not a member of project 'r', which has its own plate storage" in err
    assert "shotpass projects add-member r carol" in err


def test_a_fifo_under_a_root_is_refused_not_waited_on(tmp_path):
    # Reading a FIFO (or a device) would block the submit forever: only regular files are plates.
    import os

    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    storage = tmp_path / "storage"
    storage.mkdir()
    os.mkfifo(storage / "pipe.0001.exr")
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", path_roots=[storage]))
    srv.start()
    try:
        with Client(srv.address) as client:
            request = pb.SubmitRenderRequest(
                project="p", shot="s", settings=pb.RenderSettings(pass_name="passthrough"),
                frames=[pb.FrameInput(frame=1, path=str(storage / "pipe.0001.exr"), name="pipe.0001.exr")],
            )
            with pytest.raises(ClientError) as err:
                client.submit(request)
        assert err.value.code == "INVALID_ARGUMENT"
        assert "pipe.0001.exr (frame 1): not a regular file" in str(err.value)
    finally:
        srv.stop(0.5)
