"""Training memory per GPU, estimated from parameter counts and measured activation counts.

Activations are measured, not guessed: the bytes of every tensor autograd saves for backward
during one forward pass (parameters excluded, each storage counted once). Weights, gradients,
Adam moments and the EMA copy follow from parameter counts and how this project trains:
accelerate's mixed precision is autocast, so weights stay fp32; only the trainable set has
gradients, AdamW moments and an EMA copy; ZeRO-2 shards gradients and moments across GPUs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

GiB = 1024**3


def saved_activation_bytes(forward: Callable[[], torch.Tensor], parameters: set[int] | None = None) -> int:
    """Bytes autograd keeps for backward while `forward()` runs (each storage once)."""
    seen: dict[int, int] = {}
    skip = parameters or set()

    def pack(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        pointer = storage.data_ptr()
        if pointer not in skip and tensor.device.type != "meta":
            seen[pointer] = max(seen.get(pointer, 0), storage.nbytes())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward()
    return sum(seen.values())


def parameter_pointers(module: torch.nn.Module) -> set[int]:
    return {p.untyped_storage().data_ptr() for p in module.parameters()}


@dataclass
class TrainingMemory:
    """Bytes per GPU for one training setting."""

    weights: float
    gradients: float
    optimizer: float
    ema: float
    activations: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.ema + self.activations


def training_memory(
    total_parameters: int,
    trainable_parameters: int,
    activation_bytes: float,
    gpus: int = 1,
    zero_stage: int = 0,
) -> TrainingMemory:
    """fp32 weights (autocast mixed precision), fp32 gradients + AdamW moments + EMA for the
    trainable set; ZeRO-2 divides gradients and moments by the number of GPUs."""
    shard = gpus if zero_stage >= 2 else 1
    return TrainingMemory(
        weights=4.0 * total_parameters,
        gradients=4.0 * trainable_parameters / shard,
        optimizer=8.0 * trainable_parameters / shard,
        ema=4.0 * trainable_parameters,
        activations=float(activation_bytes),
    )
