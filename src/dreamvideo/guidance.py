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


def prediction_for_sample(
    prediction_type: str,
    alphas_cumprod: torch.Tensor,
    sample: torch.Tensor,
    timestep: torch.Tensor | int,
    original: torch.Tensor,
) -> torch.Tensor:
    """The model output under which a scheduler, at `timestep`, takes `sample` (x_t, the model's
    input: `scale_model_input` of the scheduler's latents) to have come
    from `original` (x_0): x_t = √ᾱ x_0 + √(1-ᾱ) ε, so ε = (x_t - √ᾱ x_0) / √(1-ᾱ) and
    v = √ᾱ ε - √(1-ᾱ) x_0 = (√ᾱ x_t - x_0) / √(1-ᾱ) (Salimans & Ho's v). Replacing a frame's
    prediction by it pins that frame's latents on a deterministic path to `original` (first-frame
    pinning, docs/method.md), the x_0 form of Ho et al. 2022's replacement method."""
    alpha = alphas_cumprod.to(sample.device, torch.float32)[round(float(timestep))]
    a, s = alpha.sqrt(), (1 - alpha).sqrt()
    x_t, x_0 = sample.float(), original.float()
    if prediction_type == "epsilon":
        out = (x_t - a * x_0) / s
    elif prediction_type == "v_prediction":
        out = (a * x_t - x_0) / s
    elif prediction_type == "sample":
        out = x_0
    else:
        raise ValueError(f"unknown prediction type {prediction_type!r}")
    return out.to(sample.dtype)
