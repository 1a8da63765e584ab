"""What the server adds around a pass: a shot through shotpass vs the same pass in a bare loop.

    .venv/bin/python bench/overhead.py [--frames 8] [--reps 3] [--style 11]

Server side: `shotpass serve` in its own process; here the real client uploads the plate, submits a
styletransfer-preset render, watches it and fetches the outputs. Bare side, in this process: read
file -> run_frame (decode, colour in, model, colour out, encode) -> write file, nothing else. Both
are warmed up (model loaded) first, both run with SHOTPASS_THREADS=2, and each repetition uses fresh
copies of the plate (a header attribute differs) so the server really uploads them. The headline is
the ratio server/bare of the median wall times (1.0 = no overhead).
"""

from __future__ import annotations

import os

# Pin model threads before anything loads onnxruntime; the server process inherits these.
os.environ.setdefault("SHOTPASS_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Dict, List, Tuple  # noqa: E402

BEACHBALL = Path(__file__).resolve().parents[1].parent / "shared/data/exr/openexr-images/Beachball"
MODEL = "styletransfer-preset"


# --------------------------------------------------------------------------- the shot


def source_frames(count: int) -> Tuple[Dict[int, bytes], str]:
    """{frame: EXR bytes} of the Beachball plate, or of generated 1920x1080 frames if it is missing."""
    files = sorted(BEACHBALL.glob("singlepart.*.exr"))[:count]
    if len(files) == count:
        return {int(p.name.split(".")[1]): p.read_bytes() for p in files}, f"Beachball {BEACHBALL}"
    return generated_frames(count), "generated 1920x1080 frames (Beachball not found)"


def generated_frames(count: int) -> Dict[int, bytes]:
    import io

    import numpy as np
    import OpenEXR

    from shotpass_server.demo import render_scene

    frames = {}
    for i in range(count):
        rgb = render_scene(i / max(count - 1, 1), 1920, 1080, samples=1)
        rgba = np.dstack([rgb, np.ones(rgb.shape[:2], np.float32)]).astype(np.float16)
        out = io.BytesIO()
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGBA": rgba}).write(out)
        frames[1 + i] = out.getvalue()
    return frames


def fresh_copies(frames: Dict[int, bytes], folder: Path, tag: str) -> Dict[int, str]:
    """The plate re-encoded with one extra attribute, so every repetition has new digests."""
    from shotpass_server.frames.exr import decode_exr, encode_exr

    folder.mkdir(parents=True)
    paths = {}
    for frame, data in frames.items():
        image = decode_exr(data, f"frame {frame}")
        image.parts[0].header["bench/copy"] = tag
        path = folder / f"shot.{frame:04d}.exr"
        path.write_bytes(encode_exr(image))
        paths[frame] = str(path)
    return paths


# --------------------------------------------------------------------------- the two paths


def start_server(data_dir: Path, log: Path) -> Tuple[subprocess.Popen, str]:
    argv = [sys.executable, "-m", "shotpass_server.cli", "serve", "--listen", "127.0.0.1:0",
            "--data-dir", str(data_dir)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log.open("ab"), text=True, env=env)
    line = proc.stdout.readline() if proc.stdout else ""
    if "serving on " not in line:
        proc.kill()
        raise SystemExit(f"server did not start ({line.strip()!r}); see {log}")
    return proc, line.split("serving on ", 1)[1].split()[0]


def through_server(client, plate: Dict[int, str], out: Path, style: str) -> None:  # type: ignore[no-untyped-def]
    """What a user of the CLI waits for: upload, submit, watch to the end, fetch every frame."""
    from shotpass_client.jobs import RenderSpec, fetch_outputs, require_finished, submit_render

    spec = RenderSpec(project="bench", shot="overhead", pass_name="stylize", model=MODEL,
                      options={"style": style}, seed=1)
    submitted = submit_render(client, spec, plate)
    if submitted.bytes_uploaded == 0:
        raise SystemExit("the plate was not uploaded (the server already had it): the timing would flatter")
    render = client.wait(submitted.render_id)
    require_finished(render)
    if len(fetch_outputs(client, render, str(out))) != len(plate):
        raise SystemExit("the server returned fewer frames than it was given")


def bare_loop(style: str) -> Callable[[Dict[int, str], Path], None]:
    """The same pass with nothing around it: read, run_frame, write."""
    from shotpass_server.frame_pipeline import FrameRequest, run_frame
    from shotpass_server.frames.colour import ColourSpaces
    from shotpass_server.passes.base import parse_options
    from shotpass_server.passes.registry import ModelRegistry

    model = ModelRegistry().get(MODEL)
    options = parse_options(model.options, {"style": style}, model.name)
    colours = ColourSpaces()

    def run(plate: Dict[int, str], out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        for frame, path in plate.items():
            request = FrameRequest(render_id="bare", frame=frame, data=Path(path).read_bytes(),
                                   source_name=Path(path).name, source_digest="", seed=1, options=options,
                                   colour_space=colours.scene_linear)
            (out / Path(path).name).write_bytes(run_frame(request, model, colours, lambda step, total: None))

    return run


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the run


def run(count: int, reps: int, style: str) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render

    frames, origin = source_frames(count)
    bare = bare_loop(style)
    server_s: List[float] = []
    bare_s: List[float] = []
    with tempfile.TemporaryDirectory(prefix="shotpass-overhead-") as tmp:
        root = Path(tmp)
        proc, address = start_server(root / "data", root / "server.log")
        try:
            with Client(address) as client:
                # Warm-up, untimed: both sides load the model and build their colour processors.
                warm = fresh_copies(dict([next(iter(frames.items()))]), root / "warm", "warm")
                submit_render(client, RenderSpec(pass_name="stylize", model=MODEL, options={"style": style}),
                              warm, preview=True)
                bare(warm, root / "warm-out")
                for rep in range(reps):
                    plate = fresh_copies(frames, root / f"plate{rep}", f"rep{rep}")
                    server_s.append(timed(lambda p=plate, r=rep: through_server(client, p, root / f"srv{r}", style)))
                    bare_s.append(timed(lambda p=plate, r=rep: bare(p, root / f"bare{r}")))
        finally:
            proc.terminate()
            proc.wait(30)
    report(len(frames), origin, reps, server_s, bare_s)


def report(count: int, origin: str, reps: int, server_s: List[float], bare_s: List[float]) -> None:
    server, bare = statistics.median(server_s), statistics.median(bare_s)
    print(f"{count} frames of {origin}; {MODEL}; SHOTPASS_THREADS={os.environ['SHOTPASS_THREADS']}; "
          f"{reps} repetitions, medians; {os.cpu_count()} CPUs")
    print(f"  server (upload, submit, watch, fetch): {server:7.2f} s  ({server / count:.3f} s/frame)  "
          f"runs: {', '.join(f'{s:.2f}' for s in server_s)}")
    print(f"  bare loop (read, run_frame, write):    {bare:7.2f} s  ({bare / count:.3f} s/frame)  "
          f"runs: {', '.join(f'{s:.2f}' for s in bare_s)}")
    print(f"ratio server/bare = {server / bare:.2f} (server overhead {server - bare:+.2f} s, "
          f"{(server - bare) / count * 1000:+.0f} ms/frame)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--style", default="11", help="multistyle26 style index or blend")
    args = parser.parse_args()
    run(args.frames, args.reps, args.style)


if __name__ == "__main__":
    main()
