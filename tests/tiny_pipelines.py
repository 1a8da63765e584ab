"""Tiny random-weight diffusers pipelines built in code, saved with save_pretrained.

They have the real architectures (VAE, UNet, CLIP text encoder, schedulers) at toy widths, so the server
loads them through its production path (`from_pretrained(path, local_files_only=True)`) and runs every
real code path in well under a second per frame on a CPU. Nothing is downloaded: the CLIP tokenizer is
built from a byte-level vocab.json with empty merges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Tuple

import torch

HIDDEN = 32  # text width == UNet cross-attention width


def _bytes_to_unicode() -> Dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode symbols."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    mapping = {b: chr(b) for b in keep}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return dict(sorted(mapping.items()))


def _byte_vocab() -> Tuple[Dict[str, int], int, int]:
    """CLIP's byte-to-unicode alphabet, each symbol also with the end-of-word suffix, plus the specials.

    With empty merges, CLIP's BPE splits every word into single symbols, the last one suffixed `</w>`;
    so this vocabulary covers any text. Returns (vocab, bos id, eos id).
    """
    symbols = list(_bytes_to_unicode().values())
    vocab: Dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    bos = vocab["<|startoftext|>"] = len(vocab)
    eos = vocab["<|endoftext|>"] = len(vocab)
    return vocab, bos, eos


def tokenizer_and_text_encoder(folder: Path, projection: bool = False, hidden: int = HIDDEN) -> Tuple[Any, Any]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab, bos, eos = _byte_vocab()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    # Empty merges: every word splits into byte symbols, which the vocabulary all has.
    tokenizer = CLIPTokenizer(vocab=json.loads((folder / "vocab.json").read_text()), merges=[], model_max_length=16)
    torch.manual_seed(0)
    # The encoder's special ids must be the tokenizer's: CLIP pools the hidden state at the eos position.
    config = CLIPTextConfig(
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, vocab_size=len(vocab), hidden_size=hidden,
        intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, max_position_embeddings=16,
        projection_dim=hidden,
    )
    encoder = CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)
    return tokenizer, encoder.eval()


def _vae(levels: int = 4, mid_attention: bool = True) -> Any:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    # `levels` blocks give the real SD downsampling (8x for 4 levels, 4x for the x4 upscaler's 3).
    return AutoencoderKL(
        block_out_channels=[8] * levels, in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * levels, up_block_types=["UpDecoderBlock2D"] * levels,
        latent_channels=4, norm_num_groups=2, layers_per_block=1, mid_block_add_attention=mid_attention,
    ).eval()


def _unet(in_channels: int = 4, **extra: Any) -> Any:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    config: Dict[str, Any] = dict(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=HIDDEN, norm_num_groups=4, attention_head_dim=4,
    )
    return UNet2DConditionModel(**{**config, **extra}).eval()


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def _smooth(vae: Any) -> Any:
    """Random weights decode to near-white noise, in which no tile seam could show. A box-filter output layer
    makes the result spatially coherent like a trained VAE's, so a hard cut between windows is measurable."""
    with torch.no_grad():
        w = vae.decoder.conv_out.weight
        w.copy_(w.mean(dim=(2, 3), keepdim=True).expand_as(w) * 3.0)
    return vae


def save_img2img(path: Path, smooth: bool = False) -> Path:
    from diffusers import StableDiffusionImg2ImgPipeline

    tokenizer, encoder = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok")
    pipe = StableDiffusionImg2ImgPipeline(
        vae=_smooth(_vae()) if smooth else _vae(), text_encoder=encoder, tokenizer=tokenizer, unet=_unet(),
        scheduler=_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def save_inpaint(path: Path) -> Path:
    from diffusers import StableDiffusionInpaintPipeline

    tokenizer, encoder = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok")
    # 9 input channels: noisy latents, the mask and the masked image's latents.
    pipe = StableDiffusionInpaintPipeline(
        vae=_vae(), text_encoder=encoder, tokenizer=tokenizer, unet=_unet(in_channels=9), scheduler=_scheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(path)
    return path


def save_upscaler(path: Path, attention: bool = True) -> Path:
    from diffusers import DDPMScheduler, StableDiffusionUpscalePipeline

    tokenizer, encoder = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok")
    # 7 input channels (latents + the low-res RGB); the noise level is a class embedding, as in the real one.
    # Without attention for whole plates: the x4 upscaler's latents are at input resolution, so attention
    # costs (tile pixels)^2 — minutes per Beachball frame on a CPU — while convolutions run the same tiling.
    no_attention: Dict[str, Any] = dict(
        mid_block_type=None, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2
    )
    unet = _unet(in_channels=7, num_class_embeds=400, **({} if attention else no_attention))
    vae = _vae(levels=3, mid_attention=attention)
    vae.register_to_config(scaling_factor=0.08333)
    # Random weights decode to near-white noise, in which no tile seam could show. A box-filter output layer
    # makes the result spatially coherent like a real upscaler's, so a hard cut between tiles is measurable.
    with torch.no_grad():
        w = vae.decoder.conv_out.weight
        w.copy_(w.mean(dim=(2, 3), keepdim=True).expand_as(w) * 3.0)
    pipe = StableDiffusionUpscalePipeline(
        vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
        low_res_scheduler=DDPMScheduler(beta_schedule="scaled_linear"),
        scheduler=_scheduler(), max_noise_level=350,
    )
    pipe.save_pretrained(path)
    return path


def save_controlnet(path: Path, sdxl: bool = False, seed: int = 1) -> Path:
    """A ControlNet for the tiny SD 1.x UNet, or (sdxl) for the tiny SDXL UNet: its text_time conditioning
    and both encoders' width, as SDXL ControlNets (depth, Canny) are."""
    from diffusers import ControlNetModel

    torch.manual_seed(seed)
    xl: Dict[str, Any] = dict(
        cross_attention_dim=2 * HIDDEN, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + HIDDEN, transformer_layers_per_block=(1, 1),
        use_linear_projection=True,
    ) if sdxl else dict(cross_attention_dim=HIDDEN)
    # Four conditioning-embedding widths: the condition image is downsampled 8x, like the VAE's latents.
    net = ControlNetModel(
        block_out_channels=(8, 16), layers_per_block=1, in_channels=4, down_block_types=("DownBlock2D",
        "CrossAttnDownBlock2D"), conditioning_embedding_out_channels=(4, 4, 8, 8),
        norm_num_groups=4, attention_head_dim=4, **xl,
    ).eval()
    # A fresh ControlNet's zero convolutions make it a no-op; give them weights so the condition matters.
    zero_init = ("controlnet_down_blocks", "controlnet_mid_block", "controlnet_cond_embedding.conv_out")
    with torch.no_grad():
        for name, param in net.named_parameters():
            if name.startswith(zero_init):
                param.normal_(0.0, 0.2)
    net.save_pretrained(path)
    return path


def _sdxl_unet(in_channels: int = 4) -> Any:
    from diffusers import UNet2DConditionModel

    torch.manual_seed(0)
    # SDXL conditions on both encoders (2 x 32 wide) and on size/crop "time ids" (6 x 8 + the pooled 32).
    return UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=in_channels, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=2 * HIDDEN, norm_num_groups=4, attention_head_dim=4, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + HIDDEN,
        transformer_layers_per_block=(1, 1), use_linear_projection=True,
    ).eval()


def save_sdxl_img2img(path: Path) -> Path:
    from diffusers import StableDiffusionXLImg2ImgPipeline

    tok1, enc1 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok1")
    tok2, enc2 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok2", projection=True)
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=_vae(), text_encoder=enc1, text_encoder_2=enc2, tokenizer=tok1, tokenizer_2=tok2, unet=_sdxl_unet(),
        scheduler=_scheduler(), requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(path)
    return path


def save_sdxl_inpaint(path: Path) -> Path:
    from diffusers import StableDiffusionXLInpaintPipeline

    tok1, enc1 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok1")
    tok2, enc2 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok2", projection=True)
    pipe = StableDiffusionXLInpaintPipeline(
        vae=_vae(), text_encoder=enc1, text_encoder_2=enc2, tokenizer=tok1, tokenizer_2=tok2,
        unet=_sdxl_unet(in_channels=9), scheduler=_scheduler(), requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )
    pipe.save_pretrained(path)
    return path


def save_motion_adapter(path: Path) -> Path:
    """The tiny UNet's motion adapter alone, as studios keep it beside their SD 1.x base."""
    from diffusers import MotionAdapter

    torch.manual_seed(0)
    MotionAdapter(
        block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=4,
        motion_num_attention_heads=2, motion_max_seq_length=32,
    ).save_pretrained(path)
    return path


def save_animatediff(path: Path) -> Path:
    from diffusers import AnimateDiffVideoToVideoPipeline, MotionAdapter

    tokenizer, encoder = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok")
    torch.manual_seed(0)
    adapter = MotionAdapter(
        block_out_channels=(8, 16), motion_layers_per_block=1, motion_norm_num_groups=4,
        motion_num_attention_heads=2, motion_max_seq_length=32,
    )
    pipe = AnimateDiffVideoToVideoPipeline(
        vae=_vae(), text_encoder=encoder, tokenizer=tokenizer, unet=_unet(), motion_adapter=adapter,
        scheduler=_scheduler(),
    )
    pipe.save_pretrained(path)
    return path


def save_lora(path: Path, sdxl: bool = False, seed: int = 2) -> Path:
    """A LoRA on the tiny UNet's attention (peft LoraConfig), saved in diffusers form with save_lora_weights."""
    from diffusers.loaders import StableDiffusionLoraLoaderMixin
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = _sdxl_unet() if sdxl else _unet()
    torch.manual_seed(seed)
    # init_lora_weights=False: both factors random, so the LoRA really changes the result.
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                init_lora_weights=False))
    StableDiffusionLoraLoaderMixin.save_lora_weights(path, unet_lora_layers=get_peft_model_state_dict(unet),
                                                     safe_serialization=True)
    return path / "pytorch_lora_weights.safetensors"


def save_lora_kohya(diffusers_file: Path, path: Path) -> Path:
    """The same LoRA in kohya form (lora_unet_* keys, lora_down/lora_up, alphas), as A1111 and ComfyUI save it."""
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import load_file, save_file

    kohya = convert_state_dict_to_kohya(load_file(str(diffusers_file)))
    assert all(k.startswith("lora_unet_") for k in kohya)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(path))
    return path


def save_embedding(path: Path, width: int = HIDDEN, seed: int = 3) -> Path:
    """A one-vector textual-inversion embedding as wide as the tiny text encoder."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"emb_params": torch.randn(1, width) * 2.0}, str(path))
    return path


def save_ip_adapter(folder: Path, embed_dim: int = 16) -> Tuple[Path, Path]:
    """Tiny IP-Adapter weights (image projection + per-cross-attention to_k_ip/to_v_ip) for the tiny UNet,
    and the tiny CLIP image encoder whose projection feeds them. Returns (weights file, encoder folder)."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(4)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32,
        patch_size=8, projection_dim=embed_dim,
    )).eval()
    encoder.save_pretrained(folder / "image_encoder")
    unet = _unet()
    blocks = list(unet.config.block_out_channels)
    state = {
        "image_proj.proj.weight": torch.randn(4 * HIDDEN, embed_dim) * 0.3,
        "image_proj.proj.bias": torch.zeros(4 * HIDDEN),
        "image_proj.norm.weight": torch.ones(HIDDEN),
        "image_proj.norm.bias": torch.zeros(HIDDEN),
    }
    key_id = 1  # diffusers numbers the cross-attention processors 1, 3, 5, ... in attn_processors order
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(blocks))[int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        state[f"ip_adapter.{key_id}.to_k_ip.weight"] = torch.randn(hidden, HIDDEN) * 0.3
        state[f"ip_adapter.{key_id}.to_v_ip.weight"] = torch.randn(hidden, HIDDEN) * 0.3
        key_id += 2
    save_file(state, str(folder / "ip-adapter.safetensors"))
    return folder / "ip-adapter.safetensors", folder / "image_encoder"


def save_vae(path: Path, seed: int = 9) -> Path:
    """Another tiny VAE (other weights), to override a pipeline's own."""
    vae = _vae()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    vae.save_pretrained(path)
    return path


# ---------------------------------------------------------------------------------------------- flow-matching bases
# SD3/SD3.5 and Flux at toy widths: MMDiT transformers, CLIP and T5 text encoders, and the real layout: an 8x VAE
# with 16 latent channels, 2x2 patches. The T5 tokenizer is a unigram vocabulary built in code.

T5_WIDTH = 64  # SD3 pads its CLIP embeddings (2 x 32) up to the T5 width: it must be at least their sum


def t5_tokenizer_and_encoder(folder: Path, width: int = T5_WIDTH) -> Tuple[Any, Any]:
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    # pad 0, eos 1, unk 2 as in T5; then every printable ASCII character, alone and word-initial ("▁x").
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(c, -3.0) for c in map(chr, range(33, 127))] + [("▁" + c, -2.5) for c in map(chr, range(33, 127))]
    tokenizer = T5TokenizerFast(vocab=pieces, extra_ids=0)
    torch.manual_seed(5)
    config = T5Config(vocab_size=len(pieces), d_model=width, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
                      relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return tokenizer, T5EncoderModel(config).eval()


def _flow_vae(shift: float, scale: float) -> Any:
    """An 8x VAE with 16 latent channels and no quant convs, with the shift and scale SD3/Flux VAEs carry."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    return AutoencoderKL(
        block_out_channels=[8] * 4, in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=16, norm_num_groups=2, layers_per_block=1,
        use_quant_conv=False, use_post_quant_conv=False, shift_factor=shift, scaling_factor=scale,
    ).eval()


def _flow_scheduler(dynamic: bool) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    if dynamic:  # Flux's resolution-dependent shift
        return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                               base_image_seq_len=256, max_image_seq_len=4096)
    return FlowMatchEulerDiscreteScheduler(shift=3.0)


def sd3_transformer(in_channels: int = 16) -> Any:
    from diffusers import SD3Transformer2DModel

    torch.manual_seed(0)
    # sample_size 16 latents x the 8x VAE: a native size of 128 px; 2x2 patches, as SD3's.
    return SD3Transformer2DModel(
        sample_size=16, patch_size=2, in_channels=in_channels, out_channels=16, num_layers=2, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=T5_WIDTH, caption_projection_dim=16,
        pooled_projection_dim=2 * HIDDEN, pos_embed_max_size=64,
    ).eval()


def save_sd3(path: Path, in_channels: int = 16) -> Path:
    """A tiny SD3 text-to-image folder (StableDiffusion3Pipeline), as studios download SD3/SD3.5 bases."""
    from diffusers import StableDiffusion3Pipeline

    tok1, enc1 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok1", projection=True)
    tok2, enc2 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok2", projection=True)
    tok3, enc3 = t5_tokenizer_and_encoder(path.parent / f"{path.name}-tok3")
    pipe = StableDiffusion3Pipeline(
        transformer=sd3_transformer(in_channels), scheduler=_flow_scheduler(dynamic=False),
        vae=_smooth(_flow_vae(0.0609, 1.5305)), text_encoder=enc1, tokenizer=tok1, text_encoder_2=enc2,
        tokenizer_2=tok2, text_encoder_3=enc3, tokenizer_3=tok3,
    )
    pipe.save_pretrained(path)
    return path


def flux_transformer(in_channels: int = 64, guidance: bool = True) -> Any:
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(0)
    # 16 latent channels packed 2x2: 64 input channels, as the real Flux. The rotary axes sum to the head width.
    return FluxTransformer2DModel(
        patch_size=1, in_channels=in_channels, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=HIDDEN, pooled_projection_dim=HIDDEN,
        guidance_embeds=guidance, axes_dims_rope=(4, 6, 6),
    ).eval()


def save_flux(path: Path, in_channels: int = 64, guidance: bool = True) -> Path:
    """A tiny Flux text-to-image folder (FluxPipeline) with guidance embedding, shaped like FLUX.1-dev, or
    without it (guidance=False), shaped like FLUX.1-schnell."""
    from diffusers import FluxPipeline

    tok1, enc1 = tokenizer_and_text_encoder(path.parent / f"{path.name}-tok1")
    tok2, enc2 = t5_tokenizer_and_encoder(path.parent / f"{path.name}-tok2", width=HIDDEN)
    pipe = FluxPipeline(
        transformer=flux_transformer(in_channels, guidance), scheduler=_flow_scheduler(dynamic=True),
        vae=_smooth(_flow_vae(0.1159, 0.3611)), text_encoder=enc1, tokenizer=tok1, text_encoder_2=enc2,
        tokenizer_2=tok2,
    )
    pipe.save_pretrained(path)
    return path


def save_flow_lora(path: Path, flux: bool, seed: int = 2) -> Path:
    """A LoRA on the tiny SD3 or Flux transformer's attention (peft), saved in diffusers form by the pipeline's
    own LoRA mixin (transformer.* keys)."""
    from diffusers import FluxPipeline, StableDiffusion3Pipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    transformer = flux_transformer() if flux else sd3_transformer()
    torch.manual_seed(seed)
    transformer.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                       init_lora_weights=False))
    mixin = FluxPipeline if flux else StableDiffusion3Pipeline
    mixin.save_lora_weights(path, transformer_lora_layers=get_peft_model_state_dict(transformer),
                            safe_serialization=True)
    return path / "pytorch_lora_weights.safetensors"
