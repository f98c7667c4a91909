"""DreamVideo: high-fidelity image-to-video generation with text control (arXiv 2312.03018)."""

import os

# Never reach a model hub: every model loads from a local folder or an installed package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from .errors import UserError
from .guidance import GuidanceMode, double_condition_cfg
from .loading import default_model_dir, load_pipeline
from .models import DreamVideoDenoiser, FrameRetentionBranch, mark_trainable
from .pipeline import DreamVideoPipeline, DreamVideoPipelineOutput

__version__ = "0.1.0"

__all__ = [
    "DreamVideoDenoiser",
    "DreamVideoPipeline",
    "DreamVideoPipelineOutput",
    "FrameRetentionBranch",
    "GuidanceMode",
    "UserError",
    "default_model_dir",
    "double_condition_cfg",
    "load_pipeline",
    "mark_trainable",
]
