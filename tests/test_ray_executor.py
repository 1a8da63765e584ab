"""The Ray executor: two CPU actors on a local Ray cluster, chunk requeue when a worker dies, bounded retries."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import numpy as np
import pytest

from shotpass_client import Client
from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
from shotpass_client.proto import shotpass_pb2 as pb
from shotpass_server import catalog as cat
from shotpass_server.app import ShotpassServer
from shotpass_server.config import ServerConfig, load_config
from shotpass_server.errors import InvalidInput
from shotpass_server.frames.exr import decode_exr
from shotpass_server.passes.base import FrameJob, FrameResult, Model, Option, PassContext
from shotpass_server.passes.registry import ModelRegistry, starter_models
from shotpass_server.ray_executor import gpu_slots_to_add

SLOTS = ["ray:0", "ray:1"]
FRAMES = [1, 2, 3, 4]  # of the 8-frame Beachball: enough for both workers, cheap on two shared cores
STYLED = [4, 5]
SLOW = {"seconds": "0.6"}  # per frame: a kill lands mid-chunk, a stop mid-render


class WorkerProbe(Model):
    """Test-only model: returns the frame unchanged after `seconds` (in cancellable steps, using no CPU), and
    ends its worker process outright on frame `die_on`."""

    name = "test-worker-probe"
    pass_name = "stylize"
    family = "utility"
    description = "executor tests: a slow identity that can kill its worker"
    working_space = None
    options = [
        Option("seconds", "float", 0.0, "time per frame"),
        Option("die_on", "int", 0, "the frame that kills its worker (0: none)"),
    ]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        if job.frame == ctx.options["die_on"]:
            os._exit(3)
        for step in range(1, 5):
            time.sleep(ctx.options["seconds"] / 4)
            ctx.progress(step, 4)
        return FrameResult(rgb=job.rgb)


def test_registry() -> ModelRegistry:
    """The actors' registry (shipped to them by value, see the ray_cluster fixture)."""
    return ModelRegistry([*starter_models(), WorkerProbe()])


test_registry.__test__ = False  # type: ignore[attr-defined]  # a factory, not a test


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """One local Ray with two CPUs for the whole module: starting Ray costs seconds."""
    import ray
    from ray import cloudpickle

    # The actors import shotpass from the venv, but this module is not importable there: send it by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False)
    try:
        yield
    finally:
        ray.shutdown()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


class RayServers:
    """Starts servers with the Ray executor (two CPU actors) on the module's cluster; stops what is left."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.running: List[ShotpassServer] = []

    def start(self, data_dir: Optional[Path] = None, **overrides: Any) -> ShotpassServer:
        settings = {"chunk_frames": 2, "ray_workers": 2, **overrides}
        cfg = ServerConfig(
            listen="127.0.0.1:0", data_dir=data_dir or self.tmp_path / "ray-data", executor="ray",
            ray_address="local", **settings,
        )
        srv = ShotpassServer(cfg, registry=test_registry(), worker_registry=test_registry)
        srv.start()
        self.running.append(srv)
        return srv

    def stop(self, srv: ShotpassServer, grace: float = 0.5) -> None:
        self.running.remove(srv)
        srv.stop(grace=grace)


@pytest.fixture
def ray_servers(ray_cluster: None, tmp_path: Path) -> Iterator[RayServers]:
    servers = RayServers(tmp_path)
    try:
        yield servers
    finally:
        for srv in list(servers.running):
            servers.stop(srv)


def _devices_of_frames(srv: ShotpassServer, render_id: str) -> Dict[int, str]:
    """Frame -> the worker slot that stored it (the FRAME_DONE event's body)."""
    events = srv.catalog.events_after(render_id, 0)
    return {e.body["frame"]: e.body["device"] for e in events if e.kind == "FRAME_DONE"}


def _render(client: Client, plate: str, frames: Optional[List[int]] = None, **spec: Any) -> pb.Render:
    sub = submit_render(client, RenderSpec(**spec), plate_frames(plate, frames))
    return client.wait(sub.render_id)


def _assert_same_output(a: bytes, b: bytes, frame: int) -> None:
    """Same pixels bit for bit and the same attributes, apart from the render id each server gave."""
    left, right = decode_exr(a, f"ray frame {frame}"), decode_exr(b, f"local frame {frame}")
    assert len(left.parts) == len(right.parts)
    for pl, pr in zip(left.parts, right.parts):
        assert list(pl.channels) == list(pr.channels)
        for name in pl.channels:
            assert np.array_equal(pl.channels[name], pr.channels[name]), f"frame {frame} channel {name} differs"
        skip = {"shotpass/renderId"}
        assert {k: str(v) for k, v in pl.header.items() if k not in skip} == {
            k: str(v) for k, v in pr.header.items() if k not in skip
        }


def test_two_ray_workers_render_the_shot_like_the_local_executor(ray_servers, client, beachball):
    srv = ray_servers.start()
    with Client(srv.address) as rc:
        assert list(rc.server_info().devices) == SLOTS
        # The whole shot, N in = N out, its chunks spread over both workers.
        render = _render(rc, beachball, pass_name="passthrough")
        assert render.state == pb.FINISHED, render.error
        assert [f.frame for f in render.frames] == list(range(1, 9))
        assert all(f.state == pb.FRAME_DONE and f.output_digest for f in render.frames)
        by_device = _devices_of_frames(srv, render.id)
        assert sorted(by_device) == list(range(1, 9))
        assert set(by_device.values()) == set(SLOTS), f"one worker did all the chunks: {by_device}"
        # A real model on the workers gives what the local executor gives (two frames: one per worker).
        styled = _render(rc, beachball, STYLED, pass_name="stylize", seed=7)
        assert styled.state == pb.FINISHED, styled.error
        assert set(_devices_of_frames(srv, styled.id)) == set(STYLED)
        ray_out = {f.frame: rc.download_bytes(f.output_digest) for f in styled.frames}

    local = _render(client, beachball, STYLED, pass_name="stylize", seed=7)
    assert local.state == pb.FINISHED, local.error
    assert sorted(ray_out) == [f.frame for f in local.frames] == STYLED
    for f in local.frames:
        _assert_same_output(ray_out[f.frame], client.download_bytes(f.output_digest), f.frame)


def test_killing_a_worker_mid_chunk_requeues_the_frame_and_the_render_finishes(ray_servers, beachball):
    srv = ray_servers.start(max_frame_pixels=20000 * 20000)
    executor = srv.executor
    infos = {slot: executor.info(slot) for slot in executor.slots}
    pids = {slot: info["pid"] for slot, info in infos.items()}
    # The server's header limits reach every worker process (each decodes frames on its own box).
    assert {info["max_frame_pixels"] for info in infos.values()} == {20000 * 20000}
    with Client(srv.address) as rc:
        # 2 s a frame: on a loaded box the kill still lands while the worker is on the chunk's second frame.
        spec = RenderSpec(model="test-worker-probe", options={"seconds": "2"})
        sub = submit_render(rc, spec, plate_frames(beachball, FRAMES))
        killed = ""
        for event in rc.watch(sub.render_id):
            if event.kind == pb.RenderEvent.FRAME_DONE and event.frame in (1, 3):
                # The first frame of a 2-frame chunk is stored: its worker is now on the chunk's next frame.
                killed = _devices_of_frames(srv, sub.render_id)[event.frame]
                os.kill(pids[killed], signal.SIGKILL)
                break
        render = rc.wait(sub.render_id)
        events = list(rc.watch(sub.render_id))

    assert render.state == pb.FINISHED, render.error
    assert [f.frame for f in render.frames] == FRAMES
    assert all(f.state == pb.FRAME_DONE and f.output_digest for f in render.frames)
    retried = [f.frame for f in render.frames if f.attempts == 2]
    assert len(retried) == 1, [(f.frame, f.attempts) for f in render.frames]
    warnings = [e.message for e in events if e.kind == pb.RenderEvent.WARNING]
    assert any(f"worker {killed} died while rendering frame {retried[0]} (attempt 1 of 3)" in m for m in warnings)
    assert executor.info(killed)["pid"] != pids[killed], "the dead worker's slot got no fresh actor"


def test_a_frame_that_keeps_killing_its_worker_fails_with_the_reason_and_the_server_stays_up(ray_servers, beachball):
    srv = ray_servers.start()
    with Client(srv.address) as rc:
        sub = submit_render(
            rc, RenderSpec(model="test-worker-probe", options={"die_on": "2"}), plate_frames(beachball, [1, 2, 3])
        )
        render = rc.wait(sub.render_id)
        frames = {f.frame: f for f in render.frames}
        assert render.state == pb.FAILED
        assert frames[2].state == pb.FRAME_FAILED
        assert frames[2].error.startswith("worker died 3 times while rendering frame 2: "), frames[2].error
        assert "actor died" in frames[2].error.lower()
        assert frames[2].attempts == 3
        assert "frame 2: worker died 3 times" in render.error
        for n in (1, 3):  # the other frames of the shot are rendered and kept
            assert frames[n].state == pb.FRAME_DONE and frames[n].output_digest

        # Both slots still work afterwards.
        again = _render(rc, beachball, FRAMES, pass_name="passthrough")
        assert again.state == pb.FINISHED, again.error
        assert set(_devices_of_frames(srv, again.id).values()) == set(SLOTS)


def test_a_restarted_server_resumes_a_ray_render_without_recomputing(ray_servers, tmp_path, beachball):
    data_dir = tmp_path / "resume-data"
    first = ray_servers.start(data_dir=data_dir)
    with Client(first.address) as rc:
        spec = RenderSpec(model="test-worker-probe", options=SLOW)
        sub = submit_render(rc, spec, plate_frames(beachball, [*FRAMES, 5, 6]))
        for event in rc.watch(sub.render_id):
            if event.kind == pb.RenderEvent.FRAME_DONE:
                break
    ray_servers.stop(first, grace=0.0)  # the running chunk is abandoned; finished frames stay in the catalog

    second = ray_servers.start(data_dir=data_dir)
    done_before = {
        f.frame: f.output_digest for f in second.catalog.frames(sub.render_id) if f.state == cat.F_DONE
    }
    assert 1 <= len(done_before) < 6
    with Client(second.address) as rc:
        render = rc.wait(sub.render_id)
    assert render.state == pb.FINISHED, render.error
    assert all(f.output_digest for f in render.frames)
    for f in render.frames:
        if f.frame in done_before:
            assert f.attempts == 1 and f.output_digest == done_before[f.frame], f"frame {f.frame} was recomputed"


def test_remote_frames_report_their_model_steps_as_step_events(ray_servers, beachball):
    srv = ray_servers.start(ray_workers=1, chunk_frames=2)
    with Client(srv.address) as rc:
        # 4 steps of 0.3 s per frame: the slot thread, fetching every 0.2 s, sees steps inside each frame.
        render = _render(rc, beachball, [1, 2], model="test-worker-probe", options={"seconds": "1.2"})
        assert render.state == pb.FINISHED, render.error
        events = list(rc.watch(render.id))
    steps = [(e.frame, e.step, e.total_steps) for e in events if e.kind == pb.RenderEvent.STEP]
    assert {frame for frame, _, _ in steps} == {1, 2}, steps
    assert all(total == 4 and 1 <= step <= 4 for _, step, total in steps), steps
    assert len(steps) == len(set(steps)), f"a step was reported twice: {steps}"
    assert any(step < total for _, step, total in steps), f"only final steps were seen: {steps}"
    # Each frame's steps come before its FRAME_DONE, in order.
    kinds = [(e.kind, e.frame, e.step) for e in events if e.kind in (pb.RenderEvent.STEP, pb.RenderEvent.FRAME_DONE)]
    for frame in (1, 2):
        done_at = kinds.index((pb.RenderEvent.FRAME_DONE, frame, 0))
        frame_steps = [(i, n) for i, (kind, f, n) in enumerate(kinds) if kind == pb.RenderEvent.STEP and f == frame]
        assert all(i < done_at for i, _ in frame_steps), kinds
        assert [step for _, step in frame_steps] == sorted(step for _, step in frame_steps), kinds


def test_a_device_added_at_runtime_takes_chunks_and_is_listed(tmp_path, beachball):
    cfg = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", workers=1, chunk_frames=2)
    srv = ShotpassServer(cfg, registry=test_registry())
    srv.start()
    try:
        assert srv.manager.scheduler.add_device("cpu:1")
        assert not srv.manager.scheduler.add_device("cpu:1"), "a device was added twice"
        with Client(srv.address) as rc:
            assert list(rc.server_info().devices) == ["cpu", "cpu:1"]
            # Two 2-frame chunks of 0.4 s frames: the first worker is busy with one when the other is handed out.
            render = _render(rc, beachball, FRAMES, model="test-worker-probe", options={"seconds": "0.4"})
            assert render.state == pb.FINISHED, render.error
        assert set(_devices_of_frames(srv, render.id).values()) == {"cpu", "cpu:1"}
    finally:
        srv.stop(grace=0.5)
    assert not srv.manager.scheduler.add_device("cpu:2"), "a stopped scheduler took a new worker"


@pytest.mark.parametrize(
    ("cluster_gpus", "gpu_slots", "added"),
    [(0, 0, 0), (2, 2, 0), (3, 2, 1), (8, 2, 6), (1, 2, 0), (4, 0, 4)],
)
def test_a_rescan_adds_one_slot_per_gpu_that_has_none(cluster_gpus, gpu_slots, added):
    # (1, 2): a box left; its slots stay (their fresh actors wait for a GPU). (4, 0): GPUs joined a CPU cluster.
    assert gpu_slots_to_add(cluster_gpus, gpu_slots) == added


def test_a_slot_added_to_a_running_ray_server_gets_chunks(ray_servers, beachball):
    srv = ray_servers.start(ray_workers=1)  # one CPU actor: the module's cluster has room for one more
    executor = srv.executor
    assert executor.rescan() == [], "a rescan of a cluster without GPUs added workers"
    assert srv.devices == ["ray:0"]
    # What a rescan does for each new GPU, here with a CPU actor (the test cluster has no GPUs).
    assert executor.add_slot(gpu=False) == "ray:1"
    assert executor.gpu_slots() == 0
    with Client(srv.address) as rc:
        assert list(rc.server_info().devices) == SLOTS
        render = _render(rc, beachball, FRAMES, model="test-worker-probe", options={"seconds": "0.4"})
        assert render.state == pb.FINISHED, render.error
    assert set(_devices_of_frames(srv, render.id).values()) == set(SLOTS)


def test_executor_settings_come_from_the_config_file_and_bad_ones_are_named(tmp_path):
    good = tmp_path / "ray.toml"
    good.write_text(
        '[server]\nexecutor = "ray"\nray_address = "auto"\nray_workers = 3\nmax_frame_attempts = 5\nray_rescan_s = 20\n'
    )
    cfg = load_config(good)
    assert (cfg.executor, cfg.ray_address, cfg.ray_workers, cfg.max_frame_attempts) == ("ray", "auto", 3, 5)
    assert cfg.ray_rescan_s == 20.0
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nexecutor = "slurm"\n')
    with pytest.raises(InvalidInput, match=r"bad\.toml: \[server\]: executor 'slurm' is not one of local, ray"):
        load_config(bad)
    bad.write_text('[server]\nray_rescan_s = -1\n')
    with pytest.raises(InvalidInput, match=r"bad\.toml: \[server\]: ray_rescan_s must be 0 \(never\)"):
        load_config(bad)
