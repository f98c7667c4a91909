"""The naive sampler that `DreamVideoPipeline` must agree with, and that `dreamvideo bench`
times it against: one denoiser forward per guidance condition per step, the prompt encoded
again every step, the image features recomputed. Kept apart from `guidance.py`, which holds the
equation the pipeline uses."""

from __future__ import annotations

import torch

from ..guidance import combine_predictions, guidance_conditions
from ..limits import GuidanceMode


def reference_guided_noise(
    denoiser: torch.nn.Module,
    latents: torch.Tensor,
    timestep: torch.Tensor | int,
    text_embeds: torch.Tensor,
    null_text_embeds: torch.Tensor,
    image: torch.Tensor,
    null_image: torch.Tensor,
    mode: GuidanceMode | str,
    image_scale: float,
    text_scale: float,
) -> torch.Tensor:
    """Plain path for tests and benchmarks: one forward per condition, image features recomputed."""
    predictions = []
    for use_image, use_text in guidance_conditions(mode):
        predictions.append(
            denoiser(
                latents,
                timestep,
                text_embeds if use_text else null_text_embeds,
                image=image if use_image else null_image,
            )
        )
    return combine_predictions(mode, predictions, image_scale, text_scale)


@torch.no_grad()
def reference_sample(
    pipe,
    image: torch.Tensor,
    prompt: str,
    latents: torch.Tensor,
    num_inference_steps: int,
    mode: GuidanceMode | str,
    image_scale: float,
    text_scale: float,
    scheduler_class: type | None = None,
) -> torch.Tensor:
    """The plain sampler `DreamVideoPipeline` must agree with: every step encodes the prompt again
    and runs one forward per condition. Returns the final latents. `scheduler_class`: another
    diffusers scheduler on the pipeline's noise schedule (default: the pipeline's own class)."""
    from ..text import encode_prompts

    scheduler = (scheduler_class or type(pipe.scheduler)).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps)
    x = latents * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        text = encode_prompts(pipe.tokenizer, pipe.text_encoder, [prompt])
        null = encode_prompts(pipe.tokenizer, pipe.text_encoder, [""])
        eps = reference_guided_noise(
            pipe.denoiser,
            scheduler.scale_model_input(x, t),
            t,
            text,
            null,
            image,
            torch.zeros_like(image),
            mode,
            image_scale,
            text_scale,
        )
        x = scheduler.step(eps, t, x).prev_sample
    return x
