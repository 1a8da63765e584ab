"""Digests named by algorithm (blake3 and sha256 side by side) and the HTTP data plane beside gRPC."""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path
from typing import Iterator, Tuple

import grpc
import pytest
from conftest import BEACHBALL, EXR

PLATE = BEACHBALL / "singlepart.0001.exr"
SMALL = EXR / "openexr-images" / "DisplayWindow" / "t01.exr"


def request(server, method: str, digest: str, token: str = "", body: bytes = b"") -> Tuple[int, bytes]:  # type: ignore[no-untyped-def]
    """One raw request to the data plane, as any HTTP client would send it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.data_plane.port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if method == "PUT":
        headers["Content-Length"] = str(len(body))
    try:
        conn.request(method, f"/v1/blobs/{digest}", body=body if method == "PUT" else None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def users(server) -> Iterator[dict]:  # type: ignore[no-untyped-def]
    yield {name: server.accounts.add_user(name) for name in ("alice", "bob")}


def test_a_current_client_uses_blake3_and_the_data_plane_end_to_end(server, client, tmp_path: Path) -> None:
    from shotpass_client import digests
    from shotpass_client.jobs import RenderSpec, submit_render

    info = client.server_info()
    assert list(info.digest_algorithms) == ["blake3", "sha256"] and info.data_plane_port > 0
    assert client.digest_algorithm == "blake3" and client.data_plane() is not None

    received_before = server.data_plane.port  # the plane stays up throughout
    digest_of, sent = client.upload_files([str(PLATE)])
    digest = digest_of[str(PLATE)]
    assert digest == digests.of_bytes(PLATE.read_bytes(), "blake3") and digest.startswith("blake3:")
    assert sent == PLATE.stat().st_size
    assert server.blobs.path(digest) == server.blobs.root / "blake3" / digest[7:9] / digest[9:]
    assert client.find_blobs([digest]) == {digest}
    assert client.upload_files([str(PLATE)])[1] == 0, "a stored blob was sent again"

    # Outputs are named in the algorithm the client asked for, and come back verified over the data plane.
    render = submit_render(client, RenderSpec(pass_name="passthrough"), plate={1: str(SMALL)})
    done = client.wait(render.render_id)
    output = done.frames[0].output_digest
    assert output.startswith("blake3:")
    dest = tmp_path / "out.exr"
    assert client.download(output, str(dest)) == dest.stat().st_size
    assert digests.of_file(str(dest), "blake3") == output
    assert client.use_data_plane and server.data_plane.port == received_before


def test_a_client_without_blake3_keeps_working_in_sha256(server, monkeypatch, tmp_path: Path) -> None:
    from shotpass_client import Client, digests
    from shotpass_client.jobs import RenderSpec, submit_render

    monkeypatch.setattr(digests, "_blake3", None)  # as a plugin that does not ship the blake3 module
    with Client(server.address) as old:
        assert old.digest_algorithm == "sha256"
        digest = old.upload_files([str(SMALL)])[0][str(SMALL)]
        assert digests.parse(digest) == ("sha256", digest)
        assert server.blobs.path(digest).parent.parent == server.blobs.root
        done = old.wait(submit_render(old, RenderSpec(pass_name="passthrough"), plate={1: str(SMALL)}).render_id)
        output = done.frames[0].output_digest
        assert digests.algorithm_of(output) == "sha256", "an output named in an algorithm the client cannot check"
        assert digests.of_bytes(old.download_bytes(output)) == output


def test_digests_are_checked_alike_everywhere(server, client) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb

    hex64 = "ab" * 32
    for good in (hex64, "blake3:" + hex64):
        assert client.find_blobs_detail([good]) == (set(), {})
    for bad in ("sha256:" + hex64, "blake3:" + hex64.upper(), "blake2:" + hex64, "blake3:" + hex64[:-1]):
        with pytest.raises(grpc.RpcError) as err:
            client._stub.FindBlobs(pb.FindBlobsRequest(digests=[bad]))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "blake3:<64 hex>" in err.value.details()
        status, body = request(server, "GET", bad)
        assert status == 400 and "not a sha256 digest" in json.loads(body)["error"]
    with pytest.raises(grpc.RpcError) as err:
        client._stub.SubmitRender(pb.SubmitRenderRequest(digest_algorithm="md5"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "digest_algorithm 'md5'" in err.value.details()


def test_the_data_plane_refuses_missing_and_bad_tokens_and_other_projects_blobs(server, users) -> None:
    from shotpass_client import Client, ClientError, digests

    data = SMALL.read_bytes()
    digest = digests.of_bytes(data, "blake3")
    assert request(server, "PUT", digest, body=data)[0] == 401
    assert request(server, "PUT", digest, token="not-a-token", body=data)[0] == 401
    assert request(server, "GET", digest)[0] == 401
    assert not server.blobs.has(digest)

    status, body = request(server, "PUT", digest, token=users["alice"], body=data)
    assert status == 201 and json.loads(body) == {"digest": digest, "size": len(data), "already_present": False}
    assert request(server, "GET", digest, token=users["alice"]) == (200, data)

    # Bob never sent these bytes and shares no project with alice: refused as gRPC refuses him.
    status, body = request(server, "GET", digest, token=users["bob"])
    assert status == 403 and "not in any project of bob" in json.loads(body)["error"]
    with Client(server.address, users["bob"]) as bob:
        assert bob.data_plane() is not None
        with pytest.raises(ClientError) as err:
            bob.download_bytes(digest)
        assert err.value.code == "PERMISSION_DENIED" and bob.use_data_plane, "a refusal is not a transport failure"
        assert bob.find_blobs([digest]) == set()
    # Sending the bytes proves he holds them: from then on the blob is his too.
    assert request(server, "PUT", digest, token=users["bob"], body=data)[0] == 201
    assert request(server, "GET", digest, token=users["bob"]) == (200, data)

    def count(name: str, expected: float, **labels: str) -> float:
        # The server counts a request just after its last byte went out: give it a moment to get there.
        deadline = time.monotonic() + 10
        while True:
            value = server.metrics.registry.get_sample_value(name, labels) or 0
            if value >= expected or time.monotonic() > deadline:
                return value
            time.sleep(0.02)

    requests = "shotpass_data_plane_requests_total"
    assert count(requests, 2, method="PUT", status="401") == 2
    assert count(requests, 2, method="GET", status="403") == 2
    assert count(requests, 2, method="PUT", status="201") == 2
    assert count("shotpass_data_plane_bytes_total", 2 * len(data), method="PUT") == 2 * len(data)
    assert count("shotpass_data_plane_bytes_total", 2 * len(data), method="GET") == 2 * len(data)


def test_the_data_plane_refuses_a_wrong_digest_without_storing_anything(server) -> None:
    from shotpass_client import digests

    data = PLATE.read_bytes()
    claimed = digests.of_bytes(b"other bytes", "blake3")
    status, body = request(server, "PUT", claimed, body=data)
    assert status == 400 and "content hashes to" in json.loads(body)["error"]
    assert not server.blobs.has(claimed)
    assert not server.blobs.partial_path("local", claimed).exists()
    assert list(server.blobs.blobs()) == []
    # A body shorter than its Content-Length is cut, and stays invisible.
    conn = http.client.HTTPConnection("127.0.0.1", server.data_plane.port, timeout=30)
    real = digests.of_bytes(data, "blake3")
    conn.putrequest("PUT", f"/v1/blobs/{real}")
    conn.putheader("Content-Length", str(len(data)))
    conn.endheaders()
    conn.send(data[:1000])
    conn.close()
    assert not server.blobs.has(real)


def test_the_client_falls_back_to_grpc_when_the_data_plane_fails(server, client, tmp_path: Path) -> None:
    from shotpass_client import digests

    assert client.data_plane() is not None
    server.data_plane.stop()  # the advertised port now refuses connections
    digest = client.upload_files([str(PLATE)])[0][str(PLATE)]
    assert not client.use_data_plane, "the failed data plane was kept"
    assert server.blobs.has(digest)
    assert client.download_bytes(digest) == PLATE.read_bytes()
    assert digests.of_bytes(PLATE.read_bytes(), "blake3") == digest


def test_a_server_without_data_plane_advertises_none(make_plain_server) -> None:  # type: ignore[no-untyped-def]
    from shotpass_client import Client

    server = make_plain_server(data_plane="off")
    with Client(server.address) as c:
        assert c.server_info().data_plane_port == 0 and c.data_plane() is None
        digest = c.upload_bytes(b"frame bytes")
        assert c.download_bytes(digest) == b"frame bytes"


@pytest.fixture
def make_plain_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    started = []

    def make(**settings):  # type: ignore[no-untyped-def]
        srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", **settings))
        srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop(grace=0.5)


@pytest.mark.parametrize("total_size, offset, data", [(0, 0, b""), (5, 0, b"abcde"), (8 << 30, (8 << 30) - 3, b"xyz"),
                                                      (300, 128, bytes(range(172)))])
def test_hand_encoded_chunks_are_the_protobuf_messages(total_size: int, offset: int, data: bytes) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.rawchunks import encode_chunk

    for digest in ("", "ab" * 32, "blake3:" + "cd" * 32):
        raw = encode_chunk(digest, total_size, offset, data)
        for kind in (pb.UploadChunk, pb.BlobChunk):
            message = kind(digest=digest, total_size=total_size, offset=offset, data=data)
            assert raw == message.SerializeToString()
            assert kind.FromString(raw) == message


def test_with_mutual_tls_the_data_plane_speaks_https_and_wants_a_client_certificate(tmp_path: Path) -> None:
    import ssl

    from helpers import write_pki

    from shotpass_client import Client, digests
    from shotpass_client.client import tls_files
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config

    pki = write_pki(tmp_path / "pki")
    config = tmp_path / "shotpass.toml"
    config.write_text("\n".join(["[server]", 'listen = "127.0.0.1:0"', 'data_dir = "data"', "[tls]",
                                 f'cert = "{pki["server_cert"]}"', f'key = "{pki["server_key"]}"',
                                 f'client_ca = "{pki["ca_cert"]}"']) + "\n")
    srv = ShotpassServer(load_config(config))
    srv.start()
    try:
        tls = tls_files(str(pki["ca_cert"]), str(pki["client_cert"]), str(pki["client_key"]))
        with Client(srv.address, **tls) as client:  # type: ignore[arg-type]
            info = client.server_info()
            assert info.data_plane_tls and info.data_plane_port == srv.data_plane.port
            digest = client.upload_files([str(PLATE)])[0][str(PLATE)]
            assert client.use_data_plane, "the HTTPS data plane failed and gRPC took over"
            assert client.download_bytes(digest) == PLATE.read_bytes()
            assert client.use_data_plane and digests.algorithm_of(digest) == "blake3"
        # Plain HTTP gets no answer, and HTTPS without a client certificate no handshake.
        with pytest.raises((http.client.HTTPException, OSError)):
            request(srv, "GET", digest)
        context = ssl.create_default_context(cafile=str(pki["ca_cert"]))
        conn = http.client.HTTPSConnection("127.0.0.1", srv.data_plane.port, timeout=10, context=context)
        with pytest.raises((ssl.SSLError, OSError, http.client.HTTPException)):
            conn.request("GET", f"/v1/blobs/{digest}")
            conn.getresponse().read()
        conn.close()
    finally:
        srv.stop(grace=0.2)


def test_blobs_cross_the_data_plane_in_blocks_both_ways_checked_and_owned(server, users, tmp_path: Path) -> None:
    from shotpass_client import Client, ClientError, digests
    from shotpass_client.blockio import BLOCK_BYTES

    data = PLATE.read_bytes()
    assert len(data) > 2 * BLOCK_BYTES and len(data) % BLOCK_BYTES, "the plate must end in a partial block"
    digest = digests.of_bytes(data, "blake3")
    metric = server.metrics.registry.get_sample_value

    # One flipped byte in the last, partial block: the server hashes as it writes, so the end is checked too.
    corrupt = bytearray(data)
    corrupt[-1] ^= 0xFF
    status, body = request(server, "PUT", digest, token=users["alice"], body=bytes(corrupt))
    assert status == 400 and "content hashes to" in json.loads(body)["error"]
    assert not server.blobs.has(digest) and list(server.blobs.blobs()) == []

    with Client(server.address, users["alice"]) as alice:
        assert alice.upload_files([str(PLATE)]) == ({str(PLATE): digest}, len(data))
        assert alice.use_data_plane and metric("shotpass_data_plane_bytes_total", {"method": "PUT"}) == len(data)
        assert server.blobs.path(digest).read_bytes() == data
        dest = tmp_path / "back.exr"
        assert alice.download(digest, str(dest)) == len(data) and dest.read_bytes() == data
        assert alice.download_bytes(digest) == data
        empty = alice.upload_bytes(b"")
        assert alice.download_bytes(empty) == b"" and alice.use_data_plane
    deadline = time.monotonic() + 10  # counted just after the last byte went out
    while (metric("shotpass_data_plane_bytes_total", {"method": "GET"}) or 0) < 2 * len(data):
        assert time.monotonic() < deadline, "the downloads did not go over the data plane"
        time.sleep(0.02)

    # Bob is in no project of alice's and never sent these bytes: refused over HTTP and through the client.
    assert request(server, "GET", digest, token=users["bob"])[0] == 403
    with Client(server.address, users["bob"]) as bob:
        with pytest.raises(ClientError) as err:
            bob.download(digest, str(tmp_path / "stolen.exr"))
        assert err.value.code == "PERMISSION_DENIED" and not (tmp_path / "stolen.exr").exists()


def test_send_file_sends_every_block_and_stops_where_the_file_ends(tmp_path: Path) -> None:
    import socket
    import threading

    from shotpass_client.blockio import BLOCK_BYTES, send_file

    data = PLATE.read_bytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    for declared, expected in ((len(data), data), (len(data) - 5, data[:-5]), (len(data) + 7, data), (0, b"")):
        left, right = socket.socketpair()
        received = bytearray()

        def drain(sock: socket.socket, into: bytearray) -> None:
            while chunk := sock.recv(1 << 16):
                into.extend(chunk)

        reader = threading.Thread(target=drain, args=(right, received))
        reader.start()
        blocks: list = []
        try:
            with open(path, "rb", buffering=0) as fh:
                sent = send_file(left, fh, declared, blocks.append)
        finally:
            left.close()
            reader.join(10)
            right.close()
        assert sent == len(expected) and bytes(received) == expected
        assert sum(blocks) == sent and all(n <= BLOCK_BYTES for n in blocks)


@pytest.mark.parametrize("total_size, offset, data", [(0, 0, b""), (5, 0, b"abcde"), (8 << 30, (8 << 30) - 3, b"xyz"),
                                                      (-1, -(1 << 63), b"\x00"), (300, 128, bytes(range(172)))])
def test_hand_read_chunks_give_what_protobuf_reads(total_size: int, offset: int, data: bytes) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.rawchunks import decode_chunk

    for digest in ("", "ab" * 32, "blake3:" + "cd" * 32):
        for kind in (pb.UploadChunk, pb.BlobChunk):
            message = kind(digest=digest, total_size=total_size, offset=offset, data=data).SerializeToString()
            chunk = decode_chunk(message)
            assert (chunk.digest, chunk.total_size, chunk.offset) == (digest, total_size, offset)
            assert bytes(chunk.data) == data
            assert isinstance(chunk.data, memoryview) and chunk.data.obj is message, "the data was copied"
    # Fields out of order and repeated: the last one wins, as in protobuf.
    reordered = pb.UploadChunk(data=b"new", offset=7).SerializeToString() + pb.UploadChunk(
        digest="ab" * 32, data=b"newer").SerializeToString()
    assert decode_chunk(reordered)[:3] == ("ab" * 32, 0, 7) and bytes(decode_chunk(reordered).data) == b"newer"


def test_chunks_hand_reading_does_not_take_are_left_to_protobuf() -> None:
    from google.protobuf.message import DecodeError

    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.rawchunks import NotCanonical, decode_chunk, decoder

    good = pb.UploadChunk(digest="ab" * 32, total_size=3, data=b"xyz").SerializeToString()
    unknown_field = good + b"\x48\x01"  # field 9, a varint: protobuf keeps it as an unknown field
    not_utf8 = b"\x0a\x02\xff\xfe" + good
    cut = good[:-1]
    overlong = b"\x10" + b"\xff" * 10 + b"\x01"
    parse = decoder(pb.UploadChunk.FromString)
    for message in (unknown_field, not_utf8, cut, overlong):
        with pytest.raises(NotCanonical):
            decode_chunk(message)
    assert parse(unknown_field).data == b"xyz" and isinstance(parse(unknown_field), pb.UploadChunk)
    for message in (not_utf8, cut):
        with pytest.raises(DecodeError):
            parse(message)


def test_grpc_blobs_are_read_by_hand_and_still_checked_on_both_sides(server, users, tmp_path: Path) -> None:
    from shotpass_client import Client, ClientError, digests
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.rawchunks import encode_chunk

    data = PLATE.read_bytes()
    digest = digests.of_bytes(data, "blake3")
    with Client(server.address, users["alice"]) as alice:
        alice.use_data_plane = False
        # Bytes that do not hash to their digest are refused and never stored.
        wrong = bytearray(data)
        wrong[len(wrong) // 2] ^= 1
        with pytest.raises(grpc.RpcError) as err:
            alice._raw_upload(iter([encode_chunk(digest, len(data), 0, bytes(wrong))]), metadata=alice._metadata)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "content hashes to" in err.value.details()
        assert not server.blobs.has(digest)
        # A chunk with a field a newer client might add still parses (protobuf reads what hand-reading leaves).
        extra = pb.UploadChunk(digest=digest, total_size=len(data), data=data).SerializeToString() + b"\x48\x01"
        answer = alice._raw_upload(iter([extra]), metadata=alice._metadata)
        assert answer.bytes_received == len(data) and server.blobs.path(digest).read_bytes() == data

        dest = tmp_path / "back.exr"
        assert alice.download(digest, str(dest)) == len(data) and dest.read_bytes() == data
        assert alice.download_bytes(digest) == data
        # The client checks what it receives: a stored blob damaged on the server's disk is not accepted.
        stored = server.blobs.path(digest)
        stored.chmod(0o644)
        stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(ClientError) as lost:
            alice.download(digest, str(tmp_path / "damaged.exr"))
        assert lost.value.code == "DATA_LOSS" and not (tmp_path / "damaged.exr").exists()
    with Client(server.address, users["bob"]) as bob:
        bob.use_data_plane = False
        with pytest.raises(ClientError) as refused:
            bob.download_bytes(digest)
        assert refused.value.code == "PERMISSION_DENIED"
