"""Batched vs unbatched diffusion renders: several frames through the UNet at once, or one at a time?

    .venv/bin/python bench/batching.py [--kind img2img,inpaint,upscale] [--frames 8] [--size 128x128]
                                       [--batch 4] [--steps 4] [--reps 3] [--temporal off]

The tiny random-weight pipelines of tests/tiny_pipelines.py (real VAE, UNet, CLIP text encoder and scheduler at
toy widths), saved to disk and loaded by an in-process server through its production path: SD 1.5 img2img
(stylize), SD 1.5 inpaint (the plate's alpha is the mask: a box that moves with the frame) and the x4 upscaler
(in its 128 px tiles: the batch takes tile n of every frame at once). For each kind asked, the real client
uploads a plate of generated half-float RGBA frames once, then submits the same render (same seed) with
`batch=1` and with `batch=N`, taking turns; each is timed from SubmitRender to FINISHED, after a warm-up render
of each that loads the pipeline. The server runs one worker with its default pipelined depth. The headline is
unbatched / batched wall time (medians), one line per kind. It also prints how far the batched frames are from
the unbatched ones (they differ only by floating point: tests/test_batching.py states the tolerance).
"""

from __future__ import annotations

import os

os.environ.setdefault("SHOTPASS_THREADS", "2")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, Tuple  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def write_plate(folder: Path, frames: int, width: int, height: int) -> str:
    """Half RGBA frames: a moving gradient plus grain, so every frame differs; alpha (the inpaint mask) is a
    quarter-size box that moves with the frame."""
    import numpy as np
    import OpenEXR

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    for f in range(1, frames + 1):
        phase = f / frames
        rgb = np.stack([(x + phase) % 1.0 + 0 * y, y + 0 * x, 0.5 * (x + y) * phase], axis=-1)
        rgb = rgb + rng.normal(0.0, 0.02, rgb.shape).astype(np.float32)
        alpha = np.zeros((height, width), np.float32)
        y0, x0 = height // 4 + f % 4, width // 4 + 2 * (f % 8)
        alpha[y0: y0 + height // 2, x0: x0 + width // 2] = 1.0
        rgba = np.dstack([rgb, alpha]).astype(np.float16)
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION}, {"RGBA": rgba}).write(str(folder / f"plate.{f:04d}.exr"))
    return str(folder / "plate.####.exr")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="img2img,inpaint,upscale",
                        help="comma-separated: img2img (stylize), inpaint, upscale (the x4 upscaler)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", default="128x128", help="WxH of the plate (the tiny model's native size: 128)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--temporal", default="off", choices=("off", "flow"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    kinds = [k.strip() for k in args.kind.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(MODELS))
    if unknown:
        parser.error(f"--kind: unknown {', '.join(unknown)} (choose from {', '.join(MODELS)})")

    import numpy as np
    import tiny_pipelines
    import torch

    from shotpass_client import Client
    from shotpass_client.client import outputs_by_frame
    from shotpass_client.jobs import RenderSpec, plate_frames, submit_render
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import load_config
    from shotpass_server.frames.exr import decode_exr

    torch.set_num_threads(int(os.environ["SHOTPASS_THREADS"]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tiny_pipelines.save_img2img(root / "sd15")
        tiny_pipelines.save_inpaint(root / "sd-inpaint")
        # Without attention, as the tests run whole plates: a 128 px tile attends over 16384 latents otherwise.
        tiny_pipelines.save_upscaler(root / "x4", attention=False)
        (root / "shotpass.toml").write_text(
            f'[models.tiny-sd15]\nkind = "sd15-img2img"\npath = "sd15"\nsteps = {args.steps}\nstrength = 1.0\n'
            # Whole frames up to 4096 px: a plate larger than the window is denoised in windows, frame by frame.
            'tile = 4096\n'
            f'[models.tiny-inpaint]\nkind = "sd-inpaint"\npath = "sd-inpaint"\nsteps = {args.steps}\nstrength = 1.0\n'
            f'[models.tiny-x4]\nkind = "sd-x4-upscaler"\npath = "x4"\nsteps = {args.steps}\n'
        )
        cfg = load_config(root / "shotpass.toml")
        cfg.listen, cfg.data_dir, cfg.chunk_frames = "127.0.0.1:0", root / "data", args.frames
        plate = plate_frames(write_plate(root / "plate", args.frames, width, height))
        server = ShotpassServer(cfg)
        server.start()
        results: Dict[str, Tuple[float, float, float]] = {}
        try:
            with Client(server.address) as client:
                for kind in kinds:

                    def render(batch: int, model: str = MODELS[kind]) -> Tuple[float, Dict[int, Any]]:
                        options = {"batch": str(batch), "temporal": args.temporal}
                        spec = RenderSpec(model=model, seed=3, options=options)
                        start = time.perf_counter()
                        done = client.wait(submit_render(client, spec, plate).render_id)
                        seconds = time.perf_counter() - start
                        assert done.state == 3 and done.frames_done == args.frames, done.error  # FINISHED, all
                        return seconds, outputs_by_frame(done)

                    render(1), render(args.batch)  # warm up: the pipeline loads, the allocator settles
                    times: Dict[int, list] = {1: [], args.batch: []}
                    outputs: Dict[int, Dict[int, Any]] = {}
                    for _ in range(args.reps):
                        for batch in (1, args.batch):
                            seconds, outputs[batch] = render(batch)
                            times[batch].append(seconds)
                    worst = 0.0
                    for frame, digest in outputs[1].items():
                        a = decode_exr(client.download_bytes(digest), "unbatched").parts[0].channels
                        b = decode_exr(client.download_bytes(outputs[args.batch][frame]), "batched").parts[0].channels
                        worst = max(worst, max(float(np.abs(a[c].astype(np.float32) - b[c].astype(np.float32)).max())
                                               for c in "RGB"))
                    results[kind] = (statistics.median(times[1]), statistics.median(times[args.batch]), worst)
        finally:
            server.stop(grace=0.5)
    n = args.frames
    load = os.getloadavg()
    print(f"{n} frames {width}x{height}, {args.steps} steps, temporal={args.temporal}, torch threads "
          f"{os.environ['SHOTPASS_THREADS']}, median of {args.reps}; load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} CPUs")
    for kind, (one, many, worst) in results.items():
        print(f"  {LABELS[kind]}:")
        print(f"    unbatched (batch=1):   {one:6.2f} s  ({one / n * 1000:6.1f} ms/frame)")
        print(f"    batched   (batch={args.batch}):   {many:6.2f} s  ({many / n * 1000:6.1f} ms/frame)")
        print(f"    speed-up batched/unbatched: {one / many:.2f}x")
        print(f"    largest difference of a batched output from the unbatched one: {worst:.3g} (half-float values)")


MODELS = {"img2img": "tiny-sd15", "inpaint": "tiny-inpaint", "upscale": "tiny-x4"}
LABELS = {"img2img": "tiny SD 1.5 img2img (stylize)", "inpaint": "tiny SD 1.5 inpaint (alpha as the mask)",
          "upscale": "tiny x4 upscaler (128 px tiles; a call takes tile n of every frame)"}


if __name__ == "__main__":
    main()
