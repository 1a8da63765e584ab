"""Scale-out: the same shot through the Ray executor with 1 worker, then with 2, and the speed-up.

    .venv/bin/python bench/scale.py [--frames 8] [--reps 2] [--threads 1] [--model styletransfer-preset]

One local Ray cluster (two CPUs: one per worker) serves both runs. For each worker count the real
server starts in this process with `executor = "ray"`, the real client uploads the Beachball plate and a
warm-up render loads the model in every worker; then the shot is rendered `--reps` times and the median
wall time, from SubmitRender to the render's FINISHED, gives frames/s. Chunks are one frame each, so two
workers can share even a short shot. `--threads` pins each worker's model threads (SHOTPASS_THREADS):
with 1, two workers on a 2-core box can ideally reach 2x. Prints frames/s for both and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

BEACHBALL = Path(__file__).resolve().parents[1].parent / "shared/data/exr/openexr-images/Beachball"


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=8, help="frames of the Beachball plate (at most 8)")
    ap.add_argument("--reps", type=int, default=2, help="timed renders per worker count (median)")
    ap.add_argument("--threads", type=int, default=1, help="model threads per worker (SHOTPASS_THREADS)")
    ap.add_argument("--model", default="styletransfer-preset", help="a starter model (default: stylize)")
    args = ap.parse_args(argv)
    # Before Ray starts: the workers inherit these.
    os.environ["SHOTPASS_THREADS"] = os.environ["OMP_NUM_THREADS"] = str(args.threads)

    plate = sorted(BEACHBALL.glob("singlepart.*.exr"))[: args.frames]
    if len(plate) < args.frames or not plate:
        print(f"scale: needs {args.frames} Beachball frames in {BEACHBALL}", file=sys.stderr)
        return 2
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rates = {workers: frames_per_second(workers, plate, args.model, args.reps) for workers in (1, 2)}
    finally:
        ray.shutdown()
    for workers, rate in rates.items():
        print(f"{workers} worker{'s' if workers > 1 else ''}: {rate:.2f} frames/s")
    print(f"speed-up 2 vs 1: {rates[2] / rates[1]:.2f}x  ({len(plate)} frames of {plate[0].parent.name}, "
          f"{args.model}, {args.threads} thread(s) per worker, {os.cpu_count()} cores on this box)")
    return 0


def frames_per_second(workers: int, plate: List[Path], model: str, reps: int) -> float:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    frames: Dict[int, str] = {i + 1: str(p) for i, p in enumerate(plate)}
    spec = RenderSpec(model=model, seed=1)
    with tempfile.TemporaryDirectory(prefix="shotpass-scale-") as tmp:
        cfg = ServerConfig(listen="127.0.0.1:0", data_dir=Path(tmp), chunk_frames=1, executor="ray",
                           ray_address="local", ray_workers=workers)
        server = ShotpassServer(cfg)
        server.start()
        try:
            with Client(server.address) as client:
                # Warm-up: uploads the plate and loads the model in each worker (one frame per worker).
                warm = submit_render(client, spec, {f: frames[f] for f in list(frames)[:workers]})
                _wait_finished(client, warm.render_id)
                times = []
                for _ in range(reps):
                    started = time.perf_counter()
                    sub = submit_render(client, spec, frames)  # nothing is uploaded again: only the submit
                    _wait_finished(client, sub.render_id)
                    times.append(time.perf_counter() - started)
        finally:
            server.stop()
    return len(frames) / statistics.median(times)


def _wait_finished(client: Any, render_id: str) -> None:
    from shotpass_client.proto import shotpass_pb2 as pb

    render = client.wait(render_id)
    if render.state != pb.FINISHED:
        raise SystemExit(f"scale: render {render_id} ended {pb.RenderState.Name(render.state)}: {render.error}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
