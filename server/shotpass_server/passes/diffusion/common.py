"""What every diffusers-backed model shares: offline loading, a per-device pipeline LRU, tensors, steps.

Frames arrive as float32 sRGB-encoded RGB in [0, 1] (values above 1 are clipped: these networks are
display-referred). They are reflect-padded to what the pipeline needs and cropped back, so any size in
is the same size out. Noise comes from a CPU generator seeded with the frame's own seed, so it is the
same on any device and independent of chunking.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ...errors import ModelUnavailable, ShotpassError
from ...model_config import ModelSpec, check_model_files
from ..base import SRGB_ENCODED, FrameJob, FrameResult, Model, Option, PassContext, configured_threads
from .adapters import adapter_options, adapters_description, load_adapters, load_vae
from .adapters import prepare as prepare_adapters

log = logging.getLogger("shotpass.diffusion")

# Pipelines kept per process, evicted least recently used past this many bytes of weights.
CACHE_BYTES = int(float(os.environ.get("SHOTPASS_PIPELINE_CACHE_GB", "24")) * 2**30)
# VAE tiling: an image whose longer side (in the pixels the VAE encodes or decodes) exceeds this runs the VAE
# in overlapping tiles (diffusers' enable_tiling), so a 4K plate's encode/decode fits in GPU memory; below
# it the VAE runs whole (tiling is slower and blends tile borders). The `vae_tiling_above` option overrides
# it per render; 0 tiles every frame.
VAE_TILING_ABOVE = 1536
# Batching across frames (`batch` option, 0 = auto): at most this many frames per denoiser call on a GPU, fewer
# when the device's free memory cannot hold them (BATCH_BYTES_PER_PIXEL each). On a CPU auto is one frame: the
# gain bench/batching.py measures there is the per-call overhead of the tiny test networks, and a CPU gives no
# free-memory figure to size a batch by (past RAM it swaps instead of failing cleanly); `batch = N` opts in.
GPU_AUTO_BATCH = 8
CPU_AUTO_BATCH = 1
# Device memory one more frame in a batch needs, per pixel of the frame at fp16 with guidance (two UNet rows):
# the UNet's activations plus the VAE decode's. An estimate: when it is wrong, the out-of-memory retry halves
# the batch, and the model keeps the size that fitted for that frame size.
BATCH_BYTES_PER_PIXEL = 6 * 1024


class PipelineCache:
    """Loaded pipelines keyed by (model, variant, device), LRU within a byte budget of weights."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self._items: OrderedDict[Tuple[str, ...], Tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: Dict[Tuple[str, ...], threading.Lock] = {}

    def get(self, key: Tuple[str, ...], load: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            gate = self._loading.setdefault(key, threading.Lock())
        with gate:  # one load per key; other keys load in parallel
            with self._lock:
                if key in self._items:
                    return self._items[key][0]
            pipe = load()
            size = pipeline_bytes(pipe)
            with self._lock:
                self._items[key] = (pipe, size)
                self._evict(keep=key)
            return pipe

    def _evict(self, keep: Tuple[str, ...]) -> None:
        while sum(s for _, s in self._items.values()) > self.budget and len(self._items) > 1:
            oldest = next(iter(self._items))
            if oldest == keep:
                break
            self._items.popitem(last=False)
        _empty_cuda_cache()

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


PIPELINES = PipelineCache()


def pipeline_bytes(pipe: Any) -> int:
    total = 0
    for part in getattr(pipe, "components", {}).values():
        params = getattr(part, "parameters", None)
        if callable(params):
            total += sum(p.numel() * p.element_size() for p in params())
    return total


def _empty_cuda_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def torch_device(device: str) -> str:
    """Worker names ("cpu:1") to torch devices ("cpu"); CUDA devices keep their index."""
    return device if device.startswith("cuda") else "cpu"


def configure_threads() -> None:
    """Pin torch's CPU threads from SHOTPASS_THREADS: results differ by ~1e-5 between thread counts."""
    import torch

    threads = configured_threads()
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def dtype_for(spec: ModelSpec, device: str) -> Any:
    import torch

    if spec.dtype == "fp32" or (spec.dtype == "auto" and not device.startswith("cuda")):
        return torch.float32
    return torch.bfloat16 if spec.dtype == "bf16" else torch.float16


# attention = "..." in a registry entry: how the denoiser's attention runs. The processor names are diffusers'
# classic ones; the others are diffusers' attention-dispatch backends (their own requirements apply).
ATTENTION_PROCESSORS = ("sdpa", "eager", "slicing", "xformers")
ATTENTION_BACKENDS = ("native", "flash", "flex", "sage", "_native_cudnn", "_native_efficient", "_native_flash",
                      "_native_math")
ATTENTION_CHOICES = ATTENTION_PROCESSORS + ATTENTION_BACKENDS
FLOW_ATTENTION_REFUSED = ("eager", "slicing", "xformers")  # UNet attention processors, not joint attention


def apply_attention(pipe: Any, spec: ModelSpec) -> None:
    """The entry's attention setting, before adapters load (an IP-Adapter sets its own cross-attention)."""
    net = denoiser(pipe)
    try:
        if spec.attention == "eager":
            from diffusers.models.attention_processor import AttnProcessor

            net.set_attn_processor(AttnProcessor())
        elif spec.attention == "slicing":
            pipe.enable_attention_slicing()
        elif spec.attention == "xformers":
            pipe.enable_xformers_memory_efficient_attention()
        elif spec.attention in ATTENTION_BACKENDS:
            net.set_attention_backend(spec.attention)
    except (ImportError, ModuleNotFoundError, RuntimeError, ValueError) as err:
        raise ModelUnavailable(f"model {spec.name}: attention = {spec.attention!r} does not run here: {err}") from None


def place(pipe: Any, spec: ModelSpec, device: str) -> Any:
    """VAE slicing, then the device (or CPU offload), then torch.compile, as the entry says."""
    slicing = device.startswith("cuda") if spec.vae_slicing is None else spec.vae_slicing
    if slicing:
        pipe.vae.enable_slicing()
    if spec.cpu_offload != "none" and device.startswith("cuda"):
        # Weights wait in CPU memory and visit the GPU per model ("model") or per layer ("sequential").
        gpu = int(device.split(":")[1]) if ":" in device else 0
        if spec.cpu_offload == "model":
            pipe.enable_model_cpu_offload(gpu_id=gpu)
        else:
            pipe.enable_sequential_cpu_offload(gpu_id=gpu)
    else:
        pipe.to(torch_device(device))
    if spec.compile:
        import torch

        name = "unet" if getattr(pipe, "unet", None) is not None else "transformer"
        setattr(pipe, name, torch.compile(getattr(pipe, name)))  # compiled on the first frame, then reused
    return pipe


def load_pipeline(spec: ModelSpec, class_name: str, device: str, **components: Any) -> Any:
    """Load a pipeline from the local folder (or single file) only; any failure is an exact message."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: local_files_only already forbids downloads
    check_model_files(spec)
    import diffusers

    cls = getattr(diffusers, class_name)
    dtype = dtype_for(spec, device)
    try:
        if spec.single_file:
            pipe = cls.from_single_file(
                str(spec.path), config=str(spec.config), local_files_only=True, dtype=dtype, **components
            )
        else:
            pipe = cls.from_pretrained(str(spec.path), local_files_only=True, dtype=dtype, **components)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelUnavailable(f"model {spec.name}: cannot load {spec.path}: {err}") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_controlnet(spec: ModelSpec, which: str, device: str) -> Any:
    from diffusers import ControlNetModel

    folder = spec.controlnets[which]
    try:
        net = ControlNetModel.from_pretrained(str(folder), local_files_only=True, dtype=dtype_for(spec, device))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelUnavailable(f"model {spec.name}: cannot load its {which} controlnet {folder}: {err}") from None
    return net.to(torch_device(device))


def generator(seed: int) -> Any:
    import torch

    return torch.Generator("cpu").manual_seed(int(seed) & 0xFFFFFFFF)


def starting_noise(ctx: PassContext, shape: Sequence[int], pipe: Any) -> Any:
    """A frame's starting noise, float32 on the CPU: carried along the plate's motion with noise=flow
    (temporal/noise.py), else drawn from the frame's seed."""
    if ctx.noise is not None:
        from ...temporal.noise import warped_noise

        return warped_noise(ctx.noise, shape, latent_multiple(pipe))
    import torch

    return torch.randn(tuple(shape), generator=generator(ctx.seed), dtype=torch.float32)


@contextmanager
def noised_with(pipe: Any, noise: Any) -> Iterator[None]:
    """For one call, an img2img pipeline given its starting latents as ``image`` noises them with ``noise``
    instead of drawing noise from its generator (the SD and SDXL img2img pipelines, ControlNet ones included)."""

    def prepare_latents(image: Any, timestep: Any, batch_size: int, num_images_per_prompt: int, dtype: Any,
                        device: Any, generator: Any = None, add_noise: bool = True) -> Any:
        init = image.to(device=device, dtype=dtype)
        return pipe.scheduler.add_noise(init, noise.to(device=device, dtype=dtype), timestep) if add_noise else init

    pipe.prepare_latents = prepare_latents  # shadows the class's method on this (cached) pipeline
    try:
        yield
    finally:
        del pipe.prepare_latents


def to_tensor(rgb: np.ndarray, pipe: Any) -> Any:
    """H x W x 3 in [0, 1] -> 1 x 3 x H x W on the pipeline's device, in [0, 1] (the pipeline normalises)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(np.clip(rgb, 0.0, 1.0).transpose(2, 0, 1)))[None]
    return t.to(pipe.device, dtype=torch.float32)


def denoiser(pipe: Any) -> Any:
    """The pipeline's UNet, or its transformer (SD3, Flux)."""
    unet = getattr(pipe, "unet", None)
    return unet if unet is not None else pipe.transformer


def is_flux(pipe: Any) -> bool:
    return type(denoiser(pipe)).__name__.startswith("Flux")


def latent_multiple(pipe: Any) -> int:
    """Pixels per latent times the denoiser's own downsampling (a UNet's levels, a transformer's patches): frame
    sides are padded to a multiple of it."""
    vae = int(getattr(pipe, "vae_scale_factor", 8))
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        return vae * 2 ** (len(unet.config.block_out_channels) - 1)
    if is_flux(pipe):
        return vae * 2  # Flux packs 2 x 2 latents into one token
    return vae * int(pipe.transformer.config.patch_size)


def step_progress(ctx: PassContext, offset: int = 0, total: Optional[int] = None) -> Callable[..., Dict[str, Any]]:
    """A ``callback_on_step_end``: reports each finished step; ctx.progress raises to cancel the render."""

    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        ctx.progress(offset + step + 1, total or pipe.num_timesteps)
        return kwargs

    return on_step_end


# What allocators say when memory runs out: CUDA's, torch's CPU allocator, MPS's.
OOM_TEXTS = ("out of memory", "can't allocate memory", "defaultcpuallocator", "failed to allocate")


def is_oom(err: BaseException) -> bool:
    """GPU or CPU memory ran out (CUDA OOM, torch's CPU allocator, Python's MemoryError)."""
    if isinstance(err, MemoryError):
        return True
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(t in text for t in OOM_TEXTS)


def free_memory() -> None:
    import gc

    gc.collect()
    _empty_cuda_cache()


class PipelineFailed(ShotpassError):
    """A diffusers pipeline raised: the message names the model, the frames and what happened."""


def failure_message(model: str, frames: Sequence[int], device: str, err: BaseException) -> str:
    which = f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}-{frames[-1]}"
    first = (str(err).strip().splitlines() or [""])[0][:300]
    if is_oom(err):
        return (f"model {model}, {which}: out of memory on {device} even at its lightest settings ({first}); "
                "render a smaller plate, or set cpu_offload = true or dtype = \"fp16\" in the model's registry entry")
    return f"model {model}, {which}: the pipeline failed on {device}: {type(err).__name__}: {first}"


# The checkpoint of the frame this thread is running (one worker thread per device runs one frame at a time).
_FRAME = threading.local()


def _between_vae_tiles(module: Any, args: Any) -> None:
    """A forward pre-hook on the VAE's encoder and decoder, which diffusers' tiled encode and decode call once per
    tile: a cancelled render stops before the next tile instead of after the whole 4K pass."""
    check = getattr(_FRAME, "checkpoint", None)
    if check is not None:
        check()


def watch_vae(vae: Any, ctx: PassContext) -> None:
    """Let the frame in hand be cancelled between the tiles of ``vae`` (hooks installed once per VAE)."""
    if not getattr(vae, "_shotpass_watched", False):
        for part in (vae.encoder, vae.decoder):
            part.register_forward_pre_hook(_between_vae_tiles)
        vae._shotpass_watched = True
    _FRAME.checkpoint = ctx.checkpoint


def set_vae_tiling(pipe: Any, height: int, width: int, ctx: PassContext) -> bool:
    """Tile the pipeline's VAE (encode and decode) for an image of height x width above the threshold, and let
    a cancel stop the frame between its tiles.

    Set on every call: the VAE is shared by a model's pipelines (ControlNet variants come from_pipe) and one
    worker runs one frame at a time, so the setting always matches the frame in hand. Returns whether tiled.
    """
    watch_vae(pipe.vae, ctx)
    tiled = max(height, width) > int(ctx.options.get("vae_tiling_above", VAE_TILING_ABOVE))
    if tiled:
        pipe.vae.enable_tiling()
    else:
        pipe.vae.disable_tiling()
    return tiled


def prompt_args(ctx: PassContext) -> Dict[str, Any]:
    return {"prompt": ctx.prompt or "", "negative_prompt": ctx.negative_prompt or None}


def batch_progress(ctxs: Sequence[PassContext]) -> Callable[..., Dict[str, Any]]:
    """A ``callback_on_step_end`` for a batch: every frame reports the step; any one's cancel stops the batch."""

    def on_step_end(pipe: Any, step: int, timestep: Any, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        for ctx in ctxs:
            ctx.progress(step + 1, pipe.num_timesteps)
        return kwargs

    return on_step_end


def batch_prompt_args(ctxs: Sequence[PassContext]) -> Dict[str, Any]:
    """prompt_args for frames that share prompts: one prompt (and negative prompt) per frame, as pipelines want
    for a batch."""
    n, first = len(ctxs), ctxs[0]
    return {
        "prompt": [first.prompt or ""] * n,
        "negative_prompt": [first.negative_prompt] * n if first.negative_prompt else None,
    }


def batch_denoise_args(ctxs: Sequence[PassContext], options: Dict[str, Any]) -> Dict[str, Any]:
    """denoise_args for frames that share prompts and options: one prompt per frame, each frame's own noise."""
    return {
        **batch_prompt_args(ctxs),
        "strength": options["strength"],
        "num_inference_steps": options["steps"],
        "guidance_scale": options["guidance"],
        # A generator per frame: diffusers draws each frame's noise from its own, as an unbatched call does.
        "generator": [generator(ctx.seed) for ctx in ctxs],
        "output_type": "np",
        "callback_on_step_end": batch_progress(ctxs),
    }


def denoise_args(ctx: PassContext, options: Dict[str, Any]) -> Dict[str, Any]:
    """What every img2img-style call shares: prompts, strength, steps, guidance, the frame's noise, progress."""
    return {
        **prompt_args(ctx),
        "strength": options["strength"],
        "num_inference_steps": options["steps"],
        "guidance_scale": options["guidance"],
        "generator": generator(ctx.seed),
        "output_type": "np",
        "callback_on_step_end": step_progress(ctx),
    }


class DiffusionModel(Model):
    """A model from one ``[models.NAME]`` table; the pipeline loads on first use, per device."""

    family = "descriptive"
    uses_prompt = True
    working_space = SRGB_ENCODED

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]
        self.pass_name = spec.pass_name  # type: ignore[misc]
        self.family = spec.family  # type: ignore[misc]
        extras = adapters_description(spec)
        self.description = f"{spec.description} ({extras})" if extras else spec.description  # type: ignore[misc]
        self.licence = spec.licence  # type: ignore[misc]
        if spec.ip_adapter is not None:
            self.accepts_reference = True  # type: ignore[misc]  # the reference is the IP-Adapter's image prompt
        self.options = self.build_options()  # type: ignore[misc]
        self._fitted: Dict[Tuple[str, Tuple[int, ...]], int] = {}  # (device, frame shape) -> batch that fitted

    def build_options(self) -> List[Option]:
        s = self.spec
        return [
            Option("steps", "int", s.steps, "denoising steps", minimum=1, maximum=500),
            Option("guidance", "float", s.guidance, "classifier-free guidance scale (1 = off)", minimum=0, maximum=50),
            Option("vae_tiling_above", "int", s.vae_tiling_above,
                   "run the VAE in tiles when the image's longer side exceeds this many pixels (0 = always)",
                   minimum=0, maximum=1 << 20),
            *adapter_options(s),
            *([Option("batch", "int", s.batch,
                      "frames through the denoiser at once (0 = as many as fit the device's free memory; 1 = one "
                      "at a time); each frame's result is its own, as unbatched", minimum=0, maximum=64)]
              if self.batches else []),
        ]

    # Kinds that can run several frames through one pipeline call (render_batch) set this.
    batches = False

    def batch_size(self, options: Dict[str, Any], device: str) -> int:
        if not self.batches:
            return 1
        return int(options.get("batch", 0)) or (GPU_AUTO_BATCH if device.startswith("cuda") else CPU_AUTO_BATCH)

    def process_batch(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        """The frames in pipeline calls of as many as fit; out of memory, a call is halved and run again."""
        fit = self.frames_that_fit(jobs[0], ctxs[0], len(jobs))
        out: List[FrameResult] = []
        for i in range(0, len(jobs), fit):
            out += self._batch(list(jobs[i: i + fit]), list(ctxs[i: i + fit]))
        return out

    def frames_that_fit(self, job: FrameJob, ctx: PassContext, wanted: int) -> int:
        """An explicit `batch` is taken as asked; auto (0) on a GPU is capped by its free memory."""
        fitted = self._fitted.get((ctx.device, job.rgb.shape), wanted)
        if int(ctx.options.get("batch", 0)) or not ctx.device.startswith("cuda"):
            return max(1, min(wanted, fitted))
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(ctx.device))
        guided = ctx.options.get("guidance", 0) > 1
        per_frame = self.batch_pixels(job, ctx) * BATCH_BYTES_PER_PIXEL * (1 if guided else 0.5)
        per_frame *= 2 if dtype_for(self.spec, ctx.device) == torch.float32 else 1
        return max(1, min(wanted, fitted, int(free * 0.8 // per_frame)))

    def batch_pixels(self, job: FrameJob, ctx: PassContext) -> int:
        """Pixels of the image one more frame adds to a pipeline call (the whole frame; kinds that run a region or
        tiles of it say theirs): what the free-memory cap sizes a batch by."""
        h, w = job.rgb.shape[:2]
        return h * w

    def _batch(self, jobs: List[FrameJob], ctxs: List[PassContext]) -> List[FrameResult]:
        if len(jobs) == 1:
            return [self.process(jobs[0], ctxs[0])]
        frames, device = [j.frame for j in jobs], ctxs[0].device
        try:
            return self.render_batch(jobs, ctxs)
        except ShotpassError:
            raise  # cancelled, timed out, bad input
        except Exception as err:
            if not is_oom(err):
                log.error("model %s frames %s failed", self.name, frames, exc_info=True)
                free_memory()
                raise PipelineFailed(failure_message(self.name, frames, device, err)) from None
            log.warning("model %s: out of memory on %s with a batch of %d frames; halving it", self.name, device,
                        len(jobs))
        free_memory()  # out of the except block: the failed attempt's tensors are unreachable now
        half = (len(jobs) + 1) // 2
        self._fitted[(device, jobs[0].rgb.shape)] = half  # later batches of this size start there
        return self._batch(jobs[:half], ctxs[:half]) + self._batch(jobs[half:], ctxs[half:])

    def render_batch(self, jobs: Sequence[FrameJob], ctxs: Sequence[PassContext]) -> List[FrameResult]:
        """Frames with one batch key through one pipeline call (kinds with ``batches``)."""
        return [self.process(job, ctx) for job, ctx in zip(jobs, ctxs)]

    def process(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        """``render``, retried lighter when memory runs out; any pipeline error names the model and the frame."""
        return self.guarded([job.frame], ctx.device, lambda: self.retrying([ctx], lambda c: self.render(job, c[0])))

    def retrying(self, ctxs: Sequence[PassContext], run: Callable[[List[PassContext]], Any]) -> Any:
        """Run; when GPU or CPU memory runs out, run again at each lighter setting (``lighter``) before failing."""
        tried = list(ctxs)
        while True:
            try:
                return run(tried)
            except Exception as err:
                if not is_oom(err):
                    raise
                options = self.lighter(tried[0].options)
                if options is None:
                    raise
                changed = {k: v for k, v in options.items() if tried[0].options.get(k) != v}
                log.warning("model %s: out of memory on %s (%s); retrying with %s", self.name, tried[0].device,
                            str(err).splitlines()[0][:200] if str(err) else type(err).__name__, changed)
                tried = [replace(c, options=options) for c in tried]
            free_memory()  # out of the except block: the failed attempt's tensors are unreachable now

    def lighter(self, options: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The next lighter settings after running out of memory, or None when there are none. First the VAE
        in tiles at any size; kinds add their own steps (smaller windows, shorter context)."""
        if options.get("vae_tiling_above", 0) > 0:
            return {**options, "vae_tiling_above": 0}
        return None

    def guarded(self, frames: Sequence[int], device: str, run: Callable[[], Any]) -> Any:
        try:
            return run()
        except ShotpassError:
            raise  # cancelled, bad input, unavailable: already a message for the user
        except Exception as err:
            log.error("model %s frames %s failed", self.name, list(frames), exc_info=True)
            free_memory()
            raise PipelineFailed(failure_message(self.name, frames, device, err)) from None
        finally:
            _FRAME.checkpoint = None  # the next frame on this thread sets its own

    def render(self, job: FrameJob, ctx: PassContext) -> FrameResult:
        raise NotImplementedError

    def pipeline(self, device: str, variant: str = "main") -> Any:
        configure_threads()
        # The kind and folder in the key: an entry given another folder (a reload, a test) never gets the old one.
        key = (self.name, self.spec.kind, str(self.spec.path), variant, device)
        return PIPELINES.get(key, lambda: self.load(device, variant))

    def load(self, device: str, variant: str, **components: Any) -> Any:
        spec = self.spec
        components.update(load_vae(spec, dtype_for(spec, device)))
        pipe = load_pipeline(spec, spec.pipeline_class, device, **components)
        apply_attention(pipe, spec)
        load_adapters(pipe, spec)
        return place(pipe, spec, device)

    def prepare(self, pipe: Any, ctx: PassContext) -> Dict[str, Any]:
        """This render's sampler, LoRA weights and IP-Adapter image on the cached pipeline; extra call kwargs."""
        return prepare_adapters(pipe, self.spec, ctx)
