"""DreamVideo's noise predictor: the main 3D UNet plus the frame retention branch."""

from __future__ import annotations

from typing import Any

import torch
from diffusers.models.unets.unet_3d_condition import UNet3DConditionModel
from torch import nn

from .retention_branch import FrameRetentionBranch


class DreamVideoDenoiser(nn.Module):
    """eps(x_t, t | text, image) = UNet(x_t, t, text, residuals = branch(x_t, t, text, image)).

    One module so that training wraps both networks at once (DDP, accelerate). Its arguments
    take the UNet's names (`sample`, `timestep`, `encoder_hidden_states`).
    """

    def __init__(self, unet: UNet3DConditionModel, branch: FrameRetentionBranch):
        super().__init__()
        self.unet = unet
        self.branch = branch

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        image_features: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        conditioning_scale: float = 1.0,
        cross_attention_kwargs: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Pass either precomputed `image_features` (sampling) or the pixel `image` (training).
        `cross_attention_kwargs` reach the attention processors of both networks."""
        # A permuted (non-contiguous) view crashed the CPU conv3d backward of PyTorch 2.13 (segfault).
        sample = sample.contiguous()
        if conditioning_scale == 0:  # the branch's residuals would all be scaled to zero: skip it
            return self.unet(
                sample,
                timestep,
                encoder_hidden_states=encoder_hidden_states,
                cross_attention_kwargs=cross_attention_kwargs,
            ).sample
        if image_features is None:
            if image is None:
                raise ValueError("pass image_features or image")
            image_features = self.branch.encode_image(image)
        down, mid = self.branch(
            sample,
            timestep,
            encoder_hidden_states,
            image_features,
            conditioning_scale,
            cross_attention_kwargs,
        )
        return self.unet(
            sample,
            timestep,
            encoder_hidden_states=encoder_hidden_states,
            cross_attention_kwargs=cross_attention_kwargs,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
