"""A studio's adapters on any base, through diffusers' own loaders: LoRAs, textual-inversion embeddings,
an IP-Adapter image prompt, a VAE override and the sampler (scheduler).

Everything a model's registry entry names is loaded once with its pipeline; what a render chooses (each
LoRA's weight, the scheduler, the IP-Adapter's strength) is set on the cached pipeline before each frame,
so one loaded model serves every combination. A LoRA at weight 0 is switched off, not scaled to zero, so
the result is the base model's bit for bit.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np

from ...errors import ModelUnavailable
from ...model_config import ModelSpec
from ..base import Option, PassContext

# name -> (diffusers scheduler class, from_config overrides). Names as the sampler menus of studio tools say them.
SCHEDULERS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "dpm++-2m": ("DPMSolverMultistepScheduler", {}),
    "dpm++-2m-karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "dpm++-2m-sde-karras": ("DPMSolverMultistepScheduler",
                            {"use_karras_sigmas": True, "algorithm_type": "sde-dpmsolver++"}),
    "ddim": ("DDIMScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "lcm": ("LCMScheduler", {}),
}
SCHEDULER_CHOICES = ("default", *SCHEDULERS)
# The samplers of flow-matching bases (SD3, Flux): they predict a velocity, not noise, so they take flow-matching
# schedulers (or multistep solvers switched to flow sigmas), built from the model's own scheduler config.
FLOW_SCHEDULERS: Dict[str, Tuple[str, Dict[str, Any]]] = {
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "euler-karras": ("FlowMatchEulerDiscreteScheduler", {"use_karras_sigmas": True}),
    "euler-exponential": ("FlowMatchEulerDiscreteScheduler", {"use_exponential_sigmas": True}),
    "lcm": ("FlowMatchLCMScheduler", {}),
}
FLOW_SCHEDULER_CHOICES = ("default", *FLOW_SCHEDULERS)


def schedulers_for(kind: str) -> Dict[str, Tuple[str, Dict[str, Any]]]:
    from ...model_config import FLOW_KINDS

    return FLOW_SCHEDULERS if kind in FLOW_KINDS else SCHEDULERS


def scheduler_choices(kind: str) -> Tuple[str, ...]:
    return ("default", *schedulers_for(kind))
LORA_WEIGHT_RANGE = (-4.0, 4.0)


def lora_option(name: str) -> str:
    return f"lora_{name}"


def adapter_options(spec: ModelSpec) -> List[Option]:
    """The render options the entry's adapters add: the sampler, each LoRA's weight, the IP-Adapter's strength."""
    options = [
        Option("scheduler", "choice", spec.scheduler,
               "sampler: default is the model's own scheduler; lcm wants an LCM model or LoRA and few steps",
               choices=scheduler_choices(spec.kind)),
    ]
    for name, path in spec.loras.items():
        options.append(Option(lora_option(name), "float", spec.lora_weights.get(name, 0.0),
                              f"weight of the LoRA {name} ({path.name}); 0 = off", minimum=LORA_WEIGHT_RANGE[0],
                              maximum=LORA_WEIGHT_RANGE[1]))
    if spec.ip_adapter is not None:
        options.append(Option("ip_adapter_strength", "float", spec.ip_adapter_strength,
                              "how strongly the shot's reference image (approved preview or --reference) prompts "
                              "the result through the IP-Adapter (0 = off)", minimum=0, maximum=2))
    return options


def adapters_description(spec: ModelSpec) -> str:
    """What the entry loads besides its base, for the model's description in ListModels."""
    parts = []
    if spec.loras:
        parts.append("LoRAs " + ", ".join(spec.loras))
    if spec.embeddings:
        parts.append("embeddings " + ", ".join(spec.embeddings) + " (write the token in the prompt)")
    if spec.ip_adapter is not None:
        parts.append(f"IP-Adapter {spec.ip_adapter.name} (the shot's reference is its image prompt)")
    if spec.vae is not None:
        parts.append(f"VAE {spec.vae.name}")
    return "; ".join(parts)


def load_vae(spec: ModelSpec, dtype: Any) -> Dict[str, Any]:
    """The VAE override as a from_pretrained component, or nothing."""
    if spec.vae is None:
        return {}
    from diffusers import AutoencoderKL

    try:
        return {"vae": AutoencoderKL.from_pretrained(str(spec.vae), local_files_only=True, dtype=dtype)}
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ModelUnavailable(f"model {spec.name}: cannot load its VAE {spec.vae}: {err}") from None


def load_adapters(pipe: Any, spec: ModelSpec) -> None:
    """LoRAs, embeddings and the IP-Adapter named by the entry, into a freshly loaded pipeline."""
    what = ""
    try:
        for name, path in spec.loras.items():
            what = f"LoRA {name} ({path})"
            pipe.load_lora_weights(str(path), adapter_name=name)
        if spec.loras:
            pipe.disable_lora()  # each frame switches on the ones its render weighs
        for token, path in spec.embeddings.items():
            what = f"embedding {token} ({path})"
            load_embedding(pipe, token, path)
        if spec.ip_adapter is not None:
            what = f"IP-Adapter {spec.ip_adapter}"
            load_ip_adapter(pipe, spec)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as err:
        raise ModelUnavailable(f"model {spec.name}: cannot load its {what}: {err}") from None


def load_embedding(pipe: Any, token: str, path: Any) -> None:
    """One textual-inversion embedding; an SDXL one (clip_l + clip_g) goes into both text encoders."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
        if "clip_g" in state and getattr(pipe, "text_encoder_2", None) is not None:
            pipe.load_textual_inversion(state["clip_l"], token=token, text_encoder=pipe.text_encoder,
                                        tokenizer=pipe.tokenizer)
            pipe.load_textual_inversion(state["clip_g"], token=token, text_encoder=pipe.text_encoder_2,
                                        tokenizer=pipe.tokenizer_2)
            return
    pipe.load_textual_inversion(str(path), token=token)


def load_ip_adapter(pipe: Any, spec: ModelSpec) -> None:
    assert spec.ip_adapter is not None and spec.ip_adapter_encoder is not None
    from transformers import CLIPVisionModelWithProjection

    # The image encoder from its own local folder (diffusers would otherwise look for it beside the weights).
    encoder = CLIPVisionModelWithProjection.from_pretrained(str(spec.ip_adapter_encoder), local_files_only=True)
    pipe.register_modules(image_encoder=encoder.to(dtype=pipe.unet.dtype))  # placed on the device with the rest
    pipe.load_ip_adapter(str(spec.ip_adapter.parent), subfolder="", weight_name=spec.ip_adapter.name,
                         image_encoder_folder=None, local_files_only=True)
    if getattr(pipe, "feature_extractor", None) is None:
        from transformers import CLIPImageProcessor

        size = int(encoder.config.image_size)
        pipe.register_modules(feature_extractor=CLIPImageProcessor(size={"shortest_edge": size},
                                                                   crop_size={"height": size, "width": size}))


def use_scheduler(pipe: Any, name: str, kind: str) -> None:
    """Put the named sampler on the pipeline (built from the model's own scheduler config), or its own back."""
    own = pipe.__dict__.setdefault("_shotpass_own_scheduler", pipe.scheduler)
    if name == "default":
        pipe.scheduler = own
        return
    import diffusers

    class_name, overrides = schedulers_for(kind)[name]
    pipe.scheduler = getattr(diffusers, class_name).from_config(own.config, **overrides)


def set_lora_weights(pipe: Any, spec: ModelSpec, options: Dict[str, Any]) -> None:
    """Switch on the LoRAs this render weighs (non-zero) at their weights; the others are off."""
    if not spec.loras:
        return
    active = {n: float(options[lora_option(n)]) for n in spec.loras if float(options[lora_option(n)]) != 0.0}
    if not active:
        pipe.disable_lora()
        return
    pipe.enable_lora()
    pipe.set_adapters(list(active), adapter_weights=list(active.values()))


def prepare(pipe: Any, spec: ModelSpec, ctx: PassContext) -> Dict[str, Any]:
    """Set this render's sampler, LoRA weights and IP-Adapter strength; the extra pipeline call arguments."""
    o = ctx.options
    use_scheduler(pipe, o.get("scheduler", "default"), spec.kind)
    set_lora_weights(pipe, spec, o)
    if spec.ip_adapter is None:
        return {}
    strength = float(o.get("ip_adapter_strength", 0.0))
    if ctx.reference_rgb is None or strength <= 0:
        # The adapter's layers still want an image: a black one at scale 0 adds exactly nothing.
        pipe.set_ip_adapter_scale(0.0)
        size = int(pipe.image_encoder.config.image_size)
        return {"ip_adapter_image": to_pil(np.zeros((size, size, 3), dtype=np.float32))}
    pipe.set_ip_adapter_scale(strength)
    return {"ip_adapter_image": to_pil(ctx.reference_rgb)}


def to_pil(rgb: np.ndarray) -> Any:
    """8-bit RGB, what CLIP image processors expect (they rescale by 1/255 themselves)."""
    from PIL import Image

    return Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
