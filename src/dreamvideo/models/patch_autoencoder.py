"""A latent space that contains a linear one: a patch code plus learned residuals.

    latent = P(x) + E(x)              P: pixel-unshuffle by `patch_size`, then a 1×1 conv
    pixels = P⁺(latent) + D(latent)   P⁺: a 1×1 conv, then pixel-shuffle

P and P⁺ start as a linear code (e.g. PCA of training patches, `set_linear`); E and D are plain
conv stacks in the style of TAESD (ReLU, residual blocks, no normalisation or attention) whose last
conv is zero-initialised, so a fresh model round-trips exactly as its linear code does and training
can only pull it away from it. The fixed space-to-channel shortcut under learned blocks follows
DC-AE (Chen et al. 2024). The code is deterministic; it offers the interface of diffusers'
`AutoencoderKL` that DreamVideo's pipeline and stages use (`encode(x).latent_dist.mean / .mode()`,
`decode(z).sample`, `config.scaling_factor`), with a posterior of zero variance.
"""

from __future__ import annotations

import itertools

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput, DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F


class _Block(nn.Module):  # TAESD's block: three 3×3 convs with ReLU, plus the input
    def __init__(self, channels: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + x)


def _zero(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def residual_decoder(latent_channels: int, widths: list[int], out_channels: int) -> nn.Sequential:
    """D: latents -> a pixel residual, up by 2 ** (len(widths) - 1); its last conv starts at zero.
    Its levels (`decoder_levels`) run from the latent resolution to full resolution, as the levels
    of diffusers' VAE decoder do."""
    layers: list[nn.Module] = [nn.Conv2d(latent_channels, widths[-1], 3, padding=1), nn.ReLU()]
    for c_in, c_out in itertools.pairwise(widths[::-1]):
        layers += [_Block(c_in), nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1)]
    return nn.Sequential(*layers, _Block(widths[0]), _zero(nn.Conv2d(widths[0], out_channels, 3, padding=1)))


def decoder_levels(num_widths: int) -> list[int]:
    """Indices of `residual_decoder`'s layers that end a level: after the input conv (the latent
    resolution), after each upsampling conv, after the last block (full resolution)."""
    return [1, *(1 + 3 * i for i in range(1, num_widths)), 3 * num_widths - 1]


class PatchAutoencoder(ModelMixin, ConfigMixin):
    """latent = linear(x) + E(x); pixels = linear⁻¹(latent) + D(latent); E and D start at zero.

    `block_out_channels` gives E's widths from the image down (D's in reverse); its length sets
    the downscale, 2 ** (levels - 1), which must equal `patch_size` (diffusers' pipelines derive
    the VAE's scale factor from it)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        latent_channels: int = 16,
        patch_size: int = 8,
        block_out_channels: tuple[int, ...] = (32, 64, 128, 128),
        sample_size: int = 64,
        scaling_factor: float = 1.0,
    ):
        super().__init__()
        downscale = 2 ** (len(block_out_channels) - 1)
        if downscale != patch_size:
            raise ValueError(f"{len(block_out_channels)} levels downscale by {downscale}, not {patch_size}")
        widths = list(block_out_channels)
        patch = in_channels * patch_size * patch_size
        self.project = nn.Conv2d(patch, latent_channels, 1)  # after pixel-unshuffle
        self.unproject = nn.Conv2d(latent_channels, patch, 1)  # before pixel-shuffle
        encoder: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1), _Block(widths[0])]
        for c_in, c_out in itertools.pairwise(widths):
            encoder += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _Block(c_out)]
        self.encoder = nn.Sequential(*encoder, _zero(nn.Conv2d(widths[-1], latent_channels, 3, padding=1)))
        self.decoder = residual_decoder(latent_channels, widths, in_channels)
        # Added to every latent after encoding, taken off before decoding (`transform_latents`):
        # a shift outside the convs, so their zero padding keeps its meaning.
        self.register_buffer("latent_shift", torch.zeros(latent_channels))

    @torch.no_grad()
    def set_linear(
        self, encode: torch.Tensor, bias: torch.Tensor, decode: torch.Tensor, mean: torch.Tensor
    ) -> None:
        """The linear code, on flattened patches in pixel-unshuffle's order (channel, row, column):
        latent = encode @ patch + bias (encode: latent × patch); patch = decode @ latent + mean."""
        self.project.weight.copy_(encode[:, :, None, None])
        self.project.bias.copy_(bias)
        self.unproject.weight.copy_(decode[:, :, None, None])
        self.unproject.bias.copy_(mean)

    @torch.no_grad()
    def transform_latents(self, matrix: torch.Tensor, shift: torch.Tensor | None = None) -> None:
        """Change the latent basis in place: new latents = matrix @ old latents + shift, channel-wise,
        and the decoder reads them so that the round trip is unchanged (exactly: the matrix goes
        into the convs, the shift into `latent_shift`). For a basis in which a latent error costs
        the same in pixels in every direction, or one near another model's latents."""
        inverse = torch.linalg.inv(matrix.double())
        matrix = matrix.double()
        old_shift = self.latent_shift.double()
        self.latent_shift.copy_(matrix @ old_shift + (0 if shift is None else shift.double()))

        def mix_out(conv: nn.Conv2d) -> None:  # its output channels mixed by `matrix`
            conv.weight.copy_(torch.einsum("ij,jchw->ichw", matrix, conv.weight.double()))
            conv.bias.copy_(matrix @ conv.bias.double())

        def mix_in(conv: nn.Conv2d) -> None:  # it reads old latents = inverse @ new latents
            conv.weight.copy_(torch.einsum("ojhw,ji->oihw", conv.weight.double(), inverse))

        mix_out(self.project)
        mix_out(self.encoder[-1])
        mix_in(self.unproject)
        mix_in(self.decoder[0])

    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """(N, 3, H, W) in [-1, 1] -> a zero-variance posterior over (N, C, H/p, W/p) latents."""
        latents = self.project(F.pixel_unshuffle(x, self.config.patch_size)) + self.encoder(x)
        latents = latents + self.latent_shift.view(-1, 1, 1).to(latents.dtype)
        posterior = DiagonalGaussianDistribution(torch.cat([latents, torch.zeros_like(latents)], 1), True)
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """(N, C, h, w) latents (unscaled) -> (N, 3, h·p, w·p) pixels in about [-1, 1]."""
        z = z - self.latent_shift.view(-1, 1, 1).to(z.dtype)
        pixels = F.pixel_shuffle(self.unproject(z), self.config.patch_size) + self.decoder(z)
        return DecoderOutput(sample=pixels) if return_dict else (pixels,)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        return self.decode(self.encode(sample).latent_dist.mode(), return_dict)
