"""The reference-aware decoder: decodes as the VAE at init, frame-0 residuals reach frame 0 only,
saved in and loaded from a model folder, handed the reference by the pipeline, trained by the
decoder stage (`convert --reference-decoder`
and `info` are tested in test_convert.py)."""

from __future__ import annotations

import json

import pytest
import torch

from dreamvideo import ReferenceAwareDecoder
from dreamvideo.errors import UserError
from dreamvideo.models.patch_autoencoder import PatchAutoencoder
from dreamvideo.pipeline import load_pipeline
from dreamvideo.testing import tiny_dreamvideo_pipeline, tiny_vae
from dreamvideo.training.config import load_config
from dreamvideo.training.trainer import train

from .conftest import gen

FRAMES = 4
# float32 sums in another order (a copied module) differ by ~1e-6: the additions are exactly zero
ATOL = 1e-5

OPTIONS = [
    {},
    {"reference_features": "stem"},
    {"temporal_layers": True},
    {"residual_levels": (0, 4), "cross_attention_levels": (0, 1, 2, 3, 4)},
]


def _inputs(seed: int = 0, videos: int = 2):
    g = gen(seed)
    latents = torch.randn(videos * FRAMES, 4, 8, 8, generator=g)
    reference = torch.rand(videos, 3, 64, 64, generator=g) * 2 - 1
    return latents, reference


def _perturb(module: torch.nn.Module, prefix: str, seed: int = 1) -> None:
    g = gen(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.startswith(prefix):
                param.add_(0.3 * torch.randn(param.shape, generator=g))


def _vae(kind: str):
    """A tiny AutoencoderKL, or a tiny patch code whose residual paths are not zero."""
    if kind == "kl":
        return tiny_vae(seed=3)
    code = PatchAutoencoder(latent_channels=4, block_out_channels=(8, 8, 8, 8))
    _perturb(code, "", seed=4)
    return code.eval()


KINDS = ["kl", "patch"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options", OPTIONS)
def test_a_new_decoder_decodes_exactly_as_its_vae(options, kind):
    vae = _vae(kind)
    decoder = ReferenceAwareDecoder.from_vae(vae, **options).eval()
    latents, reference = _inputs()
    with torch.no_grad():
        plain = vae.decode(latents).sample
        ours = decoder.decode(latents, reference, FRAMES)
    assert ours.shape == plain.shape == (2 * FRAMES, 3, 64, 64)
    torch.testing.assert_close(ours, plain, atol=ATOL, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_frame0_residuals_change_the_first_frame_only_and_follow_the_reference(kind):
    vae = _vae(kind)
    decoder = ReferenceAwareDecoder.from_vae(vae, cross_attention_levels=()).eval()
    _perturb(decoder, "residuals.")
    latents, reference = _inputs()
    with torch.no_grad():
        plain = vae.decode(latents).sample.unflatten(0, (2, FRAMES))
        ours = decoder.decode(latents, reference, FRAMES).unflatten(0, (2, FRAMES))
        other = decoder.decode(latents, -reference, FRAMES).unflatten(0, (2, FRAMES))
    torch.testing.assert_close(ours[:, 1:], plain[:, 1:], atol=ATOL, rtol=0)
    assert (ours[:, 0] - plain[:, 0]).abs().max() > 1e-2
    assert (ours[:, 0] - other[:, 0]).abs().max() > 1e-2  # it is the reference that matters


@pytest.mark.parametrize("kind", KINDS)
def test_cross_attention_and_temporal_layers_reach_every_frame(kind):
    vae = _vae(kind)
    decoder = ReferenceAwareDecoder.from_vae(vae, residual_levels=(), temporal_layers=True).eval()
    _perturb(decoder, "attentions.")
    _perturb(decoder, "temporal.", seed=2)
    latents, reference = _inputs()
    with torch.no_grad():
        plain = vae.decode(latents).sample.unflatten(0, (2, FRAMES))
        ours = decoder.decode(latents, reference, FRAMES).unflatten(0, (2, FRAMES))
    assert all((ours[:, f] - plain[:, f]).abs().max() > 1e-3 for f in range(FRAMES))


def test_the_encoder_copy_is_frozen_and_with_options_carries_the_weights():
    vae = tiny_vae(seed=3)
    decoder = ReferenceAwareDecoder.from_vae(vae, cross_attention_levels=())
    assert not any(p.requires_grad for p in decoder.encoder.parameters())
    _perturb(decoder, "residuals.")
    grown = decoder.with_options(temporal_layers=True, cross_attention_levels=(1,))
    for name, value in decoder.state_dict().items():
        assert torch.equal(grown.state_dict()[name], value), name
    latents, reference = _inputs()
    with torch.no_grad():  # the new additions start at zero
        expected = decoder.decode(latents, reference, FRAMES)
        torch.testing.assert_close(grown.decode(latents, reference, FRAMES), expected, atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"reference_features": "clip"}, "reference_features"),
        ({"residual_levels": (5,)}, "residual_levels"),
        ({"cross_attention_levels": (-1,)}, "cross_attention_levels"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        ReferenceAwareDecoder.from_vae(tiny_vae(), **options)
    with pytest.raises(ValueError, match="through reference_features='stem'"):
        ReferenceAwareDecoder.from_vae(_vae("patch"), reference_features="encoder")


def test_decode_checks_that_frames_and_references_match():
    decoder = ReferenceAwareDecoder.from_vae(tiny_vae())
    latents, reference = _inputs()
    with pytest.raises(ValueError, match="do not split"):
        decoder.decode(latents[:-1], reference, FRAMES)
    with pytest.raises(ValueError, match="references"):
        decoder.decode(latents, reference[:1], FRAMES)


def _video(pipe, photo, **kwargs):
    return pipe(
        photo, "a cat", num_inference_steps=2, num_frames=FRAMES, generator=gen(0), output_type="pt", **kwargs
    ).frames


def test_a_folder_saves_and_loads_its_decoder_and_one_without_samples_as_before(tmp_path, photo):
    pipe = tiny_dreamvideo_pipeline("bert", seed=1, randomize_branch=True, default_num_frames=FRAMES)
    plain_video = _video(pipe, photo)
    pipe.save_pretrained(tmp_path / "plain")
    index = json.loads((tmp_path / "plain" / "model_index.json").read_text())
    assert index.get("reference_decoder", [None, None]) == [None, None]
    reloaded = load_pipeline(tmp_path / "plain")
    reloaded.set_progress_bar_config(disable=True)
    assert reloaded.reference_decoder is None
    torch.testing.assert_close(_video(reloaded, photo), plain_video, atol=0, rtol=0)

    decoder = ReferenceAwareDecoder.from_vae(pipe.vae)
    pipe.register_modules(reference_decoder=decoder)
    torch.testing.assert_close(_video(pipe, photo), plain_video, atol=ATOL, rtol=0)  # zero-init
    _perturb(decoder, "residuals.")
    changed = _video(pipe, photo)
    assert (changed[:, 0] - plain_video[:, 0]).abs().max() > 1e-3  # the pipeline hands it the image
    pipe.save_pretrained(tmp_path / "with")
    index = json.loads((tmp_path / "with" / "model_index.json").read_text())
    assert index["reference_decoder"] == ["dreamvideo.models.reference_decoder", "ReferenceAwareDecoder"]
    loaded = load_pipeline(tmp_path / "with")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.reference_decoder, ReferenceAwareDecoder)
    torch.testing.assert_close(_video(loaded, photo), changed, atol=0, rtol=0)
    # segments: each later segment is decoded with its own first frame as the reference
    two = loaded(photo, "a cat", num_inference_steps=2, num_frames=FRAMES, num_segments=2, generator=gen(0))
    assert two.frames.shape[1] == 2 * FRAMES - 1


DECODER_STAGE = """
stage = "decoder"
output_dir = "{out}"
checkpoint_every = 5
log_every = 1
[init]
dreamvideo = "{pipeline}"
[data]
size = 64
num_frames = 4
num_clips = 4
[model]
residual_levels = [1, 4]
cross_attention_levels = [1]
temporal_layers = true
[optim]
steps = 6
batch_size = 2
lr = 2e-3
warmup_steps = 0
lr_schedule = "constant"
ema_decay = 0.5
"""


def test_the_decoder_stage_trains_and_exports_the_pipeline_with_its_decoder(model_dir, tmp_path, photo):
    config = tmp_path / "decoder.toml"
    config.write_text(DECODER_STAGE.format(out=tmp_path / "run", pipeline=model_dir))
    summary = train(load_config(config))
    losses = [float(line.split(",")[1]) for line in (tmp_path / "run" / "loss.csv").read_text().split()]
    assert summary["step"] == 6 and all(map(torch.isfinite, torch.tensor(losses)))
    exported = load_pipeline(tmp_path / "run" / "pipeline")
    source = load_pipeline(model_dir)
    decoder = exported.reference_decoder
    assert isinstance(decoder, ReferenceAwareDecoder) and decoder.config.temporal_layers
    assert list(decoder.config.residual_levels) == [1, 4]
    for name, value in source.vae.encoder.state_dict().items():  # the encoder copy stays frozen
        assert torch.equal(decoder.encoder.state_dict()[name], value), name
    for part in ("unet", "retention_branch", "vae"):  # the rest is the pipeline it came from
        for name, value in getattr(source, part).state_dict().items():
            assert torch.equal(getattr(exported, part).state_dict()[name], value), (part, name)
    assert any(p.abs().max() > 0 for p in decoder.residuals.parameters())  # the additions trained


def test_decoder_stage_config_errors(tmp_path, model_dir):
    path = tmp_path / "bad.toml"
    text = DECODER_STAGE.format(out=tmp_path / "x", pipeline=model_dir)
    path.write_text(text.replace(f'[init]\ndreamvideo = "{model_dir}"\n', ""))
    with pytest.raises(UserError, match="needs \\[init\\] dreamvideo"):
        train(load_config(path))
    path.write_text(text.replace("temporal_layers = true", 'reference_features = "clip"'))
    with pytest.raises(UserError, match="reference_features"):
        train(load_config(path))
    path.write_text(text + "[stage_options]\nlatent_noise = -1\n")
    with pytest.raises(UserError, match="latent_noise"):
        train(load_config(path))
    path.write_text(text + "[stage_options]\nfirst_frame_weight = 0\n")
    with pytest.raises(UserError, match="first_frame_weight"):
        train(load_config(path))
    path.write_text(text + "[stage_options]\nnoise = 1\n")
    with pytest.raises(UserError, match="unknown key"):
        load_config(path)


def test_first_frame_weight_weights_the_first_frame_of_each_clip(model_dir, tmp_path):
    """Weight 1 is the plain mean over frames; weight w counts each clip's first frame w times."""
    from dreamvideo.metrics import ssim
    from dreamvideo.training.stages import STAGES

    def stage_with(weight: float):
        path = tmp_path / f"w{weight}.toml"
        text = DECODER_STAGE.format(out=tmp_path / "x", pipeline=model_dir)
        path.write_text(text + f"[stage_options]\nfirst_frame_weight = {weight}\nlatent_noise = 0.0\n")
        return STAGES["decoder"](load_config(path), torch.device("cpu"))

    plain, weighted = stage_with(1.0), stage_with(3.0)
    weighted.module.load_state_dict(plain.module.state_dict())
    batch = plain.make_batch([0, 1])
    with torch.no_grad():
        frames = batch["frames"]
        flat = frames.flatten(0, 1)
        latents = plain.vae.encode(flat).latent_dist.mean
        recon = plain.module(latents, frames[:, 0], FRAMES)
        per_frame = (recon - flat).abs().mean(dim=(1, 2, 3)) + 0.5 * (
            1 - ssim((recon.clamp(-1, 1) + 1) / 2, (flat + 1) / 2, reduction="none")
        )
        weights = torch.tensor([3.0, 1, 1, 1]).repeat(2)
        expected = (per_frame * weights).sum() / weights.sum()
        torch.testing.assert_close(plain.loss(plain.module, batch, gen(0)), per_frame.mean())
        torch.testing.assert_close(weighted.loss(weighted.module, batch, gen(0)), expected)


def test_generate_with_segments_decodes_through_a_folders_decoder(tmp_path, capsys, photo):
    """`dreamvideo generate --segments` on a folder with a reference-aware decoder: the output is
    the pipeline's, and it differs from the same folder without the decoder."""
    from .conftest import run

    pipe = tiny_dreamvideo_pipeline("bert", seed=1, randomize_branch=True, default_num_frames=FRAMES)
    pipe.save_pretrained(tmp_path / "plain")
    decoder = ReferenceAwareDecoder.from_vae(pipe.vae)
    _perturb(decoder, "residuals.")
    pipe.register_modules(reference_decoder=decoder)
    pipe.save_pretrained(tmp_path / "with")
    videos = {}
    for name in ("plain", "with"):
        out = tmp_path / f"{name}-frames"
        args = ["generate", photo, "-p", "a cat", "-o", out, "--model", tmp_path / name]
        code, _, err = run(
            capsys, *args, "--steps", "2", "--frames", FRAMES, "--segments", "2", "--seed", "3"
        )
        assert code == 0, err
        videos[name] = sorted(out.glob("*.png"))
    assert len(videos["with"]) == len(videos["plain"]) == 2 * FRAMES - 1
    assert videos["with"][0].read_bytes() != videos["plain"][0].read_bytes()


def test_text_mode_decodes_without_the_image(photo):
    """`guidance_mode='text'` is the base text-to-video behaviour (the null image): the
    reference-aware decoder must not paste the image back into the first frame."""
    pipe = tiny_dreamvideo_pipeline("bert", seed=1, randomize_branch=True, default_num_frames=FRAMES)
    plain = _video(pipe, photo, guidance_mode="text")
    decoder = ReferenceAwareDecoder.from_vae(pipe.vae)
    _perturb(decoder, "residuals.")
    pipe.register_modules(reference_decoder=decoder)
    torch.testing.assert_close(_video(pipe, photo, guidance_mode="text"), plain, atol=0, rtol=0)
    assert (_video(pipe, photo)[:, 0] - plain[:, 0]).abs().max() > 1e-3  # image+text: it does
