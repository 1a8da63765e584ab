"""Pipelined vs sequential worker with a fast model: does the device wait for the codec?

    .venv/bin/python bench/pipeline.py [--frames 12] [--model-ms 40] [--reps 3] [--depth 2]

Both sides run the server's own stages on the same generated 1920x1080 half-float ZIP frames and store
each output in a real BlobStore (blake3 digest, fsync), as a worker does:
  sequential: for each frame  read -> decode + colour in -> model -> colour out + encode -> store
  pipelined:  the same stages with pipelined.run_pipelined (decode ahead and encode behind on threads)
The model stands for one on a GPU: its compute is short next to the CPU codec and does not use the CPU
(it waits `--model-ms` with the GIL released, as a CUDA sync does), then scales the pixels. Colour goes
ACEScg -> sRGB-texture and back, as for the starter models. The headline is sequential/pipelined wall time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import generated_frames  # noqa: E402

from shotpass_client import digests  # noqa: E402
from shotpass_server.blobs import BlobStore  # noqa: E402
from shotpass_server.frame_pipeline import (  # noqa: E402
    FrameRequest,
    codec_threads,
    finish_frame,
    prepare_frame,
    process_frame,
    run_frame,
)
from shotpass_server.frames.colour import ColourSpaces  # noqa: E402
from shotpass_server.passes.base import FrameJob, FrameResult, Model, PassContext  # noqa: E402
from shotpass_server.pipelined import run_pipelined  # noqa: E402


class FastModel(Model):
    name = "bench-fast"
    pass_name = "stylize"
    family = "utility"
    description = "a GPU-like model: a short wait that uses no CPU, then a cheap pixel change"
    working_space = "sRGB Encoded Rec.709 (sRGB)"
    options = []
    seconds = 0.04

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        time.sleep(self.seconds)
        return FrameResult(rgb=job.rgb * 0.9, alpha=job.alpha)


def request(frame: int, data: bytes) -> FrameRequest:
    return FrameRequest(render_id="bench", frame=frame, data=data, source_name=f"frame {frame}",
                        source_digest="", seed=1, options={}, colour_space="ACEScg")


def timed(fn: Callable[[], object], cores: list) -> float:
    """Wall seconds of fn(); appends the CPU cores it kept busy on average (process CPU time / wall time)."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    wall = time.perf_counter() - start
    cores.append((time.process_time() - cpu) / wall)
    return wall


def gil_share(work: Callable[[], object], seconds: float = 1.0) -> float:
    """How fast a pure-Python counting thread runs while `work` runs, relative to it running alone:
    near 1.0 means `work` released the GIL (on a machine with a free core), near 0.5 or below that it held it."""
    import threading

    def spin(stop: threading.Event, out: list) -> None:
        n = 0
        while not stop.is_set():
            n += 1
        out.append(n)

    def rate(during: Callable[[], object]) -> float:
        stop, out = threading.Event(), []
        thread = threading.Thread(target=spin, args=(stop, out))
        start = time.perf_counter()
        thread.start()
        during()
        stop.set()
        thread.join()
        return out[0] / (time.perf_counter() - start)

    alone = rate(lambda: time.sleep(seconds))
    return rate(work) / alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--model-ms", type=float, default=40.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()

    frames: Dict[int, bytes] = generated_frames(args.frames)
    model = FastModel()
    model.seconds = args.model_ms / 1000
    colours = ColourSpaces()
    if model.working_space not in colours.names():
        model.working_space = None
    noop = lambda step, total: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        store = BlobStore(Path(tmp) / "blobs")
        blobs = {f: store.put(d, digests.BLAKE3) for f, d in frames.items()}

        def sequential() -> None:
            for f in frames:
                store.put(run_frame(request(f, store.get(blobs[f])), model, colours, noop), digests.BLAKE3)

        def pipelined() -> None:
            run_pipelined(
                list(frames),
                lambda f: prepare_frame(request(f, store.get(blobs[f])), model, colours, noop),
                lambda fs, staged: [(s, process_frame(s, model, colours)) for s in staged],
                lambda f, done: store.put(finish_frame(done[0], done[1], model, colours), digests.BLAKE3),
                args.depth,
            )

        sequential(), pipelined()  # warm up (OCIO processors, allocator)
        def decode_all() -> list:
            return [prepare_frame(request(f, d), model, colours, noop) for f, d in frames.items()]

        done = [(staged, process_frame(staged, model, colours)) for staged in decode_all()]
        decode_share = gil_share(decode_all)
        encode_share = gil_share(lambda: [finish_frame(staged, out, model, colours) for staged, out in done])
        seq, pipe, seq_cores, pipe_cores = [], [], [], []
        for _ in range(args.reps):
            seq.append(timed(sequential, seq_cores))
            pipe.append(timed(pipelined, pipe_cores))
        s, p = statistics.median(seq), statistics.median(pipe)
    n = args.frames
    load = os.getloadavg()
    print(f"{n} generated 1920x1080 half ZIP frames, model {args.model_ms:.0f} ms/frame (no CPU), "
          f"colour ACEScg <-> {model.working_space or 'none'}, median of {args.reps}; OpenEXR threads "
          f"{codec_threads()}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    print(f"  sequential worker:  {s:6.2f} s  ({s / n * 1000:5.0f} ms/frame, "
          f"{statistics.median(seq_cores):.2f} cores busy)")
    print(f"  pipelined worker:   {p:6.2f} s  ({p / n * 1000:5.0f} ms/frame, depth {args.depth}, "
          f"{statistics.median(pipe_cores):.2f} cores busy)")
    print(f"  model alone:        {n * model.seconds:6.2f} s  ({model.seconds * 1000:5.0f} ms/frame)")
    print(f"  speed-up pipelined/sequential: {s / p:.2f}x")
    print(f"GIL: a pure-Python thread ran at {decode_share:.2f} of its own speed during decode + colour in, "
          f"{encode_share:.2f} during colour out + encode (1.0: the GIL was released throughout)")


if __name__ == "__main__":
    main()
