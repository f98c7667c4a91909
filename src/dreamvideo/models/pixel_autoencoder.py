"""A lossless "autoencoder": space-to-depth (pixel unshuffle) as the latent space.

A 64×64×3 frame becomes 8×8×192 "latents" (f = 8) and back, exactly. With an x-predicting
denoiser this is pixel-space diffusion in the UNet's latent shape, as recent pixel-space work
does (JiT, "Back to Basics: Let Denoising Generative Models Denoise", 2025): the first frame is
no longer capped by a small VAE's reconstruction (the tiny recipe's f = 8 VAE reached SSIM
0.70 on held-out frames, see docs/model-card.md).

It speaks `AutoencoderKL`'s API (`encode(x).latent_dist`, `decode(z).sample`,
`config.scaling_factor`, `config.latent_channels`), so `DreamVideoPipeline`, the training
stages and diffusers' own `TextToVideoSDPipeline` load and use it as their `vae` component.
"""

from __future__ import annotations

import math

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKLOutput
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class PixelShuffleAutoencoder(ModelMixin, ConfigMixin):
    """(B, C, H, W) pixels in [-1, 1] <-> (B, C·f², H/f, W/f) latents, lossless.

    `scaling_factor` brings the latents to unit variance, as for a VAE; `block_out_channels` is
    derived (one entry per factor of two plus one) because diffusers' pipelines compute a VAE's
    downscale as `2 ** (len(block_out_channels) - 1)`.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        downscale_factor: int = 8,
        scaling_factor: float = 1.0,
        latent_channels: int | None = None,
        block_out_channels: tuple[int, ...] | None = None,
    ):
        super().__init__()
        levels = int(math.log2(downscale_factor)) if downscale_factor >= 1 else -1
        if levels < 0 or 2**levels != downscale_factor:
            raise ValueError(f"downscale_factor must be a power of two, got {downscale_factor}")
        derived = in_channels * downscale_factor**2
        if latent_channels not in (None, derived):
            raise ValueError(f"latent_channels must be {derived} for this factor, got {latent_channels}")
        self.register_to_config(latent_channels=derived, block_out_channels=(derived,) * (levels + 1))
        # No weights. A saved buffer gives the model a device, a dtype and a weights file, which
        # diffusers' loaders expect of every model component.
        self.register_buffer("factor", torch.tensor(float(downscale_factor)))
        self.use_slicing = False

    @property
    def downscale_factor(self) -> int:
        return self.config.downscale_factor

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        latents = F.pixel_unshuffle(x, self.downscale_factor)
        # A point mass: mean = the latents, std = 0, so `.sample()` and `.mode()` agree.
        posterior = DiagonalGaussianDistribution(torch.cat([latents, torch.zeros_like(latents)], 1), True)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, **_: object) -> DecoderOutput | tuple:
        pixels = F.pixel_shuffle(z, self.downscale_factor)
        return DecoderOutput(sample=pixels) if return_dict else (pixels,)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        return self.decode(self.encode(sample).latent_dist.mode(), return_dict=return_dict)

    # The pipeline's memory switches are no-ops here (nothing to slice or tile).
    def enable_slicing(self) -> None:
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False


def fit_scaling_factor(autoencoder: nn.Module, frames: torch.Tensor) -> float:
    """1 / std of the latents of `frames` (N, 3, H, W) in [-1, 1]: unit-variance latents."""
    with torch.no_grad():
        std = autoencoder.encode(frames).latent_dist.mean.std().item()
    return round(1.0 / max(std, 1e-6), 5)
