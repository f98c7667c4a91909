"""How much of an image the latent space keeps: the ceiling on a generated first frame.

A VAE's encode -> decode round trip on three held-out sets, each beside a bicubic thumbnail
(4× down and back up, the same 1/16 of the pixels' numbers) as a floor any latent should beat:
- `synthetic`: frames of the suite's held-out clips (first and middle frames);
- `photos`: crops of the held-out photographs, as the suite's camera tests draw them;
- `images`: any image files given (the README's examples), fitted as `generate` fits them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.synthetic import HELDOUT_PHOTOS, load_photo, random_crop
from ..io.images import fit_image, frames_to_signed, frames_to_unit, load_image, tensor_to_images
from ..metrics import psnr, ssim


def reconstruction_sets(
    size: int, num_frames: int = 128, num_photos: int = 48, images: tuple[Path, ...] = ()
) -> dict[str, np.ndarray]:
    """The held-out inputs, each set (N, size, size, 3) uint8."""
    from .synthetic import EVAL_SEED, heldout_clips  # the suite's own held-out inputs

    clips = heldout_clips((num_frames + 1) // 2, size, 8)
    synthetic = [clip.frames[k] for clip in clips for k in (0, len(clip.frames) // 2)][:num_frames]
    photos = []
    for k in range(num_photos):  # the suite's photo crops (evaluation/synthetic.py)
        rng = np.random.default_rng([EVAL_SEED, k, 99])
        photos.append(np.asarray(random_crop(rng, load_photo(HELDOUT_PHOTOS[k % len(HELDOUT_PHOTOS)]), size)))
    sets = {"synthetic": np.stack(synthetic), "photos": np.stack(photos)}
    if images:
        sets["images"] = np.stack([np.asarray(fit_image(load_image(p), size, size)) for p in images])
    return sets


def thumbnail(batch: np.ndarray, factor: int = 4) -> np.ndarray:
    """Each image `factor`× down and back up, bicubic: the floor a latent space should clear."""
    side = batch.shape[1]
    small = [Image.fromarray(x).resize((side // factor,) * 2, Image.Resampling.BICUBIC) for x in batch]
    return np.stack([np.asarray(s.resize((side, side), Image.Resampling.BICUBIC)) for s in small])


@torch.no_grad()
def reconstruct(vae, batch: np.ndarray, chunk: int = 32) -> np.ndarray:
    """uint8 (N, H, W, 3) -> the VAE's round trip through its posterior mode, uint8."""
    pixels = frames_to_signed(batch)
    out = [
        tensor_to_images(vae.decode(vae.encode(c.to(vae.device, vae.dtype)).latent_dist.mode()).sample)
        for c in pixels.split(chunk)
    ]
    return np.concatenate(out)


def _scores(recon: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    x, y = frames_to_unit(recon), frames_to_unit(truth)
    return {"ssim": float(ssim(x, y)), "psnr": float(psnr(x, y).mean())}


def evaluate_reconstruction(
    vae, size: int, num_frames: int = 128, num_photos: int = 48, images: tuple[Path, ...] = ()
) -> dict[str, dict[str, float]]:
    """Per set: the VAE's SSIM / PSNR and the thumbnail's, and how many images."""
    report = {}
    for name, batch in reconstruction_sets(size, num_frames, num_photos, images).items():
        vae_scores, thumb = _scores(reconstruct(vae, batch), batch), _scores(thumbnail(batch), batch)
        report[name] = {
            "count": len(batch),
            **vae_scores,
            "thumbnail_ssim": thumb["ssim"],
            "thumbnail_psnr": thumb["psnr"],
        }
    return report
