"""The diffusion model registry from the server's TOML config: ``[models.NAME]`` tables.

Example::

    [models.sd15-stylize]
    kind = "sd15-img2img"            # sd15-img2img | sdxl-img2img | sd-inpaint | sdxl-inpaint | sd-x4-upscaler
                                     # | animatediff-v2v | sd3-img2img | sd3-inpaint | flux-img2img | flux-inpaint
    pass = "stylize"                 # optional: the kind's pass
    path = "/models/sd15"            # a diffusers folder (save_pretrained layout) or a single-file checkpoint
    config = "/models/sd15-config"   # single-file checkpoints only: a diffusers folder with the configs
    family = "descriptive"
    default = true                   # this pass's default model
    steps = 30
    strength = 0.45
    guidance = 7.0
    controlnets = { canny = "/models/cn-canny", depth = "/models/cn-depth" }
    loras = { ink = { path = "/models/loras/ink.safetensors", weight = 0.8 } }
    embeddings = { "<ink-style>" = "/models/emb/ink.safetensors" }
    ip_adapter = { path = "/models/ip/ip-adapter.safetensors", image_encoder = "/models/ip/image_encoder" }
    vae = "/models/vae"
    scheduler = "dpm++-2m-karras"
    dtype = "fp16"                   # and attention, cpu_offload, vae_slicing, vae_tiling_above, compile, batch

(The README's model-registry section lists every key.) Every folder is probed when the config is read
(model_probe.py): a missing, broken or wrong folder makes that one model unavailable with an exact message
naming the entry, the path and what is wrong, never a traceback at render time. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .errors import InvalidInput, ModelUnavailable

# kind -> (pass, diffusers pipeline class)
KINDS: Dict[str, Tuple[str, str]] = {
    "sd15-img2img": ("stylize", "StableDiffusionImg2ImgPipeline"),
    "sdxl-img2img": ("stylize", "StableDiffusionXLImg2ImgPipeline"),
    "sd-inpaint": ("inpaint", "StableDiffusionInpaintPipeline"),
    "sdxl-inpaint": ("inpaint", "StableDiffusionXLInpaintPipeline"),
    "sd-x4-upscaler": ("upscale", "StableDiffusionUpscalePipeline"),
    "animatediff-v2v": ("stylize", "AnimateDiffVideoToVideoPipeline"),
    "sd3-img2img": ("stylize", "StableDiffusion3Img2ImgPipeline"),
    "sd3-inpaint": ("inpaint", "StableDiffusion3InpaintPipeline"),
    "flux-img2img": ("stylize", "FluxImg2ImgPipeline"),
    "flux-inpaint": ("inpaint", "FluxInpaintPipeline"),
}
# Transformer (MMDiT) bases sampled by flow matching: their own schedulers, no UNet-only adapters.
FLOW_KINDS = ("sd3-img2img", "sd3-inpaint", "flux-img2img", "flux-inpaint")
FLUX_GUIDANCE = 3.5  # Flux's default: a guidance-distilled model takes the scale as an input, not as CFG
CONTROLNET_KINDS = ("canny", "depth")
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")
WEIGHT_FILES = (
    "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.bin",
    "diffusion_pytorch_model.safetensors.index.json", "model.safetensors", "model.fp16.safetensors",
    "pytorch_model.bin", "model.safetensors.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.json")

_KEYS = {
    "kind", "pass", "path", "config", "family", "description", "licence", "default", "steps", "strength", "guidance",
    "controlnets", "controlnet", "reference_strength", "scale", "noise_level", "tile", "tile_overlap",
    "context_size", "context_overlap", "dtype", "loras", "embeddings", "ip_adapter", "vae", "scheduler",
    "attention", "cpu_offload", "vae_slicing", "vae_tiling_above", "compile", "motion_adapter", "batch",
}


@dataclass
class ModelSpec:
    name: str
    kind: str
    pass_name: str
    path: Path
    family: str = "descriptive"
    description: str = ""
    licence: str = "as licensed by the weights' authors"
    default: bool = False
    config: Optional[Path] = None  # diffusers folder with the configs of a single-file checkpoint
    steps: int = 30
    strength: float = 0.5
    guidance: float = 7.0
    controlnets: Dict[str, Path] = field(default_factory=dict)
    controlnet: str = "none"  # default structure condition
    reference_strength: float = 0.5
    scale: int = 4  # upscaler: 4, or 2 (x4 then downsampled)
    noise_level: int = 20
    tile: int = 128  # upscaler tile, in input pixels
    tile_overlap: int = 32
    context_size: int = 16  # AnimateDiff context window, frames
    context_overlap: int = 4
    dtype: str = "auto"  # auto: fp16 on CUDA, fp32 on CPU
    loras: Dict[str, Path] = field(default_factory=dict)  # name -> .safetensors (kohya or diffusers form)
    lora_weights: Dict[str, float] = field(default_factory=dict)  # name -> default weight (0 = off)
    embeddings: Dict[str, Path] = field(default_factory=dict)  # prompt token -> textual-inversion file
    ip_adapter: Optional[Path] = None  # IP-Adapter weights file
    ip_adapter_encoder: Optional[Path] = None  # its CLIP image encoder folder
    ip_adapter_strength: float = 0.6
    vae: Optional[Path] = None  # a diffusers AutoencoderKL folder replacing the pipeline's VAE
    scheduler: str = "default"  # the sampler renders get unless they choose one
    attention: str = "sdpa"  # sdpa | eager | slicing | xformers | a diffusers attention backend (common.py)
    cpu_offload: str = "none"  # none | model | sequential (CUDA devices only)
    vae_slicing: Optional[bool] = None  # None: on for CUDA devices
    vae_tiling_above: int = 1536  # the VAE runs in tiles above this many pixels (the render option's default)
    compile: bool = False  # torch.compile the denoiser (the first frame pays the compile)
    batch: int = 0  # frames through the denoiser at once (the render option's default); 0: memory decides
    motion_adapter: Optional[Path] = None  # animatediff-v2v: a MotionAdapter folder beside an SD 1.x base folder
    unavailable: str = ""  # set by probing: why this model cannot serve ("" = it can)

    @property
    def pipeline_class(self) -> str:
        return KINDS[self.kind][1]

    @property
    def single_file(self) -> bool:
        return self.path.is_file()


def parse_models(tables: Any, base: Path, source: str) -> List[ModelSpec]:
    """``[models.NAME]`` tables -> specs, every folder checked; InvalidInput/ModelUnavailable name the problem."""
    if not isinstance(tables, dict):
        raise InvalidInput(f"{source}: [models] must be a table of [models.NAME] tables")
    specs = [_parse_one(name, table, base, source) for name, table in tables.items()]
    defaults: Dict[str, str] = {}
    for spec in specs:
        if spec.default:
            if spec.pass_name in defaults:
                raise InvalidInput(
                    f"{source}: models {defaults[spec.pass_name]} and {spec.name} are both the {spec.pass_name} default"
                )
            defaults[spec.pass_name] = spec.name
    for spec in specs:
        spec.unavailable = probe_reason(spec)  # the server logs each at start; ListModels shows them
    return specs


def models_from_file(path: Path) -> List[ModelSpec]:
    """The ``[models.NAME]`` tables of a server config file, parsed and probed (for a registry reload)."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise InvalidInput(f"{path}: cannot read the config file ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise InvalidInput(f"{path}: not valid TOML ({err})") from None
    return parse_models(data.get("models", {}), Path(path).parent, str(path))


def probe_reason(spec: ModelSpec) -> str:
    """Why this model cannot serve (one line naming the entry and what its folder really is), or ""."""
    try:
        check_model_files(spec)
        from .model_probe import probe

        probe(spec)
    except ModelUnavailable as err:
        return str(err)
    return ""


def _parse_one(name: str, table: Any, base: Path, source: str) -> ModelSpec:
    where = f"{source}: [models.{name}]"
    if not isinstance(table, dict):
        raise InvalidInput(f"{where} must be a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise InvalidInput(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    kind = table.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    pass_name = table.get("pass", KINDS[kind][0])
    if pass_name != KINDS[kind][0]:
        raise InvalidInput(f"{where}: kind {kind} runs the {KINDS[kind][0]} pass, not {pass_name!r}")
    if not isinstance(table.get("path"), str) or not table["path"]:
        raise InvalidInput(f"{where}: path is required (a local diffusers folder or a single-file checkpoint)")

    def resolve(text: str) -> Path:
        return (base / Path(text).expanduser()).resolve()

    spec = ModelSpec(name=name, kind=kind, pass_name=pass_name, path=resolve(table["path"]))
    try:
        spec.family = str(table.get("family", spec.family))
        spec.description = str(table.get("description", f"{kind} from {spec.path.name}"))
        spec.licence = str(table.get("licence", spec.licence))
        spec.default = bool(table.get("default", False))
        spec.config = resolve(table["config"]) if "config" in table else None
        spec.steps = _number(table, "steps", spec.steps, int, 1, 500)
        spec.strength = _number(table, "strength", spec.strength, float, 0.0, 1.0)
        spec.guidance = _number(table, "guidance", FLUX_GUIDANCE if kind.startswith("flux") else spec.guidance,
                                float, 0.0, 50.0)
        spec.reference_strength = _number(table, "reference_strength", spec.reference_strength, float, 0.0, 1.0)
        spec.scale = _number(table, "scale", spec.scale, int, 2, 4)
        spec.noise_level = _number(table, "noise_level", spec.noise_level, int, 0, 350)
        # The upscaler's tiles are input pixels (its native 128 -> 512); the others' windows default to 0: the
        # model's native size, with a quarter of it shared.
        upscaler = kind == "sd-x4-upscaler"
        spec.tile = _number(table, "tile", spec.tile if upscaler else 0, int, 32 if upscaler else 0, 16384)
        spec.tile_overlap = _number(table, "tile_overlap", spec.tile_overlap if upscaler else -1, int,
                                    0 if upscaler else -1, spec.tile - 1 if upscaler or spec.tile else 8192)
        spec.context_size = _number(table, "context_size", spec.context_size, int, 2, 64)
        spec.context_overlap = _number(table, "context_overlap", spec.context_overlap, int, 0, spec.context_size - 1)
    except (TypeError, ValueError) as err:
        raise InvalidInput(f"{where}: {err}") from None
    if spec.scale not in (2, 4):
        raise InvalidInput(f"{where}: scale must be 4 or 2 (x4, then downsampled)")
    spec.dtype = str(table.get("dtype", "auto"))
    if spec.dtype not in ("auto", "fp16", "bf16", "fp32"):
        raise InvalidInput(f"{where}: dtype must be auto, fp16, bf16 or fp32")
    _parse_memory(spec, table, where)
    nets = table.get("controlnets", {})
    if not isinstance(nets, dict) or set(nets) - set(CONTROLNET_KINDS):
        raise InvalidInput(f"{where}: controlnets is a table with keys from {', '.join(CONTROLNET_KINDS)}")
    if nets and kind not in ("sd15-img2img", "sdxl-img2img"):
        raise InvalidInput(f"{where}: controlnets work with the img2img kinds only")
    spec.controlnets = {k: resolve(str(v)) for k, v in nets.items()}
    _parse_adapters(spec, table, where, resolve)
    if "motion_adapter" in table:
        if kind != "animatediff-v2v" or not isinstance(table["motion_adapter"], str):
            raise InvalidInput(f"{where}: motion_adapter (a MotionAdapter folder) is for kind animatediff-v2v only")
        spec.motion_adapter = resolve(table["motion_adapter"])
    spec.controlnet = str(table.get("controlnet", "none"))
    if spec.controlnet not in ("none", "auto", *spec.controlnets):
        raise InvalidInput(f"{where}: controlnet {spec.controlnet!r} must be none, auto or one of its controlnets")
    return spec


def _parse_memory(spec: ModelSpec, table: Dict[str, Any], where: str) -> None:
    """attention, cpu_offload, vae_slicing, vae_tiling_above, compile and batch."""
    from .passes.diffusion.common import ATTENTION_BACKENDS, ATTENTION_CHOICES, FLOW_ATTENTION_REFUSED

    spec.attention = str(table.get("attention", spec.attention))
    if spec.attention not in ATTENTION_CHOICES:
        raise InvalidInput(f"{where}: attention {spec.attention!r} is not one of {', '.join(ATTENTION_CHOICES)}")
    if spec.kind in FLOW_KINDS and spec.attention in FLOW_ATTENTION_REFUSED:
        # The classic processors are the UNet's; a joint-attention transformer needs its own (sdpa) or a backend.
        raise InvalidInput(f"{where}: attention {spec.attention!r} is for UNet models; kind {spec.kind} takes sdpa or "
                           f"an attention backend ({', '.join(ATTENTION_BACKENDS)})")
    spec.cpu_offload = str(table.get("cpu_offload", spec.cpu_offload))
    if spec.cpu_offload not in ("none", "model", "sequential"):
        raise InvalidInput(f"{where}: cpu_offload must be none, model or sequential")
    for key in ("vae_slicing", "compile"):
        if key in table and not isinstance(table[key], bool):
            raise InvalidInput(f"{where}: {key} must be true or false")
    spec.vae_slicing = table.get("vae_slicing")
    spec.compile = bool(table.get("compile", False))
    try:
        spec.vae_tiling_above = _number(table, "vae_tiling_above", spec.vae_tiling_above, int, 0, 1 << 20)
        spec.batch = _number(table, "batch", spec.batch, int, 0, 64)
    except ValueError as err:
        raise InvalidInput(f"{where}: {err}") from None


def _parse_adapters(spec: ModelSpec, table: Dict[str, Any], where: str, resolve: Any) -> None:
    """loras, embeddings, ip_adapter, vae and scheduler (see the module docstring)."""
    from .passes.diffusion.adapters import LORA_WEIGHT_RANGE, scheduler_choices

    if spec.kind in FLOW_KINDS:
        # diffusers loads textual inversion and these IP-Adapters into UNet pipelines only; inpaint runs the
        # mask's region at the model's size (region_size) instead of denoising windows.
        windowless = "denoising windows: it inpaints the mask's region at the model's size (region_size)"
        for key, what in (("embeddings", "textual-inversion embeddings"), ("ip_adapter", "an IP-Adapter"),
                          ("tile", windowless), ("tile_overlap", windowless)):
            if key in table and (key in ("embeddings", "ip_adapter") or spec.kind.endswith("inpaint")):
                raise InvalidInput(f"{where}: kind {spec.kind} takes no {what} ({key}); LoRAs, vae and scheduler "
                                   "work on it")

    loras = table.get("loras", {})
    if not isinstance(loras, dict):
        raise InvalidInput(f'{where}: loras is a table of NAME = "file" or NAME = {{ path = "file", weight = 0.8 }}')
    for name, entry in loras.items():
        if not name.replace("_", "").replace("-", "").isalnum():
            raise InvalidInput(f"{where}: LoRA name {name!r} may hold letters, digits, - and _ only")
        entry = {"path": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or set(entry) - {"path", "weight"}:
            raise InvalidInput(f'{where}: loras.{name} is "file" or {{ path = "file", weight = 0.8 }}')
        spec.loras[name] = resolve(entry["path"])
        try:
            spec.lora_weights[name] = _number(entry, "weight", 0.0, float, *LORA_WEIGHT_RANGE)
        except ValueError as err:
            raise InvalidInput(f"{where}: loras.{name}: {err}") from None
    embeddings = table.get("embeddings", {})
    if not isinstance(embeddings, dict) or not all(isinstance(v, str) for v in embeddings.values()):
        raise InvalidInput(f'{where}: embeddings is a table of "<token>" = "file"')
    spec.embeddings = {str(token): resolve(path) for token, path in embeddings.items()}
    ip = table.get("ip_adapter")
    if ip is not None:
        if spec.kind == "sd-x4-upscaler":
            raise InvalidInput(f"{where}: the x4 upscaler takes no IP-Adapter")
        if not isinstance(ip, dict) or not isinstance(ip.get("path"), str) or not isinstance(
            ip.get("image_encoder"), str
        ) or set(ip) - {"path", "image_encoder", "strength"}:
            raise InvalidInput(f'{where}: ip_adapter is {{ path = "weights file", image_encoder = "folder", '
                               "strength = 0.6 }")
        spec.ip_adapter, spec.ip_adapter_encoder = resolve(ip["path"]), resolve(ip["image_encoder"])
        try:
            spec.ip_adapter_strength = _number(ip, "strength", spec.ip_adapter_strength, float, 0.0, 2.0)
        except ValueError as err:
            raise InvalidInput(f"{where}: ip_adapter: {err}") from None
    if "vae" in table:
        if not isinstance(table["vae"], str):
            raise InvalidInput(f"{where}: vae is the path of a diffusers AutoencoderKL folder")
        spec.vae = resolve(table["vae"])
    spec.scheduler = str(table.get("scheduler", "default"))
    choices = scheduler_choices(spec.kind)
    if spec.scheduler not in choices:
        raise InvalidInput(f"{where}: scheduler {spec.scheduler!r} is not one of {', '.join(choices)} (kind "
                           f"{spec.kind})")


def _number(table: Dict[str, Any], key: str, default: Any, kind: type, low: float, high: float) -> Any:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ValueError(f"{key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{key} = {value} is out of range {low:g}..{high:g}")
    return kind(value)


def check_model_files(spec: ModelSpec) -> None:
    """Raise ModelUnavailable naming the exact path and missing file when a model cannot load."""
    who = f"model {spec.name}"
    if not spec.path.exists():
        raise ModelUnavailable(f"{who}: {spec.path} does not exist (kind {spec.kind} needs a local diffusers folder)")
    if spec.path.is_file():
        if spec.path.suffix not in CHECKPOINT_SUFFIXES:
            raise ModelUnavailable(f"{who}: {spec.path} is not a checkpoint ({', '.join(CHECKPOINT_SUFFIXES)})")
        if spec.config is None:
            raise ModelUnavailable(
                f"{who}: single-file checkpoint {spec.path} needs `config`, a local diffusers folder of the same "
                "architecture for its configs (nothing is downloaded)"
            )
        check_pipeline_folder(spec.config, who, weights=False)
    else:
        check_pipeline_folder(spec.path, who, weights=True)
    if spec.motion_adapter is not None and (spec.motion_adapter / "config.json").is_file():
        check_component(spec.motion_adapter, f"{who}: motion adapter", "MotionAdapter", weights=True)
    for cn_kind, folder in spec.controlnets.items():
        if (folder / "model_index.json").is_file():
            continue  # a pipeline folder given as a ControlNet: probing says what it is
        check_component(folder, f"{who}: {cn_kind} controlnet", "diffusers", weights=True)


def check_pipeline_folder(folder: Path, who: str, weights: bool) -> None:
    index = folder / "model_index.json"
    if not folder.is_dir():
        raise ModelUnavailable(f"{who}: {folder} does not exist")
    if not index.is_file():
        from .model_probe import what_folder_is

        raise ModelUnavailable(f"{who}: {index} is missing ({folder} is {what_folder_is(folder)})")
    try:
        components = json.loads(index.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelUnavailable(f"{who}: {index} is not valid JSON ({err})") from None
    if not isinstance(components, dict):
        raise ModelUnavailable(f"{who}: {index} is not a diffusers model index")
    for sub, entry in components.items():
        if sub.startswith("_") or not isinstance(entry, list) or len(entry) != 2 or entry[0] is None:
            continue
        check_component(folder / sub, f"{who}: {sub}", entry[1] or "", weights)


def check_component(folder: Path, who: str, class_name: str, weights: bool) -> None:
    if not folder.is_dir():
        raise ModelUnavailable(f"{who}: folder {folder} is missing")
    if "Tokenizer" in class_name:
        if not any((folder / f).is_file() for f in TOKENIZER_FILES):
            raise ModelUnavailable(f"{who}: {folder / TOKENIZER_FILES[0]} is missing (or {TOKENIZER_FILES[1]})")
        return
    if "Scheduler" in class_name:
        if not (folder / "scheduler_config.json").is_file():
            raise ModelUnavailable(f"{who}: {folder / 'scheduler_config.json'} is missing")
        return
    config = folder / "config.json"
    if not config.is_file():
        if "ImageProcessor" in class_name or "FeatureExtractor" in class_name:
            if (folder / "preprocessor_config.json").is_file():
                return
            raise ModelUnavailable(f"{who}: {folder / 'preprocessor_config.json'} is missing")
        raise ModelUnavailable(f"{who}: {config} is missing")
    try:
        json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelUnavailable(f"{who}: {config} is not valid JSON ({err})") from None
    if weights and not any((folder / f).is_file() for f in WEIGHT_FILES):
        raise ModelUnavailable(f"{who}: {folder / WEIGHT_FILES[0]} is missing (no weights in {folder})")


def registry_for(specs: List[ModelSpec]) -> Any:
    """The starter models plus one diffusion model per spec; a spec marked default leads its pass."""
    from .passes.diffusion import diffusion_model
    from .passes.registry import DEFAULTS, ModelRegistry, starter_models

    defaults = dict(DEFAULTS)
    defaults.update({s.pass_name: s.name for s in specs if s.default})
    return ModelRegistry([*starter_models(), *(diffusion_model(s) for s in specs)], defaults=defaults)
