from .denoiser import DreamVideoDenoiser
from .retention_branch import FrameRetentionBranch, ImageConditioningEncoder
from .trainable import count_parameters, is_temporal_parameter, mark_trainable

__all__ = [
    "DreamVideoDenoiser",
    "FrameRetentionBranch",
    "ImageConditioningEncoder",
    "count_parameters",
    "is_temporal_parameter",
    "mark_trainable",
]
