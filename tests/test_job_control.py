"""Job control on a real server: suspend/resume, requeue of failed frames, per-frame timeouts, farm job keys,
cost per shot, and the same project checks as every other RPC."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from conftest import BEACHBALL, require_data
from helpers import run_cli

from shotpass_client import Client, ClientError
from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
from shotpass_client.proto import shotpass_pb2 as pb


def _plate(tmp: Path) -> str:
    require_data()
    plate = tmp / "plate"
    plate.mkdir(exist_ok=True)
    for src in sorted(BEACHBALL.glob("singlepart.*.exr")):
        if not (plate / src.name).exists():
            (plate / src.name).symlink_to(src)
    return str(plate / "singlepart.####.exr")


def _until(client: Client, render_id: str, states: tuple, timeout: float = 120) -> pb.Render:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        render = client.get_render(render_id)
        if render.state in states:
            return render
        time.sleep(0.05)
    raise AssertionError(f"render {render_id} never reached {states}; it is {pb.RenderState.Name(render.state)}")


@pytest.fixture
def gated(server: Any) -> Iterator[threading.Event]:
    """The worker waits at this gate before each chunk (then runs the real chunk), so a test can act while a
    render is known to be mid-way."""
    gate = threading.Event()
    scheduler = server.manager.scheduler
    real = scheduler.run_chunk

    def run_chunk(*args: Any) -> None:
        assert gate.wait(60), "gate never opened"
        real(*args)

    scheduler.run_chunk = run_chunk
    yield gate
    gate.set()


def test_suspend_stops_new_frames_and_resume_finishes_each_frame_once(server, client, tmp_path, gated) -> None:
    plate = plate_frames(_plate(tmp_path))
    sub = submit_render(client, RenderSpec(shot="sh010", pass_name="passthrough"), plate)
    _until(client, sub.render_id, (pb.RUNNING,))  # its first chunk (2 frames) waits at the gate
    assert client.suspend(sub.render_id).state == pb.RUNNING  # a chunk is out: SUSPENDED once it returns
    gated.set()
    render = _until(client, sub.render_id, (pb.SUSPENDED,))
    done = render.frames_done
    assert done < 8 and all(f.state in (pb.FRAME_PENDING, pb.FRAME_DONE) for f in render.frames)
    time.sleep(1.0)
    still = client.get_render(sub.render_id)
    assert still.state == pb.SUSPENDED and still.frames_done == done, "frames ran while suspended"
    resumed = client.resume(sub.render_id)
    assert resumed.state == pb.QUEUED
    final = client.wait(sub.render_id)
    with pytest.raises(ClientError, match="not suspended"):
        client.resume(sub.render_id)
    assert final.state == pb.FINISHED and final.frames_done == 8
    assert all(f.attempts == 1 for f in final.frames), "a frame ran twice"
    kinds = [e.kind for e in client.watch(sub.render_id)]
    assert pb.RenderEvent.SUSPENDED in kinds and pb.RenderEvent.RESUMED in kinds


def test_a_suspended_render_can_be_cancelled(server, client, tmp_path, gated) -> None:
    plate = plate_frames(_plate(tmp_path))
    sub = submit_render(client, RenderSpec(shot="sh011", pass_name="passthrough"), plate)
    _until(client, sub.render_id, (pb.RUNNING,))
    client.suspend(sub.render_id)
    gated.set()
    _until(client, sub.render_id, (pb.SUSPENDED,))
    cancelled = client.cancel(sub.render_id)
    assert cancelled.state == pb.CANCELLED
    assert all(f.state in (pb.FRAME_DONE, pb.FRAME_CANCELLED) for f in cancelled.frames)
    with pytest.raises(ClientError, match="only a queued or running render"):
        client.suspend(sub.render_id)


def test_raising_a_waiting_renders_priority_makes_it_start_first(capsys, server, client, tmp_path, gated) -> None:
    plate = plate_frames(_plate(tmp_path))
    blocker = submit_render(client, RenderSpec(shot="sh050", pass_name="passthrough"), {1: plate[1], 2: plate[2]})
    _until(client, blocker.render_id, (pb.RUNNING,))  # the one worker holds its chunk at the gate
    first = submit_render(client, RenderSpec(shot="sh051", pass_name="passthrough"), {3: plate[3]})
    later = submit_render(client, RenderSpec(shot="sh052", pass_name="passthrough"), {4: plate[4]})
    assert server.manager.scheduler.position(first.render_id) < server.manager.scheduler.position(later.render_id)
    code, out, err = run_cli(capsys, ["priority", later.render_id, "5", "--server", server.address, "--json"])
    assert code == 0, err
    assert (out["render"], out["priority"]) == (later.render_id, 5)
    assert client.get_render(later.render_id).settings.priority == 5
    assert server.manager.scheduler.position(later.render_id) < server.manager.scheduler.position(first.render_id)
    gated.set()
    a, b = client.wait(first.render_id), client.wait(later.render_id)
    assert a.state == b.state == pb.FINISHED
    assert b.started_at < a.started_at, "the raised render did not start first"
    with pytest.raises(ClientError, match="only a queued, running or suspended render"):
        client.set_priority(first.render_id, 1)  # a final render has no place in the queue


def test_a_frame_past_its_timeout_fails_with_the_reason_and_requeue_runs_it_again(capsys, server, client,
                                                                                  tmp_path) -> None:
    plate = _plate(tmp_path)
    code, out, err = run_cli(capsys, ["render", plate, "--frames", "1-4", "--pass", "passthrough", "--shot", "sh020",
                                      "--frame-timeout", "0.000001", "--server", server.address,
                                      "--out", str(tmp_path / "out"), "--json"])
    assert code == 1
    assert out["state"] == "FAILED" and out["frames_done"] == 0
    assert sorted(out["failed"]) == ["1", "2", "3", "4"]
    assert all("timed out" in reason and "frame timeout of 1e-06 s" in reason for reason in out["failed"].values())
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir()), "partial output was written"

    code, again, err = run_cli(capsys, ["requeue", out["render"], "--frame-timeout", "0", "--server", server.address,
                                        "--json"])
    assert code == 0, err
    final = client.wait(out["render"])
    assert final.state == pb.FINISHED and final.frames_done == 4 and not final.error
    assert final.version == 1, "requeue made a new version"
    assert all(f.attempts == 2 and not f.error for f in final.frames)
    assert final.settings.frame_timeout_seconds == 0
    with pytest.raises(ClientError, match="no failed or cancelled frames"):
        client.requeue(out["render"])


def test_chunked_tasks_of_one_job_make_one_version_with_every_frame_once(capsys, server, client, tmp_path) -> None:
    plate = _plate(tmp_path)
    ranges = ["1-3", "4-6", "7-8", "4-6"]  # the last one is a farm retry of a task that already succeeded
    results = []
    for frames in ranges:
        code, out, err = run_cli(capsys, ["render", plate, "--frames", frames, "--pass", "passthrough", "--shot",
                                          "sh030", "--job-key", "job-42", "--server", server.address,
                                          "--out", str(tmp_path / "out"), "--json"])
        assert code == 0, err
        results.append(out)
    assert len({r["render"] for r in results}) == 1, "tasks of one job made several renders"
    assert [r["frames"] for r in results] == [[1, 2, 3], [4, 5, 6], [7, 8], [4, 5, 6]]
    assert all(r["version"] == 1 and r["job_key"] == "job-42" for r in results)
    # A task ends when its own frames are done; the render finishes once the last one is and its QC is measured.
    render = client.wait(results[0]["render"])
    assert render.state == pb.FINISHED and render.job_key == "job-42"
    assert [f.frame for f in render.frames] == list(range(1, 9))
    assert all(f.attempts == 1 for f in render.frames), "a frame was rendered twice"
    assert any("not rendered again" in w for w in results[-1]["warnings"])
    assert sorted(int(k) for k in results[-1]["outputs"]) == [4, 5, 6]
    # Another job key is another version; other settings under the same key are refused.
    code, other, err = run_cli(capsys, ["render", plate, "--frames", "1-2", "--pass", "passthrough", "--shot",
                                        "sh030", "--job-key", "job-43", "--server", server.address,
                                        "--out", str(tmp_path / "o2"), "--json"])
    assert code == 0 and other["version"] == 2
    code, _, err = run_cli(capsys, ["render", plate, "--frames", "3", "--pass", "stylize", "--shot", "sh030",
                                    "--job-key", "job-43", "--server", server.address, "--out", str(tmp_path / "o3"),
                                    "--json"])
    assert code == 1 and "other settings" in err and "model" in err

    code, stats, err = run_cli(capsys, ["stats", "--server", server.address, "--json"])
    assert code == 0, err
    shot = next(s for s in stats["shots"] if s["shot"] == "sh030")
    assert shot["renders"] == 2 and shot["frames_done"] == 10 and shot["device_seconds"] > 0
    assert stats["projects"]["default"]["frames_done"] >= 10
    from shotpass_client.cli import main

    assert main(["stats", "--shot-prefix", "sh03", "--server", server.address]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["project", "shot", "renders", "previews", "frames", "failed", "device-s"]
    assert any(line.split()[:5] == ["default", "sh030", "2", "0", "10"] for line in table)
    assert table[-1].split()[:2] == ["sequence", "sh03*"]


def _add_user(data: Path, name: str) -> str:
    from shotpass_server.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["users", "add", name, "--data-dir", str(data), "--json"]) == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])["token"]


@pytest.fixture
def two_projects(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    data = tmp_path / "data"
    tokens = {name: _add_user(data, name) for name in ("alice", "bob")}
    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=data, chunk_frames=2))
    srv.start()
    clients = {name: Client(srv.address, token) for name, token in tokens.items()}
    try:
        plate = plate_frames(_plate(tmp_path))
        sub = submit_render(clients["alice"], RenderSpec(project="show-a", shot="sh010", pass_name="passthrough",
                                                         frame_timeout=0.000001), {1: plate[1]})
        submit_render(clients["bob"], RenderSpec(project="show-b", shot="sh900", pass_name="passthrough"),
                      {2: plate[2]})
        yield {"clients": clients, "render": clients["alice"].wait(sub.render_id), "plate": plate}
    finally:
        for c in clients.values():
            c.close()
        srv.stop(grace=0.5)


def test_job_control_and_stats_of_another_project_are_refused(two_projects) -> None:
    alice, bob = two_projects["clients"]["alice"], two_projects["clients"]["bob"]
    render = two_projects["render"]
    assert render.state == pb.FAILED  # its one frame ran past the timeout
    for call in (bob.suspend, bob.resume, bob.requeue, lambda render_id: bob.set_priority(render_id, -1)):
        with pytest.raises(ClientError) as err:
            call(render.id)
        assert err.value.code == "NOT_FOUND"  # as for a missing render
    with pytest.raises(ClientError) as err:
        bob.stats("show-a")
    assert err.value.code == "PERMISSION_DENIED"
    with pytest.raises(ClientError) as err:  # another project's job key is not a way into its render
        submit_render(bob, RenderSpec(project="show-a", shot="sh010", pass_name="passthrough", job_key="k"),
                      {1: two_projects["plate"][1]})
    assert err.value.code == "PERMISSION_DENIED"
    assert {(s.project, s.shot) for s in bob.stats()} == {("show-b", "sh900")}
    assert alice.requeue(render.id, frame_timeout=0).id == render.id
    assert alice.wait(render.id).state == pb.FINISHED
