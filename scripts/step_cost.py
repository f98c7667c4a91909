"""Seconds per training step and per sampling forward of DreamVideo's denoiser (UNet3D + retention
branch) for candidate latent spaces of the default model: the f = 8 VAE's 8×8×16 latents,
space-to-depth f = 8 (8×8×192) at two widths, and f = 4 (16×16×48). Random weights and inputs:
the cost depends on shapes only. Also the cost of rendering one training clip.

    python scripts/step_cost.py [--threads 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import time

import torch
from diffusers import UNet3DConditionModel

from dreamvideo.data.synthetic import make_clip
from dreamvideo.models import DreamVideoDenoiser, FrameRetentionBranch

CANDIDATES = [  # name, latent channels, latent side, UNet widths, downscale
    ("VAE f=8 (8x8x16)", 16, 8, (64, 64, 128), 8),
    ("space-to-depth f=8 (8x8x192)", 192, 8, (64, 64, 128), 8),
    ("space-to-depth f=8, widths x2", 192, 8, (128, 128, 256), 8),
    ("space-to-depth f=4 (16x16x48)", 48, 16, (64, 64, 128), 4),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    for i in range(20):
        make_clip(0, i, "train", 64, 8)
    print(f"rendering one 64x64x8 clip: {(time.perf_counter() - started) / 20 * 1000:.0f} ms")
    print("| latent space | UNet parameters | training step (batch 8) | sampling forward (3 branches) |")
    print("|---|---|---|---|")
    for name, channels, side, widths, factor in CANDIDATES:
        unet = UNet3DConditionModel(
            sample_size=side,
            in_channels=channels,
            out_channels=channels,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            block_out_channels=widths,
            layers_per_block=1,
            norm_num_groups=32,
            cross_attention_dim=384,
            attention_head_dim=8,
        )
        branch = FrameRetentionBranch.from_unet(unet, image_embed_channels=16, downscale_factor=factor)
        denoiser = DreamVideoDenoiser(unet, branch)
        optimizer = torch.optim.AdamW(denoiser.parameters(), 1e-4)
        x = torch.randn(8, channels, 8, side, side)
        context, image = torch.randn(8, 32, 384), torch.randn(8, 3, 64, 64)
        t = torch.randint(0, 1000, (8,))
        times = []
        for _ in range(args.steps + 1):
            start = time.perf_counter()
            denoiser(x, t, context, image=image).pow(2).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        with torch.no_grad():
            start = time.perf_counter()
            denoiser(x[:3], t[:3], context[:3], image=image[:3])
            forward = time.perf_counter() - start
        params = sum(p.numel() for p in unet.parameters()) / 1e6
        print(f"| {name} | {params:.2f} M | {sum(times[1:]) / args.steps:.2f} s | {forward:.3f} s |")


if __name__ == "__main__":
    main()
