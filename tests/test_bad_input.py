"""Bad input gets a clear error naming the file and frame; the server stays up and loses nothing."""

from __future__ import annotations

import io
import time

import grpc
import pytest
from conftest import EXR
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import run_cli

DEEP = EXR / "openexr-images" / "v2" / "LowResLeftView" / "Trunks.exr"
GOOD = EXR / "openexr-images" / "ScanLines" / "Carrots.exr"


def _serving(server) -> bool:
    with grpc.insecure_channel(server.address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        return answer.status == health_pb2.HealthCheckResponse.SERVING


def _plate(tmp_path, name: str, data: bytes) -> str:
    folder = tmp_path / "plate"
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data)
    return str(folder / name.replace("0005", "####"))


def _damaged_variants():
    good = GOOD.read_bytes()
    middle = len(good) // 2
    flipped = bytearray(good)
    for i in range(middle, middle + 4000):
        flipped[i] ^= 0x5A
    header_cut = bytearray(good[:400])
    return {
        "truncated": good[:middle],
        "flipped": bytes(flipped),
        "header-only": bytes(header_cut),
        "empty": b"",
        "png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,
        "garbage": bytes(range(256)) * 50,
    }


@pytest.mark.parametrize("kind", list(_damaged_variants()))
def test_damaged_files_are_refused_by_name_and_frame(capsys, server, tmp_path, kind):
    # Submits check headers and the chunk table only (no pixel is decoded there): damaged pixel data
    # ("flipped") fails its frame when it is rendered, with the same one line naming the file and frame.
    plate = _plate(tmp_path, "shot.0005.exr", _damaged_variants()[kind])
    code, out, err = run_cli(capsys, ["render", plate, "--pass", "stylize", "--server", server.address,
                                      "--out", str(tmp_path / "out"), "--json"])
    assert code != 0, f"a {kind} file was accepted: {out}"
    line = err.strip()
    assert "shot.0005.exr" in line and "frame 5" in line, line
    assert len(line.splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert _serving(server)


def test_deep_file_is_refused_and_the_server_keeps_serving(capsys, server, tmp_path):
    plate = _plate(tmp_path, "trunks.0005.exr", DEEP.read_bytes())
    for pass_name in ("passthrough", "stylize"):
        code, _, err = run_cli(capsys, ["render", plate, "--pass", pass_name, "--server", server.address,
                                        "--out", str(tmp_path / "out"), "--json"])
        assert code != 0
        assert "deep" in err.lower() and "trunks.0005.exr" in err and "frame 5" in err
    assert _serving(server)
    # The server still renders good frames afterwards.
    good = _plate(tmp_path, "good.0005.exr", GOOD.read_bytes())
    code, out, err = run_cli(capsys, ["render", good, "--pass", "passthrough", "--server", server.address,
                                      "--out", str(tmp_path / "out2"), "--json"])
    assert code == 0, err and out["state"] == "FINISHED"


@pytest.mark.parametrize(
    "name, expect",
    [
        ("go-openexr/grad_uint_zip.exr", "uint"),
        ("openexr-images/Chromaticities/Rec709_YC.exr", "RGB"),
    ],
)
def test_unusable_colour_channels_are_named(capsys, server, tmp_path, name, expect):
    plate = _plate(tmp_path, "img.0005.exr", (EXR / name).read_bytes())
    code, _, err = run_cli(capsys, ["render", plate, "--pass", "stylize", "--server", server.address,
                                    "--out", str(tmp_path / "out"), "--json"])
    assert code != 0 and expect.lower() in err.lower() and "img.0005.exr" in err


def test_wrong_frame_lists_are_refused(client, tmp_path):
    from shotpass_client import ClientError
    from shotpass_client.proto import shotpass_pb2 as pb

    digest = client.upload_bytes(GOOD.read_bytes())
    twice = pb.SubmitRenderRequest(
        settings=pb.RenderSettings(pass_name="passthrough"),
        frames=[pb.FrameInput(frame=3, digest=digest, name="a.0003.exr"),
                pb.FrameInput(frame=3, digest=digest, name="b.0003.exr")],
    )
    with pytest.raises(ClientError, match="frame 3 is listed twice"):
        client.submit(twice)
    unknown = pb.SubmitRenderRequest(
        settings=pb.RenderSettings(pass_name="passthrough"),
        frames=[pb.FrameInput(frame=4, digest="ab" * 32, name="c.0004.exr")],
    )
    with pytest.raises(ClientError, match="c.0004.exr .frame 4. was not uploaded"):
        client.submit(unknown)
    mask_without_plate = pb.SubmitRenderRequest(
        settings=pb.RenderSettings(pass_name="inpaint"),
        frames=[pb.FrameInput(frame=1, digest=digest, name="p.0001.exr")],
        mask_frames=[pb.FrameInput(frame=2, digest=digest, name="m.0002.exr")],
    )
    with pytest.raises(ClientError, match="mask frame 2"):
        client.submit(mask_without_plate)
    with pytest.raises(ClientError, match="a preview renders exactly one frame"):
        client.preview(pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="passthrough")))


def test_frames_of_different_sizes_are_refused_where_the_model_needs_one_size(tmp_path, beachball):
    """Beachball's data window changes size every frame: a clip-wide model must refuse it by frame."""
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig
    from shotpass_server.passes.registry import ModelRegistry, starter_models
    from shotpass_server.passes.starter_stylize import StyleTransferPreset

    class ClipStylize(StyleTransferPreset):
        name = "clip-stylize"
        needs_uniform_size = True

    registry = ModelRegistry([*starter_models(), ClipStylize()])
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d"), registry=registry)
    srv.start()
    try:
        with Client(srv.address) as client:
            plate = plate_frames(beachball, [1, 2])
            with pytest.raises(ClientError, match=r"singlepart.0002.exr \(frame 2\) is 912x888 but frame 1 is 911x876"):
                submit_render(client, RenderSpec(model="clip-stylize"), plate)
            # The same plate is fine for the per-frame model.
            assert submit_render(client, RenderSpec(model="styletransfer-preset"), plate).render_id
    finally:
        srv.stop(0.5)


# ---------------------------------------------------------------- oversized frames, bombs and hostile requests

SMALL = EXR / "openexr" / "test.exr"  # 10x20, three float channels, ZIP, 2.8 KB


def _with_windows(data: bytes, window: tuple) -> bytes:
    """The same file with both windows rewritten in the header bytes: it stays small, its header lies."""
    import struct

    out = bytearray(data)
    for key in (b"dataWindow\0box2i\0", b"displayWindow\0box2i\0"):
        at = out.index(key) + len(key) + 4  # after the attribute's size field
        struct.pack_into("<4i", out, at, *window)
    return bytes(out)


@pytest.fixture
def exr_opens(monkeypatch):
    """Every OpenEXR.File the process opens (the server runs in-process), recorded and passed on."""
    import OpenEXR

    calls = []
    real = OpenEXR.File

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(OpenEXR, "File", recording)
    return calls


@pytest.mark.parametrize(
    "window, expect",
    [
        ((0, 0, 99_999, 99_999), r"data window is 100000x100000 .*max_frame_pixels"),
        # Under the pixel limit, but 2.9 GiB of pixels from 2.8 KB of ZIP: a decompression bomb.
        ((0, 0, 15_999, 15_999), r"promises 2.9 GiB of pixels but the file holds only 2.8 KiB.*decompression bomb"),
        ((10, 10, 0, 0), r"dataWindow is \(10, 10\)-\(0, 0\), empty"),
        ((0, 0, 2**30, 9), r"dataWindow .* beyond"),
    ],
)
def test_header_bombs_are_refused_before_openexr_sees_them(client, exr_opens, window, expect):
    from shotpass_client import ClientError
    from shotpass_client.proto import shotpass_pb2 as pb

    digest = client.upload_bytes(_with_windows(SMALL.read_bytes(), window))
    request = pb.SubmitRenderRequest(
        settings=pb.RenderSettings(pass_name="stylize"),
        frames=[pb.FrameInput(frame=7, digest=digest, name="bomb.0007.exr")],
    )
    started = time.monotonic()
    with pytest.raises(ClientError, match=expect) as info:
        client.submit(request)
    assert time.monotonic() - started < 5
    assert info.value.code == "INVALID_ARGUMENT"
    assert "bomb.0007.exr" in str(info.value) and "frame 7" in str(info.value)
    assert exr_opens == [], "OpenEXR was asked to read the file"
    # The recorder does see reads: the honest file goes through OpenEXR.
    request.frames[0].digest = client.upload_bytes(SMALL.read_bytes())
    assert client.submit(request).render_id and exr_opens


def test_max_frame_pixels_limits_inputs_and_upscale_outputs(tmp_path):
    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config
    from shotpass_server.errors import InvalidInput
    from shotpass_server.frames.exr import DEFAULT_MAX_FRAME_PIXELS, set_max_frame_pixels

    config = tmp_path / "shotpass.toml"
    config.write_text("[server]\nmax_frame_pixels = 0\n")
    with pytest.raises(InvalidInput, match="max_frame_pixels must be a positive"):
        load_config(config)
    config.write_text('[server]\nlisten = "127.0.0.1:0"\ndata_dir = "d"\nmax_frame_pixels = 400\n')
    srv = ShotpassServer(load_config(config))
    srv.start()

    def render(client, data: bytes, model: str, name: str):
        frame = pb.FrameInput(frame=3, digest=client.upload_bytes(data), name=name)
        return client.submit(pb.SubmitRenderRequest(settings=pb.RenderSettings(model=model), frames=[frame]))

    try:
        with Client(srv.address) as client:
            assert render(client, SMALL.read_bytes(), "styletransfer-preset", "small.0003.exr").render_id  # 200 px
            with pytest.raises(ClientError, match=r"small.0003.exr: the x2 output would be 20x40 \(800 pixels\)"):
                render(client, SMALL.read_bytes(), "realesrgan-animevideov3-x2", "small.0003.exr")
            with pytest.raises(ClientError, match=r"frame 3: carrots.0003.exr: the data window is 600x400 .*400"):
                render(client, GOOD.read_bytes(), "styletransfer-preset", "carrots.0003.exr")
    finally:
        srv.stop(0.5)
        set_max_frame_pixels(DEFAULT_MAX_FRAME_PIXELS)  # the limit is process-wide


def test_too_many_channels_are_refused_by_header():
    import io

    import numpy as np
    import OpenEXR

    from shotpass_server.frames.exr import MAX_CHANNELS, FrameError, decode_exr

    channels = {f"layer{i:04d}.R": np.zeros((1, 1), np.float16) for i in range(MAX_CHANNELS + 1)}
    out = io.BytesIO()
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, channels).write(out)
    with pytest.raises(FrameError, match=rf"wide.0001.exr: part 0 has more than {MAX_CHANNELS} channels"):
        decode_exr(out.getvalue(), "wide.0001.exr")


def _bad_requests(pb, digest: str, render_id: str):
    """(rpc name, request, what the message must say) for one bad field each."""
    ok_frame = pb.FrameInput(frame=1, digest=digest, name="a.0001.exr")
    stylize = pb.RenderSettings(pass_name="stylize")

    def submit(**fields):
        fields.setdefault("settings", stylize)
        fields.setdefault("frames", [ok_frame])
        return pb.SubmitRenderRequest(**fields)

    return [
        ("SubmitRender", submit(project="p" * 300), "project is 300 characters long; at most 200"),
        ("SubmitRender", submit(label="l\nx"), "label 'l\\\\nx' contains line breaks"),
        ("SubmitRender", submit(settings=pb.RenderSettings(model="m" * 5000)), "settings.model is 5000 characters"),
        ("SubmitRender", submit(settings=pb.RenderSettings(pass_name="stylize", prompt="p" * 4001)),
         "settings.prompt is 4001 characters long; at most 4000"),
        ("SubmitRender", submit(settings=pb.RenderSettings(pass_name="stylize", options={"style": "7" * 2000})),
         r"settings.options\[style\] is 2000 characters"),
        ("SubmitRender", submit(settings=pb.RenderSettings(pass_name="stylize", options={"k" * 100: "1"})),
         "settings.options key is 100 characters"),
        ("SubmitRender", submit(settings=pb.RenderSettings(pass_name="stylize", options={"strength": "nan"})),
         "option strength='nan': must be a finite number"),
        ("SubmitRender", submit(frames=[pb.FrameInput(frame=2**40, digest=digest)]),
         r"frames\[0\].frame 1099511627776 is out of range"),
        ("SubmitRender", submit(frames=[pb.FrameInput(frame=4, path="/plates/a\0b.exr")]),
         r"frames\[0\] \(frame 4\).path .* contains line breaks or NUL"),
        ("SubmitRender", submit(frames=[pb.FrameInput(frame=4, name="x.0004.exr")]),
         r"frames\[0\] \(frame 4\) has neither a digest nor a path"),
        ("SubmitRender", submit(frames=[pb.FrameInput(frame=4, digest="Z" * 10_000)]),
         r"frames\[0\] \(frame 4\).digest 'ZZZ.*\.\.\. \(10000 characters\) is not a sha256 digest"),
        ("SubmitRender", submit(mask_frames=[pb.FrameInput(frame=-2**33, digest=digest)]),
         r"mask_frames\[0\].frame -8589934592 is out of range"),
        ("SubmitRender", submit(frames=[], parent_render=render_id, parent_frames=[3, 3]),
         "parent_frames lists frame 3 twice"),
        ("SubmitRender", submit(parent_render="../../etc"), "parent_render '../../etc' is not a render id"),
        ("SubmitRender", submit(settings=pb.RenderSettings(pass_name="stylize", reference=pb.Reference(digest="x"))),
         "settings.reference.digest 'x' is not a sha256 digest"),
        ("PreviewFrame", pb.PreviewFrameRequest(render=submit(), timeout_seconds=float("nan")),
         "timeout_seconds nan: give 0"),
        ("PreviewFrame", pb.PreviewFrameRequest(render=submit(shot="s" * 201)), "render.shot is 201 characters"),
        ("FindBlobs", pb.FindBlobsRequest(digests=[digest, "x" * 5000]),
         r"digests\[1\] 'xxx.*\(5000 characters\) is not a sha256 digest"),
        ("DownloadBlob", pb.DownloadBlobRequest(digest=digest.upper()),
         "digest '(BLAKE3:)?[0-9A-F]{12}.* is not a sha256"),
        ("WatchRender", pb.WatchRenderRequest(render_id=render_id, after_sequence=-1), "after_sequence -1"),
        ("GetRender", pb.GetRenderRequest(), "render_id is empty"),
        ("CancelRender", pb.CancelRenderRequest(render_id="r 1"), "render_id 'r 1' is not a render id"),
        ("ListRenders", pb.ListRendersRequest(limit=5000), "limit 5000: give 0 .* up to 1000"),
        ("ListRenders", pb.ListRendersRequest(project="p" * 201), "project is 201 characters"),
        ("ReviewRender", pb.ReviewRenderRequest(render_id=render_id, rating=9), "rating 9: use 0"),
        ("ReviewRender", pb.ReviewRenderRequest(render_id=render_id, note="n" * 4001), "note is 4001 characters"),
        ("ListModels", pb.ListModelsRequest(pass_name="p" * 300), "pass_name is 300 characters"),
    ]


def _passthrough_render(client) -> tuple:
    """(digest, render id) of a one-frame passthrough render of SMALL, frame 3."""
    from shotpass_client.proto import shotpass_pb2 as pb

    digest = client.upload_bytes(SMALL.read_bytes())
    render_id = client.submit(pb.SubmitRenderRequest(
        settings=pb.RenderSettings(pass_name="passthrough"), frames=[pb.FrameInput(frame=3, digest=digest)]
    )).render_id
    return digest, render_id


def test_every_bad_field_is_refused_by_name(server, client):
    import re

    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc

    digest, render_id = _passthrough_render(client)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.ShotPassStub(channel)
        for rpc_name, request, expect in _bad_requests(pb, digest, render_id):
            method = getattr(stub, rpc_name)
            with pytest.raises(grpc.RpcError) as info:
                answer = method(request, timeout=30)
                if rpc_name in ("WatchRender", "DownloadBlob"):
                    list(answer)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (rpc_name, info.value.details())
            assert re.search(expect, info.value.details()), (rpc_name, info.value.details())
    assert _serving(server)


def test_upload_chunks_must_agree_with_their_blob(server):
    import hashlib

    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc

    data = SMALL.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    size = len(data)
    streams = {
        "changed size": ([pb.UploadChunk(digest=digest, total_size=size, offset=0, data=data[:100]),
                          pb.UploadChunk(digest=digest, total_size=size + 1, offset=100, data=data[100:])],
                         "a chunk says the blob has 2831 bytes, its first chunk said 2830"),
        "past the end": ([pb.UploadChunk(digest=digest, total_size=10, offset=0, data=data[:100])],
                         "chunk at offset 0 with 100 bytes lies outside the blob's 10 bytes"),
        "negative offset": ([pb.UploadChunk(digest=digest, total_size=size, offset=-5, data=data)],
                            "chunk at offset -5"),
        "bad digest": ([pb.UploadChunk(digest="sha256:" + digest, total_size=size, data=data)],
                       "chunk digest 'sha256:"),
        "out of order": ([pb.UploadChunk(digest=digest, total_size=size, offset=0, data=data[:100]),
                          pb.UploadChunk(digest=digest, total_size=size, offset=200, data=data[200:300])],
                         "offset 200, expected 100"),
    }
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.ShotPassStub(channel)
        for name, (chunks, expect) in streams.items():
            with pytest.raises(grpc.RpcError) as info:
                stub.UploadBlobs(iter(chunks), timeout=30)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (name, info.value.details())
            assert expect in info.value.details(), (name, info.value.details())
        # The same bytes, sent properly, are stored.
        answer = stub.UploadBlobs(iter([pb.UploadChunk(digest=digest, total_size=size, data=data)]), timeout=30)
        assert [b.digest for b in answer.blobs] == [digest]


def test_watching_after_the_last_event_ends_and_a_slow_preview_times_out(server, client):
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc

    digest, render_id = _passthrough_render(client)
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.ShotPassStub(channel)
        events = list(stub.WatchRender(pb.WatchRenderRequest(render_id=render_id), timeout=30))
        assert events[-1].kind == pb.RenderEvent.FINISHED
        for after in (events[-1].sequence, events[-1].sequence + 1000):
            started = time.monotonic()
            assert list(stub.WatchRender(pb.WatchRenderRequest(render_id=render_id, after_sequence=after),
                                         timeout=30)) == []
            assert time.monotonic() - started < 5
        carrots = client.upload_bytes(GOOD.read_bytes())
        preview = pb.SubmitRenderRequest(
            settings=pb.RenderSettings(pass_name="stylize"), frames=[pb.FrameInput(frame=5, digest=carrots)]
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.PreviewFrame(pb.PreviewFrameRequest(render=preview, timeout_seconds=0.001), timeout=30)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, info.value.details()
        assert "did not finish in time" in info.value.details()


def test_text_fields_that_are_not_utf8_are_refused_by_name(server, client):
    """protobuf refuses such a message whole; the answer is still INVALID_ARGUMENT naming the field."""
    from shotpass_client.proto import shotpass_pb2 as pb

    digest, render_id = _passthrough_render(client)

    def spoiled(message, marker=b"MARKER"):  # the message's bytes with one text field's bytes made invalid
        return message.SerializeToString().replace(marker, b"\xff\xfeRKER")

    submit = pb.SubmitRenderRequest(project="p", shot="s", settings=pb.RenderSettings(pass_name="passthrough"),
                                    frames=[pb.FrameInput(frame=1, digest=digest, name="MARKER.0001.exr")])
    prompt = pb.SubmitRenderRequest(project="p", settings=pb.RenderSettings(pass_name="passthrough", prompt="MARKER"),
                                    frames=[pb.FrameInput(frame=1, digest=digest)])
    calls = [
        ("unary_unary", "SubmitRender", spoiled(submit), "frames.name"),
        ("unary_unary", "SubmitRender", spoiled(prompt), "settings.prompt"),
        ("unary_unary", "ListRenders", spoiled(pb.ListRendersRequest(project="MARKER")), "project"),
        ("unary_stream", "WatchRender", spoiled(pb.WatchRenderRequest(render_id="r-MARKER")), "render_id"),
        ("stream_unary", "UploadBlobs", spoiled(pb.UploadChunk(digest="MARKER", total_size=1, data=b"x")), "digest"),
    ]
    with grpc.insecure_channel(server.address) as channel:
        for kind, method, raw, field in calls:
            call = getattr(channel, kind)(f"/shotpass.v1.ShotPass/{method}")  # raw bytes: no (de)serializer
            with pytest.raises(grpc.RpcError) as info:
                answer = call(iter([raw]) if kind == "stream_unary" else raw, timeout=30)
                if kind == "unary_stream":
                    list(answer)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (method, info.value.details())
            assert f"{field} is not valid UTF-8" in info.value.details(), (method, info.value.details())
    assert _serving(server)
    assert client.get_render(render_id).id == render_id


# ---------------------------------------------------------------- memory at submit, masks and references


def _flat_zip_exr(size: int) -> bytes:
    """A size x size half RGBA ZIP scanline EXR of zeros, written chunk by chunk: ~2 MB on disk for 16384,
    2 GiB once decoded, and never held decoded by this test."""
    import struct
    import zlib

    def attr(name: str, kind: str, value: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value

    chlist = b"".join(c.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, 1, 1) for c in "ABGR") + b"\0"
    window = struct.pack("<4i", 0, 0, size - 1, size - 1)
    header = b"".join([
        struct.pack("<ii", 20000630, 2),
        attr("channels", "chlist", chlist), attr("compression", "compression", b"\x03"),
        attr("dataWindow", "box2i", window), attr("displayWindow", "box2i", window),
        attr("lineOrder", "lineOrder", b"\x00"), attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        attr("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0)),
        attr("screenWindowWidth", "float", struct.pack("<f", 1.0)), b"\0",
    ])
    block = zlib.compress(bytes(size * 4 * 2 * 16), 9)  # ZIP: 16 scanlines per chunk, zeros stay zeros
    chunks = size // 16
    first = len(header) + 8 * chunks
    step = 8 + len(block)
    table = struct.pack(f"<{chunks}Q", *(first + i * step for i in range(chunks)))
    body = b"".join(struct.pack("<ii", i * 16, len(block)) + block for i in range(chunks))
    return header + table + body


def test_a_huge_frame_is_checked_from_its_header_and_the_decode_budget_says_too_large(tmp_path, exr_opens):
    import OpenEXR

    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig
    from shotpass_server.frames.exr import FrameTooLarge, decode_exr, set_decode_budget

    data = _flat_zip_exr(16384)
    assert len(data) < 4 << 20
    small = _flat_zip_exr(64)
    with OpenEXR.File(io.BytesIO(small), separate_channels=True) as f:  # the writer above makes real EXRs
        assert f.parts[0].channels["R"].pixels.shape == (64, 64)
    exr_opens.clear()
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", max_decode_bytes=8 << 30))
    srv.devices.clear()  # no worker: nothing here may decode the frame
    srv.start()
    try:
        with Client(srv.address) as client:
            digest = client.upload_bytes(data)
            frame = pb.FrameInput(frame=1, digest=digest, name="huge.0001.exr")
            for _ in range(3):  # three submits naming it once cost three 2 GiB decodes
                assert client.submit(pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="stylize"),
                                                            frames=[frame])).render_id
            assert exr_opens and all(call.get("header_only") for call in exr_opens), exr_opens

            set_decode_budget(1 << 30)
            with pytest.raises(ClientError) as refused:
                client.submit(pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="stylize"), frames=[frame]))
            assert refused.value.code == "RESOURCE_EXHAUSTED"
            message = str(refused.value)
            assert "huge.0001.exr" in message and "frame 1" in message and "too large" in message
            assert "6.0 GiB" in message and "1.0 GiB" in message and "max_decode_bytes" in message
            # A worker's decode is held to the same budget, before the binding allocates anything.
            with pytest.raises(FrameTooLarge, match="too large"):
                decode_exr(data, "huge.0001.exr")
            assert all(call.get("header_only") for call in exr_opens)
    finally:
        srv.stop(0.5)
        set_decode_budget(0)


def test_damaged_masks_and_references_are_refused_at_submit_by_name(tmp_path, server, client):
    from shotpass_client import ClientError
    from shotpass_client.jobs import RenderSpec, submit_render

    plate = tmp_path / "plate.0005.exr"
    plate.write_bytes(GOOD.read_bytes())
    damaged = tmp_path / "matte.0005.exr"
    damaged.write_bytes(GOOD.read_bytes()[: len(GOOD.read_bytes()) // 2])
    with pytest.raises(ClientError) as mask:
        submit_render(client, RenderSpec(pass_name="inpaint"), {5: str(plate)}, mask={5: str(damaged)})
    assert mask.value.code == "INVALID_ARGUMENT"
    assert "matte.0005.exr" in str(mask.value) and "frame 5" in str(mask.value) and "damaged" in str(mask.value)

    reference = tmp_path / "look.exr"
    reference.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(ClientError) as ref:
        submit_render(client, RenderSpec(model="styletransfer-reference"), {5: str(plate)},
                      reference_file=str(reference))
    assert ref.value.code == "INVALID_ARGUMENT"
    assert "reference look.exr" in str(ref.value) and "not an OpenEXR file" in str(ref.value)
    assert client.list_renders() == []  # nothing was queued
    assert _serving(server)


def test_inpaint_without_a_mask_is_refused_at_submit_and_no_version_is_made(capsys, server, client, tmp_path):
    # test.exr is R, G, B only: no alpha to fill, and no mask plate given.
    rgb_only = (EXR / "openexr" / "test.exr").read_bytes()
    plate = _plate(tmp_path, "clean.0005.exr", rgb_only)
    code, _, err = run_cli(capsys, ["render", plate, "--pass", "inpaint", "--server", server.address,
                                    "--shot", "sh030", "--out", str(tmp_path / "out"), "--json"])
    assert code != 0
    line = err.strip()
    assert "clean.0005.exr" in line and "frame 5" in line and "no alpha" in line and "--mask" in line, line
    assert not (tmp_path / "out").exists()
    assert client.list_renders() == []  # refused before a render (a FAILED version of the shot) was created

    # A mask plate makes the same frame renderable, and a plate with alpha needs none.
    matte = tmp_path / "matte"
    matte.mkdir()
    (matte / "matte.0005.exr").write_bytes(rgb_only)  # an RGB mask plate: its mean is the fill mask
    code, out, err = run_cli(capsys, ["render", plate, "--pass", "inpaint", "--server", server.address,
                                      "--mask", str(matte / "matte.####.exr"), "--shot", "sh030",
                                      "--out", str(tmp_path / "out"), "--json"])
    assert code == 0, err
    assert out["state"] == "FINISHED"
    assert _serving(server)
