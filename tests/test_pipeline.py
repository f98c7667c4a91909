"""DreamVideoPipeline: determinism, schedulers, sizes, segments, outputs, from_t2v, save/load."""

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler
from PIL import Image

from dreamvideo import DreamVideoPipeline, UserError, load_pipeline
from dreamvideo.cli import SCHEDULERS, set_scheduler
from dreamvideo.testing import tiny_t2v_pipeline

from .conftest import gen

FAST = dict(num_frames=3, num_inference_steps=3)


def test_same_seed_same_frames_different_seed_different(pipe, photo):
    a = pipe(photo, "a ball moves left", generator=gen(0), **FAST).frames
    b = pipe(photo, "a ball moves left", generator=gen(0), **FAST).frames
    c = pipe(photo, "a ball moves left", generator=gen(1), **FAST).frames
    assert a.shape == (1, 3, 64, 64, 3) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_different_prompts_give_different_videos(pipe, photo):
    a = pipe(photo, "a ball moves left", generator=gen(0), **FAST).frames
    b = pipe(photo, "the camera zooms in", generator=gen(0), **FAST).frames
    assert np.abs(a - b).max() > 1e-4


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_offered_scheduler_samples(pipe, photo, name):
    """Each --scheduler choice runs (PNDM and UniPC take no generator in `step`), and pins the
    first frame to the reference's latents (Euler's σ-scaled latents included): within DDIM's and
    PNDM's last step, which ends at ᾱ < 1."""
    original = pipe.scheduler
    anchor = pipe.first_frame_latents(pipe.prepare_image(photo, 64, 64))
    try:
        set_scheduler(pipe, name)
        frames = pipe(photo, "a ball moves left", generator=gen(0), **FAST).frames
        again = pipe(photo, "a ball moves left", generator=gen(0), **FAST).frames
        latents = [
            pipe(photo, "a ball", generator=gen(0), output_type="latent", pin_first_frame=pin,
                 num_frames=3, num_inference_steps=6).frames[:, :, :1]
            for pin in (True, False)
        ]  # fmt: skip
    finally:
        pipe.scheduler = original
    assert frames.shape == (1, 3, 64, 64, 3) and np.isfinite(frames).all()
    np.testing.assert_array_equal(frames, again)
    pinned, free = ((x - anchor).abs().mean().item() for x in latents)
    assert pinned < 0.03 < free


@pytest.mark.parametrize("name", ["euler-a", "pndm"])
def test_schedulers_without_x_prediction_refuse_such_a_model(pipe, name):
    original = pipe.scheduler
    try:
        pipe.scheduler = DDIMScheduler.from_config(original.config, prediction_type="sample")
        with pytest.raises(UserError, match="cannot sample this model"):
            set_scheduler(pipe, name)
    finally:
        pipe.scheduler = original


@pytest.mark.parametrize(("height", "width"), [(48, 80), (128, 128)])
def test_non_square_and_larger_sizes(pipe, photo, height, width):
    frames = pipe(photo, "a ball", height=height, width=width, generator=gen(0), **FAST).frames
    assert frames.shape == (1, 3, height, width, 3)


def test_segments_join_without_repeated_frame(pipe, photo):
    one = pipe(photo, "a ball moves left", num_frames=4, num_inference_steps=2, generator=gen(0)).frames
    three = pipe(
        photo, "a ball moves left", num_frames=4, num_inference_steps=2, num_segments=3, generator=gen(0)
    ).frames
    assert three.shape[1] == 4 + 2 * 3
    np.testing.assert_allclose(three[:, :4], one, atol=1e-6)  # first segment unchanged


def test_output_types_and_batches(pipe, photo):
    pil = pipe(photo, "a ball", output_type="pil", generator=gen(0), **FAST).frames
    assert len(pil) == 1 and len(pil[0]) == 3 and pil[0][0].size == (64, 64)
    pt = pipe(photo, "a ball", output_type="pt", generator=gen(0), **FAST).frames
    assert pt.shape == (1, 3, 3, 64, 64)
    np.testing.assert_allclose(
        pt.permute(0, 1, 3, 4, 2).numpy(), pipe(photo, "a ball", generator=gen(0), **FAST).frames, atol=1e-6
    )
    batch = pipe(photo, ["a ball moves left", "a ball moves right"], generator=gen(0), **FAST).frames
    assert batch.shape[0] == 2
    assert pipe(photo, "a ball", return_dict=False, generator=gen(0), **FAST)[0].shape == (1, 3, 64, 64, 3)


def test_deprecated_callback_still_sees_every_step(pipe, photo):
    calls = []
    with pytest.warns(FutureWarning, match="callback_on_step_end"):
        pipe(
            photo, "a ball", callback=lambda i, t, x: calls.append((i, t, x.shape)), generator=gen(0), **FAST
        )
    assert [c[0] for c in calls] == [0, 1, 2] and calls[0][2] == (1, 4, 3, 8, 8)


def test_image_inputs_pil_tensor_and_pad(pipe, photo):
    image = Image.open(photo)
    a = pipe(image, "a ball", generator=gen(0), **FAST).frames
    b = pipe(photo, "a ball", generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(a, b)
    padded = pipe.prepare_image(photo, 64, 64, resize_mode="pad")
    assert padded.shape == (1, 3, 64, 64) and (padded[..., :, :2] == -1).all()  # letterbox columns
    tensor = pipe(torch.zeros(3, 64, 64), "a ball", generator=gen(0), **FAST).frames
    assert tensor.shape == (1, 3, 64, 64, 3)


def test_empty_prompt_is_image_only(pipe, photo):
    empty = pipe(photo, "", generator=gen(0), **FAST).frames
    image_only = pipe(photo, "", guidance_mode="image", generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(empty, image_only)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(num_inference_steps=0), "steps"),
        (dict(num_inference_steps=-3), "steps"),
        (dict(num_inference_steps=5000), "steps"),
        (dict(num_frames=0), "frames"),
        (dict(num_frames=-1), "frames"),
        (dict(height=50), "multiple of 16"),
        (dict(width=0), "width"),
        (dict(height=100000), "height"),
        (dict(image_guidance_scale=float("nan")), "image guidance"),
        (dict(image_guidance_scale=-1.0), "image guidance"),
        (dict(text_guidance_scale=float("inf")), "text guidance"),
        (dict(num_segments=0), "segments"),
        (dict(num_segments=2, num_frames=1), "segments"),
        (dict(guidance_mode="text", prompt=""), "text-only"),
        (dict(output_type="latent", num_segments=2), "latent"),
        (dict(resize_mode="stretch"), "resize"),
        (dict(strength=0.0), "strength"),
        (dict(strength=1.5), "strength"),
        (dict(strength=float("nan")), "strength"),
    ],
)
def test_bad_sampling_arguments(pipe, photo, kwargs, match):
    kwargs = {"prompt": "a ball", "num_frames": 2, "num_inference_steps": 1, **kwargs}
    with pytest.raises(UserError, match=match):
        pipe(photo, **kwargs)


def test_diverging_sampling_stops_with_a_clear_error(pipe, photo, monkeypatch):
    """Non-finite latents would decode to a black video: the pipeline stops and says so."""
    step = pipe.scheduler.step

    def overflowing(*args, **kwargs):
        out = step(*args, **kwargs)
        out.prev_sample.fill_(float("inf"))
        return out

    monkeypatch.setattr(pipe.scheduler, "step", overflowing)
    with pytest.raises(UserError, match="sampling diverged at step 1"):
        pipe(photo, "a ball", generator=gen(0), **FAST)


def test_zero_scales_are_allowed(pipe, photo):
    frames = pipe(
        photo, "a ball", image_guidance_scale=0.0, text_guidance_scale=0.0, generator=gen(0), **FAST
    )
    assert np.isfinite(frames.frames).all()


def test_from_t2v_equals_base_model(t2v):
    """Text-only DreamVideo right after `from_t2v` reproduces the base T2V pipeline."""
    t2v.set_progress_bar_config(disable=True)
    pipe = DreamVideoPipeline.from_t2v(t2v)
    pipe.set_progress_bar_config(disable=True)
    base = t2v(
        "a ball moves left",
        num_frames=3,
        num_inference_steps=3,
        guidance_scale=6.0,
        height=64,
        width=64,
        generator=gen(5),
        output_type="np",
    ).frames
    ours = pipe(
        torch.zeros(1, 3, 64, 64),
        "a ball moves left",
        guidance_mode="text",
        text_guidance_scale=6.0,
        num_frames=3,
        num_inference_steps=3,
        generator=gen(5),
    ).frames
    np.testing.assert_allclose(ours, base, atol=1e-5)
    # With the image too, an untrained branch adds nothing: image+text at s_img=1 equals text CFG
    # on the image condition, which at init is again the base model.
    full = pipe(
        torch.rand(1, 3, 64, 64),
        "a ball moves left",
        image_guidance_scale=1.0,
        text_guidance_scale=6.0,
        num_frames=3,
        num_inference_steps=3,
        generator=gen(5),
    ).frames
    np.testing.assert_allclose(full, base, atol=1e-5)


@pytest.mark.parametrize("encoder", ["clip", "bert"])
def test_from_t2v_folder_save_load_round_trip(tmp_path, photo, encoder):
    t2v_dir, dv_dir = tmp_path / "t2v", tmp_path / "dreamvideo"
    tiny_t2v_pipeline(encoder, seed=2).save_pretrained(t2v_dir)
    pipe = DreamVideoPipeline.from_t2v(t2v_dir)
    with torch.no_grad():
        for p in pipe.retention_branch.residual_convs.parameters():
            p.normal_()
    pipe.set_progress_bar_config(disable=True)
    pipe.save_pretrained(dv_dir)
    loaded = load_pipeline(dv_dir)
    loaded.set_progress_bar_config(disable=True)
    for name in ("unet", "retention_branch", "vae", "text_encoder"):
        a, b = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    a = pipe(photo, "a ball moves left", generator=gen(0), **FAST).frames
    b = loaded(photo, "a ball moves left", generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(a, b)
    assert loaded.tokenizer.model_max_length == pipe.tokenizer.model_max_length


def test_minilm_folder_from_the_environment(tmp_path, monkeypatch):
    """$DREAMVIDEO_MINILM_DIR replaces the package's folder (machines without the package);
    a folder without weights is a one-line user error."""
    from dreamvideo.text import MINILM_DIR_VARIABLE, encode_prompts, load_minilm, minilm_path

    packaged = minilm_path()
    reference = encode_prompts(*load_minilm(), ["a red ball moves left"])
    copy = tmp_path / "minilm"
    copy.mkdir()
    for item in packaged.iterdir():
        if item.is_file():
            (copy / item.name).symlink_to(item)
    monkeypatch.setenv(MINILM_DIR_VARIABLE, str(copy))
    assert minilm_path() == copy
    torch.testing.assert_close(encode_prompts(*load_minilm(), ["a red ball moves left"]), reference)
    monkeypatch.setenv(MINILM_DIR_VARIABLE, str(tmp_path))
    with pytest.raises(UserError, match=r"no model\.safetensors"):
        minilm_path()


def test_packaged_minilm_skips_random_init_and_loads_every_tensor():
    """Built without weight init (start-up): parameters equal the package's file, buffers equal
    those of a normally built model, nothing left uninitialised."""
    from safetensors.torch import load_file
    from transformers import BertConfig

    from dreamvideo.text import PackagedMiniLM, minilm_path

    model = PackagedMiniLM.from_pretrained()
    weights = load_file(minilm_path() / "model.safetensors")
    plain = PackagedMiniLM(BertConfig.from_pretrained(minilm_path()), add_pooling_layer=False)
    for name, tensor in model.state_dict().items():
        expected = weights[name] if name in weights else plain.state_dict()[name]
        assert torch.equal(tensor, expected), name
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, dict(plain.named_buffers())[name]), name
    assert not model.training


def test_a_minilm_copy_trimmed_to_a_vocabulary_encodes_its_words_alike(tmp_path, monkeypatch):
    """scripts/pack_minilm.py's format: only the rows of the words kept, and their ids."""
    from safetensors.torch import load_file, save_file

    from dreamvideo.text import (
        MINILM_DIR_VARIABLE,
        MINILM_FILES,
        TRIMMED_WORD_IDS,
        encode_prompts,
        load_minilm,
        minilm_path,
    )

    prompts = ["", "a red square moves left", "the camera zooms in"]
    tokenizer, encoder = load_minilm()
    reference = encode_prompts(tokenizer, encoder, prompts)
    ids = torch.unique(tokenizer(prompts, padding="max_length", return_tensors="pt")["input_ids"])
    packaged = minilm_path()
    weights = load_file(packaged / "model.safetensors")
    key = "embeddings.word_embeddings.weight"
    weights[key], weights[TRIMMED_WORD_IDS] = weights[key][ids].contiguous(), ids.to(torch.int32)
    copy = tmp_path / "trimmed"
    copy.mkdir()
    save_file(weights, str(copy / "model.safetensors"))
    for name in MINILM_FILES:
        (copy / name).symlink_to(packaged / name)
    monkeypatch.setenv(MINILM_DIR_VARIABLE, str(copy))
    torch.testing.assert_close(encode_prompts(*load_minilm(), prompts), reference)


def test_strength_starts_later_from_the_noised_reference(pipe, photo):
    """strength < 1 (diffusers' img2img `get_timesteps`): the schedule's first steps are skipped
    and sampling starts from the reference, repeated over frames, noised to the first remaining
    timestep: x = sqrt(a_t) * still + sqrt(1 - a_t) * noise. Strength 1 is the plain sampler."""
    reference = pipe.prepare_image(photo, 32, 32)
    noise = torch.randn(1, 4, 3, 4, 4, generator=gen(3))
    full, x_full = pipe.prepare_start(reference, 3, 10, 1.0, None, noise)
    assert torch.equal(full, pipe.scheduler.timesteps) and torch.equal(x_full, noise)
    timesteps, x = pipe.prepare_start(reference, 3, 10, 0.7, None, noise)
    assert torch.equal(timesteps, full[3:])
    still = pipe.vae.encode(reference).latent_dist.mean * pipe.vae.config.scaling_factor
    alpha = pipe.scheduler.alphas_cumprod[int(timesteps[0])]
    expected = alpha.sqrt() * still.unsqueeze(2) + (1 - alpha).sqrt() * noise
    torch.testing.assert_close(x, expected)

    steps = []
    pipe(photo, "a ball", num_frames=3, num_inference_steps=10, strength=0.7, height=32, width=32,
         generator=gen(0), callback_on_step_end=lambda p, i, t, k: steps.append(int(t)) or {})  # fmt: skip
    assert steps == [int(t) for t in full[3:]] and pipe.num_timesteps == 7
    plain = pipe(photo, "a ball", generator=gen(0), **FAST).frames
    np.testing.assert_array_equal(plain, pipe(photo, "a ball", generator=gen(0), strength=1.0, **FAST).frames)
