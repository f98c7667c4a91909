"""The full-size base model's shapes (ModelScope T2V, `text-to-video-ms-1.7b` in diffusers layout).

Nothing is downloaded: these configs let the project build the real architecture with random
weights (parameter counts, memory estimates, GPU smoke tests) and a reduced-width copy of the
same layout for tests. `width_divisor` divides every channel width and the text width.
"""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

# unet/config.json of text-to-video-ms-1.7b (diffusers format).
UNET_CONFIG = {
    "act_fn": "silu",
    "attention_head_dim": 64,
    "block_out_channels": [320, 640, 1280, 1280],
    "cross_attention_dim": 1024,
    "down_block_types": [
        "CrossAttnDownBlock3D",
        "CrossAttnDownBlock3D",
        "CrossAttnDownBlock3D",
        "DownBlock3D",
    ],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 32,
    "up_block_types": ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
}
# vae/config.json: the Stable Diffusion VAE (f=8, 4 latent channels).
VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# text_encoder/config.json: OpenCLIP ViT-H/14's text tower as a CLIPTextModel.
TEXT_CONFIG = {
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "max_position_embeddings": 77,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "projection_dim": 512,
    "vocab_size": 49408,
}
# The noise schedule of ModelScope T2V (Stable Diffusion's), which every model here trains on.
NOISE_SCHEDULE = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
}
SCHEDULER_CONFIG = {
    **NOISE_SCHEDULE,
    "clip_sample": False,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def unet_config(width_divisor: int = 1) -> dict:
    config = dict(UNET_CONFIG)
    config["block_out_channels"] = [c // width_divisor for c in UNET_CONFIG["block_out_channels"]]
    config["cross_attention_dim"] = UNET_CONFIG["cross_attention_dim"] // width_divisor
    config["attention_head_dim"] = max(8, UNET_CONFIG["attention_head_dim"] // width_divisor)
    config["norm_num_groups"] = min(32, config["block_out_channels"][0] // 2)
    return config


def build_unet(width_divisor: int = 1, seed: int = 0) -> UNet3DConditionModel:
    torch.manual_seed(seed)
    return UNet3DConditionModel.from_config(unet_config(width_divisor))  # tolerates the file's extra keys


def build_t2v(tokenizer: CLIPTokenizer, width_divisor: int = 8, seed: int = 0) -> TextToVideoSDPipeline:
    """A random-weight text-to-video pipeline of ModelScope's layout, every width / `width_divisor`
    (the VAE and text tower reduced likewise, to 2 text layers). The tokenizer is the caller's
    (a CLIP tokenizer folder: ModelScope's own is CLIP's BPE)."""
    torch.manual_seed(seed)
    vae_config = dict(VAE_CONFIG)
    vae_config["block_out_channels"] = [max(16, c // width_divisor) for c in VAE_CONFIG["block_out_channels"]]
    vae_config["norm_num_groups"] = min(32, vae_config["block_out_channels"][0] // 2)
    vae = AutoencoderKL.from_config(vae_config)
    text = dict(TEXT_CONFIG)
    text.update(
        hidden_size=TEXT_CONFIG["hidden_size"] // width_divisor,
        intermediate_size=TEXT_CONFIG["intermediate_size"] // width_divisor,
        num_attention_heads=max(1, TEXT_CONFIG["num_attention_heads"] // width_divisor),
        num_hidden_layers=TEXT_CONFIG["num_hidden_layers"] if width_divisor == 1 else 2,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return TextToVideoSDPipeline(
        vae=vae,
        text_encoder=CLIPTextModel(CLIPTextConfig(**text)),
        tokenizer=tokenizer,
        unet=build_unet(width_divisor, seed),
        scheduler=DDIMScheduler(**SCHEDULER_CONFIG),
    )


def build_denoiser(width_divisor: int = 1, image_embed_channels: int = 4, seed: int = 0):
    """ModelScope's UNet (random weights) + a retention branch copied from it, the DreamVideo
    trainable set marked (branch + temporal layers): what full-size training optimises."""
    from .denoiser import DreamVideoDenoiser
    from .retention_branch import FrameRetentionBranch
    from .trainable import mark_trainable

    unet = build_unet(width_divisor, seed)
    branch = FrameRetentionBranch.from_unet(
        unet, image_embed_channels=image_embed_channels, downscale_factor=8
    )
    mark_trainable(unet, branch)
    return DreamVideoDenoiser(unet, branch)
