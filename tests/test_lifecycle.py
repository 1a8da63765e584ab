"""Render lifecycle: restart after SIGKILL, cancel, preview -> approve -> reference, resumable events."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import SLOW_START_S, header, run_cli, serve_process, watch_after_restart


def _start_server(data_dir: Path, log: Path) -> tuple[subprocess.Popen, str]:
    return serve_process(data_dir, log)


def test_sigkill_mid_render_then_restart_finishes_without_recomputing(tmp_path, beachball):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    proc, address = _start_server(data_dir, log)
    try:
        with Client(address, connect_timeout=SLOW_START_S) as client:
            sub = submit_render(client, RenderSpec(pass_name="stylize", seed=7), plate_frames(beachball))
            done_before = set()
            for event in client.watch(sub.render_id):
                if event.kind == pb.RenderEvent.FRAME_DONE:
                    done_before.add(event.frame)
                    if len(done_before) == 2:
                        break
            before = {f.frame: f for f in client.get_render(sub.render_id).frames}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finished_before = {n for n, f in before.items() if f.state == pb.FRAME_DONE}
    assert done_before <= finished_before and len(finished_before) < 8

    events, render = watch_after_restart(data_dir, log, sub.render_id)
    assert render.state == pb.FINISHED, render.error
    assert [f.frame for f in render.frames] == list(range(1, 9))
    assert any(e.kind == pb.RenderEvent.RESUMED for e in events)
    for f in render.frames:
        if f.frame in finished_before:
            assert f.attempts == 1, f"frame {f.frame} was recomputed after the restart"
            assert f.output_digest == before[f.frame].output_digest
        assert f.output_digest
    resumed_at = next(e.sequence for e in events if e.kind == pb.RenderEvent.RESUMED)
    redone = {e.frame for e in events if e.kind == pb.RenderEvent.FRAME_DONE and e.sequence > resumed_at}
    assert redone == set(range(1, 9)) - finished_before


def test_cancel_stops_the_render_and_keeps_finished_frames(client, beachball):
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    sub = submit_render(client, RenderSpec(pass_name="stylize"), plate_frames(beachball))
    for event in client.watch(sub.render_id):
        if event.kind == pb.RenderEvent.FRAME_DONE:
            client.cancel(sub.render_id)
            break
    final = client.wait(sub.render_id)
    assert final.state == pb.CANCELLED
    done = [f for f in final.frames if f.state == pb.FRAME_DONE]
    assert 1 <= len(done) < 8
    assert all(f.output_digest for f in done)
    assert all(f.state == pb.FRAME_CANCELLED and not f.output_digest for f in final.frames if f not in done)
    # Fetching refuses to present it as complete unless asked for the partial result.
    from shotpass_client import ClientError
    from shotpass_client.jobs import require_finished

    with pytest.raises(ClientError, match="CANCELLED"):
        require_finished(final)


def test_preview_then_approve_makes_it_the_shots_reference(capsys, server, client, beachball, tmp_path):
    code, preview, err = run_cli(capsys, ["preview", beachball, "--frame", "4", "--pass", "stylize", "--option",
                                          "style=11", "--shot", "sh020", "--server", server.address, "--out",
                                          str(tmp_path / "pv"), "--json"])
    assert code == 0, err
    assert preview["frames"] == [4]
    assert Path(preview["outputs"]["4"]).name == "singlepart.0004.exr"
    rendered = client.get_render(preview["render"])
    assert rendered.lane == "preview"

    code, _, err = run_cli(capsys, ["render", beachball, "--frames", "1-2", "--model", "styletransfer-reference",
                                    "--shot", "sh021", "--server", server.address, "--out", str(tmp_path / "x"),
                                    "--json"])
    assert code != 0 and "reference" in err

    code, _, err = run_cli(capsys, ["review", preview["render"], "--approve", "--server", server.address, "--json"])
    assert code == 0, err
    code, out, err = run_cli(capsys, ["render", beachball, "--frames", "3-4", "--model", "styletransfer-reference",
                                      "--shot", "sh020", "--server", server.address, "--out", str(tmp_path / "v"),
                                      "--json"])
    assert code == 0, err
    render = client.get_render(out["render"])
    assert render.reference_digest == rendered.frames[0].output_digest
    assert header(out["outputs"]["3"])["shotpass/model"] == "styletransfer-reference"


def test_preview_jumps_ahead_of_queued_render_work(client, beachball):
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    plate = plate_frames(beachball)
    long = submit_render(client, RenderSpec(pass_name="stylize"), plate)
    queued = submit_render(client, RenderSpec(pass_name="stylize", shot="other"), plate)
    started = time.monotonic()
    preview = submit_render(client, RenderSpec(pass_name="stylize"), {5: plate[5]}, preview=True)
    assert preview.render.state == pb.FINISHED
    waited = time.monotonic() - started
    assert client.get_render(queued.render_id).frames_done == 0, "the preview waited behind a whole queued render"
    client.cancel(long.render_id)
    client.cancel(queued.render_id)
    assert waited > 0


def test_watch_resumes_from_a_sequence_number(client, beachball):
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    sub = submit_render(client, RenderSpec(pass_name="passthrough"), plate_frames(beachball, [1, 2, 3]))
    events = list(client.watch(sub.render_id))
    assert events[-1].kind == pb.RenderEvent.FINISHED and events[-1].state == pb.FINISHED
    seqs = [e.sequence for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [e.frame for e in events if e.kind == pb.RenderEvent.FRAME_DONE] == [1, 2, 3]
    cut = events[2].sequence
    replay = list(client.watch(sub.render_id, after_sequence=cut))
    assert [e.sequence for e in replay] == [s for s in seqs if s > cut]


def test_a_full_queue_answers_resource_exhausted_and_previews_still_run(tmp_path, beachball):
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "d", max_queued_renders=1))
    srv.start()
    try:
        with Client(srv.address) as client:
            plate = plate_frames(beachball)
            first = submit_render(client, RenderSpec(pass_name="stylize"), plate)
            with pytest.raises(ClientError, match="render queue is full .1 renders") as err:
                submit_render(client, RenderSpec(pass_name="stylize"), plate)
            assert err.value.code == "RESOURCE_EXHAUSTED"
            preview = submit_render(client, RenderSpec(pass_name="passthrough"), {1: plate[1]}, preview=True)
            assert preview.render.state == pb.FINISHED
            client.cancel(first.render_id)
            client.wait(first.render_id)
            assert submit_render(client, RenderSpec(pass_name="passthrough"), {2: plate[2]}).render_id
    finally:
        srv.stop(0.5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("attached", ["cli", "host-job"])
def test_an_attached_render_rides_out_a_server_sigkill_and_fetches_every_frame(tmp_path, beachball, attached):
    """`shotpass render` (a separate process) or a Nuke/Blender job (BackgroundRender, which both plugins run)
    watches a render; the server is killed mid-render and started again on the same port and data dir; the
    client reconnects (saying so), the render finishes, and every output is fetched."""
    import os
    import sys

    from shotpass_client import Client
    from shotpass_client.background import DONE, BackgroundRender, JobRequest
    from shotpass_client.jobs import RenderSpec, plate_frames
    from shotpass_client.proto import shotpass_pb2 as pb

    data_dir, log = tmp_path / "data", tmp_path / "server.log"
    listen = f"127.0.0.1:{_free_port()}"
    proc, address = serve_process(data_dir, log, "--listen", listen)
    out = tmp_path / "out"
    cli, job = None, None
    if attached == "cli":
        cli = subprocess.Popen(
            [sys.executable, "-m", "shotpass_server.cli", "render", beachball, "--pass", "stylize", "--seed", "3",
             "--server", address, "--out", str(out), "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    else:
        job = BackgroundRender(JobRequest(server=address, spec=RenderSpec(pass_name="stylize", seed=3),
                                          out_dir=str(out), plate=plate_frames(beachball))).start()
    restarted = None
    try:
        with Client(address, connect_timeout=SLOW_START_S) as watcher:
            deadline = time.monotonic() + 120
            while not watcher.list_renders() and time.monotonic() < deadline:
                time.sleep(0.05)
            render_id = watcher.list_renders()[0].id
            for event in watcher.watch(render_id):
                if event.kind == pb.RenderEvent.FRAME_DONE:
                    break  # the render is under way, the client is attached
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(1.0)  # the client sees the connection die while nothing listens
        restarted, again = serve_process(data_dir, log, "--listen", listen)
        assert again == address
        if cli is not None:
            stdout, stderr = cli.communicate(timeout=240)
        else:
            job.join(240)
            assert not job.running
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
        for p in (proc, restarted):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(60)
    if cli is not None:
        assert cli.returncode == 0, stderr[-2000:]
        assert "reconnecting" in stderr, stderr[-2000:]
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["state"] == "FINISHED" and result["render"] == render_id
        outputs = {int(f): path for f, path in result["outputs"].items()}
    else:
        updates = []
        while not job.updates.empty():
            updates.append(job.updates.get())
        assert any("reconnecting" in u.message for u in updates), [u.message for u in updates]
        assert updates[-1].kind == DONE, updates[-1].message
        assert updates[-1].render_id == render_id
        outputs = updates[-1].outputs
    assert sorted(outputs) == list(range(1, 9))
    for path in outputs.values():
        assert os.path.getsize(path) > 0 and header(path)["shotpass/renderId"] == render_id


@pytest.mark.parametrize(
    "code, details, transient",
    [
        ("UNAVAILABLE", "failed to connect to all addresses", True),
        ("UNKNOWN", "Stream removed", True),  # what a SIGKILL mid-stream shows at some moments
        ("INTERNAL", "Received RST_STREAM with error code 2", True),
        ("UNKNOWN", "recvmsg:Connection reset by peer", True),
        ("INVALID_ARGUMENT", "frame 5: shot.0005.exr: damaged EXR", False),
        ("UNKNOWN", "internal error in SubmitRender: boom", False),
        ("NOT_FOUND", "no render 'r-000000000000'", False),
    ],
)
def test_reset_streams_are_retried_like_unavailable_and_answers_are_not(code, details, transient):
    import grpc

    from shotpass_client.client import is_transient

    class Answer(grpc.RpcError):  # the two methods every grpc call error has
        def code(self) -> grpc.StatusCode:
            return grpc.StatusCode[code]

        def details(self) -> str:
            return details

    assert is_transient(Answer()) is transient
