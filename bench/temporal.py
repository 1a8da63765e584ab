"""Temporal consistency: flicker ratio and compute time of per-frame vs `flow` vs `keyframes`, in one run.

The plate is real footage: the first frames of ``../shared/data/footage/bikes.mp4`` (640x272), decoded with
OpenCV and turned into scene-linear half-float EXRs through OCIO (the video is sRGB-encoded display
footage; the config's scene-linear space is the plate space, as a compositor's Read of an sRGB movie gives).
Every render goes through the real server and client in this process; the flicker ratio is the one the
server itself measures and stores for each render (temporal/qc.py); compute time is the render's
device-seconds (frames only; the QC after the last frame is the same for every mode and not included).

``--clip beachball`` renders the stylize cases on the Beachball sequence instead (real rendered motion, 8
frames with a data window that moves across a 2048x1556 frame), read as it is. ``--floor`` adds, under each
stylize per-frame row, how low `keyframes` can go while keyframes stay the model's own (keyframe_floor.py).

    .venv/bin/python bench/temporal.py [--frames 24] [--every 8] [--scale 1.0] [--upscale-scale 0.25] [--reps 2]
                                       [--only stylize] [--clip bikes|beachball] [--floor]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

os.environ.setdefault("SHOTPASS_THREADS", "2")

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = ROOT.parent / "shared" / "data" / "footage" / "bikes.mp4"
BEACHBALL = ROOT.parent / "shared" / "data" / "exr" / "openexr-images" / "Beachball"


def beachball_plate(frames: int) -> Dict[int, str]:
    found = {int(p.name.split(".")[1]): str(p) for p in sorted(BEACHBALL.glob("singlepart.*.exr"))}
    if not found:
        raise SystemExit(f"Beachball sequence not found: {BEACHBALL}")
    return dict(sorted(found.items())[:frames])


def write_plate(folder: Path, frames: int, scale: float, mask: bool = False) -> Dict[int, str]:
    """The footage as scene-linear EXRs (frame numbers 1001...), optionally with a moving inpaint mask in alpha."""
    import cv2
    import OpenEXR

    from shotpass_server.frames.colour import ColourSpaces
    from shotpass_server.passes.base import SRGB_ENCODED

    colours = ColourSpaces()
    capture = cv2.VideoCapture(str(FOOTAGE))
    folder.mkdir(parents=True, exist_ok=True)
    out: Dict[int, str] = {}
    for i in range(frames):
        ok, bgr = capture.read()
        if not ok:
            raise SystemExit(f"{FOOTAGE}: only {i} frames could be read")
        if scale != 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        srgb = np.ascontiguousarray(bgr[..., ::-1], dtype=np.float32) / 255.0
        linear = colours.convert(srgb, SRGB_ENCODED, colours.scene_linear)
        h, w = linear.shape[:2]
        ch = {c: linear[..., k].astype(np.float16) for k, c in enumerate("RGB")}
        if mask:  # a hole that drifts across the frame: what a wire/rig removal asks of inpaint
            alpha = np.zeros((h, w), np.float16)
            x = int(w * 0.3 + i * w * 0.01)
            alpha[h // 3: h // 3 + h // 6, x: x + w // 10] = 1
            ch["A"] = alpha
        header = {
            "compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
            "dataWindow": (np.array([0, 0], dtype=np.int32), np.array([w - 1, h - 1], dtype=np.int32)),
            "displayWindow": (np.array([0, 0], dtype=np.int32), np.array([w - 1, h - 1], dtype=np.int32)),
        }
        path = folder / f"bikes.{1001 + i:04d}.exr"
        with OpenEXR.File(header, ch) as f:
            f.write(str(path))
        out[1001 + i] = str(path)
    return out


def render(
    srv: object, client: object, plate: Dict[int, str], model: str, options: Dict[str, str], reps: int = 1
) -> Tuple[float, float, str]:
    """(flicker ratio, median compute seconds over `reps` renders, the last render's id) through the server."""
    from shotpass_client.jobs import RenderSpec, submit_render

    ratios, seconds = [], []
    for _ in range(reps):
        spec = RenderSpec(model=model, options=options, seed=7, shot="bikes")
        sub = submit_render(client, spec, plate)  # type: ignore[arg-type]
        srv.manager.wait_final(sub.render_id, 900)  # type: ignore[attr-defined]
        row = srv.catalog.get_render(sub.render_id)  # type: ignore[attr-defined]
        if row.state != "FINISHED" or not row.qc:
            raise SystemExit(f"{model} {options}: render {row.state}: {row.error}")
        ratios.append(float(row.qc["flicker_ratio"]))
        seconds.append(float(row.compute_seconds))
    if max(ratios) != min(ratios):
        raise SystemExit(f"{model} {options}: the same render gave different flicker figures {ratios}")
    return ratios[0], statistics.median(seconds), sub.render_id


def format_frame_list(frames: List[int]) -> str:
    return ",".join(str(f) for f in frames)


def print_floor(srv: object, per_frame_render: str, every: int) -> None:
    """The keyframes floor at this spacing and at half of it (more keyframes: more transitions to pay for)."""
    from keyframe_floor import keyframe_floor

    for n in sorted({max(1, every // 2), every}, reverse=True):
        f = keyframe_floor(srv, per_frame_render, n)
        print(f"{'':<26} floor every {n}: {f.floor:.2f} (keyframes {format_frame_list(f.keyframes)} disagree "
              f"{f.disagreement:.1f}x the source's step); best keyframes within {n} "
              f"({format_frame_list(f.best_keyframes)}): {f.best_floor:.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--every", type=int, default=8, help="keyframes: one every N frames")
    parser.add_argument("--scale", type=float, default=1.0, help="footage scale for stylize and inpaint")
    parser.add_argument("--only", default="", help="run only the cases whose label contains this")
    parser.add_argument("--upscale-scale", type=float, default=0.25, help="footage scale for the x4 upscale")
    parser.add_argument("--reps", type=int, default=2, help="renders per case; compute time is their median")
    parser.add_argument("--clip", choices=("bikes", "beachball"), default="bikes", help="the stylize cases' plate")
    parser.add_argument("--floor", action="store_true", help="stylize: the keyframes flicker floor (slower)")
    args = parser.parse_args()
    if not FOOTAGE.is_file():
        raise SystemExit(f"footage not found: {FOOTAGE}")

    from shotpass_client import Client
    from shotpass_server.app import ShotpassServer
    from shotpass_server.config import ServerConfig

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="shotpass-bench-temporal-") as tmp:
        root = Path(tmp)
        plate = write_plate(root / "plate", args.frames, args.scale) if args.clip == "bikes" else beachball_plate(
            args.frames)
        masked = write_plate(root / "masked", args.frames, args.scale, mask=True)
        small = write_plate(root / "small", args.frames, args.upscale_scale)
        srv = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=root / "data", workers=1))
        srv.start()
        client = Client(srv.address)
        h, w = (272, 640)
        stylized = (f"stylize on Beachball frames {min(plate)}-{max(plate)} as they are" if args.clip == "beachball"
                    else f"stylize at {round(w * args.scale)}x{round(h * args.scale)}")
        print(f"bikes.mp4: {args.frames} frames; {stylized}; inpaint at {round(w * args.scale)}x"
              f"{round(h * args.scale)}, upscale from {round(w * args.upscale_scale)}x"
              f"{round(h * args.upscale_scale)}; keyframes every {args.every}; "
              f"SHOTPASS_THREADS={os.environ['SHOTPASS_THREADS']}; load average {os.getloadavg()[0]:.1f}")
        every = str(args.every)
        keyframes = {"temporal": "keyframes", "keyframe_every": every}
        stylize_modes = [
            ("flow", {"temporal": "flow"}),
            ("keyframes", keyframes),
            ("kf refined", {**keyframes, "keyframe_refine": "flow"}),  # opt-in: keyframes not the model's own
            ("kf every/2", {**keyframes, "keyframe_every": str(max(1, args.every // 2))}),
            ("one key", {"temporal": "keyframes", "keyframes": str(min(plate))}),  # propagation's own residual
        ]
        cases: List[Tuple[str, str, Dict[int, str], Dict[str, str], List[Tuple[str, Dict[str, str]]]]] = [
            ("stylize default style", "styletransfer-preset", plate, {}, stylize_modes),
            ("stylize style=11", "styletransfer-preset", plate, {"style": "11"}, stylize_modes),
            ("inpaint opencv-telea", "opencv-telea", masked, {}, [("flow", {"temporal": "flow"})]),
            ("upscale animevideov3-x4", "realesrgan-animevideov3-x4", small, {}, [("flow", {"temporal": "flow"})]),
        ]
        print(f"{'case':<26} {'mode':<10} {'flicker':>8} {'vs per-frame':>13} {'compute s':>10} {'cost ratio':>11}")
        try:
            for label, model, frames, base, modes in cases:
                if args.only and args.only not in label:
                    continue
                # Warm up: the model's weights load before anything is timed.
                render(srv, client, dict(list(frames.items())[:2]), model, {**base, "temporal": "off"})
                ratio0, seconds0, per_frame = render(srv, client, frames, model, {**base, "temporal": "off"}, args.reps)
                print(f"{label:<26} {'per-frame':<10} {ratio0:>8.2f} {1.0:>13.2f} {seconds0:>10.2f} {1.0:>11.2f}")
                if args.floor and label.startswith("stylize"):
                    print_floor(srv, per_frame, args.every)
                for mode, extra in modes:
                    ratio, seconds, _ = render(srv, client, frames, model, {**base, **extra}, args.reps)
                    print(f"{'':<26} {mode:<10} {ratio:>8.2f} {ratio / ratio0:>13.2f} {seconds:>10.2f} "
                          f"{seconds / seconds0:>11.2f}")
        finally:
            client.close()
            srv.stop(grace=0.5)
    print(f"bench wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
