"""Does a VAE's latent keep each colour channel? A linear read-out of every 8×8 patch's mean
R, G, B from its latent vector (least squares on one half of the patches, R² on the other), on
random coloured blocks (colours independent of each other), the suite's held-out synthetic
frames and held-out photo crops. A channel near R² = 0 is lost by the encoder: no decoder
fine-tune can bring it back (docs/model-card.md, "Fidelity").

    python research/latent_colour.py [--model DIR]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dreamvideo.evaluation.reconstruction import reconstruction_sets
from dreamvideo.io.images import frames_to_signed
from dreamvideo.pipeline import load_pipeline


def random_blocks(num: int, size: int, seed: int = 1) -> np.ndarray:
    """Flat backgrounds with three blocks, every colour drawn independently."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(num):
        image = np.full((size, size, 3), rng.integers(0, 256, 3), np.uint8)
        for _ in range(3):
            y, x = rng.integers(0, size * 3 // 4, 2)
            side = int(rng.integers(size // 16, size // 3))
            image[y : y + side, x : x + side] = rng.integers(0, 256, 3)
        images.append(image)
    return np.stack(images)


@torch.no_grad()
def channel_r2(vae, batch: np.ndarray) -> np.ndarray:
    """R² of a linear read-out of each latent cell's patch mean R, G, B (held-out half)."""
    pixels = frames_to_signed(batch)
    latents = torch.cat([vae.encode(c).latent_dist.mean for c in pixels.split(64)])
    factor = pixels.shape[-1] // latents.shape[-1]
    features = latents.permute(0, 2, 3, 1).reshape(-1, latents.shape[1]).numpy()
    features = np.c_[features, np.ones(len(features))]
    means = torch.nn.functional.avg_pool2d(pixels, factor).permute(0, 2, 3, 1).reshape(-1, 3).numpy()
    half = len(features) // 2
    weights, *_ = np.linalg.lstsq(features[:half], means[:half], rcond=None)
    error = ((features[half:] @ weights - means[half:]) ** 2).mean(0)
    return 1 - error / means[half:].var(0)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = load_pipeline(args.model)
    size = pipe.default_size[0]
    sets = reconstruction_sets(size, num_frames=256, num_photos=96)
    rows = {"random blocks": random_blocks(400, size), "held-out synthetic": sets["synthetic"]}
    rows["held-out photos"] = sets["photos"]
    print("| set | R² red | R² green | R² blue |\n|---|---|---|---|")
    for name, batch in rows.items():
        r2 = channel_r2(pipe.vae, batch)
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in r2) + " |")


if __name__ == "__main__":
    main()
