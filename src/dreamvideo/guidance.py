"""Double-condition classifier-free guidance (docs/method.md; after InstructPix2Pix).

    eps = eps(∅img, ∅txt)
        + s_img · (eps(img, ∅txt) − eps(∅img, ∅txt))
        + s_txt · (eps(img, txt)  − eps(img, ∅txt))

Three modes use the same equation:
- image+text: the three predictions above;
- image: text guidance off (s_txt = 0), two predictions;
- text: the image condition is the null image, so eps(img, ∅txt) = eps(∅img, ∅txt); two predictions.
"""

from __future__ import annotations

import torch

from .limits import GuidanceMode


def double_condition_cfg(
    eps_uncond: torch.Tensor,
    eps_image: torch.Tensor,
    eps_image_text: torch.Tensor,
    image_scale: float,
    text_scale: float,
) -> torch.Tensor:
    """The guidance equation, term for term."""
    return eps_uncond + image_scale * (eps_image - eps_uncond) + text_scale * (eps_image_text - eps_image)


def guidance_conditions(mode: GuidanceMode | str) -> list[tuple[bool, bool]]:
    """The (use_image, use_text) pairs the mode evaluates, in the order `combine_predictions` takes."""
    mode = GuidanceMode(mode)
    if mode is GuidanceMode.IMAGE_TEXT:
        return [(False, False), (True, False), (True, True)]
    if mode is GuidanceMode.IMAGE:
        return [(False, False), (True, False)]
    return [(False, False), (False, True)]


def combine_predictions(
    mode: GuidanceMode | str, predictions: list[torch.Tensor], image_scale: float, text_scale: float
) -> torch.Tensor:
    """Guided noise from the predictions of `guidance_conditions(mode)`."""
    mode = GuidanceMode(mode)
    if mode is GuidanceMode.IMAGE_TEXT:
        uncond, image, image_text = predictions
        return double_condition_cfg(uncond, image, image_text, image_scale, text_scale)
    if mode is GuidanceMode.IMAGE:
        uncond, image = predictions
        return double_condition_cfg(uncond, image, image, image_scale, 0.0)
    uncond, text = predictions
    return double_condition_cfg(uncond, uncond, text, 0.0, text_scale)


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
    from .text import encode_prompts

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
