"""The patch code (models.PatchAutoencoder): a fresh one round-trips exactly as its linear code,
it offers the VAE interface the pipeline uses, folders load it by class (and refuse other classes),
and the i2v stage moves a model onto it."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn import functional as F

from dreamvideo import ReferenceAwareDecoder
from dreamvideo.errors import UserError
from dreamvideo.loading import load_vae
from dreamvideo.models.patch_autoencoder import PatchAutoencoder
from dreamvideo.pipeline import load_pipeline
from dreamvideo.testing import tiny_dreamvideo_pipeline, tiny_vae
from dreamvideo.training.config import load_config
from dreamvideo.training.trainer import train

from .conftest import gen
from .test_reference_decoder import DECODER_STAGE

SMALL = {"latent_channels": 4, "block_out_channels": (8, 8, 8, 8)}  # 1/8 scale, as tiny_vae


def _linear_code(latent_channels: int, patch: int = 192):
    """An orthonormal basis (latent × patch) and a mean patch, from a fixed seed."""
    basis = torch.linalg.qr(torch.randn(patch, latent_channels, generator=gen(3))).Q.T
    return basis, 0.1 * torch.randn(patch, generator=gen(4))


def test_a_fresh_code_round_trips_exactly_as_its_linear_code():
    code = PatchAutoencoder(**SMALL).eval()
    basis, mean = _linear_code(4)
    code.set_linear(basis, -basis @ mean, basis.T, mean)
    pixels = torch.rand(2, 3, 64, 64, generator=gen(0)) * 2 - 1
    with torch.no_grad():
        posterior = code.encode(pixels).latent_dist
        patches = F.pixel_unshuffle(pixels, 8).permute(0, 2, 3, 1)  # (N, 8, 8, 192)
        expected = ((patches - mean) @ basis.T).permute(0, 3, 1, 2)
        torch.testing.assert_close(posterior.mean, expected, atol=1e-5, rtol=0)
        assert torch.equal(posterior.mode(), posterior.mean) and not posterior.std.any()
        assert float(posterior.kl().sum()) == 0
        decoded = code.decode(posterior.mean).sample
        projected = (expected.permute(0, 2, 3, 1) @ basis + mean).permute(0, 3, 1, 2)
        torch.testing.assert_close(decoded, F.pixel_shuffle(projected, 8), atol=1e-5, rtol=0)
        assert decoded.shape == pixels.shape and code(pixels).sample.shape == pixels.shape


def test_a_change_of_latent_basis_keeps_the_round_trip_and_the_reference_decoder_follows_it():
    code = PatchAutoencoder(**SMALL).eval()
    with torch.no_grad():
        for p in code.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen(6)))
    pixels = torch.rand(4, 3, 64, 64, generator=gen(0)) * 2 - 1
    matrix, shift = torch.randn(4, 4, generator=gen(7)), 5 * torch.randn(4, generator=gen(8))
    with torch.no_grad():
        latents = code.encode(pixels).latent_dist.mean
        before = code.decode(latents).sample
        code.transform_latents(matrix, shift)
        moved = code.encode(pixels).latent_dist.mean
        expected = torch.einsum("ij,njhw->nihw", matrix, latents) + shift.view(-1, 1, 1)
        torch.testing.assert_close(moved, expected, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(code.decode(moved).sample, before, atol=1e-4, rtol=0)
        decoder = ReferenceAwareDecoder.from_vae(code).eval()  # reads the moved latents too
        torch.testing.assert_close(decoder.decode(moved, pixels[:1], 4), before, atol=1e-4, rtol=0)


def test_the_levels_must_downscale_by_the_patch_size():
    with pytest.raises(ValueError, match="downscale by 4, not 8"):
        PatchAutoencoder(block_out_channels=(8, 8, 8))


def test_load_vae_reads_either_class_and_refuses_any_other(tmp_path):
    PatchAutoencoder(**SMALL).save_pretrained(tmp_path / "patch")
    tiny_vae().save_pretrained(tmp_path / "kl")
    assert isinstance(load_vae(tmp_path / "patch"), PatchAutoencoder)
    assert type(load_vae(tmp_path / "kl")).__name__ == "AutoencoderKL"
    config = json.loads((tmp_path / "patch" / "config.json").read_text())
    config["_class_name"] = "UNet3DConditionModel"
    (tmp_path / "patch" / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="holds a UNet3DConditionModel, not one of AutoencoderKL"):
        load_vae(tmp_path / "patch")
    with pytest.raises(UserError, match=r"no config\.json"):
        load_vae(tmp_path / "missing")


def test_a_pipeline_on_a_patch_code_saves_loads_and_samples_the_same(tmp_path, photo):
    pipe = tiny_dreamvideo_pipeline("bert", seed=1, randomize_branch=True, default_num_frames=4)
    code = PatchAutoencoder(**SMALL, scaling_factor=0.5)
    with torch.no_grad():  # a code that is not its linear part alone
        for p in code.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen(5)))
    pipe.register_modules(vae=code.eval())
    kwargs = {"num_inference_steps": 2, "generator": gen(0), "output_type": "pt"}
    frames = pipe(photo, "a cat", **kwargs).frames
    pipe.save_pretrained(tmp_path / "model")
    index = json.loads((tmp_path / "model" / "model_index.json").read_text())
    assert index["vae"] == ["dreamvideo.models.patch_autoencoder", "PatchAutoencoder"]
    loaded = load_pipeline(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.vae, PatchAutoencoder) and loaded.vae.config.scaling_factor == 0.5
    torch.testing.assert_close(loaded(photo, "a cat", **kwargs | {"generator": gen(0)}).frames, frames)


MOVE = """
stage = "i2v"
output_dir = "{out}"
checkpoint_every = 5
log_every = 1
[init]
dreamvideo = "{pipeline}"
vae = "{vae}"
[data]
size = 64
num_frames = 4
latent_cache = "{out}/latents.safetensors"
cache_clips = 4
[optim]
steps = 2
batch_size = 2
lr = 1e-3
warmup_steps = 0
lr_schedule = "constant"
"""


def test_the_i2v_stage_moves_a_model_onto_another_latent_space(model_dir, tmp_path, photo):
    start = load_pipeline(model_dir)  # a model whose reference-aware decoder reads today's latents
    start.register_modules(reference_decoder=ReferenceAwareDecoder.from_vae(start.vae))
    start.save_pretrained(tmp_path / "start")
    PatchAutoencoder(**SMALL, scaling_factor=0.5).save_pretrained(tmp_path / "code")
    config = tmp_path / "move.toml"
    config.write_text(MOVE.format(out=tmp_path / "run", pipeline=tmp_path / "start", vae=tmp_path / "code"))
    train(load_config(config))
    moved = load_pipeline(tmp_path / "run" / "pipeline")
    assert isinstance(moved.vae, PatchAutoencoder) and moved.reference_decoder is None
    for name, value in PatchAutoencoder.from_pretrained(tmp_path / "code").state_dict().items():
        assert torch.equal(moved.vae.state_dict()[name], value), name  # the code itself stays frozen
    moved.set_progress_bar_config(disable=True)
    assert moved(photo, "a cat", num_inference_steps=2, generator=gen(0)).frames.shape == (1, 4, 64, 64, 3)

    # then its reference-aware decoder is retrained on the new latents (the decoder stage)
    decoder = tmp_path / "decoder.toml"
    text = DECODER_STAGE.format(out=tmp_path / "dec", pipeline=tmp_path / "run" / "pipeline")
    decoder.write_text(text.replace("temporal_layers = true", 'reference_features = "stem"'))
    train(load_config(decoder))
    with_decoder = load_pipeline(tmp_path / "dec" / "pipeline")
    assert with_decoder.reference_decoder.config.decoder_type == "patch"
    with_decoder.set_progress_bar_config(disable=True)
    assert with_decoder(photo, "a cat", num_inference_steps=2).frames.shape == (1, 4, 64, 64, 3)
    decoder.write_text(text)  # the frozen-encoder features an AutoencoderKL has
    with pytest.raises(UserError, match="through reference_features='stem'"):
        train(load_config(decoder))

    PatchAutoencoder(latent_channels=8, block_out_channels=(8, 8, 8, 8)).save_pretrained(tmp_path / "wide")
    config.write_text(MOVE.format(out=tmp_path / "bad", pipeline=model_dir, vae=tmp_path / "wide"))
    with pytest.raises(UserError, match=r"differ in shape \(\[init\] vae: 8 latent channels at 1/8 scale"):
        train(load_config(config))
