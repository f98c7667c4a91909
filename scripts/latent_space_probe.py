"""Compare latent spaces by what a short text-to-video training buys, measured in pixels.

For each t2v pipeline folder (a `dreamvideo train` t2v export: VAE latents or the pixel-unshuffle
space, any prediction type), on held-out clips (`evaluation.synthetic.heldout_clips`):
- the latent space's own reconstruction of the clips (decode(encode(x))): its ceiling;
- the clean-clip estimate x̂ at fixed noise levels, given the true caption, decoded to pixels and
  scored against the real frames (SSIM, PSNR). ε / v / x predictions are converted to x̂ with the
  scheduler's ᾱ, so every model is judged by the same pixels whatever it predicts.

    python scripts/latent_space_probe.py runs/probes/px8_x/pipeline runs/probes/vae8_v/pipeline
        [--clips 32] [--timesteps 950,800,500,200]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dreamvideo.evaluation.synthetic import heldout_clips
from dreamvideo.io.images import frames_to_signed
from dreamvideo.loading import load_t2v
from dreamvideo.metrics import psnr, ssim
from dreamvideo.text import encode_prompts


def clean_estimate(
    prediction: torch.Tensor, noisy: torch.Tensor, alpha_bar: float, kind: str
) -> torch.Tensor:
    """x̂ from an ε, v or x prediction at x_t = √ᾱ x + √(1−ᾱ) ε."""
    a, s = alpha_bar**0.5, (1 - alpha_bar) ** 0.5
    if kind == "epsilon":
        return (noisy - s * prediction) / a
    if kind == "v_prediction":
        return a * noisy - s * prediction
    return prediction


@torch.no_grad()
def probe(folder: str, clips: list, timesteps: list[int]) -> dict:
    pipe = load_t2v(folder)
    vae, unet, scheduler = pipe.vae.eval(), pipe.unet.eval(), pipe.scheduler
    frames = frames_to_signed(np.stack([f for f, _ in clips]))  # (B, F, 3, H, W)
    b, f = frames.shape[:2]
    pixels = frames.flatten(0, 1)  # (B·F, 3, H, W)
    scale = vae.config.scaling_factor

    def decode(latents: torch.Tensor) -> torch.Tensor:
        flat = latents.permute(0, 2, 1, 3, 4).flatten(0, 1) / scale
        out = torch.cat([vae.decode(chunk).sample for chunk in flat.split(32)])
        return ((out.clamp(-1, 1) + 1) / 2 * 255).round() / 255

    target = (pixels + 1) / 2
    latents = torch.cat([vae.encode(chunk).latent_dist.mode() for chunk in pixels.split(32)]) * scale
    latents = latents.reshape(b, f, *latents.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()
    recon = decode(latents)
    row = {"model": folder, "reconstruction_ssim": float(ssim(recon, target))}
    context = encode_prompts(pipe.tokenizer, pipe.text_encoder, [spec.caption for _, spec in clips])
    generator = torch.Generator().manual_seed(0)
    kind = scheduler.config.prediction_type
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=generator)
        alpha_bar = float(scheduler.alphas_cumprod[t])
        noisy = alpha_bar**0.5 * latents + (1 - alpha_bar) ** 0.5 * noise
        prediction = torch.cat(
            [
                unet(x, t, encoder_hidden_states=c).sample
                for x, c in zip(noisy.split(8), context.split(8), strict=True)
            ]
        )
        estimate = decode(clean_estimate(prediction, noisy, alpha_bar, kind))
        row[f"ssim@{t}"] = float(ssim(estimate, target))
        row[f"psnr@{t}"] = float(psnr(estimate, target).mean())
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="t2v pipeline folders")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--timesteps", default="950,800,500,200")
    args = parser.parse_args()
    timesteps = [int(t) for t in args.timesteps.split(",")]
    clips = heldout_clips(args.clips, 64, 8)
    rows = [probe(folder, clips, timesteps) for folder in args.models]
    header = ["model", "reconstruction_ssim"] + [f"{m}@{t}" for t in timesteps for m in ("ssim", "psnr")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        cells = [row["model"]] + [f"{row[k]:.3f}" if "ssim" in k else f"{row[k]:.2f}" for k in header[1:]]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
