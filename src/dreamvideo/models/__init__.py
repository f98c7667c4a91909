from .denoiser import DreamVideoDenoiser
from .patch_autoencoder import PatchAutoencoder
from .reference_decoder import ReferenceAwareDecoder
from .retention_branch import FrameRetentionBranch, ImageConditioningEncoder
from .trainable import checkpoint_unet_blocks, count_parameters, is_temporal_parameter, mark_trainable

__all__ = [
    "DreamVideoDenoiser",
    "FrameRetentionBranch",
    "ImageConditioningEncoder",
    "PatchAutoencoder",
    "ReferenceAwareDecoder",
    "checkpoint_unet_blocks",
    "count_parameters",
    "is_temporal_parameter",
    "mark_trainable",
]
