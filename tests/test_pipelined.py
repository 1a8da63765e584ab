"""Pipelined workers: the codec overlapped with the model changes no bit, no cancel and no failure."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from web_fixtures import tiny_plate

from shotpass_server.passes.base import FrameJob, FrameResult, Model, PassContext

FRAMES = range(1, 7)
HELD_FROM = 3  # the gated model holds frames from this one on until the render is cancelled


class HoldLater(Model):
    """Test model: frames before HELD_FROM pass unchanged; later ones wait (cancellably) for the test."""

    name = "test-hold-later"
    pass_name = "stylize"
    family = "utility"
    description = "pipelined-worker tests: holds a frame mid-chunk"
    working_space = None
    options = []
    release = threading.Event()
    fail_on = 0  # a frame the model raises on

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        if job.frame == self.fail_on:
            raise RuntimeError(f"frame {job.frame} refused")
        while job.frame >= HELD_FROM and not self.release.wait(0.02):
            ctx.progress(0, 1)  # raises RenderCancelled once the render is cancelled
        return FrameResult(rgb=job.rgb, alpha=job.alpha)


@pytest.fixture
def pipelined_server(tmp_path: Path) -> Iterator[Any]:
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig
    from shotpass_server.passes.registry import ModelRegistry, starter_models

    cfg = ServerConfig(listen="127.0.0.1:0", data_dir=tmp_path / "data", chunk_frames=len(FRAMES), pipeline_depth=2)
    srv = ShotpassServer(cfg, registry=ModelRegistry([*starter_models(), HoldLater()]))
    HoldLater.release.clear()
    HoldLater.fail_on = 0
    srv.start()
    try:
        yield srv
    finally:
        HoldLater.release.set()
        srv.stop(grace=0.5)


def outputs(client: Any, render_id: str) -> Dict[int, bytes]:
    from shotpass_client.client import outputs_by_frame

    render = client.wait(render_id)
    assert render.state == 3, render.error  # FINISHED
    return {f: client.download_bytes(d) for f, d in outputs_by_frame(render).items()}


# Stylize is temporal (flow) by default. Temporal frames are pipelined too: decoded ahead, the model in plan order,
# and the blend with (or propagation from) their neighbours' stored outputs in the store stage, once the frames
# before them are stored. Per-frame schedules resolve in the loader as they do one frame at a time.
@pytest.mark.parametrize("options,by_frame", [
    ({"temporal": "off"}, {}),
    ({"temporal": "flow"}, {}),
    ({"temporal": "keyframes", "keyframe_every": "3"}, {}),
    ({"temporal": "keyframes", "keyframe_every": "3", "keyframe_refine": "flow"}, {}),
    ({"temporal": "off"}, {"style": {1: "2", 6: "9"}}),
], ids=["per-frame", "temporal-flow", "temporal-keyframes", "temporal-keyframes-refined", "per-frame-schedule"])
def test_pipelined_output_is_bit_identical_to_sequential(
    pipelined_server, tmp_path: Path, options: Dict[str, str], by_frame: Dict[str, Dict[int, str]]
) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render

    plate = plate_frames(tiny_plate(tmp_path / "plate", FRAMES))
    # A starter model with a working space other than the plate's: colour in and out run on the side threads.
    spec = RenderSpec(model="styletransfer-preset", seed=7, colour_space="ACEScg", options=options,
                      options_by_frame=by_frame)
    manager = pipelined_server.manager
    finished_late: list = []  # temporal frames whose blend or propagation ran in the pipelined store stage
    real_finish = manager._finish_temporal
    manager._finish_temporal = lambda render, staged, *rest: (finished_late.append(staged.req.frame),
                                                              real_finish(render, staged, *rest))[1]
    with Client(pipelined_server.address) as client:
        runs = {}
        for depth in (0, 2):
            manager.pipeline_depth = depth
            render_id = submit_render(client, spec, plate).render_id
            runs[depth] = (render_id, outputs(client, render_id))
            if depth == 0:
                assert finished_late == []
    assert sorted(finished_late) == (list(FRAMES) if options["temporal"] != "off" else [])
    (seq_id, sequential), (pipe_id, pipelined) = runs[0], runs[2]
    assert sorted(sequential) == sorted(pipelined) == list(FRAMES)
    assert len(seq_id) == len(pipe_id)
    for frame in FRAMES:
        # The render id in each file's provenance is the only difference allowed, byte for byte.
        assert seq_id.encode() in sequential[frame]
        assert sequential[frame].replace(seq_id.encode(), pipe_id.encode()) == pipelined[frame], f"frame {frame}"
        # The temporal hook ran where asked (its provenance is in the file), and only there.
        assert (b"shotpass/temporal" in pipelined[frame]) == (options["temporal"] != "off"), f"frame {frame}"


def test_a_cancel_mid_chunk_records_no_partial_frame(pipelined_server, tmp_path: Path) -> None:
    from shotpass_client import Client, digests
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb
    from shotpass_server.frames.exr import decode_exr

    plate = plate_frames(tiny_plate(tmp_path / "plate", FRAMES))
    with Client(pipelined_server.address) as client:
        render_id = submit_render(client, RenderSpec(model="test-hold-later"), plate).render_id
        for event in client.watch(render_id):
            if event.kind == pb.RenderEvent.FRAME_DONE and event.frames_done == HELD_FROM - 1:
                break
        time.sleep(0.2)  # frame HELD_FROM is in the model, the next ones decoded ahead
        client.cancel(render_id)
        render = client.wait(render_id)
        assert render.state == pb.CANCELLED
        frames = {f.frame: f for f in render.frames}
        done = sorted(f for f, row in frames.items() if row.output_digest)
        assert done == list(range(1, HELD_FROM)), "only frames the model finished are recorded"
        for frame in FRAMES:
            row = frames[frame]
            assert row.state != pb.FRAME_RUNNING, f"frame {frame} left running"
            if frame in done:
                assert row.state == pb.FRAME_DONE
                data = client.download_bytes(row.output_digest)
                assert digests.of_bytes(data, digests.algorithm_of(row.output_digest)) == row.output_digest
                decode_exr(data, f"frame {frame}")  # whole, readable
            else:
                assert row.state != pb.FRAME_DONE and not row.output_digest
        # Nothing else was stored: the plate and exactly the recorded outputs.
        stored = {d for d, _, _ in pipelined_server.blobs.blobs()}
        inputs = {f.input_digest for f in render.frames}
        assert stored == inputs | {frames[f].output_digest for f in done}


def test_a_frame_the_model_fails_fails_alone(pipelined_server, tmp_path: Path) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    HoldLater.release.set()
    HoldLater.fail_on = 4
    plate = plate_frames(tiny_plate(tmp_path / "plate", FRAMES))
    with Client(pipelined_server.address) as client:
        render = client.wait(submit_render(client, RenderSpec(model="test-hold-later"), plate).render_id)
    states = {f.frame: f.state for f in render.frames}
    assert states == {**{f: pb.FRAME_DONE for f in FRAMES}, 4: pb.FRAME_FAILED}
    failed = next(f for f in render.frames if f.frame == 4)
    assert "internal error in test-hold-later: frame 4 refused" in failed.error


def test_the_stages_overlap_keep_order_and_pass_errors_on() -> None:
    from shotpass_server.errors import RenderCancelled
    from shotpass_server.pipelined import LoadFailed, run_pipelined

    stored, computing = [], []

    def load(frame: int) -> int:
        if frame == 3:
            raise ValueError("frame 3 unreadable")
        return frame * 10

    def compute(frames: list, loaded: list) -> list:
        assert len(frames) == 1, "no batch key: one frame at a time"
        computing.append(frames[0])
        return [None if isinstance(loaded[0], LoadFailed) else loaded[0]]

    run_pipelined(range(1, 7), load, compute, lambda frame, value: stored.append((frame, value)), depth=2)
    assert computing == [1, 2, 3, 4, 5, 6] and stored == [(f, f * 10) for f in (1, 2, 4, 5, 6)]

    # A cancel in the model: what was computed before it is stored, nothing after it is, the cancel goes on.
    stored.clear()

    def cancel_at_4(frames: list, loaded: list) -> list:
        if frames == [4]:
            raise RenderCancelled("cancelled")
        return loaded

    with pytest.raises(RenderCancelled):
        run_pipelined(range(1, 9), lambda f: f, cancel_at_4, lambda f, v: stored.append(f), depth=2)
    assert stored == [1, 2, 3]

    # A store that breaks stops the run with its error (no hang waiting for frames that never come).
    def broken_store(frame: int, value: object) -> None:
        raise OSError("catalog gone")

    started = time.monotonic()
    with pytest.raises(OSError, match="catalog gone"):
        run_pipelined(range(1, 50), lambda f: f, lambda f, v: v, broken_store, depth=2)
    assert time.monotonic() - started < 30


def test_batches_take_consecutive_frames_with_one_key_up_to_the_batch_size() -> None:
    from shotpass_server.errors import RenderCancelled
    from shotpass_server.pipelined import LoadFailed, run_pipelined

    batches, stored = [], []

    def load(frame: int) -> int:
        if frame == 7:
            raise ValueError("frame 7 unreadable")
        return frame

    def compute(frames: list, loaded: list) -> list:
        batches.append(list(frames))
        return [None if isinstance(v, LoadFailed) else v * 10 for v in loaded]

    # Keys: frames 1-5 and 9-12 share one, frame 6 has its own, frame 8 none (alone); 7 fails to load.
    def key(frame: int, loaded: object) -> object:
        return None if frame == 8 else ("b" if frame == 6 else "a")

    run_pipelined(range(1, 13), load, compute, lambda f, v: stored.append((f, v)), depth=2, batch=3, batch_key=key)
    assert batches == [[1, 2, 3], [4, 5], [6], [7], [8], [9, 10, 11], [12]]
    assert stored == [(f, f * 10) for f in range(1, 13) if f != 7]

    # A cancel in a batch: the batches before it are stored whole, nothing of it or after it.
    stored.clear()

    def cancel_second(frames: list, loaded: list) -> list:
        if 4 in frames:
            raise RenderCancelled("cancelled")
        return loaded

    with pytest.raises(RenderCancelled):
        run_pipelined(range(1, 10), lambda f: f, cancel_second, lambda f, v: stored.append(f), batch=3,
                      batch_key=lambda f, v: "same")
    assert stored == [1, 2, 3]


def test_the_codec_thread_pool_changes_no_byte(tmp_path: Path) -> None:
    import OpenEXR

    from shotpass_server.frame_pipeline import codec_threads
    from shotpass_server.frames.exr import decode_exr, encode_exr

    plate = Path(tiny_plate(tmp_path / "plate", range(1, 2), size=(640, 360)).replace("####", "0001"))
    data = plate.read_bytes()
    assert OpenEXR.global_thread_count() == codec_threads() >= 1  # set when the frame pipeline loads
    written = {}
    try:
        for threads in (0, 2):
            OpenEXR.set_global_thread_count(threads)
            written[threads] = encode_exr(decode_exr(data, plate.name))
    finally:
        OpenEXR.set_global_thread_count(codec_threads())
    assert written[0] == written[2]
