"""Bad input gets a clear error naming the file and frame; the server stays up and loses nothing."""

from __future__ import annotations

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
