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


# ---------------------------------------------------------------- opened once, beneath the root


@pytest.fixture(params=["openat2", "walk"])
def opener(request, monkeypatch):
    """Both ways a path is opened beneath its root: the kernel's openat2 and the O_NOFOLLOW walk."""
    from shotpass_server import path_access


    if request.param == "walk":
        monkeypatch.setattr(path_access.OPENAT2, "available", False)
    elif not path_access.OPENAT2.available:
        pytest.skip("this kernel has no openat2")
    return request.param


def test_swapping_a_folder_for_a_symlink_never_reads_another_projects_plate(tmp_path, opener):
    import os
    import threading
    import time

    from shotpass_server.errors import InvalidInput
    from shotpass_server.path_access import PathAccess

    own = (BEACHBALL / "singlepart.0001.exr").read_bytes()
    foreign = (BEACHBALL / "singlepart.0002.exr").read_bytes()
    root = tmp_path / "show1"
    shot = root / "sh010"
    shot.mkdir(parents=True)
    (shot / "plate.exr").write_bytes(own)
    elsewhere = tmp_path / "show2" / "sh010"  # another project's storage, outside this root
    elsewhere.mkdir(parents=True)
    (elsewhere / "plate.exr").write_bytes(foreign)
    access = PathAccess([], {"show1": [root]})
    stop = threading.Event()

    def swap() -> None:
        # The folder a checked path went through becomes a symlink to the other show, then comes back.
        while not stop.is_set():
            os.rename(shot, root / ".stash")
            os.symlink(elsewhere, shot)
            os.unlink(shot)
            os.rename(root / ".stash", shot)

    swapper = threading.Thread(target=swap)
    swapper.start()
    results = {"own": 0, "refused": 0, "foreign": 0}
    try:
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline and results["foreign"] == 0:
            try:
                data = access.read(str(shot / "plate.exr"), 1, "show1")
            except InvalidInput:
                results["refused"] += 1
                continue
            results["own" if data == own else "foreign"] += 1
    finally:
        stop.set()
        swapper.join()
    assert results["foreign"] == 0, results
    assert results["own"] > 0 and results["refused"] > 0, results  # the race really ran both ways


def test_symlinks_inside_a_root_are_followed_hop_by_hop_and_never_out(tmp_path, opener):
    import os

    from shotpass_server.errors import InvalidInput
    from shotpass_server.path_access import PathAccess

    plate = (BEACHBALL / "singlepart.0001.exr").read_bytes()
    root = tmp_path / "shows"
    (root / "_data" / "sh010").mkdir(parents=True)
    (root / "_data" / "sh010" / "plate.0001.exr").write_bytes(plate)
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.0001.exr").write_bytes(plate)
    os.symlink("_data/sh010", root / "rel")                        # relative, inside
    os.symlink(root / "_data" / "sh010", root / "abs")             # absolute, inside
    os.symlink("../rel/plate.0001.exr", root / "_data" / "hop")    # a chain of links, all inside
    os.symlink("../private", root / "out-rel")                     # relative, out
    os.symlink(outside, root / "out-abs")                          # absolute, out
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    access = PathAccess([root])
    for good in ("rel/plate.0001.exr", "abs/plate.0001.exr", "_data/hop", "_data/sh010/../sh010/plate.0001.exr"):
        assert access.read(str(root / good), 1, "p") == plate, good
    for bad in ("out-rel/secret.0001.exr", "out-abs/secret.0001.exr", "../private/secret.0001.exr",
                "_data/../../private/secret.0001.exr"):
        with pytest.raises(InvalidInput, match="outside the server's readable roots"):
            access.read(str(root / bad), 1, "p")
    with pytest.raises(InvalidInput, match="loop-a \\(frame 3\\): cannot read it on the server"):
        access.read(str(root / "loop-a"), 3, "p")
    with pytest.raises(InvalidInput, match="cannot read it on the server"):
        access.read(str(root / "missing.0001.exr"), 1, "p")
    with pytest.raises(InvalidInput, match="a folder"):
        access.read(str(root / "_data"), 1, "p")
    # The root may be named as configured or as it resolves (a root that is itself a symlink).
    alias = tmp_path / "mnt-shows"
    alias.symlink_to(root)
    access = PathAccess([alias])
    assert access.read(str(alias / "rel" / "plate.0001.exr"), 1, "p") == plate
    assert access.read(str(root / "rel" / "plate.0001.exr"), 1, "p") == plate


def test_a_non_exr_or_oversized_file_is_refused_from_its_first_bytes(tmp_path):
    import tracemalloc

    from shotpass_server.errors import InvalidInput
    from shotpass_server.path_access import PathAccess

    root = tmp_path / "storage"
    root.mkdir()
    big = root / "movie.0001.exr"
    with open(big, "wb") as fh:  # 64 MiB, sparse: costs no disk, would cost memory if read
        fh.write(b"\x00\x00\x00\x18ftypmp42")
        fh.truncate(64 << 20)
    # An EXR whose header promises a frame far over the server's pixel limit, padded to 64 MiB as well.
    import struct

    from conftest import EXR

    data = bytearray((EXR / "openexr" / "test.exr").read_bytes())
    for key in (b"dataWindow\0box2i\0", b"displayWindow\0box2i\0"):
        struct.pack_into("<4i", data, data.index(key) + len(key) + 4, 0, 0, 99_999, 99_999)
    huge = root / "huge.0001.exr"
    with open(huge, "wb") as fh:
        fh.write(data)
        fh.truncate(64 << 20)
    for path, message in ((big, "movie.0001.exr \\(frame 1\\): not an OpenEXR file"),
                          (huge, "huge.0001.exr \\(frame 1\\): the data window is 100000x100000")):
        tracemalloc.start()
        try:
            with pytest.raises(InvalidInput, match=message):
                PathAccess([root]).read(str(path), 1, "p")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"{peak} bytes allocated to refuse {path.name}"


def test_a_refused_path_stores_no_blob_and_loops_answer_invalid_argument(tmp_path):
    import os

    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    storage = tmp_path / "storage"
    storage.mkdir()
    (storage / "notes.0001.exr").write_bytes(b"not an image at all, " * 1000)
    os.symlink("loop.0001.exr", storage / "loop.0001.exr")
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", path_roots=[storage]))
    srv.start()
    try:
        with Client(srv.address) as client:
            for name, wanted in (("notes.0001.exr", "not an OpenEXR file"), ("loop.0001.exr", "cannot read it")):
                request = pb.SubmitRenderRequest(
                    project="p", shot="s", settings=pb.RenderSettings(pass_name="passthrough"),
                    frames=[pb.FrameInput(frame=1, path=str(storage / name), name=name)],
                )
                with pytest.raises(ClientError) as err:
                    client.submit(request)
                assert err.value.code == "INVALID_ARGUMENT", err.value
                assert f"{name} (frame 1)" in str(err.value) and wanted in str(err.value)
        assert list(srv.blobs.blobs()) == []
    finally:
        srv.stop(0.5)
