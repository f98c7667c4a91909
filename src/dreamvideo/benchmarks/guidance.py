"""Batched double-condition guidance vs the plain three-forward reference path.

Prints seconds per denoising step for both and their ratio, on a tiny random model of the real
architecture (or `--model DIR`). Run: python -m dreamvideo.benchmarks.guidance [--frames 16 --repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from dreamvideo.benchmarks.naive import reference_sample
from dreamvideo.pipeline import load_pipeline
from dreamvideo.testing import tiny_dreamvideo_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="DreamVideo folder (default: a tiny random model)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pipe = (
        load_pipeline(args.model) if args.model else tiny_dreamvideo_pipeline("bert", randomize_branch=True)
    )
    pipe.set_progress_bar_config(disable=True)
    height, width = pipe.default_size
    image = torch.rand(1, 3, height, width) * 2 - 1
    latents = torch.randn(
        1,
        pipe.unet.config.in_channels,
        args.frames,
        height // pipe.vae_scale_factor,
        width // pipe.vae_scale_factor,
        generator=torch.Generator().manual_seed(0),
    )
    prompt = "a red ball moves to the left"

    def batched() -> torch.Tensor:
        return pipe(
            image,
            prompt,
            latents=latents,
            num_frames=args.frames,
            num_inference_steps=args.steps,
            output_type="latent",
        ).frames

    def reference() -> torch.Tensor:
        return reference_sample(
            pipe,
            image,
            prompt,
            latents,
            args.steps,
            "image+text",
            pipe.config.default_image_guidance_scale,
            pipe.config.default_text_guidance_scale,
        )

    def best_of(fn) -> tuple[float, torch.Tensor]:
        fn()  # warm-up
        times, out = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - start)
        return min(times), out

    t_batched, a = best_of(batched)
    t_reference, b = best_of(reference)
    print(
        f"model: {args.model or 'tiny random'}  frames {args.frames}  {height}x{width}  steps {args.steps}  "
        f"threads {args.threads}"
    )
    print(f"batched   (1 forward of 3 conditions): {t_batched / args.steps * 1e3:8.1f} ms/step")
    print(f"reference (3 forwards, all recomputed): {t_reference / args.steps * 1e3:8.1f} ms/step")
    print(
        f"speed-up: {t_reference / t_batched:.2f}x   max |final latent difference|: {(a - b).abs().max():.2e}"
    )


if __name__ == "__main__":
    main()
