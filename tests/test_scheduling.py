"""Fair share between users, priorities, previews, per-user quotas and graceful shutdown.

Order is measured from the catalog's frame start times (when a frame went to a worker), never from sleeps.
Plates are small real EXRs from the shared data, so hundreds of frames run in a couple of seconds.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import grpc
import pytest
from conftest import EXR
from grpc_health.v1 import health_pb2, health_pb2_grpc
from helpers import SLOW_START_S, serve_process, watch_after_restart

TINY = EXR / "openexr" / "test.exr"  # 10x20 float RGB: a passthrough frame takes milliseconds
SMALL = EXR / "openexr-images" / "DisplayWindow" / "t01.exr"  # 400x300: a stylize frame takes a while


def _plate(path: Path, count: int) -> Dict[int, str]:
    """`count` frames of one real EXR (the server stores it once: same digest)."""
    return {f: str(path) for f in range(1, count + 1)}


def _server(tmp_path: Path, **settings) -> object:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", workers=1, **settings))
    srv.start()
    return srv


@pytest.fixture
def shared_server(tmp_path: Path) -> Iterator[Tuple[object, Dict[str, str]]]:
    """A one-worker server with users alice (max priority 10) and bob; chunks of 2 frames."""
    srv = _server(tmp_path, chunk_frames=2, max_queued_per_user=2, max_frames_per_user=300)
    tokens = {"alice": srv.accounts.add_user("alice", max_priority=10), "bob": srv.accounts.add_user("bob")}
    try:
        yield srv, tokens
    finally:
        srv.stop(0.5, work_grace=5)


def _starts(srv: object, render_id: str) -> List[float]:
    return sorted(f.started_at for f in srv.catalog.frames(render_id) if f.started_at)  # type: ignore[attr-defined]


def _wait_event(client: object, render_id: str, kind: int) -> None:
    events = client.watch(render_id)  # type: ignore[attr-defined]
    try:
        for event in events:
            if event.kind == kind:
                return
    finally:
        events.close()
    raise AssertionError(f"render {render_id} ended without a {kind} event")


def _wait_frame_done(client: object, render_id: str) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb

    _wait_event(client, render_id, pb.RenderEvent.FRAME_DONE)


def test_another_users_render_starts_after_at_most_one_chunk(shared_server):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    srv, tokens = shared_server
    with Client(srv.address, tokens["alice"]) as alice, Client(srv.address, tokens["bob"]) as bob:
        long = submit_render(alice, RenderSpec(project="a", shot="long", pass_name="passthrough"), _plate(TINY, 200))
        _wait_frame_done(alice, long.render_id)
        small = submit_render(bob, RenderSpec(project="b", shot="small", pass_name="passthrough"), _plate(TINY, 4))
        events = []
        final = bob.wait(small.render_id, on_event=events.append)
        alice.cancel(long.render_id)
        alice.wait(long.render_id)
    assert final.state == pb.FINISHED, final.error

    catalog = srv.catalog
    assert catalog.get_render(long.render_id).owner == "alice"
    assert catalog.get_render(small.render_id).owner == "bob"
    submitted = catalog.get_render(small.render_id).created_at
    bob_first = _starts(srv, small.render_id)[0]
    alice_starts = _starts(srv, long.render_id)
    # Alice's frames handed out after Bob submitted and before Bob's first frame: the rest of her chunk in flight
    # at most (one chunk = 2 frames), never her whole render.
    in_between = [t for t in alice_starts if submitted < t < bob_first]
    assert len(in_between) <= 2, f"{len(in_between)} of alice's frames started before bob's first one"
    # Not vacuous: Alice still had frames to go (started later, or never before her cancel) when Bob started.
    unstarted = [f for f in catalog.frames(long.render_id) if not f.started_at or f.started_at > bob_first]
    assert unstarted, "alice's render was over before bob's started: nothing shown"
    # WatchRender told Bob his render's place in line while it waited, or it started at once.
    assert any(e.kind == pb.RenderEvent.STARTED for e in events)


def test_priority_orders_one_users_renders_and_is_capped(shared_server):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    srv, tokens = shared_server
    with Client(srv.address, tokens["alice"]) as alice, Client(srv.address, tokens["bob"]) as bob:
        # Bob's slow chunk holds the only worker while Alice queues two renders.
        blocker = submit_render(bob, RenderSpec(project="b", pass_name="stylize"), _plate(SMALL, 6))
        _wait_event(bob, blocker.render_id, pb.RenderEvent.STARTED)
        low = submit_render(alice, RenderSpec(project="a", shot="low", pass_name="passthrough"), _plate(TINY, 4))
        high = submit_render(alice, RenderSpec(project="a", shot="high", pass_name="passthrough", priority=50),
                             _plate(TINY, 4))
        bob.cancel(blocker.render_id)
        assert any("priority 50 lowered to 10" in w for w in high.warnings), high.warnings
        assert high.render.settings.priority == 10
        for render in (low, high):
            assert alice.wait(render.render_id).state == pb.FINISHED
    assert _starts(srv, high.render_id)[0] < _starts(srv, low.render_id)[0], "the higher priority did not go first"


def test_preview_jumps_ahead_of_every_users_render_chunks(shared_server):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    srv, tokens = shared_server
    with Client(srv.address, tokens["alice"]) as alice, Client(srv.address, tokens["bob"]) as bob:
        long = submit_render(alice, RenderSpec(project="a", shot="long", pass_name="passthrough"), _plate(TINY, 200))
        _wait_frame_done(alice, long.render_id)
        other = submit_render(bob, RenderSpec(project="b", shot="other", pass_name="passthrough"), _plate(TINY, 100))
        preview = submit_render(bob, RenderSpec(project="b", shot="pv", pass_name="passthrough"), {7: str(TINY)},
                                preview=True)
        assert preview.render.state == pb.FINISHED
        for render in (long, other):
            bob_or_alice = alice if render is long else bob
            bob_or_alice.cancel(render.render_id)
            bob_or_alice.wait(render.render_id)
    asked = srv.catalog.get_render(preview.render_id).created_at
    started = _starts(srv, preview.render_id)[0]
    ahead = [t for rid in (long.render_id, other.render_id) for t in _starts(srv, rid) if asked < t < started]
    assert len(ahead) <= 2, f"{len(ahead)} render frames started between the preview's submission and its start"


def test_per_user_quotas_answer_resource_exhausted_naming_the_limit(shared_server):
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    srv, tokens = shared_server
    with Client(srv.address, tokens["alice"]) as alice, Client(srv.address, tokens["bob"]) as bob:
        with pytest.raises(ClientError, match=r"user alice has 0 frames waiting or running and this render adds 301; "
                                              r"the quota is 300 frames \(\[server\] max_frames_per_user\)") as err:
            submit_render(alice, RenderSpec(project="a", pass_name="passthrough"), _plate(TINY, 301))
        assert err.value.code == "RESOURCE_EXHAUSTED"

        first = submit_render(alice, RenderSpec(project="a", shot="one", pass_name="passthrough"), _plate(TINY, 150))
        second = submit_render(alice, RenderSpec(project="a", shot="two", pass_name="passthrough"), _plate(TINY, 100))
        with pytest.raises(ClientError, match=r"user alice has 2 renders waiting or running, the quota is 2 "
                                              r"\(\[server\] max_queued_per_user\)") as err:
            submit_render(alice, RenderSpec(project="a", shot="three", pass_name="passthrough"), _plate(TINY, 1))
        assert err.value.code == "RESOURCE_EXHAUSTED"
        # Another user's quota is their own; a preview never counts.
        theirs = submit_render(bob, RenderSpec(project="b", pass_name="passthrough"), _plate(TINY, 2))
        preview = submit_render(alice, RenderSpec(project="a", pass_name="passthrough"), {1: str(TINY)}, preview=True)
        assert preview.render.state == pb.FINISHED
        alice.cancel(first.render_id)
        alice.wait(first.render_id)
        # A place is free again, but frames still count: 300 frames alone are within the quota, yet refused
        # while the other render has unfinished frames (the message says how many the server counted).
        assert any(f.state in (pb.FRAME_PENDING, pb.FRAME_RUNNING) for f in alice.get_render(second.render_id).frames)
        with pytest.raises(ClientError) as err:
            submit_render(alice, RenderSpec(project="a", shot="four", pass_name="passthrough"), _plate(TINY, 300))
        counted = re.search(r"user alice has (\d+) frames waiting or running and this render adds 300;", str(err.value))
        assert err.value.code == "RESOURCE_EXHAUSTED" and counted and int(counted[1]) > 0, err.value
        assert submit_render(alice, RenderSpec(project="a", shot="five", pass_name="passthrough"), _plate(TINY, 1))
        for client, render in ((alice, second), (bob, theirs)):
            client.cancel(render.render_id)
            client.wait(render.render_id)


def test_owner_column_is_added_to_an_older_catalog(tmp_path):
    from shotpass_server import catalog as cat

    path = tmp_path / "catalog.sqlite"
    old = cat.SCHEMA.replace("  owner TEXT NOT NULL DEFAULT '',\n", "").replace(
        ", started_at REAL NOT NULL DEFAULT 0,\n  PRIMARY KEY (render_id, frame)", ",\n  PRIMARY KEY (render_id, frame)"
    )
    assert "owner" not in old and "started_at REAL NOT NULL DEFAULT 0,\n  PRIMARY" not in old
    db = sqlite3.connect(path)
    db.executescript(old)
    db.execute("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 0)")
    db.execute("INSERT INTO shots (id, project_id, name, created_at) VALUES (1, 1, 's', 0)")
    db.execute("INSERT INTO renders (id, shot_id, version, lane, state, settings, created_at)"
               " VALUES ('r-old', 1, 1, 'render', 'FINISHED', '{}', 0)")
    db.execute("INSERT INTO frames (render_id, frame, input_digest, state) VALUES ('r-old', 1, 'd', 'FRAME_DONE')")
    db.commit()
    db.close()

    catalog = cat.Catalog(path)
    try:
        assert catalog.get_render("r-old").owner == ""
        assert catalog.frames("r-old")[0].started_at == 0
        new = catalog.create_render("p", "s", "render", {}, [cat.FrameRow(1, "d")], None, "", "", 1, [], owner="eve")
        assert catalog.get_render(new).owner == "eve"
        assert catalog.owner_load("eve") == (1, 1)
    finally:
        catalog.close()


# ------------------------------------------------------------------ graceful shutdown


def test_shutdown_turns_health_off_refuses_work_and_lets_the_running_step_finish(tmp_path):
    from shotpass_client import Client, ClientError
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    srv = _server(tmp_path, chunk_frames=4, shutdown_grace_s=60)
    channel = grpc.insecure_channel(srv.address)
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    stopper = threading.Thread(target=srv.stop, kwargs={"grace": 5})
    try:
        with Client(srv.address) as client:
            render = submit_render(client, RenderSpec(pass_name="stylize"), _plate(SMALL, 4))
            events = client.watch(render.render_id)
            first = next(e for e in events if e.kind == pb.RenderEvent.FRAME_DONE)
            stopper.start()
            deadline = time.monotonic() + 10
            while health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING:
                assert time.monotonic() < deadline, "health still says SERVING during shutdown"
            with pytest.raises(ClientError) as err:
                submit_render(client, RenderSpec(pass_name="passthrough"), _plate(TINY, 1))
            assert err.value.code == "UNAVAILABLE", err.value
            # The watcher that was there before the shutdown sees the step in flight (all four frames) finish.
            rest = list(events)
    finally:
        if stopper.ident:
            stopper.join(60)
        else:
            srv.stop(0.5, work_grace=5)
        channel.close()
    done = {first.frame} | {e.frame for e in rest if e.kind == pb.RenderEvent.FRAME_DONE}
    assert done == set(range(1, 5))
    assert rest[-1].kind == pb.RenderEvent.FINISHED and rest[-1].state == pb.FINISHED


def _serve(data_dir: Path, config: Path, log: Path) -> Tuple[subprocess.Popen, str]:
    return serve_process(data_dir, log, "--config", str(config))


def _frames_on_disk(data_dir: Path, render_id: str) -> Dict[int, Tuple[str, int, str]]:
    db = sqlite3.connect(data_dir / "catalog.sqlite")
    try:
        rows = db.execute("SELECT frame, state, attempts, output_digest FROM frames WHERE render_id = ?", (render_id,))
        return {r[0]: (r[1], r[2], r[3]) for r in rows}
    finally:
        db.close()


def test_sigterm_mid_render_lets_the_step_finish_and_a_restart_recomputes_nothing(tmp_path):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    chunk, total = 3, 6
    data_dir, log, config = tmp_path / "data", tmp_path / "server.log", tmp_path / "shotpass.toml"
    config.write_text(f"[server]\nworkers = 1\nchunk_frames = {chunk}\nshutdown_grace_s = 60\n")
    proc, address = _serve(data_dir, config, log)
    try:
        with Client(address, connect_timeout=SLOW_START_S) as client:
            sub = submit_render(client, RenderSpec(pass_name="stylize", seed=3), _plate(SMALL, total))
            _wait_frame_done(client, sub.render_id)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(90) == 0, log.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _frames_on_disk(data_dir, sub.render_id)
    done = {f for f, (state, _, _) in before.items() if state == "FRAME_DONE"}
    assert all(state in ("FRAME_DONE", "FRAME_PENDING") for state, _, _ in before.values()), before
    # The chunk in flight when the signal came was finished, and no new one was started.
    assert len(done) == chunk, f"frames done at shutdown: {sorted(done)}"

    events, render = watch_after_restart(data_dir, log, sub.render_id, "--config", str(config))
    assert render.state == pb.FINISHED, render.error
    assert any(e.kind == pb.RenderEvent.RESUMED for e in events)
    for f in render.frames:
        assert f.attempts == 1, f"frame {f.frame} was computed {f.attempts} times"
        if f.frame in done:
            assert f.output_digest == before[f.frame][2]
        assert f.output_digest


def test_past_the_grace_the_running_step_is_cancelled_and_resumes_at_the_next_start(tmp_path):
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    # A chunk longer than the pipelined worker's queues (pipeline_depth 2): frames the model finished before the
    # stop are still stored, the rest of the chunk is not started.
    chunk, total = 6, 12
    srv = _server(tmp_path, chunk_frames=chunk, shutdown_grace_s=0)
    # Stop the moment the first frame is stored, from inside the server: a client watching events can lag
    # behind a loaded machine by more than the chunk's other frames take.
    first_stored = threading.Event()
    stored = srv.manager._frame_finished

    def frame_finished(*args, **kwargs):
        stored(*args, **kwargs)
        first_stored.set()
        # Hold the worker here until the stop has begun: with a warm model the chunk's next frames take less
        # than the stop takes to start, and the test is about a step that is running when the grace ends.
        deadline = time.monotonic() + 60
        while not srv.manager.scheduler.stopping and time.monotonic() < deadline:
            time.sleep(0.01)

    srv.manager._frame_finished = frame_finished
    try:
        with Client(srv.address) as client:
            sub = submit_render(client, RenderSpec(pass_name="stylize", seed=3), _plate(SMALL, total))
            assert first_stored.wait(120), "no frame finished"
    finally:
        srv.stop(0.5)
    before = _frames_on_disk(tmp_path / "data", sub.render_id)
    done = {f for f, (state, _, _) in before.items() if state == "FRAME_DONE"}
    assert all(state in ("FRAME_DONE", "FRAME_PENDING") for state, _, _ in before.values()), before
    assert 1 <= len(done) < chunk, f"the running chunk went on past a zero grace: {sorted(done)}"

    srv = _server(tmp_path, chunk_frames=chunk)
    try:
        with Client(srv.address) as client:
            events = list(client.watch(sub.render_id))
            render = client.get_render(sub.render_id)
    finally:
        srv.stop(0.5)
    assert render.state == pb.FINISHED, render.error
    assert any(e.kind == pb.RenderEvent.RESUMED for e in events)
    for f in render.frames:
        if f.frame in done:
            assert f.attempts == 1 and f.output_digest == before[f.frame][2], f"frame {f.frame} was recomputed"
        assert f.output_digest


def test_users_max_priority_is_set_from_the_cli(capsys, tmp_path):
    from helpers import run_cli

    data = str(tmp_path / "data")
    code, out, err = run_cli(capsys, ["users", "add", "dave", "--max-priority", "3", "--data-dir", data, "--json"])
    assert code == 0 and out["token"], err
    code, _, err = run_cli(capsys, ["users", "set", "dave", "--max-priority", "7", "--data-dir", data, "--json"])
    assert code == 0, err
    code, out, err = run_cli(capsys, ["users", "list", "--data-dir", data, "--json"])
    assert [(u["name"], u["max_priority"]) for u in out["users"]] == [("dave", 7)]
    code, _, err = run_cli(capsys, ["users", "set", "nobody", "--max-priority", "1", "--data-dir", data])
    assert code != 0 and "no user 'nobody'" in err


def test_a_stream_of_previews_cannot_starve_waiting_renders(tmp_path):
    # The scheduler alone on a real catalog: nothing runs, so the order in which chunks are handed out is exact.
    from shotpass_server import catalog as cat
    from shotpass_server.scheduler import PREVIEW_BURST, Scheduler

    catalog = cat.Catalog(tmp_path / "catalog.sqlite")
    sched = Scheduler(catalog, lambda *args: None, devices=[], chunk_frames=1)

    def render(lane: str, frames: int) -> str:
        rows = [cat.FrameRow(frame=f, input_digest="0" * 64, input_name=f"f{f}") for f in range(1, frames + 1)]
        render_id = catalog.create_render("p", lane, lane, {"model": "passthrough"}, rows, None, "", "", 1, [])
        sched.enqueue(render_id)
        return render_id

    long = render("render", 20)
    previews = {render("preview", 1) for _ in range(3 * PREVIEW_BURST)}
    handed = [sched._next()[0] for _ in range(3 * PREVIEW_BURST + 3)]
    lanes = ["render" if rid == long else "preview" for rid in handed]
    assert set(handed) - {long} == previews  # every preview was handed out ...
    # ... at most PREVIEW_BURST in a row while the render waited, then one render chunk.
    expected = (["preview"] * PREVIEW_BURST + ["render"]) * 3
    assert lanes == expected, lanes
    catalog.close()


def test_recent_device_time_survives_a_restart(tmp_path):
    # Alice used the devices for an hour just before the restart; Bob did not. After the restart, a render of
    # Bob's submitted after hers still goes first: fair share reads recent use back from the catalog.
    from shotpass_server import catalog as cat
    from shotpass_server.scheduler import Scheduler

    catalog = cat.Catalog(tmp_path / "catalog.sqlite")

    def render(owner: str, frames: int) -> str:
        rows = [cat.FrameRow(frame=f, input_digest="0" * 64, input_name=f"f{f}") for f in range(1, frames + 1)]
        return catalog.create_render("p", owner, "render", {"model": "passthrough"}, rows, None, "", "", 1, [],
                                     owner=owner)

    before = render("alice", 2)
    for frame in (1, 2):
        catalog.frame_started(before, frame)
        catalog.frame_done(before, frame, "1" * 64, 10, 1800.0)
    catalog.set_render_state(before, cat.FINISHED)

    sched = Scheduler(catalog, lambda *args: None, devices=[], chunk_frames=1)
    sched.start()  # the restart: no workers here, so the hand-out order is read exactly with _next()
    hers, his = render("alice", 1), render("bob", 1)
    sched.enqueue(hers)
    sched.enqueue(his)
    assert [sched._next()[0] for _ in range(2)] == [his, hers]
    sched.stop()
    catalog.close()
