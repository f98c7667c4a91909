"""A training clip and the protocol of its sources (index -> clip), shared by the synthetic
and the real-video sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # annotations only: the synthetic generator is not needed to name a clip
    from .synthetic import ClipSpec


@dataclass
class Clip:
    frames: np.ndarray  # (F, H, W, 3) uint8
    caption: str
    spec: ClipSpec | None = None  # synthetic clips: what was rendered


class ClipSource(Protocol):
    def clip(self, index: int) -> Clip: ...
