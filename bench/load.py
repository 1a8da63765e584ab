"""Load test: N concurrent clients, each submitting renders and asking for a preview every second meanwhile.

    .venv/bin/python bench/load.py [--clients 8] [--renders 3] [--frames 4] [--pass stylize]
                                   [--size 320x240] [--address HOST:PORT] [--beachball]
                                   [--workers 1] [--preview-limit 120]

Without --address it starts `shotpass serve` on a free loopback port with a fresh data dir (and its
Prometheus endpoint, read at the end). Every client has its own plate (generated noise and gradients,
or the Beachball frames with --beachball), uploads it, submits its renders, then previews one frame
about every second until its renders are final. At the end every render must be FINISHED with one
output per input frame, fetched and present on disk: anything else is counted as lost.

Prints completed renders, frames/s, p50/p95 preview latency while renders ran, and errors by code.
Exit code 1 when a render was lost or any request failed.

    .venv/bin/python bench/load.py --scale [--long-frames 10000] [--short-frames 200] [--streams 64]

--scale measures instead what a long render and many idle watchers cost (one run, one server):
  * the per-frame rate of a --short-frames render and of a --long-frames render of one tiny EXR
    (passthrough), from each render's own start and finish times; the target is long/short >= 0.8
    (the long render runs within 1.25x the per-frame time of the short one);
  * while the long render runs, --streams idle WatchRender streams (on a render queued behind it) stay
    open, and health checks and GetServerInfo are timed: the target is every answer in < 1 s.
"""

from __future__ import annotations

import os

os.environ.setdefault("SHOTPASS_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import collections  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Dict, List, Optional, Tuple  # noqa: E402

BEACHBALL = Path(__file__).resolve().parents[1].parent / "shared/data/exr/openexr-images/Beachball"
PREVIEW_EVERY_S = 1.0


@dataclass
class ClientResult:
    renders: List[str] = field(default_factory=list)
    finished: int = 0
    lost: List[str] = field(default_factory=list)  # render id: why
    preview_latency: List[float] = field(default_factory=list)
    errors: collections.Counter = field(default_factory=collections.Counter)
    messages: Dict[str, str] = field(default_factory=dict)  # error code -> its first message
    previews_cut: bool = False  # renders were still running at --preview-limit


def write_plate(folder: Path, frames: int, size: Tuple[int, int], seed: int, beachball: bool) -> Dict[int, str]:
    """One plate per client: its own pixels, so every client really uploads."""
    folder.mkdir(parents=True)
    if beachball:
        files = sorted(BEACHBALL.glob("singlepart.*.exr"))[:frames]
        if len(files) < frames:
            sys.exit(f"--beachball: {BEACHBALL} has {len(files)} frames, {frames} wanted")
        plate = {}
        for i, src in enumerate(files):
            (folder / src.name).symlink_to(src)
            plate[i + 1] = str(folder / src.name)
        return plate
    import numpy as np
    import OpenEXR

    w, h = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    plate = {}
    for f in range(1, frames + 1):
        rgb = np.stack([xx / w, yy / h, np.full((h, w), 0.5 * (1 + np.sin(f + seed)))], axis=-1)
        rgb = rgb + rng.normal(0, 0.03, rgb.shape)
        rgba = np.dstack([rgb, np.ones((h, w))]).astype(np.float16)
        path = folder / f"plate.{f:04d}.exr"
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGBA": rgba}).write(str(path))
        plate[f] = str(path)
    return plate


def run_client(index: int, address: str, args: argparse.Namespace, work: Path, result: ClientResult,
               preview_until: float) -> None:
    from shotpass_client import Client, ClientError
    from shotpass_client.client import FINAL_STATES
    from shotpass_client.jobs import RenderSpec, fetch_outputs, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    def failed(err: Exception) -> None:
        code = getattr(err, "code", type(err).__name__)
        result.errors[code] += 1
        result.messages.setdefault(code, str(err))

    plate = write_plate(work / f"client{index}" / "plate", args.frames, args.size, index, args.beachball)
    spec = RenderSpec(project="load", shot=f"sh{index:03d}", pass_name=args.pass_name)
    try:
        with Client(address, connect_timeout=30) as client:
            for r in range(args.renders):
                spec.seed = 1 + r
                try:
                    result.renders.append(submit_render(client, spec, plate).render_id)
                except ClientError as err:
                    failed(err)
            pending = set(result.renders)
            preview_frame = 0
            while pending and time.monotonic() < preview_until:
                started = time.perf_counter()
                frame = sorted(plate)[preview_frame % len(plate)]
                preview_frame += 1
                try:
                    answer = submit_render(client, spec, {frame: plate[frame]}, preview=True)
                    if answer.render.state == pb.FINISHED:
                        result.preview_latency.append(time.perf_counter() - started)
                    else:
                        result.errors[f"preview {pb.RenderState.Name(answer.render.state)}"] += 1
                except ClientError as err:
                    failed(err)
                for rid in list(pending):
                    try:
                        if client.get_render(rid).state in FINAL_STATES:
                            pending.discard(rid)
                    except ClientError as err:
                        failed(err)
                time.sleep(max(0.0, PREVIEW_EVERY_S - (time.perf_counter() - started)))
            result.previews_cut = bool(pending)
            for rid in result.renders:
                render = client.wait(rid)  # returns at once for a final render
                if render.state != pb.FINISHED:
                    result.lost.append(f"{rid}: {pb.RenderState.Name(render.state)} {render.error}")
                    continue
                out = fetch_outputs(client, render, str(work / f"client{index}" / rid))
                on_disk = [f for f, p in out.items() if os.path.getsize(p) > 0]
                if sorted(on_disk) != sorted(plate):
                    result.lost.append(f"{rid}: {len(on_disk)} of {len(plate)} outputs")
                    continue
                result.finished += 1
    except ClientError as err:
        failed(err)


def start_server(data: Path, workers: int) -> Tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data),
         "--metrics-listen", "127.0.0.1:0", "--workers", str(workers)],
        stdout=subprocess.PIPE, stderr=(data.parent / "server.log").open("wb"), text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    serving, metrics = proc.stdout.readline(), proc.stdout.readline()  # type: ignore[union-attr]
    if "serving on" not in serving:
        proc.kill()
        sys.exit(f"the server did not start; see {data.parent / 'server.log'}")
    return proc, serving.split("serving on ")[1].split()[0], metrics.split("http://")[1].split("/metrics")[0]


def server_counts(metrics_address: str) -> Dict[str, float]:
    """Server-side totals from its /metrics: frames finished and failed, RPCs by status code."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    out: Dict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in ("shotpass_frames_finished_total", "shotpass_frames_failed_total"):
                out[s.name] += s.value
            elif s.name == "shotpass_rpcs_total" and s.labels["code"] != "OK":
                out[f"rpc {s.labels['method']} {s.labels['code']}"] += s.value
    return out


TINY = BEACHBALL.parents[1] / "openexr" / "test.exr"  # 10x20 float RGB


def run_scale(args: argparse.Namespace, address: str) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from shotpass_client import Client
    from shotpass_client.proto import shotpass_pb2 as pb

    def submit(client: Client, digest: str, count: int, shot: str) -> str:
        frames = [pb.FrameInput(frame=f, digest=digest, name=f"tiny.{f:05d}.exr") for f in range(1, count + 1)]
        return client.submit(pb.SubmitRenderRequest(shot=shot, settings=pb.RenderSettings(pass_name="passthrough"),
                                                    frames=frames)).render_id

    def rate(client: Client, render_id: str) -> float:
        # Polled, not watched: a watcher streaming 20 000 events competes for the same two cores, and only
        # the server's own per-frame cost is measured here (watch costs are the streams' part of the bench).
        while client.render_state(render_id).state not in (pb.FINISHED, pb.FAILED, pb.CANCELLED):
            time.sleep(0.2)
        r = client.render_state(render_id)
        if r.state != pb.FINISHED or r.frames_done != r.frames_total:
            sys.exit(f"render {render_id} ended {pb.RenderState.Name(r.state)}: {r.error}")
        return r.frames_total / (r.finished_at - r.started_at)

    with Client(address, connect_timeout=30) as client, grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        digest = client.upload_bytes(TINY.read_bytes())
        rate(client, submit(client, digest, 50, "warm-up"))  # the first render pays for loading: not measured
        # A short render lasts about a second, so one is at the mercy of a busy machine: the median of three
        # before the long render and three after it.
        shorts = [rate(client, submit(client, digest, args.short_frames, "short")) for _ in range(3)]
        long_id = submit(client, digest, args.long_frames, "long")
        waiting = submit(client, digest, 1, "waiting")  # queued behind the long render: its watchers sit idle
        streams = [client.watch(waiting) for _ in range(args.streams)]
        for stream in streams:
            next(stream)  # open: its first event (QUEUED) arrived
        latencies: List[float] = []
        for _ in range(20):
            started = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            client.server_info()
            latencies.append(time.perf_counter() - started)
            time.sleep(0.1)
        for stream in streams:
            stream.close()
        time.sleep(0.5)  # the server frees the closed streams (rate() needs one more)
        long_rate = rate(client, long_id)
        shorts += [rate(client, submit(client, digest, args.short_frames, "short")) for _ in range(3)]
    short_rate = statistics.median(shorts)
    worst = max(latencies)
    print(f"server: {address}  passthrough of a 10x20 EXR, {args.short_frames} vs {args.long_frames} frames")
    print(f"short renders: {', '.join(f'{r:.0f}' for r in shorts)} frames/s (median {short_rate:.1f})")
    print(f"per-frame rate: {args.short_frames} frames {short_rate:.1f} frames/s, {args.long_frames} frames "
          f"{long_rate:.1f} frames/s; ratio long/short {long_rate / short_rate:.2f} (target >= 0.80)")
    print(f"{args.streams} idle watch streams open: health + GetServerInfo p50 "
          f"{statistics.median(latencies) * 1000:.1f} ms, max {worst * 1000:.1f} ms (target < 1000 ms)")
    return 0 if worst < 1.0 and long_rate / short_rate >= 0.8 else 1


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--renders", type=int, default=3, help="renders per client")
    p.add_argument("--frames", type=int, default=4, help="frames per render")
    p.add_argument("--pass", dest="pass_name", default="stylize", help="starter pass (default stylize)")
    p.add_argument("--size", default="320x240", help="generated frame size WxH")
    p.add_argument("--beachball", action="store_true", help="use the Beachball frames instead of generated ones")
    p.add_argument("--address", help="use this running server instead of starting one")
    p.add_argument("--workers", type=int, default=1, help="CPU workers of the server it starts (default 1)")
    p.add_argument("--preview-limit", type=float, default=120.0, metavar="S",
                   help="stop previewing after S seconds and only wait for the renders (default 120): previews "
                        "always go first, so a preview load above the server's capacity holds renders back")
    p.add_argument("--scale", action="store_true", help="measure long renders and idle watchers instead (see above)")
    p.add_argument("--long-frames", type=int, default=10_000)
    p.add_argument("--short-frames", type=int, default=200)
    p.add_argument("--streams", type=int, default=64)
    args = p.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.scale:
        with tempfile.TemporaryDirectory(prefix="shotpass-scale-") as tmp:
            proc, address = None, args.address
            if not address:
                proc, address, _ = start_server(Path(tmp) / "server-data", args.workers)
            try:
                return run_scale(args, address)
            finally:
                if proc is not None:
                    proc.terminate()
                    proc.wait(30)

    with tempfile.TemporaryDirectory(prefix="shotpass-load-") as tmp:
        work = Path(tmp)
        proc, metrics_address = None, ""
        address = args.address
        if not address:
            proc, address, metrics_address = start_server(work / "server-data", args.workers)
        results = [ClientResult() for _ in range(args.clients)]
        preview_until = time.monotonic() + args.preview_limit
        threads = [threading.Thread(target=run_client, args=(i, address, args, work, results[i], preview_until),
                                    daemon=True) for i in range(args.clients)]
        started = time.perf_counter()
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            counts = server_counts(metrics_address) if metrics_address else {}
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(30)

    wanted = args.clients * args.renders
    finished = sum(r.finished for r in results)
    latencies = sorted(x for r in results for x in r.preview_latency)
    errors: collections.Counter = sum((r.errors for r in results), collections.Counter())
    lost = [x for r in results for x in r.lost]
    unsubmitted = sum(args.renders - len(r.renders) for r in results)
    lost += [f"{unsubmitted} render(s) never submitted"] if unsubmitted else []
    source = "Beachball" if args.beachball else f"generated {args.size[0]}x{args.size[1]}"
    print(f"server: {address}  clients: {args.clients} x {args.renders} renders of {args.frames} frames "
          f"({args.pass_name}, {source})")
    print(f"completed renders: {finished}/{wanted} in {wall:.1f} s "
          f"({finished * args.frames / wall:.2f} render frames/s)")
    if latencies:
        q = statistics.quantiles(latencies, n=20, method="inclusive") if len(latencies) > 1 else latencies * 19
        print(f"previews while rendering: {len(latencies)}  latency p50 {statistics.median(latencies):.2f} s  "
              f"p95 {q[18]:.2f} s  max {latencies[-1]:.2f} s")
    cut = sum(r.previews_cut for r in results)
    if cut:
        print(f"previews stopped at --preview-limit {args.preview_limit:g} s for {cut} client(s) whose renders were "
              "still waiting: the preview load exceeded what the server's workers render, and previews go first")
    print(f"errors: {sum(errors.values())}" + (f" ({dict(errors)})" if errors else ""))
    for code, message in {k: v for r in results for k, v in r.messages.items()}.items():
        print(f"  {code}: {message}")
    print(f"lost: {len(lost)}" + ("".join(f"\n  {x}" for x in lost) if lost else " (every render FINISHED with "
                                                                         f"{args.frames} outputs fetched)"))
    if counts:
        print("server metrics: " + ", ".join(f"{k} {v:g}" for k, v in sorted(counts.items())))
    return 1 if lost or errors else 0


if __name__ == "__main__":
    sys.exit(main())
