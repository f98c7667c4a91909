"""GPU smoke test of full-size training: DreamVideo on ModelScope T2V's full-width UNet (random
weights, no downloads), forward + backward at 16 frames x 256x256 (32x32x4 latents), bf16
autocast, AdamW over the trainable set (branch + temporal layers). Prints seconds per step and
peak GPU memory.

    python scripts/gpu_smoke.py                       # on a GPU machine
    python scripts/gpu_smoke.py --checkpointing       # with gradient checkpointing
    python scripts/gpu_smoke.py --lora-rank 8         # a LoRA adapter trains instead (dreamvideo.lora)
    python scripts/gpu_smoke.py --device cpu --width-divisor 8 --frames 2 --size 64 --steps 2   # dry run

On a CPU, bf16 autocast gives non-finite weight gradients in the temporal convolutions (PyTorch's
CPU conv3d backward), so a dry run's loss turns NaN after its first step; `--dtype fp32` gives a
finite one. On the H200 it ran on, bf16 stays finite (docs/full-size.md).
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from dreamvideo.models import checkpoint_unet_blocks, count_parameters
from dreamvideo.models.modelscope import build_denoiser


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--width-divisor", type=int, default=1)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after one warm-up step)")
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16", help="autocast dtype")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--lora-rank", type=int, default=0, help="> 0: train a LoRA adapter of this rank")
    parser.add_argument("--out", default=None, help="also append the result as a JSON line to this file")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU machine, or pass --device cpu for a dry run")

    with device:  # initialise the weights where they will live (2 B parameters: seconds, not a minute)
        denoiser = build_denoiser(args.width_divisor).train()
    if args.checkpointing:
        denoiser.branch.gradient_checkpointing = True
        checkpoint_unet_blocks(denoiser.unet)
    if args.lora_rank:  # the adapter on the branch and the temporal layers, the base frozen
        from types import SimpleNamespace

        from dreamvideo.lora import LoraSettings, add_adapter

        components = SimpleNamespace(unet=denoiser.unet, retention_branch=denoiser.branch)
        add_adapter(components, LoraSettings(rank=args.lora_rank))
    params = [p for p in denoiser.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    latent = args.size // 8
    shape = (args.batch, 4, args.frames, latent, latent)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    scaler = torch.amp.GradScaler(enabled=args.dtype == "fp16" and device.type == "cuda")

    def step() -> float:
        latents = torch.randn(shape, device=device)
        noise = torch.randn(shape, device=device)
        text = torch.randn(args.batch, 77, denoiser.unet.config.cross_attention_dim, device=device)
        image = torch.rand(args.batch, 3, args.size, args.size, device=device) * 2 - 1
        t = torch.randint(0, 1000, (args.batch,), device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=args.dtype != "fp32"):
            loss = F.mse_loss(denoiser(latents, t, text, image=image).float(), noise)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up (kernel selection, allocator)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "width_divisor": args.width_divisor,
        "frames": args.frames,
        "size": args.size,
        "batch": args.batch,
        "dtype": args.dtype,
        "checkpointing": args.checkpointing,
        "lora_rank": args.lora_rank,
        "parameters": count_parameters(denoiser),
        "trainable": sum(p.numel() for p in params),
        "seconds_per_step": round(seconds, 3),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated(device) / 1024**3, 2)
        if device.type == "cuda"
        else None,
        "last_loss": round(loss, 4),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
