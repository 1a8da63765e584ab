"""`shotpass demo`: a self-contained tour of the product on a plate made in code.

It renders a small scene-linear (ACEScg) EXR plate, starts a server in-process, previews one frame,
approves it, stylizes the whole shot with that preview as the style reference, chains an upscale onto
the stylized render by reference (nothing re-uploaded), fetches both sequences and writes a PNG
contact sheet. Everything runs offline on a laptop CPU in well under a minute.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import OpenEXR

WIDTH, HEIGHT = 320, 180
FIRST_FRAME = 1001
PROJECT, SHOT = "demo", "demo_plate"
PLATE_SPACE = "ACEScg"
STYLE = "11"  # a multistyle26 preset with strong, readable strokes
UPSCALE_MODEL = "realesrgan-animevideov3-x2"
COLUMNS = ("source", "stylized", "upscaled x2")
HEADER, PAD = 20, 4  # contact sheet: label band and gutter, in pixels


class DemoError(RuntimeError):
    """A step of the demo that did not do what it should."""


# --------------------------------------------------------------------------- the plate


@dataclass
class Sphere:
    centre: np.ndarray
    radius: float
    albedo: np.ndarray


KEY_DIR = np.array([-0.55, 0.75, -0.45]) / np.linalg.norm([-0.55, 0.75, -0.45])
KEY_RGB = np.array([1.0, 0.88, 0.72]) * 2.6  # warm key; specular peaks land well above 1.0
SKY_ZENITH = np.array([0.12, 0.25, 0.65])
SKY_HORIZON = np.array([0.75, 0.72, 0.68])
FILL_RGB = np.array([0.18, 0.24, 0.34])  # cool sky fill in the shadows


def scene_spheres(phase: float) -> List[Sphere]:
    """Two spheres: one rolls left to right on the ground, one floats and bobs behind it."""
    red = Sphere(np.array([-1.7 + 3.4 * phase, 0.6, 1.6]), 0.6, np.array([0.70, 0.10, 0.06]))
    bob = 1.2 + 0.35 * np.sin(np.pi * 2.0 * phase)
    teal = Sphere(np.array([1.3 - 1.6 * phase, bob, 3.4]), 0.8, np.array([0.08, 0.42, 0.45]))
    return [red, teal]


def camera_rays(width: int, height: int, samples: int) -> Tuple[np.ndarray, np.ndarray]:
    """Origin and unit directions of a pinhole camera, `samples`^2 rays per pixel (anti-aliasing)."""
    origin = np.array([0.0, 1.1, -3.2])
    forward = np.array([0.0, -0.12, 1.0])
    forward /= np.linalg.norm(forward)
    right = np.cross([0.0, 1.0, 0.0], forward)
    right /= np.linalg.norm(right)
    up = np.cross(forward, right)
    sub = (np.arange(samples) + 0.5) / samples
    xs = (np.arange(width)[:, None] + sub[None, :]).ravel() / width * 2.0 - 1.0
    ys = 1.0 - (np.arange(height)[:, None] + sub[None, :]).ravel() / height * 2.0
    tan = np.tan(np.radians(30.0))
    u, v = np.meshgrid(xs * tan * width / height, ys * tan)
    dirs = forward + u[..., None] * right + v[..., None] * up
    return origin, dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)


def hit_sphere(origin: np.ndarray, dirs: np.ndarray, s: Sphere) -> np.ndarray:
    """Distance along each ray to the sphere's front surface (inf where it misses)."""
    oc = origin - s.centre
    b = dirs @ oc
    disc = b * b - (oc @ oc - s.radius**2)
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc > 0) & (t > 1e-4), t, np.inf)


def soft_shadow(points: np.ndarray, spheres: Sequence[Sphere]) -> np.ndarray:
    """1 = lit; a penumbra from how close the ray to the key light passes to each sphere."""
    lit = np.ones(points.shape[:-1])
    for s in spheres:
        to_c = s.centre - points
        along = to_c @ KEY_DIR
        miss = np.linalg.norm(to_c - along[..., None] * KEY_DIR, axis=-1)
        penumbra = 0.12 + 0.08 * np.maximum(along, 0.0)  # softer further from the occluder
        shade = np.clip((miss - s.radius + penumbra) / (2.0 * penumbra), 0.0, 1.0)
        lit = np.minimum(lit, np.where(along > 0, shade * shade * (3 - 2 * shade), 1.0))
    return lit


def sky(dirs: np.ndarray) -> np.ndarray:
    h = np.clip(dirs[..., 1:2], 0.0, 1.0) ** 0.6
    glow = np.clip(dirs @ KEY_DIR, 0.0, 1.0)[..., None] ** 24 * 2.5  # bright sun halo (> 1.0)
    return SKY_HORIZON * (1 - h) + SKY_ZENITH * h + glow * KEY_RGB / 2.6


def shade_ground(origin: np.ndarray, dirs: np.ndarray, t: np.ndarray, spheres: Sequence[Sphere]) -> np.ndarray:
    p = origin + dirs * t[..., None]
    checker = (np.floor(p[..., 0]) + np.floor(p[..., 2])) % 2
    fade = np.clip(t / 25.0, 0.0, 1.0)[..., None]  # checks blur out with distance (no moire)
    albedo = np.where(checker[..., None] > 0, 0.34, 0.10) * (1 - fade) + 0.22 * fade
    albedo = albedo * np.array([1.0, 0.95, 0.85])
    diffuse = KEY_RGB * KEY_DIR[1] * soft_shadow(p, spheres)[..., None]
    colour = albedo * (diffuse + FILL_RGB)
    haze = np.clip(t / 40.0, 0.0, 1.0)[..., None]  # aerial perspective toward the horizon
    return colour * (1 - haze) + SKY_HORIZON * haze


def shade_sphere(origin: np.ndarray, dirs: np.ndarray, t: np.ndarray, s: Sphere) -> np.ndarray:
    p = origin + dirs * t[..., None]
    n = (p - s.centre) / s.radius
    ndl = n @ KEY_DIR
    wrap = np.clip((ndl + 0.15) / 1.15, 0.0, 1.0)[..., None]  # slightly wrapped, soft terminator
    half = KEY_DIR - dirs
    half /= np.linalg.norm(half, axis=-1, keepdims=True)
    spec = np.clip(np.sum(n * half, axis=-1), 0.0, 1.0)[..., None] ** 80 * 1.6
    fill = FILL_RGB * (0.6 + 0.4 * n[..., 1:2])
    return s.albedo * (KEY_RGB * wrap + fill) + spec * KEY_RGB * (ndl[..., None] > 0)


def render_scene(phase: float, width: int = WIDTH, height: int = HEIGHT, samples: int = 2) -> np.ndarray:
    """H x W x 3 float32 scene-linear ACEScg values of the scene at `phase` in [0, 1]."""
    origin, dirs = camera_rays(width, height, samples)
    spheres = scene_spheres(phase)
    t_ground = np.where(dirs[..., 1] < -1e-4, -origin[1] / np.minimum(dirs[..., 1], -1e-4), np.inf)
    t_spheres = [hit_sphere(origin, dirs, s) for s in spheres]
    nearest = np.minimum.reduce([t_ground, *t_spheres])
    rgb = sky(dirs)
    ground = np.isfinite(t_ground) & (t_ground <= nearest)
    rgb[ground] = shade_ground(origin, dirs[ground], t_ground[ground], spheres)
    for s, t in zip(spheres, t_spheres):
        mask = np.isfinite(t) & (t <= nearest)
        rgb[mask] = shade_sphere(origin, dirs[mask], t[mask], s)
    # Box-filter the sub-samples down to pixels.
    rgb = rgb.reshape(height, samples, width, samples, 3).mean(axis=(1, 3))
    return np.ascontiguousarray(rgb, dtype=np.float32)


def write_plate(folder: Path, frames: int) -> Dict[int, str]:
    """{frame: path} of demo_plate.####.exr, half RGBA, ZIP, frames 1001 onward."""
    folder.mkdir(parents=True, exist_ok=True)
    written: Dict[int, str] = {}
    for i in range(frames):
        frame = FIRST_FRAME + i
        rgb = render_scene(i / max(frames - 1, 1))
        rgba = np.dstack([rgb, np.ones(rgb.shape[:2], np.float32)]).astype(np.float16)
        header = {
            "compression": OpenEXR.ZIP_COMPRESSION,
            "type": OpenEXR.scanlineimage,
            "comments": f"shotpass demo plate, scene-linear {PLATE_SPACE}",
        }
        path = folder / f"demo_plate.{frame:04d}.exr"
        OpenEXR.File(header, {"RGBA": rgba}).write(str(path))
        written[frame] = str(path)
    return written


# --------------------------------------------------------------------------- the server side


def _watch(client, render_id: str, label: str, total: int) -> object:  # type: ignore[no-untyped-def]
    """Wait for a render, printing one line per finished frame."""
    from shotpass_client.proto import shotpass_pb2 as pb

    def show(event: pb.RenderEvent) -> None:
        if event.kind == pb.RenderEvent.FRAME_DONE:
            print(f"  {label}: frame {event.frame} done ({event.frames_done}/{total})", flush=True)
        elif event.kind in (pb.RenderEvent.WARNING, pb.RenderEvent.FRAME_FAILED):
            print(f"  {label}: frame {event.frame}: {event.message}", flush=True)

    return client.wait(render_id, on_event=show)


def run_passes(client, plate: Dict[int, str], out: Path) -> Tuple[Dict[int, str], Dict[int, str]]:  # type: ignore[no-untyped-def]
    """Preview -> approve -> stylize with the approved reference -> chained upscale -> fetch both."""
    from shotpass_client.jobs import RenderSpec, fetch_outputs, require_finished, submit_render

    middle = sorted(plate)[len(plate) // 2]
    preset = RenderSpec(project=PROJECT, shot=SHOT, pass_name="stylize", model="styletransfer-preset",
                        options={"style": STYLE}, seed=1)
    preview = submit_render(client, preset, {middle: plate[middle]}, preview=True)
    require_finished(preview.render)
    client.review(preview.render_id, approved=True)
    print(f"preview of frame {middle} ({preview.render_id}, style {STYLE}) approved as the shot's reference")

    reference = RenderSpec(project=PROJECT, shot=SHOT, pass_name="stylize", model="styletransfer-reference", seed=1)
    stylize = submit_render(client, reference, plate)
    stylized = _watch(client, stylize.render_id, "stylize", len(plate))
    require_finished(stylized)
    if stylized.reference_digest != preview.render.frames[0].output_digest:
        raise DemoError("the stylize render did not take the approved preview as its reference")

    upscale_spec = RenderSpec(project=PROJECT, shot=SHOT, pass_name="upscale", model=UPSCALE_MODEL, seed=1)
    upscale = submit_render(client, upscale_spec, parent_render=stylize.render_id)
    if upscale.bytes_uploaded != 0:
        raise DemoError(f"the chained upscale uploaded {upscale.bytes_uploaded} bytes; it should upload none")
    upscaled = _watch(client, upscale.render_id, "upscale", len(plate))
    require_finished(upscaled)
    print(f"chained upscale {upscale.render_id} <- {stylize.render_id} uploaded 0 bytes")
    return (fetch_outputs(client, stylized, str(out / "stylized")),
            fetch_outputs(client, upscaled, str(out / "upscaled")))


# --------------------------------------------------------------------------- the contact sheet


def contact_sheet_size(rows: int, cell: Tuple[int, int] = (WIDTH, HEIGHT)) -> Tuple[int, int]:
    """(width, height) of the sheet: a label band, then one row of len(COLUMNS) cells per frame."""
    w, h = cell
    return len(COLUMNS) * w + (len(COLUMNS) + 1) * PAD, HEADER + rows * (h + PAD) + PAD


def read_rgb(path: str) -> np.ndarray:
    from .frames.exr import decode_exr, select_colour

    return select_colour(decode_exr(Path(path).read_bytes(), Path(path).name)).rgb


def to_display(rgb: np.ndarray, colours, size: Tuple[int, int]):  # type: ignore[no-untyped-def]
    """scene-linear ACEScg -> sRGB-encoded uint8 PIL image of `size` (area-filtered if larger)."""
    from PIL import Image

    from .frames.colour import SRGB_ENCODED

    srgb = colours.convert(rgb, PLATE_SPACE, SRGB_ENCODED)
    image = Image.fromarray((np.clip(srgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def write_contact_sheet(path: Path, columns: Sequence[Dict[int, str]]) -> Tuple[int, int]:
    from PIL import Image, ImageDraw

    from .frames.colour import ColourSpaces

    colours = ColourSpaces()
    frames = sorted(columns[0])
    cell = (WIDTH, HEIGHT)
    sheet = Image.new("RGB", contact_sheet_size(len(frames), cell), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for c, name in enumerate(COLUMNS):
        draw.text((PAD + c * (cell[0] + PAD) + 4, 4), name, fill=(230, 230, 230))
    for r, frame in enumerate(frames):
        y = HEADER + r * (cell[1] + PAD)
        for c, column in enumerate(columns):
            x = PAD + c * (cell[0] + PAD)
            sheet.paste(to_display(read_rgb(column[frame]), colours, cell), (x, y))
        draw.rectangle((PAD, y, PAD + 34, y + 13), fill=(0, 0, 0))
        draw.text((PAD + 3, y + 1), str(frame), fill=(255, 255, 255))
    sheet.save(path)
    return sheet.size


# --------------------------------------------------------------------------- entry point


def run_demo(out: Path, frames: int = 6) -> int:
    """The whole demo; 0 on success, 1 with one line on stderr on any failure."""
    try:
        if frames < 1:
            raise DemoError(f"--frames must be at least 1 (got {frames})")
        _run(Path(out), frames)
        return 0
    except Exception as err:  # any failure: one clear line, no traceback
        print(f"shotpass demo: error: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def _run(out: Path, frames: int) -> None:
    from shotpass_client import Client

    from .app import ShotpassServer
    from .config import ServerConfig

    for folder in ("plate", "stylized", "upscaled"):
        # A rerun with fewer frames must not leave stale frames beside the new ones.
        for stale in (out / folder).glob("demo_plate.*.exr"):
            stale.unlink()
    plate = write_plate(out / "plate", frames)
    first, last = min(plate), max(plate)
    print(f"plate: {len(plate)} frames {first}-{last}, {WIDTH}x{HEIGHT} half RGBA {PLATE_SPACE} "
          f"in {out / 'plate'}")
    server = ShotpassServer(ServerConfig(listen="127.0.0.1:0", data_dir=out / "server-data"))
    server.start()
    try:
        with Client(server.address) as client:
            stylized, upscaled = run_passes(client, plate, out)
    finally:
        server.stop(grace=0.5)
    if sorted(stylized) != sorted(plate) or sorted(upscaled) != sorted(plate):
        raise DemoError(f"frame numbers do not match: plate {sorted(plate)}, stylized {sorted(stylized)}, "
                        f"upscaled {sorted(upscaled)}")
    up_h, up_w = read_rgb(upscaled[first]).shape[:2]
    print(f"plate: {len(plate)} frames {first}-{last} -> stylized: {len(stylized)} frames, "
          f"upscaled: {len(upscaled)} frames ({up_w}x{up_h})")
    print(f"stylized frames: {out / 'stylized'}")
    print(f"upscaled frames: {out / 'upscaled'}")
    sheet = out / "contact_sheet.png"
    size = write_contact_sheet(sheet, [plate, stylized, upscaled])
    print(f"contact sheet: {sheet} ({size[0]}x{size[1]})")
