"""How much of a space-to-depth patch can a k-channel first level carry? A linear code (PCA
fitted on first frames of training clips) of k numbers per f×f×3 pixel patch, scored by the SSIM
of the held-out first frames it reconstructs. A UNet's first level of width k is at least as
expressive as this linear code, so the table bounds what the width costs in fidelity.

    python scripts/patch_code_capacity.py [--train 600] [--heldout 200]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from dreamvideo.data.synthetic import make_clip
from dreamvideo.io.images import frames_to_unit
from dreamvideo.metrics import ssim


def first_frames(split: str, count: int, seed: int) -> torch.Tensor:
    frames = np.stack([make_clip(seed, i, split, 64, 8)[0][0] for i in range(count)])
    return frames_to_unit(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=600)
    parser.add_argument("--heldout", type=int, default=200)
    args = parser.parse_args()
    train, heldout = first_frames("train", args.train, 0), first_frames("heldout", args.heldout, 12345)
    print("| factor | values per patch | k | held-out SSIM |")
    print("|---|---|---|---|")
    for factor in (8, 4):
        patches = F.pixel_unshuffle(train, factor)
        channels = patches.shape[1]
        x = patches.permute(0, 2, 3, 1).reshape(-1, channels)
        mean = x.mean(0)
        _, _, basis = torch.pca_lowrank(x - mean, q=channels, center=False)
        test = F.pixel_unshuffle(heldout, factor).permute(0, 2, 3, 1).reshape(-1, channels)
        for k in (16, 32, 48, 64, 96, 128):
            if k > channels:
                continue
            code = (test - mean) @ basis[:, :k]
            recon = (code @ basis[:, :k].T + mean).reshape(len(heldout), 64 // factor, 64 // factor, channels)
            pixels = F.pixel_shuffle(recon.permute(0, 3, 1, 2), factor).clamp(0, 1)
            print(f"| {factor} | {channels} | {k} | {float(ssim(pixels, heldout)):.3f} |")


if __name__ == "__main__":
    main()
