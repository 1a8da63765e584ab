"""Batching across frames: several frames of a chunk through one diffusion pipeline call, each frame's result its
unbatched one, for stylize (SD 1.5 / SDXL img2img), inpaint (SD 1.5 whole plate and region mode, SDXL, SD3, Flux;
outside the mask the plate, bit for bit) and the x4 upscaler (x4 and x2). Tiny random-weight pipelines on disk,
the real server and client.

Tolerance: a batched convolution does not add up in the same order as a batch of one (oneDNN on a CPU, cuDNN on
a GPU pick kernels by shape: measured, one conv layer of the tiny UNet already differs by ~5e-7 between batch
sizes 1 and 4), so a batched frame matches its unbatched render to ~1e-5 in the model's sRGB space, as results
already differ between CPU thread counts. Written as half floats, that is at most one half-float step; the test
allows two (plus 1e-5 near zero). Different seeds differ by orders of magnitude more.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest
import tiny_pipelines
import torch
from helpers import model_server

FRAMES = range(1, 7)


@pytest.fixture(scope="module")
def model_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    tiny_pipelines.save_img2img(root / "sd15")
    tiny_pipelines.save_controlnet(root / "cn-canny")
    tiny_pipelines.save_inpaint(root / "sd-inpaint")
    tiny_pipelines.save_upscaler(root / "x4")
    config = root / "shotpass.toml"
    config.write_text(
        """
[models.tiny-sd15]
kind = "sd15-img2img"
path = "sd15"
steps = 3
strength = 0.7
controlnets = { canny = "cn-canny" }

[models.tiny-sd15-batched]
kind = "sd15-img2img"
path = "sd15"
steps = 3
strength = 0.7
batch = 4

[models.tiny-inpaint]
kind = "sd-inpaint"
pass = "inpaint"
path = "sd-inpaint"
steps = 3
strength = 1.0

[models.tiny-x4]
kind = "sd-x4-upscaler"
path = "x4"
steps = 2
tile = 32
tile_overlap = 8

[models.tiny-x2]
kind = "sd-x4-upscaler"
path = "x4"
scale = 2
steps = 2
tile = 32
tile_overlap = 8
"""
    )
    return config


@pytest.fixture
def bserver(model_config: Path, tmp_path: Path) -> Iterator[Any]:
    with model_server(model_config, tmp_path / "server-data", chunk_frames=len(FRAMES)) as srv:
        yield srv


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> List[List[int]]:
    """The frames of every pipeline call that took more than one frame (the real call runs)."""
    from shotpass_server.passes.diffusion.img2img import Img2ImgModel

    seen: List[List[int]] = []
    real = Img2ImgModel.render_batch

    def spy(self: Any, jobs: Any, ctxs: Any) -> Any:
        seen.append([j.frame for j in jobs])
        return real(self, jobs, ctxs)

    monkeypatch.setattr(Img2ImgModel, "render_batch", spy)
    return seen


def _plate(folder: Path, w: int = 40, h: int = 24) -> Any:
    from web_fixtures import tiny_plate

    from shotpass_client.jobs import plate_frames

    return plate_frames(tiny_plate(folder, FRAMES, size=(w, h)))


def _render(client: Any, spec: Any, plate: Any) -> Dict[int, Any]:
    """The finished render's frames, decoded: {frame: ExrImage}."""
    from shotpass_client.client import outputs_by_frame
    from shotpass_client.jobs import submit_render
    from shotpass_server.frames.exr import decode_exr

    spec.options.setdefault("temporal", "off")
    render = client.wait(submit_render(client, spec, plate).render_id)
    assert render.state == 3, render.error  # FINISHED
    return {f: decode_exr(client.download_bytes(d), f"frame {f}") for f, d in outputs_by_frame(render).items()}


def _assert_close(batched: Dict[int, Any], single: Dict[int, Any]) -> None:
    """Same frames, headers and windows; alpha exact; colour within two half-float steps (module docstring)."""
    assert sorted(batched) == sorted(single) == list(FRAMES)
    for frame in FRAMES:
        a, b = batched[frame].parts[0], single[frame].parts[0]
        assert sorted(a.channels) == sorted(b.channels)
        assert a.header["dataWindow"][0].tolist() == b.header["dataWindow"][0].tolist()
        assert np.array_equal(a.channels["A"], b.channels["A"]), f"frame {frame}: alpha must come back untouched"
        for c in "RGB":
            x, y = a.channels[c].astype(np.float32), b.channels[c].astype(np.float32)
            step = np.spacing(np.maximum(np.abs(x), np.abs(y)).astype(np.float16)).astype(np.float32)
            worst = float(np.max(np.abs(x - y) - 2 * step))
            assert worst <= 1e-5, f"frame {frame} channel {c}: batched differs from unbatched by {worst:g} too much"


def _rgb(image: Any) -> np.ndarray:
    return np.stack([image.parts[0].channels[c].astype(np.float32) for c in "RGB"], axis=-1)


@pytest.mark.parametrize("options", [
    {},
    {"temporal": "flow"},  # the model part batched; each blend with the stored previous output in order after it
    {"controlnet": "canny", "guidance": "1.0"},
    {"scheduler": "euler-a"},  # an ancestral sampler: fresh noise every step, from each frame's own generator
], ids=["img2img", "temporal-flow", "controlnet-no-guidance", "ancestral-sampler"])
def test_a_batched_frame_is_its_unbatched_render(bserver, batches, tmp_path: Path, options: Dict[str, str]) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec

    plate = _plate(tmp_path / "plate")
    with Client(bserver.address) as client:
        single = _render(client, RenderSpec(model="tiny-sd15", seed=5, options={**options, "batch": "1"}), plate)
        assert batches == [], "batch=1 runs one frame per pipeline call"
        batched = _render(client, RenderSpec(model="tiny-sd15", seed=5, options={**options, "batch": "4"}), plate)
        assert batches == [[1, 2, 3, 4], [5, 6]]
        other_seed = _render(client, RenderSpec(model="tiny-sd15", seed=6, options={**options, "batch": "4"}), plate)
    _assert_close(batched, single)
    for frame in FRAMES:  # the tolerance is far below what a frame's own noise changes
        assert np.abs(_rgb(other_seed[frame]) - _rgb(batched[frame])).max() > 0.05


def test_frames_with_other_prompts_or_options_go_in_other_batches(bserver, batches, tmp_path: Path) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec

    plate = _plate(tmp_path / "plate")
    schedule = dict(prompt_by_frame={1: "red house", 3: "blue sea"}, options_by_frame={"strength": {5: "0.9"}})
    with Client(bserver.address) as client:
        batched = _render(client, RenderSpec(model="tiny-sd15-batched", seed=9, **schedule), plate)
        # Prompts hold until the next key: 1-2 "red house", 3-6 "blue sea"; strength changes from frame 5 on.
        assert batches == [[1, 2], [3, 4], [5, 6]]
        single = _render(client, RenderSpec(model="tiny-sd15-batched", seed=9, options={"batch": "1"}, **schedule),
                         plate)
    _assert_close(batched, single)


def test_a_frame_of_another_size_runs_in_its_own_batch(bserver, batches, tmp_path: Path) -> None:
    import shutil

    from web_fixtures import tiny_plate

    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, plate_frames

    folder = tmp_path / "plate"
    tiny_plate(folder, FRAMES, size=(40, 24))
    tiny_plate(tmp_path / "wide", [3], size=(48, 24))
    shutil.copy(tmp_path / "wide" / "plate.0003.exr", folder / "plate.0003.exr")
    plate = plate_frames(str(folder / "plate.####.exr"))
    with Client(bserver.address) as client:
        batched = _render(client, RenderSpec(model="tiny-sd15-batched", seed=2), plate)
        assert batches == [[1, 2], [4, 5, 6]]  # frame 3 alone
        single = _render(client, RenderSpec(model="tiny-sd15-batched", seed=2, options={"batch": "1"}), plate)
    _assert_close(batched, single)
    assert batched[3].parts[0].channels["R"].shape == (24, 48)


def test_out_of_memory_halves_the_batch_and_keeps_the_size_that_fitted(model_config: Path) -> None:
    from shotpass_server.config import load_config
    from shotpass_server.passes.base import FrameJob, PassContext
    from shotpass_server.passes.diffusion.img2img import Img2ImgModel

    torch.set_num_threads(2)
    spec = next(s for s in load_config(model_config).models if s.name == "tiny-sd15-batched")

    class ThreeFit(Img2ImgModel):
        """The real model on a device that holds two frames of this size per call, not more."""

        calls: List[int] = []

        def _run_batch(self, pipe: Any, stacks: Any, *args: Any) -> Any:
            self.calls.append(len(stacks))
            if len(stacks) > 2:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return super()._run_batch(pipe, stacks, *args)

    model = ThreeFit(spec)
    from shotpass_server.passes.base import parse_options

    options = parse_options(model.options, {}, model.name)
    rng = np.random.default_rng(1)
    jobs = [FrameJob(frame=f, rgb=rng.random((24, 40, 3), dtype=np.float32), alpha=None) for f in range(1, 6)]
    steps: Dict[int, List[int]] = {f: [] for f in range(1, 6)}
    ctxs = [PassContext(options=options, seed=100 + j.frame,
                        progress=lambda step, total, f=j.frame: steps[f].append(step)) for j in jobs]
    assert model.batch_size(options, "cpu") == 4
    results = model.process_batch(jobs[:4], ctxs[:4])
    # 4 frames ran out of memory: 2 + 2 fitted; the next batch of that size starts at 2 (never 4 again).
    assert model.calls == [4, 2, 2]
    assert [len(s) > 0 for s in steps.values()] == [True] * 4 + [False]
    assert model.process_batch(jobs[1:4], ctxs[1:4]) and model.calls == [4, 2, 2, 2]
    alone = [model.process(job, ctx) for job, ctx in zip(jobs[:4], ctxs[:4])]
    for batched, single in zip(results, alone):
        assert np.abs(batched.rgb - single.rgb).max() < 1e-4


def test_cancel_during_a_batch_keeps_earlier_batches_and_a_requeue_finishes_the_rest(
    bserver, batches, tmp_path: Path
) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec, submit_render
    from shotpass_client.proto import shotpass_pb2 as pb

    plate = _plate(tmp_path / "plate")
    spec = RenderSpec(model="tiny-sd15", seed=4,
                      options={"batch": "3", "steps": "40", "strength": "1.0", "temporal": "off"})
    with Client(bserver.address) as client:
        render_id = submit_render(client, spec, plate).render_id
        steps: Dict[int, int] = {}
        for event in client.watch(render_id):
            if event.kind == pb.RenderEvent.STEP:
                steps[event.frame] = event.step
                if event.frame == 6 and 0 < event.step < event.total_steps:
                    client.cancel(render_id)  # the second batch (4-6) is between denoising steps
                    break
        final = client.wait(render_id)
        assert final.state == pb.CANCELLED
        by_frame = {f.frame: f for f in final.frames}
        assert all(by_frame[f].state == pb.FRAME_DONE and by_frame[f].output_digest for f in (1, 2, 3))
        assert all(by_frame[f].state == pb.FRAME_CANCELLED and not by_frame[f].output_digest for f in (4, 5, 6))
        assert set(steps) >= {4, 5, 6}, "every frame of a batch reports its steps"
        kept = {f: by_frame[f].output_digest for f in (1, 2, 3)}
        client.requeue(render_id)  # the cancelled frames run again
        resumed = client.wait(render_id)
        assert resumed.state == pb.FINISHED, resumed.error
        after = {f.frame: f.output_digest for f in resumed.frames}
        assert {f: after[f] for f in (1, 2, 3)} == kept, "finished frames are never recomputed"
    assert batches == [[1, 2, 3], [4, 5, 6], [4, 5, 6]]


def test_the_registry_batch_key_is_checked_and_is_the_options_default(model_config: Path, tmp_path: Path) -> None:
    from shotpass_server.errors import InvalidInput
    from shotpass_server.model_config import parse_models
    from shotpass_server.passes.diffusion.img2img import Img2ImgModel

    base = model_config.parent
    with pytest.raises(InvalidInput, match=r"\[models.big\]: batch = 65 is out of range 0..64"):
        parse_models({"big": {"kind": "sd15-img2img", "path": "sd15", "batch": 65}}, base, "shotpass.toml")
    with pytest.raises(InvalidInput, match=r"batch must be an integer"):
        parse_models({"big": {"kind": "sd15-img2img", "path": "sd15", "batch": "4"}}, base, "shotpass.toml")
    spec = parse_models({"b": {"kind": "sd15-img2img", "path": "sd15", "batch": 6}}, base, "shotpass.toml")[0]
    model = Img2ImgModel(spec)
    option = next(o for o in model.options if o.name == "batch")
    assert option.default == 6 and option.maximum == 64
    assert model.batch_size({"batch": 6}, "cpu") == 6
    assert model.batch_size({"batch": 0}, "cpu") == 1 and model.batch_size({"batch": 0}, "cuda:0") == 8


def test_sdxl_frames_batch_too(tmp_path: Path) -> None:
    from shotpass_server.model_config import parse_models
    from shotpass_server.passes.base import FrameJob, PassContext, parse_options
    from shotpass_server.passes.diffusion.img2img import Img2ImgModel

    torch.set_num_threads(2)
    tiny_pipelines.save_sdxl_img2img(tmp_path / "sdxl")
    table = {"kind": "sdxl-img2img", "path": "sdxl", "steps": 2, "strength": 0.7, "batch": 3}
    model = Img2ImgModel(parse_models({"tiny-sdxl": table}, tmp_path, "shotpass.toml")[0])
    options = parse_options(model.options, {}, model.name)
    rng = np.random.default_rng(3)
    jobs = [FrameJob(frame=f, rgb=rng.random((24, 40, 3), dtype=np.float32), alpha=None) for f in (1, 2, 3)]
    ctxs = [PassContext(options=options, seed=40 + j.frame, prompt="a boat", negative_prompt="fog") for j in jobs]
    assert len({model.batch_key(j, c) for j, c in zip(jobs, ctxs)}) == 1
    batched = model.process_batch(jobs, ctxs)
    for job, ctx, result in zip(jobs, ctxs, batched):
        alone = model.process(job, ctx).rgb
        assert result.rgb.shape == alone.shape == (24, 40, 3)
        assert np.abs(result.rgb - alone).max() < 1e-4, f"frame {job.frame}"
    assert np.abs(batched[0].rgb - batched[1].rgb).max() > 0.01  # each frame its own noise and image


# Inpaint and the x4 upscaler: the same contract, the same tolerance.

def _spy_calls(monkeypatch: pytest.MonkeyPatch, cls: Any, name: str, count: Any) -> List[Any]:
    """What every call of ``cls.name`` took (``count(args)``); the real method runs."""
    seen: List[Any] = []
    real = getattr(cls, name)

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(count(*args))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, spy)
    return seen


def _masked_plate(folder: Path, boxes: Dict[int, Any], w: int, h: int) -> Any:
    """Half RGBA frames of grain whose alpha (the inpaint mask) is 1 in the frame's box (y0, y1, x0, x1)."""
    import OpenEXR

    from shotpass_client.jobs import plate_frames

    folder.mkdir(parents=True)
    rng = np.random.default_rng(8)
    for frame, (y0, y1, x0, x1) in boxes.items():
        alpha = np.zeros((h, w), np.float32)
        alpha[y0:y1, x0:x1] = 1.0
        channels = {c: rng.random((h, w), dtype=np.float32).astype(np.float16) for c in "RGB"}
        channels["A"] = alpha.astype(np.float16)
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
            f.write(str(folder / f"plate.{frame:04d}.exr"))
    return plate_frames(str(folder / "plate.####.exr"))


def _assert_outside_the_mask_is_the_plate(outputs: Dict[int, Any], plate: Any) -> None:
    from shotpass_server.frames.exr import decode_exr

    for frame, image in outputs.items():
        src = decode_exr(Path(plate[frame]).read_bytes(), f"frame {frame}").parts[0].channels
        outside = src["A"] == 0
        for c in "RGB":
            got = image.parts[0].channels[c]
            assert np.array_equal(got[outside].view(np.uint16), src[c][outside].view(np.uint16)), f"{frame} {c}"
            assert not np.array_equal(got[~outside], src[c][~outside]), f"frame {frame} {c}: nothing was inpainted"


@pytest.mark.parametrize("size, boxes, calls", [
    # Whole plates (within the tiny model's native 128 px): one call of 4 frames, then 2.
    ((40, 24), {f: (4, 14, 3 + 2 * f, 15 + 2 * f) for f in FRAMES}, [[(24, 40)] * 4, [(24, 40)] * 2]),
    # Region mode (a 200 x 136 plate): boxes of one size at other places batch; frame 3's taller box is scaled to
    # another model size and runs in a call of its own.
    ((200, 136), {f: (30 + 5 * f, 60 + 5 * f + (20 if f == 3 else 0), 40 + 9 * f, 100 + 9 * f) for f in FRAMES},
     None),
], ids=["whole-plate", "region"])
def test_an_inpainted_batched_frame_is_its_unbatched_render(bserver, monkeypatch, tmp_path: Path, size: Any,
                                                            boxes: Dict[int, Any], calls: Any) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec
    from shotpass_server.passes.diffusion.inpaint import InpaintModel

    shapes = _spy_calls(monkeypatch, InpaintModel, "_call", lambda pipe, fills, *a: [f.size for f in fills])
    plate = _masked_plate(tmp_path / "plate", boxes, *size)
    options = {"context": "8"}
    with Client(bserver.address) as client:
        single = _render(client, RenderSpec(model="tiny-inpaint", seed=5, options={**options, "batch": "1"}), plate)
        assert [len(c) for c in shapes] == [1] * len(FRAMES)
        alone = list(shapes)
        shapes.clear()
        batched = _render(client, RenderSpec(model="tiny-inpaint", seed=5, options={**options, "batch": "4"}), plate)
        other_seed = _render(client, RenderSpec(model="tiny-inpaint", seed=6, options={**options, "batch": "4"}),
                             plate)
    if calls is not None:
        assert shapes[:2] == calls
    else:  # frames 1-2 and 4-6 (consecutive frames) share a model size (the box's width scaled to 128 px)
        assert alone[0][0][1] == 128 and alone[2][0] != alone[0][0]
        assert shapes[:3] == [[alone[0][0]] * 2, [alone[2][0]], [alone[0][0]] * 3]
    _assert_close(batched, single)
    _assert_outside_the_mask_is_the_plate(batched, plate)
    for frame in FRAMES:  # the tolerance is far below what a frame's own noise changes
        assert np.abs(_rgb(other_seed[frame]) - _rgb(batched[frame])).max() > 0.05


@pytest.mark.parametrize("model", ["tiny-x4", "tiny-x2"])
def test_an_upscaled_batched_frame_is_its_unbatched_render(bserver, monkeypatch, tmp_path: Path, model: str) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec
    from shotpass_server.passes.diffusion.upscale import UpscaleModel

    calls = _spy_calls(monkeypatch, UpscaleModel, "render_batch", lambda jobs, ctxs: [j.frame for j in jobs])
    tiles = _spy_calls(monkeypatch, UpscaleModel, "_tiled", lambda pipe, stack, *a: stack.shape)
    plate = _plate(tmp_path / "plate", w=72, h=40)  # 3 x 2 tiles of 32 px sharing 8
    with Client(bserver.address) as client:
        single = _render(client, RenderSpec(model=model, seed=5, options={"batch": "1"}), plate)
        assert calls == [] and tiles == [(40, 72, 3)] * len(FRAMES)
        tiles.clear()
        batched = _render(client, RenderSpec(model=model, seed=5, options={"batch": "4"}), plate)
        assert calls == [[1, 2, 3, 4], [5, 6]]
        assert tiles == [(40, 72, 12), (40, 72, 6)], "tile n of every frame of a batch in one pipeline call"
        other_seed = _render(client, RenderSpec(model=model, seed=6, options={"batch": "4"}), plate)
    scale = 4 if model == "tiny-x4" else 2
    assert batched[1].parts[0].channels["R"].shape == (40 * scale, 72 * scale)
    _assert_close(batched, single)
    for frame in FRAMES:
        assert np.abs(_rgb(other_seed[frame]) - _rgb(batched[frame])).max() > 0.05


def _model(model_config: Path, name: str) -> Any:
    from shotpass_server.config import load_config
    from shotpass_server.passes.diffusion import diffusion_model

    torch.set_num_threads(2)
    return diffusion_model(next(s for s in load_config(model_config).models if s.name == name))


def _jobs(model: Any, frames: Any, options: Dict[str, str], progress: Any = None) -> Any:
    """Frames of grain 24 x 40, each masked in a 10 x 12 box at its own place, and their contexts."""
    from shotpass_server.passes.base import FrameJob, PassContext, parse_options

    parsed = parse_options(model.options, options, model.name)
    rng = np.random.default_rng(1)
    jobs, ctxs = [], []
    for f in frames:
        mask = np.zeros((24, 40), np.float32)
        mask[4:14, 2 * f: 12 + 2 * f] = 1.0
        jobs.append(FrameJob(frame=f, rgb=rng.random((24, 40, 3), dtype=np.float32), alpha=None, mask=mask))
        report = (lambda step, total, f=f: progress(f, step)) if progress else (lambda step, total: None)
        ctxs.append(PassContext(options=parsed, seed=100 + f, prompt="a wall", negative_prompt="text",
                                progress=report))
    return jobs, ctxs


KINDS = {"tiny-inpaint": "_call", "tiny-x4": "_upscale"}  # each kind's method that takes a whole batch


@pytest.mark.parametrize("name", sorted(KINDS))
def test_out_of_memory_halves_an_inpaint_or_upscale_batch(model_config: Path, name: str) -> None:
    model = _model(model_config, name)
    real, calls = getattr(model, KINDS[name]), []

    def two_fit(pipe_or_jobs: Any, frames: Any, *args: Any) -> Any:
        """The real call on a device that holds two frames per call, not more."""
        calls.append(len(frames))
        if len(frames) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(pipe_or_jobs, frames, *args)

    if name == "tiny-x4":
        setattr(model, KINDS[name], lambda jobs, ctxs: two_fit(None, jobs, ctxs))
        real = (lambda _, jobs, ctxs, run=real: run(jobs, ctxs))  # noqa: E731
    else:
        setattr(model, KINDS[name], two_fit)
    jobs, ctxs = _jobs(model, range(1, 5), {"batch": "4"})
    results = model.process_batch(jobs, ctxs)
    assert calls == [4, 2, 2], "4 frames ran out of memory: 2 + 2 fitted"
    assert model.process_batch(jobs[:3], ctxs[:3]) and calls[3:] == [2, 1], "the size that fitted is kept"
    for job, ctx, batched in zip(jobs, ctxs, results):
        alone = model.process(job, ctx).rgb
        assert batched.rgb.shape == alone.shape
        assert np.abs(batched.rgb - alone).max() < 1e-4, f"frame {job.frame}"
        if name == "tiny-inpaint":
            outside = job.mask == 0
            assert np.array_equal(batched.rgb[outside], job.rgb[outside]), "outside the mask: the plate, bit for bit"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_cancel_stops_an_inpaint_or_upscale_batch_between_steps(model_config: Path, name: str) -> None:
    from shotpass_server.errors import RenderCancelled

    model = _model(model_config, name)
    steps: Dict[int, List[int]] = {}

    def progress(frame: int, step: int) -> None:
        steps.setdefault(frame, []).append(step)
        if frame == 2 and step == 1:
            raise RenderCancelled("cancelled")

    jobs, ctxs = _jobs(model, (1, 2, 3), {"batch": "3", "steps": "5"}, progress)
    with pytest.raises(RenderCancelled):
        model.process_batch(jobs, ctxs)
    assert steps == {1: [1], 2: [1]}, "the call stops at the first step's end, where frame 2 was cancelled"


def test_which_inpaint_and_upscale_frames_share_a_batch_key(model_config: Path) -> None:
    from dataclasses import replace

    from shotpass_server.passes.base import Anchor

    inpaint, upscale = _model(model_config, "tiny-inpaint"), _model(model_config, "tiny-x4")
    for model in (inpaint, upscale):
        jobs, ctxs = _jobs(model, (1, 2), {})
        assert model.batch_key(jobs[0], ctxs[0]) == model.batch_key(jobs[1], ctxs[1]) is not None
        assert model.batch_key(jobs[0], replace(ctxs[0], noise=object())) is None, "noise=flow runs alone"
        anchor = Anchor(frame=1, rgb=jobs[0].rgb, seed=1)
        assert model.batch_key(jobs[0], replace(ctxs[0], anchor=anchor)) is None
        assert model.batch_key(jobs[0], replace(ctxs[0], prompt="a door")) != model.batch_key(jobs[1], ctxs[1])
    jobs, ctxs = _jobs(inpaint, (1,), {})
    empty = replace(jobs[0], mask=np.zeros((24, 40), np.float32))
    assert inpaint.batch_key(empty, ctxs[0]) is None, "an empty mask makes no pipeline call"
    two, two_ctxs = _jobs(inpaint, (1, 2), {})
    kept = inpaint.process_batch([empty, two[1]], two_ctxs)  # handed a batch anyway: each frame as alone
    assert np.array_equal(kept[0].rgb, empty.rgb)
    assert np.array_equal(kept[1].rgb, inpaint.process(two[1], two_ctxs[1]).rgb)
    # Region mode on a 300 x 200 plate: masks of one size batch wherever they are; a wider one does not.
    inpaint.native = 128
    plate = np.zeros((200, 300, 3), np.float32)

    def key(x0: int, width: int) -> Any:
        mask = np.zeros((200, 300), np.float32)
        mask[50:80, x0: x0 + width] = 1
        return inpaint.batch_key(replace(jobs[0], rgb=plate, mask=mask), ctxs[0])

    assert key(80, 40) == key(170, 40) != key(80, 90)  # 64 px of context: the boxes stay inside the plate
    up_jobs, up_ctxs = _jobs(upscale, (1,), {})
    assert upscale.batch_key(replace(up_jobs[0], rgb=plate), up_ctxs[0]) != upscale.batch_key(up_jobs[0], up_ctxs[0])
    # What the free-memory cap on a GPU sizes a batch by: the region, not the plate; a 32 px tile at 8x each way.
    assert inpaint.batch_pixels(replace(jobs[0], rgb=plate), ctxs[0]) == 128 * 128
    assert inpaint.batch_pixels(jobs[0], ctxs[0]) == 24 * 40
    assert upscale.batch_pixels(replace(up_jobs[0], rgb=plate), up_ctxs[0]) == 64 * 32 * 32
    # The host holds a batch's 4x outputs: 2K frames go 5 at a time, a 4K frame alone, whatever `batch` says.
    for (h, w), fit in (((24, 40), 8), ((1080, 2048), 5), ((2160, 4096), 1)):
        sized = replace(up_jobs[0], rgb=np.empty((h, w, 3), np.float32))  # never written: no memory touched
        assert upscale.frames_that_fit(sized, replace(up_ctxs[0], options={**up_ctxs[0].options, "batch": 8}), 8) \
            == fit


@pytest.mark.parametrize("kind, save, sampler", [
    ("sdxl-inpaint", tiny_pipelines.save_sdxl_inpaint, "default"),
    ("sd3-inpaint", tiny_pipelines.save_sd3, "default"),  # inpaint.py's batching, inherited by the transformer bases
    ("sd3-inpaint", lambda path: tiny_pipelines.save_sd3(path, in_channels=33), "default"),  # latents + mask + image
    ("flux-inpaint", tiny_pipelines.save_flux, "default"),
    # LCM draws fresh noise at every step: in a batch each frame still draws it from its own seed
    ("sd3-inpaint", tiny_pipelines.save_sd3, "lcm"),
    ("flux-inpaint", tiny_pipelines.save_flux, "lcm"),
], ids=["sdxl", "sd3", "sd3-inpaint33", "flux", "sd3-lcm", "flux-lcm"])
def test_sdxl_sd3_and_flux_inpaint_frames_batch_too(tmp_path: Path, kind: str, save: Any, sampler: str) -> None:
    from shotpass_server.model_config import parse_models
    from shotpass_server.passes.diffusion import diffusion_model

    torch.set_num_threads(2)
    save(tmp_path / "base")
    table = {"kind": kind, "pass": "inpaint", "path": "base", "steps": 2, "strength": 1.0, "batch": 3,
             "scheduler": sampler}
    model = diffusion_model(parse_models({"tiny-inpaint": table}, tmp_path, "shotpass.toml")[0])
    jobs, ctxs = _jobs(model, (1, 2, 3), {"grow": "2", "feather": "3"})
    assert len({model.batch_key(j, c) for j, c in zip(jobs, ctxs)}) == 1
    batched = model.process_batch(jobs, ctxs)
    for job, ctx, result in zip(jobs, ctxs, batched):
        alone = model.process(job, ctx)
        assert np.abs(result.rgb - alone.rgb).max() < 1e-4, f"frame {job.frame}"
        assert np.array_equal(result.filled, alone.filled)
        outside = result.filled == 0
        assert np.array_equal(result.rgb[outside], job.rgb[outside])


def test_a_failing_inpaint_batch_reruns_its_frames_one_by_one(bserver, monkeypatch, tmp_path: Path) -> None:
    from shotpass_client import Client
    from shotpass_client.jobs import RenderSpec
    from shotpass_server.passes.diffusion.inpaint import InpaintModel

    real, calls = InpaintModel._call, []

    def fails_batched(self: Any, pipe: Any, fills: Any, *args: Any) -> Any:
        calls.append(len(fills))
        if len(fills) > 1:
            raise RuntimeError("a kernel that takes no batch")
        return real(self, pipe, fills, *args)

    plate = _masked_plate(tmp_path / "plate", {f: (4, 14, 3 + 2 * f, 15 + 2 * f) for f in FRAMES}, 40, 24)
    with Client(bserver.address) as client:
        single = _render(client, RenderSpec(model="tiny-inpaint", seed=5, options={"batch": "1"}), plate)
        monkeypatch.setattr(InpaintModel, "_call", fails_batched)
        rerun = _render(client, RenderSpec(model="tiny-inpaint", seed=5, options={"batch": "4"}), plate)
    assert calls == [4, 1, 1, 1, 1, 2, 1, 1]
    for frame in FRAMES:
        for c in "RGB":
            assert np.array_equal(rerun[frame].parts[0].channels[c], single[frame].parts[0].channels[c])
