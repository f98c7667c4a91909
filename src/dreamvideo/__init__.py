"""DreamVideo: high-fidelity image-to-video generation with text control (arXiv 2312.03018)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import UserError

__version__ = "0.1.0"

# Public name -> submodule. Loaded on first use (PEP 562), so `dreamvideo --help` and a
# refused flag never import torch or diffusers (docs/performance.md, start-up).
_LAZY = {
    "GuidanceMode": "limits",
    "double_condition_cfg": "guidance",
    "default_model_dir": "loading",
    "load_pipeline": "pipeline",
    "DreamVideoDenoiser": "models",
    "FrameRetentionBranch": "models",
    "mark_trainable": "models",
    "ReferenceAwareDecoder": "models",
    "PatchAutoencoder": "models",
    "DreamVideoPipeline": "pipeline",
    "DreamVideoPipelineOutput": "pipeline",
}

__all__ = [
    "DreamVideoDenoiser",
    "DreamVideoPipeline",
    "DreamVideoPipelineOutput",
    "FrameRetentionBranch",
    "GuidanceMode",
    "PatchAutoencoder",
    "ReferenceAwareDecoder",
    "UserError",
    "default_model_dir",
    "double_condition_cfg",
    "load_pipeline",
    "mark_trainable",
]

if TYPE_CHECKING:
    from .guidance import double_condition_cfg
    from .limits import GuidanceMode
    from .loading import default_model_dir
    from .models import (
        DreamVideoDenoiser,
        FrameRetentionBranch,
        PatchAutoencoder,
        ReferenceAwareDecoder,
        mark_trainable,
    )
    from .pipeline import DreamVideoPipeline, DreamVideoPipelineOutput, load_pipeline


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
