"""Which parameters DreamVideo trains (docs/method.md, "Frame retention branch").

The retention branch (with its image and latent input convs) and the main UNet's temporal
layers train; the main UNet's spatial layers, the VAE and the text encoder stay frozen.
"""

from __future__ import annotations

import torch
from torch import nn

# Module names of the temporal layers in diffusers' UNet3DConditionModel.
TEMPORAL_LAYER_NAMES = ("transformer_in", "temp_convs", "temp_attentions")


def is_temporal_parameter(name: str) -> bool:
    return any(part in TEMPORAL_LAYER_NAMES for part in name.split("."))


def mark_trainable(unet: nn.Module, branch: nn.Module, train_all: bool = False) -> list[nn.Parameter]:
    """Set `requires_grad` on the DreamVideo trainable set and return those parameters.

    With `train_all`, the main UNet's spatial layers train too (an ablation option).
    """
    branch.requires_grad_(True)
    for name, param in unet.named_parameters():
        param.requires_grad_(train_all or is_temporal_parameter(name))
    return [p for p in branch.parameters()] + [p for p in unet.parameters() if p.requires_grad]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def checkpoint_unet_blocks(unet: nn.Module) -> None:
    """Gradient checkpointing for a UNet3DConditionModel (diffusers does not offer it for this
    class): each down, mid and up block recomputes its activations in the backward pass."""
    blocks = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    for block in blocks:
        if block is None or getattr(block, "_dreamvideo_checkpointed", False):
            continue
        forward = block.forward

        def checkpointed(*args, _forward=forward, **kwargs):
            if torch.is_grad_enabled():
                return torch.utils.checkpoint.checkpoint(_forward, *args, use_reentrant=False, **kwargs)
            return _forward(*args, **kwargs)

        block.forward = checkpointed
        block._dreamvideo_checkpointed = True
