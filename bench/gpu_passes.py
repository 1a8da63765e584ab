"""GPU benchmark: stylize frames/s at 1024x576, through the server vs. a bare diffusers loop.

Builds SD 1.5-size and SDXL-size img2img pipelines with *random* weights (the real architectures and
widths: exactly the compute of real weights, nothing downloaded), fp16 on CUDA, saves them, lists them
in a model config and renders the same frames (a) with a bare diffusers loop, (b) through the real
shotpass server and CLI path, (c) bare with frame batching. Needs a CUDA GPU; refuses clearly without one.

    python bench/gpu_passes.py --frames 8 --steps 20 --strength 0.5
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


def build(kind: str, folder: Path) -> Path:
    """Random-weight pipeline at real size, from the diffusers default configs of SD 1.5 / SDXL."""
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


def frames(n: int) -> List[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random((H, W, 3), dtype=np.float32) for _ in range(n)]


def bare(folder: Path, kind: str, imgs: List[np.ndarray], steps: int, strength: float, batch: int) -> float:
    import diffusers
    import torch

    cls = diffusers.StableDiffusionImg2ImgPipeline if kind == "sd15" else diffusers.StableDiffusionXLImg2ImgPipeline
    pipe = cls.from_pretrained(folder, local_files_only=True, dtype=torch.float16).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    batches = [imgs[i:i + batch] for i in range(0, len(imgs), batch)]
    pipe(prompt="warm-up", image=torch.from_numpy(imgs[0].transpose(2, 0, 1))[None].cuda(), strength=strength,
         num_inference_steps=steps, output_type="np")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for group in batches:
        x = torch.from_numpy(np.stack([g.transpose(2, 0, 1) for g in group])).cuda()
        pipe(prompt=["an oil painting"] * len(group), image=x, strength=strength, num_inference_steps=steps,
             output_type="np")
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
    kind_name = "sd15-img2img" if kind == "sd15" else "sdxl-img2img"
    cfg_file.write_text(f'[models.bench]\nkind = "{kind_name}"\npath = "{folder}"\nsteps = {steps}\n'
                        f'strength = {strength}\n')
    cfg = load_config(cfg_file)
    cfg.listen, cfg.data_dir = "127.0.0.1:0", work / "data"
    server = ShotpassServer(cfg)
    server.start()
    try:
        args = ["render", str(plate / "bench.####.exr"), "--server", server.address, "--model", "bench", "--json",
                "--prompt", "an oil painting", "--colour-space", "sRGB Encoded Rec.709 (sRGB)"]
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
    p.add_argument("--kinds", default="sd15,sdxl")
    args = p.parse_args()
    try:
        import torch
    except ImportError:
        print("gpu_passes: torch is not installed (pip install 'shotpass[diffusion]')", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
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
    print(f"GPU: {torch.cuda.get_device_name(0)}; {W}x{H}, {args.steps} steps x strength {args.strength}, fp16")
    for kind, r in results.items():
        print(f"{kind:5} bare {r['bare_fps']:.2f} fps | bare batch {args.batch} {r['bare_batched_fps']:.2f} fps | "
              f"server {r['server_fps']:.2f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
