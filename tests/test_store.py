"""The blob store under stress: cut uploads resume, a full disk or store refuses cleanly, GC frees unused blobs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from conftest import BEACHBALL, EXR
from helpers import run_cli

MiB = 1 << 20
DAY = 86400
PLATE = BEACHBALL / "singlepart.0001.exr"  # 2.3 MiB: three 1 MiB chunks
SMALL = EXR / "openexr-images" / "DisplayWindow" / "t01.exr"  # 20 KiB; its stylized output is ~300 KiB
MEDIUM = EXR / "openexr-images" / "ScanLines" / "Carrots.exr"  # 0.9 MiB
OTHER = EXR / "openexr-images" / "TestImages" / "AllHalfValues.exr"


class Cut(Exception):
    """Raised from inside an upload to cut its stream, as a crash or a dropped connection would."""


def sha(path: Path) -> str:
    """The digest a current client gives the file (blake3 where installed, as on a current server)."""
    from shotpass_client import digests

    return digests.of_file(str(path), digests.available()[0])


@pytest.fixture
def client(server: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """These tests cut gRPC upload streams at 1 MiB chunk boundaries: gRPC only, 1 MiB chunks."""
    from shotpass_client import Client

    monkeypatch.setattr("shotpass_client.client.CHUNK_BYTES", MiB)
    c = Client(server.address)  # type: ignore[attr-defined]
    c.use_data_plane = False
    try:
        yield c
    finally:
        c.close()


def assert_store_consistent(blob_root: Path) -> None:
    """Every visible blob's content hashes to its name (either algorithm); no temp file is left behind."""
    from shotpass_client import digests

    seen = 0
    for algorithm, base in ((digests.SHA256, blob_root), (digests.BLAKE3, blob_root / "blake3")):
        for sub in base.iterdir() if base.is_dir() else ():
            if len(sub.name) == 2:
                for f in sub.iterdir():
                    name = digests.named(algorithm, sub.name + f.name)
                    assert digests.of_bytes(f.read_bytes(), algorithm) == name, f"corrupt blob {f}"
                    seen += 1
    assert not list((blob_root / "tmp").iterdir()), "a half-written temp file was left in the store"
    assert seen, "the store holds no blob at all"


def wait_for(predicate, what: str, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    servers = []

    def make(**settings: object) -> ShotpassServer:
        cfg = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "store-data", chunk_frames=2)
        for key, value in settings.items():
            setattr(cfg, key, value)
        srv = ShotpassServer(cfg)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop(grace=0.5)


def render_frame(client, digest: str, pass_name: str = "stylize"):  # type: ignore[no-untyped-def]
    from shotpass_client.client import frame_inputs
    from shotpass_client.proto import shotpass_pb2 as pb

    request = pb.SubmitRenderRequest(
        project="store", shot="s", settings=pb.RenderSettings(pass_name=pass_name, seed=1), seed_set=True,
        frames=frame_inputs({1: digest}, {1: "plate.0001.exr"}),
    )
    return client.submit(request).render_id


# ---------------------------------------------------------------- resumable uploads


def test_a_cut_upload_stays_invisible_and_resumes_where_it_stopped(server, client) -> None:
    from shotpass_client import ClientError

    digest, size = sha(PLATE), PLATE.stat().st_size
    partial_file = server.blobs.partial_path("local", digest)
    sent = []

    def cut_after_two_chunks(n: int) -> None:
        sent.append(n)
        if sum(sent) >= 2 * MiB:
            # Both chunks are on the server's disk before the stream dies: the cut is at a known byte.
            wait_for(lambda: partial_file.is_file() and partial_file.stat().st_size == 2 * MiB, "two chunks stored")
            raise Cut()

    with pytest.raises((ClientError, Cut)):
        client.upload_files([str(PLATE)], on_bytes=cut_after_two_chunks)

    present, partial = wait_for(lambda: (lambda r: r if r[1] else None)(client.find_blobs_detail([digest])),
                                "FindBlobs to report the partial upload")
    assert present == set() and partial == {digest: 2 * MiB}
    assert not server.blobs.has(digest)
    with pytest.raises(ClientError) as err:
        client.download_bytes(digest)
    assert err.value.code == "NOT_FOUND"

    digests, resent = client.upload_files([str(PLATE)])
    assert resent == size - 2 * MiB, "the resumed upload sent the whole file again"
    assert client.download_bytes(digests[str(PLATE)]) == PLATE.read_bytes()
    assert client.find_blobs_detail([digest]) == ({digest}, {})
    assert not partial_file.exists()


def test_a_resume_at_the_wrong_offset_is_refused_and_a_fresh_start_replaces_the_partial(server, client) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb

    data = PLATE.read_bytes()
    digest = hashlib.sha256(data).hexdigest()

    def chunk(offset: int) -> pb.UploadChunk:
        return pb.UploadChunk(digest=digest, total_size=len(data), offset=offset, data=data[offset: offset + MiB])

    # The stream ends after one chunk: refused as cut, but its bytes are kept (not visible).
    with pytest.raises(grpc.RpcError) as err:
        client._stub.UploadBlobs(iter([chunk(0)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "resumes" in err.value.details()
    assert client.find_blobs_detail([digest]) == (set(), {digest: MiB})

    with pytest.raises(grpc.RpcError) as err:
        client._stub.UploadBlobs(iter([chunk(2 * MiB)]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"starts at byte {2 * MiB}, but the server holds {MiB} bytes" in err.value.details()
    assert client.find_blobs_detail([digest]) == (set(), {digest: MiB}), "a refused resume lost the partial"

    answer = client._stub.UploadBlobs(iter([chunk(o) for o in range(0, len(data), MiB)]))
    assert answer.bytes_received == len(data) and client.download_bytes(digest) == data
    assert_store_consistent(server.blobs.root)


def test_stale_partial_uploads_are_removed_and_the_client_then_sends_everything(server, client) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.blob_gc import collect

    data = MEDIUM.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(grpc.RpcError):
        client._stub.UploadBlobs(iter([pb.UploadChunk(digest=digest, total_size=len(data), data=data[:MiB // 2])]))
    partial_file = server.blobs.partial_path("local", digest)
    assert client.find_blobs_detail([digest])[1] == {digest: MiB // 2}

    old = time.time() - 2 * DAY
    os.utime(partial_file, (old, old))
    report = collect(server.blobs, server.catalog, older_than_days=30, partial_retention_hours=24)
    assert [p for p, _ in report.partials] == [partial_file] and not report.deleted
    assert not partial_file.exists() and client.find_blobs_detail([digest]) == (set(), {})
    assert client.upload_files([str(MEDIUM)])[1] == len(data)


# ---------------------------------------------------------------- full store


def test_max_store_bytes_refuses_uploads_and_fails_outputs_cleanly(make_server) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb

    srv = make_server(max_store_bytes=SMALL.stat().st_size + 64 * 1024)
    with Client(srv.address) as client:
        digests, _ = client.upload_files([str(SMALL)])
        with pytest.raises(ClientError) as err:
            client.upload_files([str(MEDIUM)])
        assert err.value.code == "RESOURCE_EXHAUSTED"
        assert "store is full" in str(err.value) and "max_store_bytes" in str(err.value)
        assert client.find_blobs_detail([sha(MEDIUM)]) == (set(), {}), "a refused upload left bytes behind"

        # The stylized frame (~300 KiB) does not fit: the frame fails with the reason, the server stays up.
        render = client.wait(render_frame(client, digests[str(SMALL)]))
        assert render.state == pb.FAILED
        assert render.frames[0].state == pb.FRAME_FAILED and not render.frames[0].output_digest
        assert "store is full" in render.frames[0].error and "max_store_bytes" in render.frames[0].error
        assert client.server_info().version
    assert_store_consistent(srv.blobs.root)
    assert sum(size for _, size, _ in srv.blobs.blobs()) <= srv.cfg.max_store_bytes


def test_a_file_size_limit_on_the_server_gives_resource_exhausted_and_no_corrupt_blob(tmp_path: Path) -> None:
    """The server runs under RLIMIT_FSIZE, so its writes really fail with EFBIG past 1.5 MiB."""
    from shotpass_client import Client, ClientError

    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    launcher = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (3 * 2**19, 3 * 2**19)); "
        "from shotpass_server.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert "serving on" in line, f"server did not start: {line!r} ({log.read_text()[-2000:]})"
        with Client(line.split("serving on ")[1].split()[0]) as client:
            with pytest.raises(ClientError) as err:
                client.upload_files([str(PLATE)])  # 2.3 MiB: its second chunk crosses the limit
            assert err.value.code == "RESOURCE_EXHAUSTED"
            assert "store is full (a file-size limit was reached" in str(err.value)
            assert f"free in {data_dir / 'blobs'}" in str(err.value)
            assert client.find_blobs_detail([sha(PLATE)]) == (set(), {})
            # The server is still up and stores what fits.
            digests, _ = client.upload_files([str(MEDIUM)])
            assert client.download_bytes(digests[str(MEDIUM)]) == MEDIUM.read_bytes()
        assert not list((data_dir / "blobs" / "partial").rglob("*" + sha(PLATE)))
        assert_store_consistent(data_dir / "blobs")
    finally:
        proc.terminate()
        proc.wait(30)


# ---------------------------------------------------------------- garbage collection


def test_gc_deletes_only_old_blobs_no_render_uses(server, client, capsys) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.blobs import human_bytes
    from shotpass_server.cli import main

    data_dir = str(server.cfg.data_dir)
    digests, _ = client.upload_files([str(SMALL), str(OTHER), str(MEDIUM)])
    used, unused_old, unused_new = (digests[str(p)] for p in (SMALL, OTHER, MEDIUM))
    render = client.wait(render_frame(client, used))
    assert render.state == pb.FINISHED, render.error
    output = render.frames[0].output_digest
    old = time.time() - 40 * DAY
    for digest in (used, output, unused_old):
        os.utime(server.blobs.path(digest), (old, old))

    code, dry, _ = run_cli(capsys, ["gc", "--data-dir", data_dir, "--dry-run", "--json"])
    assert code == 0 and [d["digest"] for d in dry["deleted"]] == [unused_old]
    assert dry["kept_referenced"] == 2 and dry["kept_recent"] == 1 and server.blobs.has(unused_old)

    code, report, _ = run_cli(capsys, ["gc", "--data-dir", data_dir, "--json"])
    assert code == 0 and [d["digest"] for d in report["deleted"]] == [unused_old]
    assert report["freed_bytes"] == OTHER.stat().st_size
    assert client.find_blobs([used, output, unused_old, unused_new]) == {used, output, unused_new}

    assert main(["gc", "--data-dir", data_dir, "--older-than", "0"]) == 0
    out = capsys.readouterr().out
    assert f"deleted {unused_new}" in out and f"freed {human_bytes(MEDIUM.stat().st_size)}: 1 unused blob(s)" in out
    assert client.find_blobs([used, output, unused_new]) == {used, output}
    again = client.get_render(render.id).frames[0]
    from shotpass_client import digests

    assert digests.of_bytes(client.download_bytes(again.output_digest), digests.algorithm_of(output)) == output
    assert client.download_bytes(used) == SMALL.read_bytes()


def test_gc_keeps_the_blobs_of_a_render_that_is_still_queued_or_running(server, client, beachball) -> None:
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.blob_gc import collect

    plate = dict(sorted(plate_frames(beachball).items())[:3])
    sub = submit_render(client, RenderSpec(pass_name="stylize", seed=3), plate)
    inputs = [f.input_digest for f in sub.render.frames]
    old = time.time() - 400 * DAY
    for digest in inputs:
        os.utime(server.blobs.path(digest), (old, old))
    assert client.get_render(sub.render_id).state in (pb.QUEUED, pb.RUNNING)
    report = collect(server.blobs, server.catalog, older_than_days=0)
    assert not report.deleted and report.kept_referenced >= len(inputs)
    client.cancel(sub.render_id)
    assert client.wait(sub.render_id).state in (pb.CANCELLED, pb.FINISHED)
    assert client.find_blobs(inputs) == set(inputs)


def test_the_server_collects_periodically_when_configured(make_server) -> None:
    from shotpass_client import Client

    srv = make_server(blob_gc_interval_hours=0.3 / 3600, blob_retention_days=1)
    with Client(srv.address) as client:
        digests, _ = client.upload_files([str(SMALL), str(OTHER)])
        used, unused = digests[str(SMALL)], digests[str(OTHER)]
        client.wait(render_frame(client, used))
        old = time.time() - 2 * DAY
        for digest in (used, unused):
            os.utime(srv.blobs.path(digest), (old, old))
        wait_for(lambda: not srv.blobs.has(unused), "the periodic GC to delete the unused blob")
        assert srv.blobs.has(used)


def test_store_settings_are_read_from_the_config_and_checked(tmp_path: Path) -> None:
    from shotpass_server.config import load_config
    from shotpass_server.errors import InvalidInput

    good = tmp_path / "good.toml"
    good.write_text("[server]\nmax_store_bytes = 1000000\nblob_retention_days = 7\nblob_gc_interval_hours = 24\n")
    cfg = load_config(good)
    assert (cfg.max_store_bytes, cfg.blob_retention_days, cfg.blob_gc_interval_hours) == (1000000, 7.0, 24.0)
    assert cfg.partial_upload_retention_hours == 24.0
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nblob_retention_days = "a week"\n')
    with pytest.raises(InvalidInput, match="blob_retention_days = 'a week': use a number of 0 or more"):
        load_config(bad)


def test_a_partial_upload_resumes_only_for_the_user_who_sent_it(server) -> None:
    from shotpass_client import Client
    from shotpass_client.proto import shotpass_pb2 as pb

    tokens = {name: server.accounts.add_user(name) for name in ("alice", "bob")}
    data = MEDIUM.read_bytes()
    digest = sha(MEDIUM)
    with Client(server.address, tokens["alice"]) as alice, Client(server.address, tokens["bob"]) as bob:
        half = pb.UploadChunk(digest=digest, total_size=len(data), data=data[: len(data) // 2])
        with pytest.raises(grpc.RpcError):
            alice._stub.UploadBlobs(iter([half]), metadata=alice._metadata)
        assert alice.find_blobs_detail([digest]) == (set(), {digest: len(data) // 2})
        assert bob.find_blobs_detail([digest]) == (set(), {}), "bob was told about alice's partial upload"
        rest = pb.UploadChunk(digest=digest, total_size=len(data), offset=len(data) // 2, data=data[len(data) // 2:])
        with pytest.raises(grpc.RpcError) as err:
            bob._stub.UploadBlobs(iter([rest]), metadata=bob._metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "holds 0 bytes" in err.value.details()
        assert alice.upload_files([str(MEDIUM)])[1] == len(data) - len(data) // 2
        assert alice.find_blobs([digest]) == {digest} and bob.find_blobs([digest]) == set()


def test_gc_never_deletes_a_blob_under_a_render_being_submitted(server, client, tmp_path) -> None:
    # A submit that names an old, unused blob without asking FindBlobs first (which would mark it used) races
    # `shotpass gc`: the GC process scans, finds the blob unused, and must wait for submits in progress before
    # deleting; then it sees the new render and keeps the blob.
    import json

    from shotpass_client.proto import shotpass_pb2 as pb

    digests, _ = client.upload_files([str(SMALL)])
    digest = digests[str(SMALL)]
    old = time.time() - 400 * DAY
    os.utime(server.blobs.path(digest), (old, old))
    with server.blobs.gc_lock(exclusive=False):  # what a submit holds while it checks and records
        gc = subprocess.Popen(
            [sys.executable, "-m", "shotpass_server.cli", "gc", "--data-dir", str(server.cfg.data_dir),
             "--older-than", "0", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        time.sleep(3)  # long enough for the scan; the deletion waits on the lock
        assert gc.poll() is None, gc.communicate()
        assert server.blobs.has(digest)
        render = client.submit(pb.SubmitRenderRequest(
            project="p", shot="s", settings=pb.RenderSettings(pass_name="passthrough"),
            frames=[pb.FrameInput(frame=1, digest=digest, name=SMALL.name)],
        ))
    out, err = gc.communicate(timeout=60)
    assert gc.returncode == 0, err
    report = json.loads(out)
    assert report["deleted"] == [] and report["kept_referenced"] >= 1, report
    assert client.wait(render.render_id).state == pb.FINISHED
    assert server.blobs.has(digest)
