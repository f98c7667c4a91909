"""The lossless pixel-unshuffle latent space: exact round trips, AutoencoderKL's API, save/load."""

from __future__ import annotations

import pytest
import torch

from dreamvideo.models import PixelShuffleAutoencoder
from dreamvideo.models.pixel_autoencoder import fit_scaling_factor


@pytest.mark.parametrize("factor", [1, 4, 8])
def test_round_trip_is_exact_and_shapes_follow_the_factor(factor):
    ae = PixelShuffleAutoencoder(downscale_factor=factor)
    x = torch.rand(2, 3, 64, 32) * 2 - 1
    posterior = ae.encode(x).latent_dist
    assert posterior.mean.shape == (2, 3 * factor**2, 64 // factor, 32 // factor)
    assert torch.equal(posterior.mode(), posterior.mean)
    assert torch.equal(posterior.sample(torch.Generator().manual_seed(0)), posterior.mean)
    assert torch.equal(ae.decode(posterior.mean).sample, x)
    assert torch.equal(ae(x).sample, x)
    # diffusers' pipelines read the downscale from len(block_out_channels)
    assert 2 ** (len(ae.config.block_out_channels) - 1) == factor
    assert ae.config.latent_channels == 3 * factor**2


def test_latents_keep_each_pixel_in_its_own_channel():
    """Space-to-depth: latent (c·f² + i·f + j, y, x) is pixel (c, f·y + i, f·x + j)."""
    ae = PixelShuffleAutoencoder(downscale_factor=4)
    x = torch.arange(3 * 8 * 8, dtype=torch.float32).reshape(1, 3, 8, 8)
    z = ae.encode(x).latent_dist.mean
    assert z[0, 1 * 16 + 2 * 4 + 3, 1, 0] == x[0, 1, 4 + 2, 0 + 3]


def test_save_and_load_keep_the_config(tmp_path):
    ae = PixelShuffleAutoencoder(downscale_factor=8)
    ae.register_to_config(scaling_factor=fit_scaling_factor(ae, torch.rand(4, 3, 16, 16) * 0.5))
    ae.save_pretrained(tmp_path / "vae")
    back = PixelShuffleAutoencoder.from_pretrained(tmp_path / "vae", use_safetensors=True)
    assert back.config.scaling_factor == ae.config.scaling_factor > 1
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(back.decode(back.encode(x).latent_dist.mean).sample, x)


@pytest.mark.parametrize("kwargs", [{"downscale_factor": 3}, {"downscale_factor": 0}, {"latent_channels": 5}])
def test_inconsistent_configs_are_refused(kwargs):
    with pytest.raises(ValueError):
        PixelShuffleAutoencoder(**kwargs)
