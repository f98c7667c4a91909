"""How much the image and the prompt change a model's output (same initial noise).

    python research/condition_sensitivity.py [--model DIR] [--steps 10]

Prints the largest absolute change of the final latents when the prompt changes and when the
reference image changes. A retention branch that learned nothing shows ~0 for the image.
"""

from __future__ import annotations

import argparse

import torch

from dreamvideo import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    pipe.set_progress_bar_config(disable=True)
    h, w = pipe.default_size
    shape = (
        1,
        pipe.unet.config.in_channels,
        pipe.config.default_num_frames,
        h // pipe.vae_scale_factor,
        w // pipe.vae_scale_factor,
    )
    latents = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def run(image: str, prompt: str) -> torch.Tensor:
        return pipe(
            image, prompt, latents=latents, num_inference_steps=args.steps, output_type="latent"
        ).frames

    base = run("examples/cat.png", "the camera zooms in")
    other_prompt = run("examples/cat.png", "a red circle moves left")
    other_image = run("examples/coffee.png", "the camera zooms in")
    print(f"prompt change: max |delta latents| = {(base - other_prompt).abs().max():.4g}")
    print(f"image change:  max |delta latents| = {(base - other_image).abs().max():.4g}")
    print(f"final latent std = {base.std():.3f}")


if __name__ == "__main__":
    main()
