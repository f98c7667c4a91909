"""Double-condition classifier-free guidance: the equation, the modes, batched == reference;
first-frame pinning."""

import pytest
import torch
from diffusers import DDIMScheduler

from dreamvideo.benchmarks.naive import reference_sample
from dreamvideo.guidance import (
    GuidanceMode,
    combine_predictions,
    double_condition_cfg,
    guidance_conditions,
    prediction_for_sample,
)

from .conftest import gen


def test_equation_term_by_term():
    g = torch.Generator().manual_seed(0)
    u, i, f = (torch.randn(3, 5, generator=g) for _ in range(3))
    got = double_condition_cfg(u, i, f, 2.5, 7.0)
    assert torch.allclose(got, u + 2.5 * (i - u) + 7.0 * (f - i))
    # unit scales give the fully conditioned prediction; zero scales the unconditional one
    assert torch.allclose(double_condition_cfg(u, i, f, 1.0, 1.0), f)
    assert torch.equal(double_condition_cfg(u, i, f, 0.0, 0.0), u)


def test_modes_select_the_right_terms():
    u, img, txt = torch.tensor([1.0]), torch.tensor([3.0]), torch.tensor([10.0])
    assert guidance_conditions("image+text") == [(False, False), (True, False), (True, True)]
    assert guidance_conditions("image") == [(False, False), (True, False)]
    assert guidance_conditions("text") == [(False, False), (False, True)]
    # image-only: u + s_img (img - u); text scale ignored
    assert combine_predictions(GuidanceMode.IMAGE, [u, img], 2.0, 99.0).item() == 1 + 2 * 2
    # text-only: u + s_txt (txt - u); image scale ignored
    assert combine_predictions(GuidanceMode.TEXT, [u, txt], 99.0, 3.0).item() == 1 + 3 * 9
    assert combine_predictions("image+text", [u, img, txt], 2.0, 3.0).item() == 1 + 2 * 2 + 3 * 7
    with pytest.raises(ValueError):
        guidance_conditions("video")


@pytest.mark.parametrize("mode", ["image+text", "image", "text"])
def test_batched_sampler_equals_three_forward_reference(pipe, photo, mode):
    latents = torch.randn(1, 4, 3, 8, 8, generator=gen(3))
    image = pipe.prepare_image(photo, 64, 64)
    kwargs = dict(num_frames=3, num_inference_steps=4, image_guidance_scale=2.0, text_guidance_scale=5.0)
    batched = pipe(
        photo, "a ball moves left", guidance_mode=mode, latents=latents, output_type="latent", **kwargs
    )
    reference = reference_sample(pipe, image, "a ball moves left", latents, 4, mode, 2.0, 5.0)
    torch.testing.assert_close(batched.frames, reference, rtol=1e-4, atol=1e-5)


def test_modes_differ_and_image_matters(pipe, photo):
    latents = torch.randn(1, 4, 3, 8, 8, generator=gen(4))

    def run(mode, image=photo):
        return pipe(
            image,
            "a ball moves left",
            guidance_mode=mode,
            latents=latents,
            num_frames=3,
            num_inference_steps=3,
            output_type="latent",
        ).frames

    full, image_only, text_only = run("image+text"), run("image"), run("text")
    assert not torch.allclose(full, image_only) and not torch.allclose(full, text_only)
    # text-only mode never looks at the image
    torch.testing.assert_close(text_only, run("text", image=torch.ones(1, 3, 64, 64)))
    assert not torch.allclose(full, run("image+text", image=torch.ones(1, 3, 64, 64)))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_prediction_for_sample_makes_the_scheduler_predict_the_original(prediction_type):
    """DDIM, handed `prediction_for_sample`'s output, predicts exactly the given x_0 (every
    prediction type), so a pinned frame follows a deterministic path to it."""
    scheduler = DDIMScheduler(prediction_type=prediction_type, beta_schedule="scaled_linear",
                              clip_sample=False)  # fmt: skip
    scheduler.set_timesteps(10)
    original = torch.randn(2, 4, 1, 8, 8, generator=gen(0))
    sample = torch.randn(2, 4, 1, 8, 8, generator=gen(1))
    for t in scheduler.timesteps[[0, 5, 9]]:
        output = prediction_for_sample(prediction_type, scheduler.alphas_cumprod, sample, t, original)
        predicted = scheduler.step(output, t, sample).pred_original_sample
        torch.testing.assert_close(predicted, original, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="prediction type"):
        prediction_for_sample("flow", scheduler.alphas_cumprod, sample, 1, original)


def test_pinned_first_frame_ends_at_the_references_latents(pipe, photo):
    """pin_first_frame: frame 0 of the sampled latents is the reference's own encoding (exactly
    when the schedule ends at ᾱ = 1), the other frames still come from the model; text mode, with
    no image, ignores it; the model's `default_pin_first_frame` is the default."""
    original = pipe.scheduler
    pipe.scheduler = DDIMScheduler.from_config(original.config, set_alpha_to_one=True)
    try:
        kwargs = dict(num_frames=3, num_inference_steps=4, output_type="latent")
        pinned = pipe(photo, "a ball", generator=gen(0), pin_first_frame=True, **kwargs).frames
        free = pipe(photo, "a ball", generator=gen(0), **kwargs).frames
        anchor = pipe.first_frame_latents(pipe.prepare_image(photo, 64, 64))
        torch.testing.assert_close(pinned[:, :, :1], anchor, atol=1e-4, rtol=1e-4)
        assert (free[:, :, :1] - anchor).abs().mean() > 1e-2
        assert (pinned[:, :, 1:] - free[:, :, 1:]).abs().max() > 0
        text = [pipe(photo, "a ball", generator=gen(0), guidance_mode="text", pin_first_frame=pin,
                     **kwargs).frames for pin in (True, False)]  # fmt: skip
        torch.testing.assert_close(text[0], text[1])
        pipe.register_to_config(default_pin_first_frame=True)
        torch.testing.assert_close(pipe(photo, "a ball", generator=gen(0), **kwargs).frames, pinned)
    finally:
        pipe.register_to_config(default_pin_first_frame=False)
        pipe.scheduler = original
