"""How far are a model's generated latents from the encoding of the image they start from? (Issue 39's
pilot diagnosis; read in docs/research-log.md.)

For held-out clips, sample each with the model's defaults (seed 0) as latents, encode the clip's
ground-truth frames with the model's own VAE, and report per latent channel:
- the std of the generated latents and of the encoded ones (scaled, as the UNet sees them);
- the RMS error of the first generated frame against the encoded first frame (the reference
  image the first frame must keep), in units of that channel's encoded std;
- the RMS difference between neighbouring latent pixels (high-frequency content), generated
  against encoded.

A decoder that is faithful to its latents shows the first-frame error as pixel noise; one that
ignores small changes (the shipped VAE's) hides it, and hides detail with it.

    python research/latent_error.py runs/probes/ninth_baseline/pipeline \
        runs/probes/ninth_patch_latents/pipeline
"""

from __future__ import annotations

import argparse

import torch
from PIL import Image

from dreamvideo.evaluation.synthetic import heldout_clips
from dreamvideo.io.images import frames_to_signed
from dreamvideo.pipeline import load_pipeline


def _row(label: str, values: torch.Tensor) -> str:
    return f"  {label:48s} " + " ".join(f"{v:5.2f}" for v in values.tolist())


@torch.no_grad()
def latent_error(model: str, num_clips: int) -> None:
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    generated, encoded = [], []
    for clip in heldout_clips(num_clips, 64, 8):
        seed = torch.Generator().manual_seed(0)
        out = pipe(Image.fromarray(clip.frames[0]), clip.caption, output_type="latent", generator=seed)
        generated.append(out.frames[0])  # (C, F, h, w), scaled
        latents = pipe.vae.encode(frames_to_signed(clip.frames)).latent_dist.mean
        encoded.append((latents * pipe.vae.config.scaling_factor).transpose(0, 1))
    g, e = torch.stack(generated), torch.stack(encoded)  # (N, C, F, h, w)
    std = e.std((0, 2, 3, 4))
    first = (g[:, :, 0] - e[:, :, 0]).pow(2).mean((0, 2, 3)).sqrt() / std

    def neighbours(x: torch.Tensor) -> float:
        return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean().sqrt().item()

    print(f"{model} ({num_clips} held-out clips), per latent channel:")
    print(_row("std, generated", g.std((0, 2, 3, 4))))
    print(_row("std, encoded", std))
    print(_row("frame-0 RMS error / encoded std", first))
    print(f"  frame-0 RMS error / encoded std, mean over channels: {first.mean():.2f}")
    print(f"  neighbour-difference RMS, generated / encoded: {neighbours(g):.3f} / {neighbours(e):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="DreamVideo folders")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for model in args.models:
        latent_error(model, args.clips)


if __name__ == "__main__":
    main()
