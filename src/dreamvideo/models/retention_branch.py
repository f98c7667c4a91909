"""The frame retention branch of DreamVideo.

A side copy of the base 3D UNet's down path (input conv, time embedding, temporal input
layer, down blocks, mid block) that sees the reference image. The image goes through a
trainable conv encoder (pixels -> latent resolution), the noisy latents through a trainable
conv, and the two are concatenated as the branch's input. Every skip-connection output and
the mid output leave through a zero-initialised 1x1 conv and are added to the main UNet's
skip connections (`down_block_additional_residuals`, `mid_block_additional_residual`), so a
freshly built branch leaves the base model's prediction unchanged (docs/method.md).

Follows diffusers' ControlNet (`diffusers/models/controlnets/controlnet.py`): `from_unet`,
the conditioning embedding (`ImageConditioningEncoder`) and `zero_module`, for a 3D UNet.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import AttentionMixin
from diffusers.models.controlnets.controlnet import zero_module  # every parameter zeroed: starts silent
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel
from diffusers.models.unets.unet_3d_blocks import UNetMidBlock3DCrossAttn, get_down_block
from diffusers.models.unets.unet_3d_condition import UNet3DConditionModel
from torch import nn
from torch.nn import functional as F


class ImageConditioningEncoder(nn.Module):
    """Conv encoder from the reference image (pixels in [-1, 1]) to latent resolution.

    One stride-2 conv per factor of two between pixel and latent resolution, as ControlNet's
    conditioning embedding; keeps spatial detail that a semantic (CLIP) embedding would lose.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: tuple[int, ...], downscale: int):
        super().__init__()
        num_down = int(math.log2(downscale))
        if 2**num_down != downscale:
            raise ValueError(f"downscale must be a power of two, got {downscale}")
        if len(hidden_channels) != num_down + 1:
            raise ValueError(
                f"image_encoder_channels needs {num_down + 1} entries for a downscale of {downscale}, "
                f"got {len(hidden_channels)}"
            )
        self.conv_in = nn.Conv2d(in_channels, hidden_channels[0], 3, padding=1)
        blocks = []
        for c_in, c_out in itertools.pairwise(hidden_channels):
            blocks += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.Conv2d(c_in, c_out, 3, padding=1, stride=2)]
        self.blocks = nn.ModuleList(blocks)
        self.conv_out = nn.Conv2d(hidden_channels[-1], out_channels, 3, padding=1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.conv_in(image))
        for block in self.blocks:
            h = F.silu(block(h))
        return self.conv_out(h)


# The conv encoder of the reference: stride-2 convs from pixels to the latent size. The config key
# stays so that every saved folder (which records it) loads.
IMAGE_ENCODERS = ("strided",)


class FrameRetentionBranch(ModelMixin, AttentionMixin, ConfigMixin):
    """Side copy of a `UNet3DConditionModel` down path that injects reference-image residuals."""

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(
        self,
        in_channels: int = 4,
        image_channels: int = 3,
        image_embed_channels: int = 4,
        image_encoder_channels: tuple[int, ...] = (16, 32, 96, 256),
        downscale_factor: int = 8,
        down_block_types: tuple[str, ...] = (
            "CrossAttnDownBlock3D",
            "CrossAttnDownBlock3D",
            "CrossAttnDownBlock3D",
            "DownBlock3D",
        ),
        block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
        layers_per_block: int = 2,
        downsample_padding: int = 1,
        mid_block_scale_factor: float = 1,
        act_fn: str = "silu",
        norm_num_groups: int | None = 32,
        norm_eps: float = 1e-5,
        cross_attention_dim: int = 1024,
        attention_head_dim: int | tuple[int, ...] = 64,
        time_cond_proj_dim: int | None = None,
        image_encoder_type: str = "strided",
        frame_position_embedding: bool = False,
        caption_time_embedding: bool = False,
        reference_first_frame: bool = False,
    ):
        super().__init__()
        self.gradient_checkpointing = False
        num_heads = attention_head_dim  # diffusers' UNet3D naming quirk: this is the head count
        if isinstance(num_heads, int):
            num_heads = (num_heads,) * len(down_block_types)

        # Trainable input convs: reference image (pixel space) and noisy latents.
        if image_encoder_type not in IMAGE_ENCODERS:
            raise ValueError(
                f"image_encoder_type must be one of {IMAGE_ENCODERS}, got {image_encoder_type!r}"
            )
        self.image_encoder = ImageConditioningEncoder(
            image_channels, image_embed_channels, tuple(image_encoder_channels), downscale_factor
        )
        self.latent_conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        nn.init.dirac_(self.latent_conv.weight)  # identity at init: the branch starts as the base
        nn.init.zeros_(self.latent_conv.bias)

        # Copy of the base UNet's down path (weights loaded by `from_unet`).
        # With `reference_first_frame` the reference reaches frame 0 only, beside a mask channel that
        # marks that frame (as CogVideoX-I2V's frame-0 image latent); otherwise every frame sees it.
        mask_channels = 1 if reference_first_frame else 0
        self.conv_in = nn.Conv2d(
            in_channels + image_embed_channels + mask_channels, block_out_channels[0], 3, padding=1
        )
        time_embed_dim = block_out_channels[0] * 4
        self.time_proj = Timesteps(block_out_channels[0], True, 0)
        self.time_embedding = TimestepEmbedding(
            block_out_channels[0], time_embed_dim, act_fn=act_fn, cond_proj_dim=time_cond_proj_dim
        )
        self._add_time_conditioning(frame_position_embedding, caption_time_embedding, cross_attention_dim)
        self.transformer_in = TransformerTemporalModel(
            num_attention_heads=8,
            attention_head_dim=attention_head_dim,
            in_channels=block_out_channels[0],
            num_layers=1,
            norm_num_groups=norm_num_groups,
        )

        self.down_blocks = nn.ModuleList([])
        self.residual_convs = nn.ModuleList([self._zero_conv(block_out_channels[0])])
        output_channel = block_out_channels[0]
        for i, block_type in enumerate(down_block_types):
            input_channel, output_channel = output_channel, block_out_channels[i]
            is_final = i == len(block_out_channels) - 1
            self.down_blocks.append(
                get_down_block(
                    block_type,
                    num_layers=layers_per_block,
                    in_channels=input_channel,
                    out_channels=output_channel,
                    temb_channels=time_embed_dim,
                    add_downsample=not is_final,
                    resnet_eps=norm_eps,
                    resnet_act_fn=act_fn,
                    resnet_groups=norm_num_groups,
                    cross_attention_dim=cross_attention_dim,
                    num_attention_heads=num_heads[i],
                    downsample_padding=downsample_padding,
                    dual_cross_attention=False,
                )
            )
            # One residual per skip connection this block produces (resnets, then downsampler).
            for _ in range(layers_per_block + (0 if is_final else 1)):
                self.residual_convs.append(self._zero_conv(output_channel))

        self.mid_block = UNetMidBlock3DCrossAttn(
            in_channels=block_out_channels[-1],
            temb_channels=time_embed_dim,
            resnet_eps=norm_eps,
            resnet_act_fn=act_fn,
            output_scale_factor=mid_block_scale_factor,
            cross_attention_dim=cross_attention_dim,
            num_attention_heads=num_heads[-1],
            resnet_groups=norm_num_groups,
            dual_cross_attention=False,
        )
        self.mid_residual_conv = self._zero_conv(block_out_channels[-1])

    def _add_time_conditioning(self, frame_position: bool, caption: bool, cross_attention_dim: int) -> None:
        """Ours, beyond the paper (docs/method.md): which frame a row is, and the pooled caption,
        added to the per-frame time embedding. Both zero-initialised, so they start silent."""
        width = self.time_proj.num_channels
        time_embed_dim = self.time_embedding.linear_2.out_features
        self.frame_proj = self.frame_embedding = self.caption_embedding = None
        if frame_position:
            self.frame_proj = Timesteps(width, True, 0)
            self.frame_embedding = TimestepEmbedding(width, time_embed_dim, act_fn=self.config.act_fn)
            zero_module(self.frame_embedding.linear_2)
        if caption:
            self.caption_embedding = zero_module(nn.Linear(cross_attention_dim, time_embed_dim))

    @staticmethod
    def _zero_conv(channels: int) -> nn.Conv2d:
        return zero_module(nn.Conv2d(channels, channels, 1))

    def with_config(self, **changes: Any) -> FrameRetentionBranch:
        """A branch of this one's config with `changes`, carrying every weight this one has. The
        additions above are zero-initialised, so a trained branch grown this way predicts what it
        predicted before (warm-starting a release with new conditioning)."""
        # Private keys dropped: `_use_default_values` would reset the changed keys to defaults.
        config = {k: v for k, v in self.config.items() if not k.startswith("_")}
        grown = type(self).from_config({**config, **changes})
        state = self.state_dict()
        if grown.conv_in.in_channels == self.conv_in.in_channels + 1:  # the frame-0 mask channel
            # the old input channels keep their weights; the mask's start at zero
            weight = torch.zeros_like(grown.conv_in.weight)
            weight[:, : self.conv_in.in_channels] = state["conv_in.weight"]
            state = state | {"conv_in.weight": weight}
        try:
            missing, unexpected = grown.load_state_dict(state, strict=False)
        except RuntimeError as e:  # a shape change: the weights do not carry over
            raise ValueError(f"config changes {changes} do not keep the branch's weights: {e}") from None
        if unexpected or any(not k.startswith(("frame_embedding.", "caption_embedding.")) for k in missing):
            lost = missing or unexpected
            raise ValueError(f"config changes {changes} do not keep the branch's weights: {lost}")
        if (grown.device, grown.dtype) != (self.device, self.dtype):
            grown.to(device=self.device, dtype=self.dtype)
        return grown.train(self.training)

    @classmethod
    def from_unet(
        cls,
        unet: UNet3DConditionModel,
        image_embed_channels: int = 4,
        image_encoder_channels: tuple[int, ...] | None = None,
        downscale_factor: int = 8,
        load_weights_from_unet: bool = True,
    ) -> FrameRetentionBranch:
        """Build the branch from a base UNet, copying its down path's configuration and weights."""
        cfg = unet.config
        if image_encoder_channels is None:
            widths = (16, 32, 96, 256, 256, 256)
            image_encoder_channels = widths[: int(math.log2(downscale_factor)) + 1]
        branch = cls(
            in_channels=cfg.in_channels,
            image_embed_channels=image_embed_channels,
            image_encoder_channels=tuple(image_encoder_channels),
            downscale_factor=downscale_factor,
            down_block_types=tuple(cfg.down_block_types),
            block_out_channels=tuple(cfg.block_out_channels),
            layers_per_block=cfg.layers_per_block,
            downsample_padding=cfg.downsample_padding,
            mid_block_scale_factor=cfg.mid_block_scale_factor,
            act_fn=cfg.act_fn,
            norm_num_groups=cfg.norm_num_groups,
            norm_eps=cfg.norm_eps,
            cross_attention_dim=cfg.cross_attention_dim,
            attention_head_dim=cfg.attention_head_dim,
            time_cond_proj_dim=cfg.time_cond_proj_dim,
        )
        if (branch.device, branch.dtype) != (unet.device, unet.dtype):
            branch.to(device=unet.device, dtype=unet.dtype)
        if load_weights_from_unet:
            branch.time_proj.load_state_dict(unet.time_proj.state_dict())
            branch.time_embedding.load_state_dict(unet.time_embedding.state_dict())
            branch.transformer_in.load_state_dict(unet.transformer_in.state_dict())
            branch.down_blocks.load_state_dict(unet.down_blocks.state_dict())
            branch.mid_block.load_state_dict(unet.mid_block.state_dict())
            # Input conv: the base weights on the latent channels; the image channels keep their
            # random init. The zero output convs already make a fresh branch add nothing, and a
            # second zero here would leave the image path without gradient until both moved.
            with torch.no_grad():
                branch.conv_in.weight[:, : cfg.in_channels].copy_(unet.conv_in.weight)
                branch.conv_in.bias.copy_(unet.conv_in.bias)
        return branch

    def set_attention_slice(self, slice_size: int | str | None) -> None:
        """Attention slicing for the branch's attention layers ('auto': half the heads per slice,
        'max': one head at a time, None: off), called by the pipeline's `enable_attention_slicing`
        beside the UNet's own."""
        from diffusers.models.attention_processor import Attention

        for module in self.modules():
            if isinstance(module, Attention):
                if slice_size is None:
                    module.set_attention_slice(None)
                    continue
                heads = module.heads
                size = {"auto": max(1, heads // 2), "max": 1}.get(slice_size, slice_size)
                module.set_attention_slice(min(int(size), heads))

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """Reference image (B, 3, H, W) in [-1, 1] -> features (B, C, H/f, W/f).

        Independent of the timestep and the noisy latents: samplers compute it once per video.
        """
        return self.image_encoder(image.to(dtype=self.dtype))

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        image_features: torch.Tensor,
        conditioning_scale: float = 1.0,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Residuals for the main UNet.

        Args:
            sample: noisy latents (B, C, F, h, w).
            timestep: scalar or (B,) timesteps.
            encoder_hidden_states: text context (B, L, D).
            image_features: `encode_image` output (B, C_img, h, w), broadcast over frames (or put
                at frame 0 alone, with `reference_first_frame`).
            conditioning_scale: multiplies every residual.
            cross_attention_kwargs: for the attention processors (as the UNet's argument).

        Returns:
            (down_block_residuals, mid_block_residual) in the main UNet's (B*F, C, h, w) layout.
        """
        batch, _, num_frames, height, width = sample.shape
        if image_features.shape[0] != batch or image_features.shape[-2:] != (height, width):
            raise ValueError(
                f"image features {tuple(image_features.shape)} do not match latents {tuple(sample.shape)}"
            )

        timesteps = timestep
        if not torch.is_tensor(timesteps):
            timesteps = torch.tensor([timesteps], device=sample.device)
        timesteps = timesteps.reshape(-1).to(sample.device).expand(batch)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=self.dtype))
        if self.caption_embedding is not None:  # mean over tokens: one vector per prompt
            emb = emb + self.caption_embedding(encoder_hidden_states.mean(dim=1).to(self.dtype))
        emb = emb.repeat_interleave(num_frames, dim=0)
        if self.frame_embedding is not None:  # rows are (batch, frame) in frame-major order
            frames = torch.arange(num_frames, device=sample.device)
            position = self.frame_embedding(self.frame_proj(frames).to(dtype=self.dtype))
            emb = emb + position.repeat(batch, 1)
        context = encoder_hidden_states.repeat_interleave(num_frames, dim=0)

        latents = sample.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, height, width)
        features = image_features.repeat_interleave(num_frames, dim=0)
        if self.config.reference_first_frame:
            first = (torch.arange(num_frames, device=sample.device) == 0).to(features.dtype)
            mask = first.repeat(batch).view(-1, 1, 1, 1)  # row b * F + f is frame f of video b
            features = torch.cat([features * mask, mask.expand(-1, 1, height, width)], dim=1)
        h = torch.cat([self.latent_conv(latents), features], dim=1)
        h = self.conv_in(h)
        h = self.transformer_in(
            h, num_frames=num_frames, cross_attention_kwargs=cross_attention_kwargs, return_dict=False
        )[0]

        skips = (h,)
        for block in self.down_blocks:
            if getattr(block, "has_cross_attention", False):
                h, res = self._run(block, h, emb, context, num_frames, cross_attention_kwargs)
            else:
                h, res = self._run(block, h, emb, None, num_frames)
            skips += res
        h = self._run(self.mid_block, h, emb, context, num_frames, cross_attention_kwargs)

        down = tuple(conv(s) * conditioning_scale for conv, s in zip(self.residual_convs, skips, strict=True))
        mid = self.mid_residual_conv(h) * conditioning_scale
        return down, mid

    def _run(self, block: nn.Module, h, emb, context, num_frames, cross_attention_kwargs=None):
        kwargs = {"num_frames": num_frames}
        if context is not None:
            kwargs["encoder_hidden_states"] = context
            kwargs["cross_attention_kwargs"] = cross_attention_kwargs
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return torch.utils.checkpoint.checkpoint(
                lambda x, e: block(x, e, **kwargs), h, emb, use_reentrant=False
            )
        return block(h, emb, **kwargs)
