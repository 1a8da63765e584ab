"""GPU benchmark: stylize frames/s at 1024x576, through the server vs. a bare diffusers loop.

Builds SD 1.5-, SDXL-, SD3.5 Medium- and FLUX.1-dev-size img2img pipelines with *random* weights (the real
architectures and widths: exactly the compute of real weights, nothing downloaded), fp16 (SD3, Flux: bf16)
on CUDA, saves them, lists them in a model config and renders the same frames (a) with a bare diffusers
loop, (b) through the real shotpass server and CLI path, (c) bare with frame batching. Needs a CUDA GPU;
refuses clearly without one. ``--check`` runs the same three paths on CPU with the tests' tiny pipelines at
128x128 in float32, so the script is known to work before scarce GPU time is spent on it; its figures mean
nothing. The Flux transformer alone is 12B parameters (24 GB in bf16): building it takes
minutes and its folder about 35 GB of disk with the T5 encoder; run `--kinds flux` on a GPU with 40 GB or more.

    python bench/gpu_passes.py --frames 8 --steps 20 --strength 0.5 --kinds sd15,sdxl,sd3,flux
    python bench/gpu_passes.py --check --frames 2 --steps 2 --kinds sd15,sd3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

W, H = 1024, 576
DEVICE = "cuda"  # --check: "cpu", with the tiny pipelines at CHECK_SIZE
CHECK_SIZE = 128
TINY = {"sd15": "save_img2img", "sdxl": "save_sdxl_img2img", "sd3": "save_sd3", "flux": "save_flux"}


# kind -> (shotpass kind, diffusers img2img pipeline class, dtype name)
KINDS = {
    "sd15": ("sd15-img2img", "StableDiffusionImg2ImgPipeline", "float16"),
    "sdxl": ("sdxl-img2img", "StableDiffusionXLImg2ImgPipeline", "float16"),
    "sd3": ("sd3-img2img", "StableDiffusion3Img2ImgPipeline", "bfloat16"),
    "flux": ("flux-img2img", "FluxImg2ImgPipeline", "bfloat16"),
}


def build(kind: str, folder: Path) -> Path:
    """Random-weight pipeline at real size, from the diffusers default configs of SD 1.5 / SDXL."""
    if DEVICE == "cpu":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        import tiny_pipelines

        return getattr(tiny_pipelines, TINY[kind])(folder)
    if kind in ("sd3", "flux"):
        return build_flow(kind, folder)
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionImg2ImgPipeline,
        StableDiffusionXLImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_pipelines import _byte_vocab

    vocab, bos, eos = _byte_vocab()

    def text(hidden: int, layers: int, projection: bool = False) -> Any:
        cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=hidden * 4,
                             num_hidden_layers=layers, num_attention_heads=hidden // 64, max_position_embeddings=77,
                             bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, projection_dim=hidden,
                             hidden_act="quick_gelu" if hidden == 768 else "gelu")
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)

    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=4, layers_per_block=2,
                        sample_size=512)
    torch.manual_seed(0)
    if kind == "sd15":
        unet = UNet2DConditionModel(cross_attention_dim=768, sample_size=64)  # the SD 1.5 UNet is the default
        pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text(768, 12), tokenizer=tok, unet=unet,
                                              scheduler=sched, safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
    else:
        unet = UNet2DConditionModel(
            sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=2048,
            transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), use_linear_projection=True,
            addition_embed_type="text_time", addition_time_embed_dim=256,
            projection_class_embeddings_input_dim=2816,
        )
        pipe = StableDiffusionXLImg2ImgPipeline(vae=vae, text_encoder=text(768, 12),
                                                text_encoder_2=text(1280, 32, True), tokenizer=tok, tokenizer_2=tok,
                                                unet=unet, scheduler=sched)
    pipe.to(torch.float16).save_pretrained(folder, variant=None)
    return folder


def build_flow(kind: str, folder: Path) -> Path:
    """SD3.5 Medium or FLUX.1-dev at real size with random weights: the transformer, the 16-channel VAE, CLIP
    and T5-XXL text encoders (tokenizers from the tests' offline vocabularies)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
        SD3Transformer2DModel,
        StableDiffusion3Pipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_pipelines import _byte_vocab, t5_tokenizer_and_encoder

    vocab, bos, eos = _byte_vocab()
    dtype = torch.bfloat16

    def clip(hidden: int, layers: int, projection: bool) -> Any:
        cfg = CLIPTextConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=hidden * 4,
                             num_hidden_layers=layers, num_attention_heads=hidden // 64, max_position_embeddings=77,
                             bos_token_id=bos, eos_token_id=eos, pad_token_id=eos, projection_dim=hidden)
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg).to(dtype)

    def t5() -> Any:
        from transformers import T5Config, T5EncoderModel

        tok, _ = t5_tokenizer_and_encoder(folder.parent / f"{kind}-t5tok", width=8)  # only its vocabulary is used
        cfg = T5Config(vocab_size=tok.vocab_size, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                       feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
        return tok, T5EncoderModel(cfg).to(dtype)

    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    shift, scale = (0.0609, 1.5305) if kind == "sd3" else (0.1159, 0.3611)
    vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4, latent_channels=16, layers_per_block=2,
                        sample_size=1024, use_quant_conv=False, use_post_quant_conv=False, shift_factor=shift,
                        scaling_factor=scale).to(dtype)
    torch.manual_seed(0)
    t5_tok, t5_enc = t5()
    if kind == "sd3":  # SD3.5 Medium: 24 MMDiT-X blocks, dual attention in the first 13, RMS-normed q/k
        transformer = SD3Transformer2DModel(
            sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64,
            num_attention_heads=24, joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048,
            out_channels=16, pos_embed_max_size=384, dual_attention_layers=tuple(range(13)), qk_norm="rms_norm",
        ).to(dtype)
        pipe = StableDiffusion3Pipeline(
            transformer=transformer, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0), vae=vae,
            text_encoder=clip(768, 12, True), tokenizer=tok, text_encoder_2=clip(1280, 32, True), tokenizer_2=tok,
            text_encoder_3=t5_enc, tokenizer_3=t5_tok,
        )
    else:  # FLUX.1-dev: 19 double-stream and 38 single-stream blocks, guidance embedding
        transformer = FluxTransformer2DModel(
            patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
            axes_dims_rope=(16, 56, 56),
        ).to(dtype)
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
                                                    base_image_seq_len=256, max_image_seq_len=4096, shift=3.0)
        pipe = FluxPipeline(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=clip(768, 12, False),
                            tokenizer=tok, text_encoder_2=t5_enc, tokenizer_2=t5_tok)
    pipe.save_pretrained(folder)
    return folder


def frames(n: int) -> List[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((H, W, 3), dtype=np.float32) for _ in range(n)]


def bare(folder: Path, kind: str, imgs: List[np.ndarray], steps: int, strength: float, batch: int) -> float:
    import diffusers
    import torch

    _, class_name, dtype = KINDS[kind]
    cls = getattr(diffusers, class_name)
    dtype = dtype if DEVICE == "cuda" else "float32"
    pipe = cls.from_pretrained(folder, local_files_only=True, dtype=getattr(torch, dtype)).to(DEVICE)
    pipe.set_progress_bar_config(disable=True)
    batches = [imgs[i:i + batch] for i in range(0, len(imgs), batch)]
    size = {"height": H, "width": W} if kind in ("sd3", "flux") else {}  # the transformers want the size said
    pipe(prompt="warm-up", image=torch.from_numpy(imgs[0].transpose(2, 0, 1))[None].to(DEVICE), strength=strength,
         num_inference_steps=steps, output_type="np", **size)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for group in batches:
        x = torch.from_numpy(np.stack([g.transpose(2, 0, 1) for g in group])).to(DEVICE)
        pipe(prompt=["an oil painting"] * len(group), image=x, strength=strength, num_inference_steps=steps,
             output_type="np", **size)
    if DEVICE == "cuda":
        torch.cuda.synchronize()
    return len(imgs) / (time.perf_counter() - start)


def through_server(folder: Path, kind: str, imgs: List[np.ndarray], steps: int, strength: float, work: Path) -> float:
    import OpenEXR

    from shotpass_server.app import ShotpassServer
    from shotpass_server.cli import main as cli
    from shotpass_server.config import load_config

    plate = work / "plate"
    plate.mkdir()
    for i, img in enumerate(imgs, start=1):
        hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        ch = {c: img[..., k].astype(np.float16) for k, c in enumerate("RGB")}
        with OpenEXR.File(hdr, ch) as f:
            f.write(str(plate / f"bench.{i:04d}.exr"))
    cfg_file = work / "models.toml"
    kind_name, _, dtype = KINDS[kind]
    precision = "fp32" if DEVICE == "cpu" else "bf16" if dtype == "bfloat16" else "fp16"
    # One name per kind: loaded pipelines are cached per process by model name, and every kind runs here.
    cfg_file.write_text(f'[models.bench-{kind}]\nkind = "{kind_name}"\npath = "{folder}"\nsteps = {steps}\n'
                        f'strength = {strength}\ndtype = "{precision}"\n')
    cfg = load_config(cfg_file)
    cfg.listen, cfg.data_dir = "127.0.0.1:0", work / "data"
    server = ShotpassServer(cfg)
    server.start()
    try:
        args = ["render", str(plate / "bench.####.exr"), "--server", server.address, "--model", f"bench-{kind}",
                "--json", "--prompt", "an oil painting", "--colour-space", "sRGB Encoded Rec.709 (sRGB)"]
        cli([*args, "--frames", "1", "--out", str(work / "warm")])  # loads the pipeline once
        start = time.perf_counter()
        code = cli([*args, "--out", str(work / "out")])
        seconds = time.perf_counter() - start
    finally:
        server.stop()
    if code != 0:
        raise SystemExit("server render failed")
    return len(imgs) / seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--strength", type=float, default=0.5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--kinds", default="sd15,sdxl,sd3", help="any of sd15, sdxl, sd3, flux (flux: 40 GB GPUs)")
    p.add_argument("--check", action="store_true",
                   help="prove the script on CPU with the tests' tiny pipelines (figures mean nothing)")
    args = p.parse_args()
    unknown = set(args.kinds.split(",")) - set(KINDS)
    if unknown:
        p.error(f"unknown kinds {', '.join(sorted(unknown))}: choose from {', '.join(KINDS)}")
    try:
        import torch
    except ImportError:
        print("gpu_passes: torch is not installed (pip install 'shotpass[diffusion]')", file=sys.stderr)
        return 2
    global W, H, DEVICE
    if args.check:
        W, H, DEVICE = CHECK_SIZE, CHECK_SIZE, "cpu"
    elif not torch.cuda.is_available():
        print("gpu_passes: no CUDA GPU visible; this benchmark measures fp16 GPU throughput and does not run on CPU",
              file=sys.stderr)
        return 2
    results: Dict[str, Dict[str, float]] = {}
    imgs = frames(args.frames)
    for kind in args.kinds.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            folder = build(kind, work / kind)
            results[kind] = {
                "bare_fps": bare(folder, kind, imgs, args.steps, args.strength, 1),
                "bare_batched_fps": bare(folder, kind, imgs, args.steps, args.strength, args.batch),
                "server_fps": through_server(folder, kind, imgs, args.steps, args.strength, work),
            }
    if DEVICE == "cpu":
        print(f"CHECK on CPU: tiny pipelines, {W}x{H}, {args.steps} steps x strength {args.strength}, fp32 "
              "(every path ran; these figures mean nothing)")
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)}; {W}x{H}, {args.steps} steps x strength {args.strength}, fp16 "
              "(sd3, flux: bf16)")
    for kind, r in results.items():
        print(f"{kind:5} bare {r['bare_fps']:.2f} fps | bare batch {args.batch} {r['bare_batched_fps']:.2f} fps | "
              f"server {r['server_fps']:.2f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
