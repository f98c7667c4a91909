"""How pixel sizes map to latent sizes: facts of a model's configs that the pipeline, training,
conversion and the memory budget all need. Torch-free, so the budget can read them from a
folder's JSON before torch loads. Configs are diffusers' (dict-like) or the parsed JSON."""

from __future__ import annotations

from collections.abc import Mapping


def vae_scale_factor(vae_config: Mapping) -> int:
    """Pixels per latent side: 2 ** (VAE levels - 1), as diffusers' pipelines compute it."""
    return 2 ** (len(vae_config["block_out_channels"]) - 1)


def unet_downscale(unet_config: Mapping) -> int:
    """How many times the UNet halves a latent side: latent sides must be multiples of it."""
    return 2 ** (len(unet_config["block_out_channels"]) - 1)
