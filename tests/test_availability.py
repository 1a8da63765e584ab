"""A shared server stays available: idle streams cannot starve short calls, and a catalog that cannot
write never kills a worker."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List

import grpc
import pytest
from conftest import EXR
from grpc_health.v1 import health_pb2, health_pb2_grpc

TINY = EXR / "openexr" / "test.exr"  # 10x20 float RGB: a passthrough frame takes milliseconds


def _health(address: str, timeout: float) -> int:
    with grpc.insecure_channel(address) as channel:
        request = health_pb2.HealthCheckRequest(service="")
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout).status


@pytest.fixture
def idle_server(tmp_path: Path) -> Iterator[object]:
    """A server with users and no worker: every render stays queued, so its watchers sit idle."""
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", max_streams_per_user=10))
    srv.devices.clear()  # the scheduler's device list: no worker thread starts
    srv.start()
    try:
        yield srv
    finally:
        srv.stop(0.5, work_grace=0)


def test_forty_idle_watch_streams_leave_health_and_server_info_answering(idle_server):
    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc

    srv = idle_server
    users = ["alice", "bob", "carol", "dave"]
    tokens = {u: srv.accounts.add_user(u) for u in users}
    clients = {u: Client(srv.address, tokens[u]) for u in users}
    streams: Dict[str, List[grpc.Future]] = {u: [] for u in users}
    channel = grpc.insecure_channel(srv.address)
    stub = pb_grpc.ShotPassStub(channel)
    try:
        for user, client in clients.items():
            frame = pb.FrameInput(frame=1, digest=client.upload_bytes(TINY.read_bytes()), name="tiny.0001.exr")
            render_id = client.submit(pb.SubmitRenderRequest(
                project=f"show-{user}", settings=pb.RenderSettings(pass_name="passthrough"), frames=[frame])).render_id
            for _ in range(10):  # 40 streams: more than the old pool's 32 threads
                # A deadline, so that a server without free threads fails this test instead of hanging it.
                call = stub.WatchRender(pb.WatchRenderRequest(render_id=render_id), timeout=60,
                                        metadata=(("authorization", f"Bearer {tokens[user]}"),))
                streams[user].append(call)
                assert next(call).kind == pb.RenderEvent.QUEUED  # open, and now idle: the render never starts
        assert srv.streams.open_streams() == 40

        started = time.monotonic()
        assert _health(srv.address, timeout=5) == health_pb2.HealthCheckResponse.SERVING
        assert clients["alice"].server_info().version
        assert time.monotonic() - started < 5

        # The eleventh stream of one user is refused at once, naming the limit; other users are not affected.
        with pytest.raises(ClientError) as refused:
            next(clients["alice"].watch(clients["alice"].list_renders()[0].id))
        assert refused.value.code == "RESOURCE_EXHAUSTED"
        assert "max_streams_per_user = 10" in str(refused.value)
        # Closing one of alice's streams frees her slot.
        streams["alice"].pop().cancel()
        deadline = time.monotonic() + 10
        while srv.streams.open_streams() > 39 and time.monotonic() < deadline:
            time.sleep(0.05)
        again = clients["alice"].watch(clients["alice"].list_renders()[0].id)
        assert next(again).kind == pb.RenderEvent.QUEUED
        again.close()
    finally:
        for calls in streams.values():
            for call in calls:
                call.cancel()
        channel.close()
        for client in clients.values():
            client.close()


def test_stream_limits_are_read_from_the_config_and_checked(tmp_path: Path):
    from shotpass_server.config import load_config
    from shotpass_server.errors import InvalidInput

    config = tmp_path / "shotpass.toml"
    config.write_text("[server]\nmax_open_streams = 500\nmax_streams_per_user = 20\nrpc_threads = 8\n"
                      "keepalive_s = 30\nmax_connection_idle_s = 0\n")
    cfg = load_config(config)
    assert (cfg.max_open_streams, cfg.max_streams_per_user, cfg.rpc_threads) == (500, 20, 8)
    assert (cfg.keepalive_s, cfg.max_connection_idle_s) == (30.0, 0.0)
    for bad in ("max_streams_per_user = 0", "max_open_streams = 2.5", 'rpc_threads = "many"'):
        config.write_text(f"[server]\n{bad}\n")
        with pytest.raises(InvalidInput, match=bad.split()[0]):
            load_config(config)


class _FailingDisk:
    """The catalog's sqlite connection, with its writes failing as sqlite fails them on a full disk.

    Armed, the first write of a finished frame starts the failure; `full = False` gives the space back.
    Every other call goes to the real connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.armed = False
        self.full = False
        self.refused = 0

    def execute(self, sql: str, *args):  # type: ignore[no-untyped-def]
        write = sql.lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE")
        if self.armed and sql.startswith("UPDATE frames SET state = ?, output_digest"):
            self.full, self.armed = True, False
        if write and self.full:
            self.refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._db, name)


def _wait_until(predicate, what: str, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_catalog_that_cannot_write_pauses_work_and_it_resumes_by_itself(tmp_path: Path):
    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", workers=1, chunk_frames=2))
    disk = _FailingDisk(srv.catalog._db)
    srv.catalog._db = disk  # type: ignore[assignment]
    srv.start()
    try:
        with Client(srv.address) as client:
            digest = client.upload_bytes(TINY.read_bytes())

            def submit() -> str:
                frames = [pb.FrameInput(frame=f, digest=digest, name=f"tiny.{f:04d}.exr") for f in range(1, 9)]
                request = pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="passthrough"), frames=frames)
                return client.submit(request).render_id

            disk.armed = True  # the first finished frame finds the disk full
            render_id = submit()
            _wait_until(lambda: _health(srv.address, 5) == health_pb2.HealthCheckResponse.NOT_SERVING,
                        "health to say NOT_SERVING")
            time.sleep(1.5)  # the worker meets the full disk again and again meanwhile
            workers = [t for t in threading.enumerate() if t.name.startswith("shotpass-worker")]
            assert workers and all(t.is_alive() for t in workers)
            assert srv.catalog.get_render(render_id).state == "RUNNING"  # not failed: not the render's fault
            with pytest.raises(ClientError) as refused:
                submit()
            assert refused.value.code == "UNAVAILABLE" and "cannot write its catalog" in str(refused.value)

            disk.full = False  # space is back: no restart
            _wait_until(lambda: _health(srv.address, 5) == health_pb2.HealthCheckResponse.SERVING,
                        "health to say SERVING again")
            render = client.wait(render_id)
            assert render.state == pb.FINISHED, render.error
            assert [f.frame for f in render.frames if f.output_digest] == list(range(1, 9))
            assert all(f.state == pb.FRAME_DONE for f in render.frames)
            assert client.wait(submit()).state == pb.FINISHED  # and new work runs too
        assert disk.refused > 2
    finally:
        srv.stop(0.5)


def test_long_renders_page_their_frames_and_the_frame_limit_is_clear(idle_server):
    from shotpass_client import Client, ClientError
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_client.proto import shotpass_pb2_grpc as pb_grpc

    srv = idle_server
    count = 4500  # over two pages of 2000
    with Client(srv.address) as client:
        digest = client.upload_bytes(TINY.read_bytes())
        frames = [pb.FrameInput(frame=f, digest=digest, name=f"tiny.{f:05d}.exr") for f in range(1001, 1001 + count)]
        answer = client.submit(pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="passthrough"),
                                                      frames=frames))
        assert answer.render.frames_total == count and len(answer.render.frames) == 2000

        render = client.get_render(answer.render_id)  # the client follows the pages
        assert [f.frame for f in render.frames] == list(range(1001, 1001 + count))
        assert render.frames_total == count and not render.next_frame_page_token

        with grpc.insecure_channel(srv.address) as channel:
            stub = pb_grpc.ShotPassStub(channel)
            first = stub.GetRender(pb.GetRenderRequest(render_id=answer.render_id, frame_page_size=1000))
            assert len(first.frames) == 1000 and first.next_frame_page_token
            second = stub.GetRender(pb.GetRenderRequest(render_id=answer.render_id, frame_page_size=1000,
                                                        frame_page_token=first.next_frame_page_token))
            assert second.frames[0].frame == first.frames[-1].frame + 1
            with pytest.raises(grpc.RpcError) as bad:
                stub.GetRender(pb.GetRenderRequest(render_id=answer.render_id, frame_page_token="../x"))
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "frame_page_token" in bad.value.details()
            # A listing carries counts, never every frame of every render.
            listed = stub.ListRenders(pb.ListRendersRequest()).renders
            assert [(r.frames_total, len(r.frames)) for r in listed] == [(count, 0)]

        # Past the documented limit: one clear refusal, not a message-size error.
        too_many = [pb.FrameInput(frame=f, digest=digest) for f in range(100_001)]
        with pytest.raises(ClientError) as refused:
            client.submit(pb.SubmitRenderRequest(settings=pb.RenderSettings(pass_name="passthrough"),
                                                 frames=too_many))
        assert refused.value.code == "INVALID_ARGUMENT"
        assert "100001 frames; at most 100000" in str(refused.value)
        assert client.server_info().limits.max_frames_per_render == 100_000
