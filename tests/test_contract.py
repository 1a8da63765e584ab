"""The wire contract: committed stubs match the .proto, and the server speaks health and reflection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]


def test_committed_stubs_match_the_proto() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rpc_of_the_contract_is_served(server) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb

    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["ShotPass"].methods}
    assert methods >= {
        "GetServerInfo", "ListModels", "FindBlobs", "UploadBlobs", "DownloadBlob", "SubmitRender",
        "WatchRender", "GetRender", "ListRenders", "CancelRender", "PreviewFrame", "ReviewRender",
        "SuspendRender", "ResumeRender", "RequeueRender", "GetStats", "SetRenderPriority",
    }
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        answer = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        names = {s.name for s in answer.list_services_response.service}
        assert "shotpass.v1.ShotPass" in names and "grpc.health.v1.Health" in names
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="shotpass.v1.ShotPass")).status
        assert status == health_pb2.HealthCheckResponse.SERVING


def test_server_info_lists_passes_models_and_option_schemas(client) -> None:
    info = client.server_info()
    passes = {p.name: p for p in info.passes}
    assert {"stylize", "upscale", "inpaint", "passthrough"} <= set(passes)
    models = {m.name: m for m in info.models}
    assert passes["upscale"].default_model in models
    assert any(m.scale == 2 for m in models.values()) and any(m.scale == 4 for m in models.values())
    inpaint = models[passes["inpaint"].default_model]
    assert inpaint.needs_mask and inpaint.family == "classical"
    assert all(m.licence for m in models.values() if m.family == "starter")
    assert info.default_colour_space == "ACEScg"
    from shotpass_client.client import CHUNK_BYTES

    assert CHUNK_BYTES <= info.limits.max_chunk_bytes <= 4 << 20 < info.limits.max_message_bytes
    assert info.version


def test_blob_upload_is_verified_before_it_becomes_visible(client) -> None:
    import hashlib

    from shotpass_client import ClientError
    from shotpass_client.proto import shotpass_pb2 as pb

    data = b"x" * 3_000_000
    good = hashlib.sha256(data).hexdigest()
    wrong = hashlib.sha256(b"something else").hexdigest()
    chunks = [pb.UploadChunk(digest=wrong, total_size=len(data), offset=o, data=data[o: o + (1 << 20)])
              for o in range(0, len(data), 1 << 20)]
    try:
        client._stub.UploadBlobs(iter(chunks))
        raise AssertionError("a blob whose content does not match its digest was accepted")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "corrupted" in err.details()
    assert client.find_blobs([wrong]) == set()
    # A cut upload leaves nothing visible either.
    try:
        client._stub.UploadBlobs(iter(chunks[:1]))
    except grpc.RpcError as err:
        assert "cut" in err.details()
    assert client.find_blobs([wrong]) == set()
    from shotpass_client import digests

    current = digests.of_bytes(data, client.digest_algorithm)  # blake3 where both sides have it
    assert client.upload_bytes(data) == current
    assert client.find_blobs([current, good]) == {current}, "one content, two algorithms: two blobs"
    assert client.download_bytes(current) == data
    try:
        client.download_bytes("0" * 64)
        raise AssertionError("download of an unknown blob succeeded")
    except ClientError as err:
        assert err.code == "NOT_FOUND"
