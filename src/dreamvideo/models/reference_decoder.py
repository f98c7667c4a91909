"""A VAE decoder that sees the reference image: detail the latent space lost comes back from it.

The decoder of an `AutoencoderKL` (its `post_quant_conv` and `decoder`, copied), or of a
`PatchAutoencoder` (its linear `unproject` and residual `decoder`, `decoder_type="patch"`), plus
additions that read the reference image (the video's first frame, in pixels):

- **reference features** at each resolution, from a frozen copy of the VAE encoder's hidden
  states (`reference_features="encoder"`, an `AutoencoderKL` only) or from a small trainable conv
  stem on the pixels (`"stem"`);
- **frame-0 residuals**: zero-initialised 1x1 convs add those features to the hidden states of
  the first frame (the one that must keep the image) after the chosen decoder levels;
- **cross-attention**: at the chosen (low-resolution) levels every frame attends to the
  reference's tokens, with a zero-initialised output projection, so content that moved can
  still find its detail;
- **temporal convs**: zero-initialised (3, 1, 1) convs across frames after each up block, so
  neighbouring frames agree.

Every addition ends in a zero-initialised layer, so a freshly built decoder decodes exactly as
the VAE it was built from (a test pins this). Adapted from ToonCrafter's dual-reference decoder
(Xing et al. 2024, `lvdm/models/autoencoder_dualref.py`) for one reference at frame 0: this is
DreamVideo's idea, perceiving the reference by convolution, applied where our details are lost
(docs/method.md).
"""

from __future__ import annotations

import math

import torch
from diffusers import AutoencoderKL
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import Decoder, Encoder
from diffusers.models.controlnets.controlnet import zero_module
from diffusers.models.modeling_utils import ModelMixin
from torch import nn
from torch.nn import functional as F

from .patch_autoencoder import PatchAutoencoder, decoder_levels, residual_decoder

REFERENCE_FEATURES = ("encoder", "stem")
DECODER_TYPES = ("kl", "patch")


class ReferenceCrossAttention(nn.Module):
    """Every frame's tokens attend to the reference's tokens at the same level; zero-init output."""

    def __init__(self, channels: int, reference_channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.to_q = nn.Linear(channels, channels, bias=False)
        self.to_k = nn.Linear(reference_channels, channels, bias=False)
        self.to_v = nn.Linear(reference_channels, channels, bias=False)
        self.to_out = zero_module(nn.Linear(channels, channels))

    def forward(self, hidden: torch.Tensor, reference: torch.Tensor, num_frames: int) -> torch.Tensor:
        """hidden (B*F, C, h, w); reference features (B, Cr, h', w')."""
        bf, c, h, w = hidden.shape
        queries = self.norm(hidden).flatten(2).transpose(1, 2)  # (B*F, hw, C)
        tokens = reference.flatten(2).transpose(1, 2).repeat_interleave(num_frames, 0)  # (B*F, n, Cr)

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            heads(self.to_q(queries)), heads(self.to_k(tokens)), heads(self.to_v(tokens))
        )
        out = self.to_out(out.transpose(1, 2).flatten(2))
        return hidden + out.transpose(1, 2).reshape(bf, c, h, w)


class TemporalConv(nn.Module):
    """A (3, 1, 1) conv across frames with a residual; zero-initialised, so it starts as identity."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.conv = zero_module(nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0)))

    def forward(self, hidden: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = hidden.shape
        x = F.silu(self.norm(hidden)).reshape(bf // num_frames, num_frames, c, h, w).transpose(1, 2)
        return hidden + self.conv(x).transpose(1, 2).reshape(bf, c, h, w)


class ReferenceStem(nn.Module):
    """Trainable conv features of the reference pixels, one map per encoder resolution."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], groups: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, channels[0], 3, padding=1)
        self.levels = nn.ModuleList()
        previous = channels[0]
        for i, c in enumerate(channels):
            stride = 1 if i == 0 else 2
            self.levels.append(
                nn.Sequential(
                    nn.Conv2d(previous, c, 3, padding=1, stride=stride),
                    nn.GroupNorm(groups, c),
                    nn.SiLU(),
                    nn.Conv2d(c, c, 3, padding=1),
                )
            )
            previous = c

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv_in(image)
        features = []
        for level in self.levels:
            h = level(h)
            features.append(h)
        return features


def _check_options(
    reference_features: str,
    decoder_type: str,
    levels: int,
    residual_levels: tuple[int, ...],
    cross_attention_levels: tuple[int, ...],
) -> None:
    if reference_features not in REFERENCE_FEATURES:
        raise ValueError(f"unknown reference_features {reference_features!r} (one of {REFERENCE_FEATURES})")
    if decoder_type not in DECODER_TYPES:
        raise ValueError(f"unknown decoder_type {decoder_type!r} (one of {DECODER_TYPES})")
    if decoder_type == "patch" and reference_features != "stem":
        raise ValueError("a patch code's decoder reads the reference through reference_features='stem'")
    chosen_levels = {"residual_levels": residual_levels, "cross_attention_levels": cross_attention_levels}
    for name, chosen in chosen_levels.items():
        if any(not 0 <= level <= levels for level in chosen):
            raise ValueError(f"{name} must lie in 0..{levels}, got {list(chosen)}")


class ReferenceAwareDecoder(ModelMixin, ConfigMixin):
    """An `AutoencoderKL`'s (or a `PatchAutoencoder`'s) decoder with zero-initialised paths from
    the reference image.

    `decode(latents, reference, num_frames)` takes unscaled latents (B*F, C, h, w) in frame order
    and the reference (B, 3, H, W) in [-1, 1]; it returns frames (B*F, 3, H, W).

    Decoder levels are numbered 0 (after the mid block, the lowest resolution) to
    len(block_out_channels) (after the last up block). `residual_levels` get frame-0 residuals,
    `cross_attention_levels` cross-attention from every frame.
    """

    _supports_gradient_checkpointing = False

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",),
        up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",),
        block_out_channels: tuple[int, ...] = (64,),
        layers_per_block: int = 1,
        act_fn: str = "silu",
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        mid_block_add_attention: bool = True,
        use_post_quant_conv: bool = True,
        reference_features: str = "encoder",
        residual_levels: tuple[int, ...] = (1, 2, 3, 4),
        cross_attention_levels: tuple[int, ...] = (1, 2),
        attention_heads: int = 4,
        temporal_layers: bool = False,
        decoder_type: str = "kl",
        patch_size: int = 8,
    ):
        super().__init__()
        levels = len(block_out_channels)
        _check_options(reference_features, decoder_type, levels, residual_levels, cross_attention_levels)
        if decoder_type == "patch":  # PatchAutoencoder's decode: unproject (linear) + decoder (residual)
            self.post_quant_conv = None
            self.unproject = nn.Conv2d(latent_channels, out_channels * patch_size**2, 1)
            self.decoder = residual_decoder(latent_channels, list(block_out_channels), out_channels)
            self.register_buffer("latent_shift", torch.zeros(latent_channels))
        else:
            self.post_quant_conv = (
                nn.Conv2d(latent_channels, latent_channels, 1) if use_post_quant_conv else None
            )
            self.decoder = Decoder(
                in_channels=latent_channels,
                out_channels=out_channels,
                up_block_types=tuple(up_block_types),
                block_out_channels=tuple(block_out_channels),
                layers_per_block=layers_per_block,
                norm_num_groups=norm_num_groups,
                act_fn=act_fn,
                mid_block_add_attention=mid_block_add_attention,
            )
        # Reference features: one map per encoder block (its output before it downsamples), at
        # full, 1/2, 1/4, ... resolution, with that block's channels.
        if reference_features == "encoder":
            self.encoder = Encoder(
                in_channels=in_channels,
                out_channels=latent_channels,
                down_block_types=tuple(down_block_types),
                block_out_channels=tuple(block_out_channels),
                layers_per_block=layers_per_block,
                norm_num_groups=norm_num_groups,
                act_fn=act_fn,
                double_z=True,
                mid_block_add_attention=mid_block_add_attention,
            )
            self.encoder.requires_grad_(False)  # frozen: it is the VAE's own encoder
            self.stem = None
        else:
            self.encoder = None
            self.stem = ReferenceStem(in_channels, tuple(block_out_channels), norm_num_groups)
        # Decoder level l works at the resolution of reference feature map `_feature_index(l)`
        # (the last two levels share full resolution), with these channels:
        reversed_channels = list(reversed(block_out_channels))
        if decoder_type == "patch":
            self.level_channels = [*reversed_channels, reversed_channels[-1]]
        else:
            self.level_channels = [reversed_channels[0], *reversed_channels]
        self.residuals = nn.ModuleDict(
            {
                str(level): zero_module(
                    nn.Conv2d(self._feature_channels(level), self.level_channels[level], 1)
                )
                for level in residual_levels
            }
        )
        self.attentions = nn.ModuleDict(
            {
                str(level): ReferenceCrossAttention(
                    self.level_channels[level],
                    self._feature_channels(level),
                    attention_heads,
                    norm_num_groups,
                )
                for level in cross_attention_levels
            }
        )
        self.temporal = (
            nn.ModuleDict(
                {
                    str(level): TemporalConv(self.level_channels[level], norm_num_groups)
                    for level in range(1, levels + 1)
                }
            )
            if temporal_layers
            else nn.ModuleDict()
        )

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_vae(cls, vae: AutoencoderKL | PatchAutoencoder, **options) -> ReferenceAwareDecoder:
        """Built from `vae`, its decoder (and encoder, for encoder features) copied: decodes exactly
        as `vae.decode` until the additions train."""
        if isinstance(vae, PatchAutoencoder):
            model = cls._from_patch_code(vae, **options)
        else:
            model = cls._from_autoencoder_kl(vae, **options)
        return model.to(vae.device) if vae.dtype == model.dtype else model.to(vae.device, vae.dtype)

    @classmethod
    def _from_patch_code(cls, vae: PatchAutoencoder, **options) -> ReferenceAwareDecoder:
        config = vae.config
        widths = tuple(config.block_out_channels)
        options = {"reference_features": "stem", "norm_num_groups": math.gcd(16, *widths)} | options
        model = cls(
            in_channels=config.in_channels,
            out_channels=config.in_channels,
            block_out_channels=widths,
            latent_channels=config.latent_channels,
            decoder_type="patch",
            patch_size=config.patch_size,
            **options,
        )
        model.latent_shift.copy_(vae.latent_shift)
        model.unproject.load_state_dict(vae.unproject.state_dict())
        model.decoder.load_state_dict(vae.decoder.state_dict())
        return model

    @classmethod
    def _from_autoencoder_kl(cls, vae: AutoencoderKL, **options) -> ReferenceAwareDecoder:
        config = vae.config
        model = cls(
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            down_block_types=tuple(config.down_block_types),
            up_block_types=tuple(config.up_block_types),
            block_out_channels=tuple(config.block_out_channels),
            layers_per_block=config.layers_per_block,
            act_fn=config.act_fn,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_num_groups,
            mid_block_add_attention=config.get("mid_block_add_attention", True),
            use_post_quant_conv=config.get("use_post_quant_conv", True),
            **options,
        )
        model.decoder.load_state_dict(vae.decoder.state_dict())
        if model.post_quant_conv is not None:
            model.post_quant_conv.load_state_dict(vae.post_quant_conv.state_dict())
        if model.encoder is not None:
            model.encoder.load_state_dict(vae.encoder.state_dict())
        return model

    def with_options(self, **options) -> ReferenceAwareDecoder:
        """A copy with other additions: the decoder (and encoder) carry over, new additions start at zero."""
        config = {k: v for k, v in self.config.items() if not k.startswith("_")}
        model = type(self)(**{**config, **options})
        target = model.state_dict()
        carried = {k: v for k, v in self.state_dict().items() if k in target and target[k].shape == v.shape}
        model.load_state_dict(carried, strict=False)
        return model.to(self.device) if self.dtype == model.dtype else model.to(self.device, self.dtype)

    def decoder_parameters(self) -> list[nn.Parameter]:
        """The copied decoder's own weights (what `train_decoder` fine-tunes beside the additions)."""
        own = list(self.decoder.parameters())
        if self.config.decoder_type == "patch":
            return own + list(self.unproject.parameters())
        return own + (list(self.post_quant_conv.parameters()) if self.post_quant_conv is not None else [])

    # ----------------------------------------------------------------- decoding
    def reference_features(self, reference: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the reference, full resolution first."""
        if self.stem is not None:
            return self.stem(reference)
        encoder = self.encoder
        with torch.no_grad():
            h = encoder.conv_in(reference)
            features = []
            for block in encoder.down_blocks:
                for resnet in block.resnets:
                    h = resnet(h, temb=None)
                features.append(h)
                if block.downsamplers is not None:
                    for down in block.downsamplers:
                        h = down(h)
        return features

    def _feature_channels(self, level: int) -> int:
        return self.config.block_out_channels[self._feature_index(level)]

    def _feature_index(self, level: int) -> int:
        """Which reference feature map (0: full resolution) matches decoder level `level`."""
        return max(len(self.config.block_out_channels) - 1 - level, 0)

    def _add_reference(
        self, hidden: torch.Tensor, level: int, features: list[torch.Tensor], num_frames: int
    ) -> torch.Tensor:
        key = str(level)
        if key in self.temporal:
            hidden = self.temporal[key](hidden, num_frames)
        if key in self.attentions:
            hidden = self.attentions[key](
                hidden, features[self._feature_index(level)].to(hidden.dtype), num_frames
            )
        if key in self.residuals:
            residual = self.residuals[key](features[self._feature_index(level)].to(hidden.dtype))
            bf = hidden.shape[0]
            hidden = hidden.reshape(bf // num_frames, num_frames, *hidden.shape[1:])
            first = hidden[:, :1] + residual.unsqueeze(1)
            hidden = torch.cat([first, hidden[:, 1:]], 1).flatten(0, 1)
        return hidden

    def decode(self, latents: torch.Tensor, reference: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Unscaled latents (B*F, C, h, w), frames of each video consecutive -> frames (B*F, 3, H, W)."""
        if latents.shape[0] % num_frames:
            raise ValueError(f"{latents.shape[0]} latent frames do not split into videos of {num_frames}")
        if reference.shape[0] * num_frames != latents.shape[0]:
            raise ValueError(f"{reference.shape[0]} references for {latents.shape[0] // num_frames} videos")
        features = self.reference_features(reference.to(self.dtype))
        if self.config.decoder_type == "patch":
            return self._decode_patch(latents, features, num_frames)
        z = self.post_quant_conv(latents) if self.post_quant_conv is not None else latents
        decoder = self.decoder
        h = decoder.conv_in(z)
        h = decoder.mid_block(h, None)
        h = self._add_reference(h, 0, features, num_frames)
        for index, block in enumerate(decoder.up_blocks):
            h = block(h, None)
            h = self._add_reference(h, index + 1, features, num_frames)
        h = decoder.conv_act(decoder.conv_norm_out(h))
        return decoder.conv_out(h)

    def _decode_patch(
        self, latents: torch.Tensor, features: list[torch.Tensor], num_frames: int
    ) -> torch.Tensor:
        """PatchAutoencoder.decode, the reference added after each of its decoder's levels."""
        ends = decoder_levels(len(self.config.block_out_channels))
        latents = h = latents - self.latent_shift.view(-1, 1, 1).to(latents.dtype)
        for index, layer in enumerate(self.decoder):
            h = layer(h)
            if index in ends:
                h = self._add_reference(h, ends.index(index), features, num_frames)
        return F.pixel_shuffle(self.unproject(latents), self.config.patch_size) + h

    def forward(self, latents: torch.Tensor, reference: torch.Tensor, num_frames: int) -> torch.Tensor:
        return self.decode(latents, reference, num_frames)
