"""What a model folder really is, read from its configs (no weights are loaded), checked against its entry.

A ``[models.NAME]`` entry says which kind it is; the folder says what it holds: ``model_index.json``
names the pipeline class, the UNet's ``config.json`` its input channels (4: text-to-image/img2img,
9: inpaint, 7: the x4 upscaler) and its conditioning (SDXL's ``text_time``), a ControlNet's config the
base it was trained on. A transformer base (SD3/SD3.5, Flux) is known by its transformer class and its
input channels against its VAE's latent channels: SD3 takes the latents as they are (16; 33 for an
inpaint-trained SD3), Flux packs 2 x 2 of them (64); Flux Fill or Control transformers take more.

A mismatch is one line naming the entry, the folder and what the folder is, so a
wrong path is refused when the registry loads instead of failing as a frame runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from .errors import ModelUnavailable

# kind -> what its folder must hold, in words, for the refusal message
KIND_NEEDS = {
    "sd15-img2img": "an SD 1.x/2.x text-to-image or img2img pipeline (UNet with 4 input channels)",
    "sdxl-img2img": "an SDXL text-to-image or img2img pipeline (UNet with 4 input channels and SDXL conditioning)",
    "sd-inpaint": "an SD 1.x/2.x inpaint pipeline (UNet with 9 input channels)",
    "sdxl-inpaint": "an SDXL inpaint pipeline (UNet with 9 input channels and SDXL conditioning)",
    "sd-x4-upscaler": "the SD x4 upscaler (StableDiffusionUpscalePipeline, UNet with 7 input channels)",
    "animatediff-v2v": "an AnimateDiff pipeline (an SD 1.x UNet plus a motion adapter)",
    "sd3-img2img": "an SD3/SD3.5 pipeline (SD3Transformer2DModel taking its VAE's latent channels, 16)",
    "sd3-inpaint": "an SD3/SD3.5 pipeline (SD3Transformer2DModel taking its VAE's 16 latent channels, or 33 when "
                   "inpaint-trained)",
    "flux-img2img": "a Flux pipeline (FluxTransformer2DModel taking 4 x its VAE's latent channels, 64)",
    "flux-inpaint": "a Flux pipeline (FluxTransformer2DModel taking 4 x its VAE's latent channels, 64)",
}


@dataclass(frozen=True)
class Facts:
    """What a pipeline folder holds, from its configs."""

    class_name: str
    denoiser: str  # "unet", a transformer class name, or "" when it has neither
    in_channels: int = 0
    cross_attention_dim: int = 0
    sdxl: bool = False  # the UNet conditions on SDXL's text_time embedding
    motion_adapter: bool = False
    latent_channels: int = 0  # the VAE's (read for transformer bases)
    width: int = 0  # a transformer's attention width (heads x head size)

    def kinds(self) -> Tuple[str, ...]:
        """The shotpass kinds that run this folder: a transformer base serves img2img and inpaint alike."""
        if self.denoiser == "unet":
            kind = self.kind()
            return (kind,) if kind else ()
        lat = self.latent_channels
        if self.denoiser == "SD3Transformer2DModel":
            if self.in_channels == lat:
                return ("sd3-img2img", "sd3-inpaint")
            return ("sd3-inpaint",) if self.in_channels == 2 * lat + 1 else ()
        if self.denoiser == "FluxTransformer2DModel" and self.in_channels == 4 * lat:
            return ("flux-img2img", "flux-inpaint")
        return ()

    def kind(self) -> Optional[str]:
        """The shotpass kind this UNet folder is, or None when no kind runs it."""
        if self.denoiser != "unet":
            return None
        if self.in_channels == 7 or self.class_name == "StableDiffusionUpscalePipeline":
            return "sd-x4-upscaler"
        if self.motion_adapter:
            return "animatediff-v2v" if self.in_channels == 4 and not self.sdxl else None
        return {(4, False): "sd15-img2img", (4, True): "sdxl-img2img", (9, False): "sd-inpaint",
                (9, True): "sdxl-inpaint"}.get((self.in_channels, self.sdxl))

    def describe(self) -> str:
        if not self.denoiser:
            return f"a {self.class_name} without a UNet or transformer, which no shotpass kind runs"
        if self.denoiser != "unet":
            kinds = self.kinds()
            return (f"a {self.class_name} whose {self.denoiser} takes {self.in_channels} input channels "
                    f"({'kinds ' + ', '.join(kinds) if kinds else 'no shotpass kind runs it'})")
        kind = self.kind()
        base = "SDXL" if self.sdxl else "SD 1.x/2.x"
        text = (f"a {self.class_name} whose {base} UNet takes {self.in_channels} input channels"
                f"{' with a motion adapter' if self.motion_adapter else ''}")
        return f"{text} ({'kind ' + kind if kind else 'no shotpass kind runs it'})"


def read_json(path: Path, who: str) -> Dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise ModelUnavailable(f"{who}: cannot read {path}: {err.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelUnavailable(f"{who}: {path} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ModelUnavailable(f"{who}: {path} is not a diffusers config (not a JSON object)")
    return data


def pipeline_facts(folder: Path, who: str) -> Facts:
    index = read_json(folder / "model_index.json", who)
    cls = str(index.get("_class_name", "pipeline"))
    if isinstance(index.get("unet"), list):
        unet = read_json(folder / "unet" / "config.json", who)
        return Facts(
            class_name=cls,
            denoiser="unet",
            in_channels=int(unet.get("in_channels", 0) or 0),
            cross_attention_dim=_width(unet.get("cross_attention_dim")),
            sdxl=unet.get("addition_embed_type") == "text_time",
            motion_adapter=isinstance(index.get("motion_adapter"), list) and index["motion_adapter"][0] is not None,
        )
    transformer = index.get("transformer")
    if not isinstance(transformer, list) or not transformer[1]:
        return Facts(class_name=cls, denoiser="")
    config = read_json(folder / "transformer" / "config.json", who)
    vae = read_json(folder / "vae" / "config.json", who) if isinstance(index.get("vae"), list) else {}
    return Facts(
        class_name=cls,
        denoiser=str(transformer[1]),
        in_channels=int(config.get("in_channels", 0) or 0),
        latent_channels=int(vae.get("latent_channels", 0) or 0),
        width=int(config.get("num_attention_heads", 0) or 0) * int(config.get("attention_head_dim", 0) or 0),
    )


def _width(value: Any) -> int:
    """cross_attention_dim is an int, or one per block (all equal in the SD families)."""
    if isinstance(value, (list, tuple)):
        return int(value[0]) if value else 0
    return int(value or 0)


def what_folder_is(folder: Path) -> str:
    """A few words on a folder that is not a pipeline folder: a lone component's class, or nothing known."""
    config = folder / "config.json"
    if config.is_file():
        try:
            cls = json.loads(config.read_text()).get("_class_name") or "model"
        except (OSError, ValueError, AttributeError):
            cls = "model"
        return f"a single {cls} folder, not a pipeline"
    return "not a diffusers folder"


def probe(spec: Any) -> None:
    """Raise ModelUnavailable (one line: entry, folder, what it is, what the kind needs) on a mismatch."""
    who = f"model {spec.name}"
    folder = spec.config if spec.single_file else spec.path
    facts = pipeline_facts(folder, who)
    if getattr(spec, "motion_adapter", None) is not None:
        facts = probe_motion_adapter(who, spec.motion_adapter, facts, folder)
    if spec.kind not in facts.kinds():
        raise ModelUnavailable(f"{who}: {folder} is {facts.describe()}; kind {spec.kind} needs {KIND_NEEDS[spec.kind]}")
    if spec.single_file:
        probe_checkpoint(spec, facts)
    for which, net in spec.controlnets.items():
        probe_controlnet(who, which, net, facts, folder)
    for name, path in spec.loras.items():
        if facts.denoiser == "unet":
            probe_lora(who, name, path, facts, folder)
        else:
            probe_transformer_lora(who, name, path, facts, folder)
    for token, path in spec.embeddings.items():
        probe_embedding(who, token, path, folder)
    if spec.ip_adapter is not None:
        probe_ip_adapter(who, spec.ip_adapter, spec.ip_adapter_encoder, facts, folder)
    if spec.vae is not None:
        probe_vae(who, spec.vae, folder)


def base_words(cross_attention_dim: int, sdxl: bool) -> str:
    return f"an {'SDXL' if sdxl else 'SD 1.x/2.x'} base (cross-attention width {cross_attention_dim})"


def probe_controlnet(who: str, which: str, folder: Path, base: Facts, base_folder: Path) -> None:
    """A ControlNet folder holds a ControlNetModel trained on the same base family as the model's UNet."""
    if (folder / "model_index.json").is_file():
        cls = read_json(folder / "model_index.json", who).get("_class_name", "pipeline")
        raise ModelUnavailable(f"{who}: {which} controlnet {folder} is a {cls} pipeline folder, not a ControlNet")
    config = read_json(folder / "config.json", who)
    cls = str(config.get("_class_name", ""))
    if cls != "ControlNetModel":
        raise ModelUnavailable(
            f"{who}: {which} controlnet {folder} is a {cls or 'model'} folder, not a ControlNetModel"
        )
    width = _width(config.get("cross_attention_dim"))
    sdxl = config.get("addition_embed_type") == "text_time"
    if width != base.cross_attention_dim or sdxl != base.sdxl:
        raise ModelUnavailable(
            f"{who}: {which} controlnet {folder} is a ControlNet for {base_words(width, sdxl)}, but {base_folder} is "
            f"{base_words(base.cross_attention_dim, base.sdxl)}"
        )


# The first convolution of the UNet in the original (LDM) checkpoint layout: its shape gives the input channels.
LDM_CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"


def probe_checkpoint(spec: Any, facts: Facts) -> None:
    """A single-file .safetensors checkpoint's UNet takes the input channels its config folder says."""
    if spec.path.suffix != ".safetensors":
        return  # pickled checkpoints are not opened before the model loads
    try:
        from safetensors import safe_open

        with safe_open(str(spec.path), "pt") as f:
            keys = set(f.keys())
            if LDM_CONV_IN not in keys:
                return  # another layout: from_single_file says what it is when it loads
            channels = int(f.get_slice(LDM_CONV_IN).get_shape()[1])
    except Exception as err:  # the header is all that is read; any failure says the file is not a checkpoint
        raise ModelUnavailable(
            f"model {spec.name}: {spec.path} is not a readable safetensors checkpoint ({err})"
        ) from None
    if channels != facts.in_channels:
        raise ModelUnavailable(
            f"model {spec.name}: checkpoint {spec.path} has a UNet with {channels} input channels but its config "
            f"folder {spec.config} describes {facts.in_channels}; kind {spec.kind} needs {KIND_NEEDS[spec.kind]}"
        )


def _tensor_shapes(path: Path, who: str, what: str) -> Dict[str, Any]:
    """name -> shape of every tensor in a .safetensors file (its header only)."""
    if not path.is_file():
        raise ModelUnavailable(f"{who}: {what} {path} does not exist")
    if path.suffix != ".safetensors":
        return {}  # pickled files are not opened before they load; loading says what is wrong
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            return {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as err:  # a header that does not parse: not a safetensors file
        raise ModelUnavailable(f"{who}: {what} {path} is not a readable safetensors file ({err})") from None


def probe_lora(who: str, name: str, path: Path, base: Facts, base_folder: Path) -> None:
    """A LoRA (kohya or diffusers form) whose cross-attention layers take the width of the model's UNet."""
    shapes = _tensor_shapes(path, who, f"LoRA {name}")
    if not shapes:
        return
    if not any("lora" in k for k in shapes):
        raise ModelUnavailable(f"{who}: LoRA {name} {path} holds no LoRA weights (no lora_* tensors)")
    if _lora_of_a_transformer(shapes):
        raise ModelUnavailable(f"{who}: LoRA {name} {path} was trained on a transformer base (SD3 or Flux), but "
                               f"{base_folder} is {base_words(base.cross_attention_dim, base.sdxl)}")
    downs = ("lora_A", "lora_down", "lora.down")
    for key, shape in shapes.items():
        if "attn2" in key and "to_k" in key and any(d in key for d in downs) and len(shape) == 2:
            if shape[1] != base.cross_attention_dim:
                raise ModelUnavailable(
                    f"{who}: LoRA {name} {path} was trained on a base of cross-attention width {shape[1]}, but "
                    f"{base_folder} is {base_words(base.cross_attention_dim, base.sdxl)}"
                )
            return


# Tensor names only a UNet's LoRA holds (diffusers, kohya and LDM layouts), and only a transformer's.
UNET_LORA_MARKS = ("attn2", "down_blocks", "up_blocks", "mid_block", "input_blocks", "output_blocks")
TRANSFORMER_LORA_MARKS = ("single_transformer_blocks", "double_blocks", "single_blocks", "joint_blocks",
                          "context_embedder", "x_embedder")


def _lora_of_a_transformer(shapes: Dict[str, Any]) -> bool:
    return any(k.startswith("transformer.") or any(m in k for m in TRANSFORMER_LORA_MARKS) for k in shapes)


def probe_transformer_lora(who: str, name: str, path: Path, base: Facts, base_folder: Path) -> None:
    """A LoRA for a transformer base: not a UNet's, and as wide as the base's attention."""
    shapes = _tensor_shapes(path, who, f"LoRA {name}")
    if not shapes:
        return
    if not any("lora" in k for k in shapes):
        raise ModelUnavailable(f"{who}: LoRA {name} {path} holds no LoRA weights (no lora_* tensors)")
    if not _lora_of_a_transformer(shapes) and any(m in k for k in shapes for m in UNET_LORA_MARKS):
        raise ModelUnavailable(f"{who}: LoRA {name} {path} was trained on a UNet base (SD 1.x/2.x or SDXL), but "
                               f"{base_folder} is a {base.denoiser} base")
    for key, shape in shapes.items():
        if "attn.to_k." in key and ("lora_A" in key or "lora_down" in key) and len(shape) == 2:
            if base.width and shape[1] != base.width:
                raise ModelUnavailable(f"{who}: LoRA {name} {path} was trained on a transformer {shape[1]} wide, but "
                                       f"the {base.denoiser} of {base_folder} is {base.width} wide")
            return


def probe_embedding(who: str, token: str, path: Path, base_folder: Path) -> None:
    """A textual-inversion embedding as wide as the model's text encoder (both encoders for SDXL)."""
    shapes = _tensor_shapes(path, who, f"embedding {token}")
    widths = {}
    for sub in ("text_encoder", "text_encoder_2"):
        config = base_folder / sub / "config.json"
        if config.is_file():
            widths[sub] = int(read_json(config, who).get("hidden_size", 0) or 0)
    pairs = [("clip_l", "text_encoder"), ("clip_g", "text_encoder_2")] if "clip_g" in shapes else [
        (k, "text_encoder") for k in shapes]
    for key, sub in pairs:
        shape = shapes.get(key)
        if shape and widths.get(sub) and shape[-1] != widths[sub]:
            raise ModelUnavailable(
                f"{who}: embedding {token} {path} is {shape[-1]} wide, but the {sub} of {base_folder} is {widths[sub]}"
            )


def probe_ip_adapter(who: str, weights: Path, encoder: Optional[Path], base: Facts, base_folder: Path) -> None:
    """IP-Adapter weights plus a CLIP image encoder whose projection feeds them, for the model's UNet width."""
    shapes = _tensor_shapes(weights, who, "IP-Adapter")
    if encoder is None or not (encoder / "config.json").is_file():
        raise ModelUnavailable(f"{who}: IP-Adapter image encoder {encoder}/config.json is missing")
    config = read_json(encoder / "config.json", who)
    if config.get("_class_name") or "CLIPVision" not in "".join(config.get("architectures", []) or ["?"]):
        raise ModelUnavailable(
            f"{who}: IP-Adapter image encoder {encoder} is {what_folder_is(encoder)}, not a CLIP vision model"
        )
    if not shapes:
        return
    if not any(k.startswith("image_proj.") for k in shapes) or not any(k.startswith("ip_adapter.") for k in shapes):
        raise ModelUnavailable(f"{who}: IP-Adapter {weights} lacks image_proj.* and ip_adapter.* tensors")
    to_k = next((v for k, v in shapes.items() if k.endswith("to_k_ip.weight")), None)
    if to_k is not None and to_k[1] != base.cross_attention_dim:
        raise ModelUnavailable(
            f"{who}: IP-Adapter {weights} was trained on a base of cross-attention width {to_k[1]}, but "
            f"{base_folder} is {base_words(base.cross_attention_dim, base.sdxl)}"
        )


def probe_vae(who: str, folder: Path, base_folder: Path) -> None:
    """An AutoencoderKL folder with as many latent channels as the model's own VAE."""
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"{who}: VAE {folder} is {what_folder_is(folder)}, not an AutoencoderKL folder")
    config = read_json(folder / "config.json", who)
    if config.get("_class_name") != "AutoencoderKL":
        raise ModelUnavailable(f"{who}: VAE {folder} is a {config.get('_class_name') or 'model'}, not an AutoencoderKL")
    own = base_folder / "vae" / "config.json"
    if own.is_file():
        want = int(read_json(own, who).get("latent_channels", 4))
        if int(config.get("latent_channels", 4)) != want:
            raise ModelUnavailable(
                f"{who}: VAE {folder} has {config.get('latent_channels')} latent channels; the model's own has {want}"
            )


def probe_motion_adapter(who: str, folder: Path, base: Facts, base_folder: Path) -> Facts:
    """A MotionAdapter folder whose blocks match the SD 1.x base's UNet; the pair is then an AnimateDiff model."""
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(f"{who}: motion adapter {folder} is {what_folder_is(folder)}, not a MotionAdapter")
    config = read_json(folder / "config.json", who)
    if config.get("_class_name") != "MotionAdapter":
        raise ModelUnavailable(
            f"{who}: motion adapter {folder} is a {config.get('_class_name') or 'model'}, not a MotionAdapter"
        )
    if base.motion_adapter:
        raise ModelUnavailable(f"{who}: {base_folder} already holds a motion adapter; drop motion_adapter or "
                               "point path at the SD 1.x base")
    unet = read_json(base_folder / "unet" / "config.json", who)
    if list(config.get("block_out_channels", [])) != list(unet.get("block_out_channels", [])):
        raise ModelUnavailable(
            f"{who}: motion adapter {folder} has blocks {config.get('block_out_channels')}, but the UNet of "
            f"{base_folder} has {unet.get('block_out_channels')}"
        )
    from dataclasses import replace

    return replace(base, motion_adapter=True)
