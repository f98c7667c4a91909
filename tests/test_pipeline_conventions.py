"""diffusers' pipeline conventions: batches, embeddings, step-end callbacks, eta, attention
kwargs, StableDiffusionMixin's switches, and the `guidance_scale` alias."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, EulerDiscreteScheduler
from diffusers.models.attention_processor import AttnProcessor2_0

from dreamvideo import UserError
from dreamvideo.testing import tiny_dreamvideo_pipeline

from .conftest import gen

FAST = dict(num_frames=3, num_inference_steps=3)
PROMPTS = ["a ball moves left", "the camera zooms in"]


def test_batch_of_prompts_equals_single_runs(pipe, photo):
    batch = pipe(photo, PROMPTS, generator=[gen(0), gen(1)], **FAST).frames
    singles = [pipe(photo, p, generator=gen(s), **FAST).frames[0] for s, p in enumerate(PROMPTS)]
    np.testing.assert_allclose(batch, np.stack(singles), atol=1e-5)


def test_videos_per_prompt_repeat_each_pair_with_own_noise(pipe, photo):
    frames = pipe(
        photo, PROMPTS, num_videos_per_prompt=2, generator=[gen(s) for s in range(4)], **FAST
    ).frames
    assert frames.shape[0] == 4
    assert np.abs(frames[0] - frames[1]).max() > 1e-3  # same pair, other noise
    second = pipe(photo, PROMPTS[1], generator=gen(2), **FAST).frames[0]
    np.testing.assert_allclose(frames[2], second, atol=1e-5)  # order: pair by pair


def test_embeddings_equal_prompts(pipe, photo):
    embeds, negative = pipe.encode_prompt(PROMPTS[0], negative_prompt="blurry")
    a = pipe(photo, PROMPTS[0], negative_prompt="blurry", generator=gen(0), **FAST).frames
    b = pipe(photo, prompt_embeds=embeds, negative_prompt_embeds=negative, generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(a, b)
    c = pipe(photo, prompt_embeds=embeds, generator=gen(0), **FAST).frames  # negative: the empty prompt
    np.testing.assert_allclose(c, pipe(photo, PROMPTS[0], generator=gen(0), **FAST).frames, atol=1e-6)


def test_encode_prompt_shapes_and_refusals(pipe):
    embeds, negative = pipe.encode_prompt(PROMPTS, num_videos_per_prompt=3)
    assert embeds.shape[0] == 6 and negative.shape == embeds.shape
    only, none = pipe.encode_prompt(PROMPTS, do_classifier_free_guidance=False)
    assert none is None and only.shape[0] == 2
    with pytest.raises(UserError, match="negative_prompt_embeds have shape"):
        pipe.encode_prompt(None, prompt_embeds=embeds[:2], negative_prompt_embeds=negative[:1])


def test_step_end_callback_sees_steps_edits_latents_and_interrupts(pipe, photo):
    seen = []

    def record(p, step, t, tensors):
        seen.append((step, int(t), sorted(tensors)))
        return tensors

    pipe(photo, "a ball", callback_on_step_end=record, generator=gen(0), **FAST)
    assert [s for s, _, _ in seen] == [0, 1, 2] and seen[0][2] == ["latents"]
    assert pipe.num_timesteps == 3

    def zero_latents(p, step, t, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])}

    zeroed = pipe(
        photo, "a ball", callback_on_step_end=zero_latents, output_type="latent", generator=gen(0), **FAST
    )
    assert zeroed.frames.abs().max() == 0

    def stop_after_first(p, step, t, tensors):
        p._interrupt = True
        return {}

    calls = []
    stopped = pipe(
        photo,
        "a ball",
        callback_on_step_end=lambda *a: (calls.append(a[1]), stop_after_first(*a))[1],
        output_type="latent",
        generator=gen(0),
        **FAST,
    ).frames
    full = pipe(photo, "a ball", output_type="latent", generator=gen(0), **FAST).frames
    assert calls == [0] and not torch.equal(stopped, full)


def test_step_end_callback_may_replace_embeddings(pipe, photo):
    swapped, _ = pipe.encode_prompt(PROMPTS[1])

    def swap(p, step, t, tensors):
        return {"prompt_embeds": swapped} if step == 0 else {}

    a = pipe(
        photo,
        PROMPTS[0],
        callback_on_step_end=swap,
        callback_on_step_end_tensor_inputs=["prompt_embeds"],
        generator=gen(0),
        **FAST,
    ).frames
    assert np.abs(a - pipe(photo, PROMPTS[0], generator=gen(0), **FAST).frames).max() > 1e-4


def test_unknown_tensor_input_and_argument_refused(pipe, photo):
    with pytest.raises(UserError, match="callback_on_step_end_tensor_inputs"):
        pipe(
            photo, "a ball", callback_on_step_end=lambda *a: {}, callback_on_step_end_tensor_inputs=["noise"]
        )
    with pytest.raises(TypeError, match="unexpected keyword"):
        pipe(photo, "a ball", num_steps=3)


def test_guidance_scale_is_the_text_scale(pipe, photo):
    a = pipe(photo, "a ball", guidance_scale=3.0, generator=gen(0), **FAST).frames
    b = pipe(photo, "a ball", text_guidance_scale=3.0, generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(a, b)
    with pytest.raises(UserError, match="other name"):
        pipe(photo, "a ball", guidance_scale=3.0, text_guidance_scale=4.0, **FAST)


def test_a_callback_changes_the_guidance_scales_between_steps(pipe, photo):
    """diffusers' test_callback_cfg: the scales are properties read every step, so a step-end
    callback that raises `pipe._guidance_scale` changes the rest of the sampling."""

    def raise_scales(p, step, t, tensors):
        p._guidance_scale += 1.0
        p._image_guidance_scale += 0.5
        return tensors

    changed = pipe(photo, "a ball", text_guidance_scale=2.0, image_guidance_scale=1.0,
                   callback_on_step_end=raise_scales, generator=gen(0), **FAST).frames  # fmt: skip
    assert pipe.guidance_scale == 2.0 + FAST["num_inference_steps"]
    assert pipe.image_guidance_scale == 1.0 + 0.5 * FAST["num_inference_steps"]
    fixed = pipe(photo, "a ball", text_guidance_scale=2.0, image_guidance_scale=1.0, generator=gen(0), **FAST)
    assert pipe.guidance_scale == 2.0
    assert np.abs(changed - fixed.frames).max() > 1e-4


def test_pipeline_builds_with_only_its_text_components(pipe):
    """diffusers' test_encode_prompt_works_in_isolation: the other components may be None."""
    from dreamvideo.pipeline import DreamVideoPipeline

    text_only = DreamVideoPipeline(
        vae=None, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=None,
        retention_branch=None, scheduler=None,
    )  # fmt: skip
    alone = text_only.encode_prompt(PROMPTS, negative_prompt="blurry")
    full = pipe.encode_prompt(PROMPTS, negative_prompt="blurry")
    for a, b in zip(alone, full, strict=True):
        torch.testing.assert_close(a, b)


def test_eta_reaches_ddim_only(pipe, photo):
    assert isinstance(pipe.scheduler, DDIMScheduler)
    a = pipe(photo, "a ball", eta=1.0, generator=gen(0), **FAST).frames
    b = pipe(photo, "a ball", eta=1.0, generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - pipe(photo, "a ball", generator=gen(0), **FAST).frames).max() > 1e-4
    euler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    original, pipe.scheduler = pipe.scheduler, euler
    try:
        assert "eta" not in pipe.prepare_extra_step_kwargs(gen(0), 1.0)
    finally:
        pipe.scheduler = original


@pytest.fixture
def fresh_pipe():
    """A pipeline of its own, for tests that change its processors or switches."""
    return tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=3)


class _Recorder(AttnProcessor2_0):
    def __init__(self, log: list):
        super().__init__()
        self.log = log

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, tag=None
    ):
        self.log.append(tag)
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def test_cross_attention_kwargs_reach_unet_and_branch(fresh_pipe, photo):
    unet_log, branch_log = [], []
    fresh_pipe.unet.set_attn_processor(_Recorder(unet_log))
    fresh_pipe.retention_branch.set_attn_processor(_Recorder(branch_log))
    fresh_pipe(photo, "a ball", cross_attention_kwargs={"tag": "x"}, generator=gen(0), **FAST)
    assert unet_log and set(unet_log) == {"x"}
    assert branch_log and set(branch_log) == {"x"}


def test_freeu_and_fused_projections(fresh_pipe, photo):
    base = fresh_pipe(photo, "a ball", generator=gen(0), **FAST).frames
    fresh_pipe.enable_freeu(s1=0.6, s2=0.4, b1=1.4, b2=1.6)
    freeu = fresh_pipe(photo, "a ball", generator=gen(0), **FAST).frames
    fresh_pipe.disable_freeu()
    assert np.abs(freeu - base).max() > 1e-4
    np.testing.assert_allclose(fresh_pipe(photo, "a ball", generator=gen(0), **FAST).frames, base, atol=1e-6)
    fresh_pipe.fuse_qkv_projections()
    fused = fresh_pipe(photo, "a ball", generator=gen(0), **FAST).frames
    np.testing.assert_allclose(fused, base, atol=1e-4)
    fresh_pipe.unfuse_qkv_projections()
    np.testing.assert_allclose(fresh_pipe(photo, "a ball", generator=gen(0), **FAST).frames, base, atol=1e-4)


def test_default_steps_come_from_the_model(fresh_pipe, photo):
    assert fresh_pipe.default_num_inference_steps == 25  # a folder without the key: diffusers' 25
    fresh_pipe.register_to_config(default_num_inference_steps=2)
    seen = []
    fresh_pipe(photo, "a ball", num_frames=3, callback_on_step_end=lambda p, i, t, x: seen.append(i) or x)
    assert seen == [0, 1] and fresh_pipe.num_timesteps == 2
    seen.clear()
    fresh_pipe(
        photo,
        "a ball",
        num_frames=3,
        num_inference_steps=3,
        callback_on_step_end=lambda p, i, t, x: seen.append(i) or x,
    )
    assert seen == [0, 1, 2]


def test_precomputed_embeddings_are_enough_without_a_text_stack(pipe, photo):
    """As in every diffusers pipeline: prompt_embeds and negative_prompt_embeds sample a video
    with no tokenizer and no text encoder loaded (the null text is the negative embedding)."""
    from dreamvideo import DreamVideoPipeline

    embeds, negative = pipe.encode_prompt(PROMPTS[0], negative_prompt="blurry")
    textless = DreamVideoPipeline(**{**pipe.components, "tokenizer": None, "text_encoder": None})
    given = {"prompt_embeds": embeds, "negative_prompt_embeds": negative}
    a = textless(photo, **given, generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(a, pipe(photo, **given, generator=gen(0), **FAST).frames)
