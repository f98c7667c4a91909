"""`dreamvideo info`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from .app import (
    cli,
    debug_option,
    model_option,
)


@cli.command()
@model_option
@click.option(
    "--lora-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also list the LoRA adapters in this folder, and whether each was trained on this model.",
)
@debug_option
def info(model: Path | None, lora_dir: Path | None, debug: bool) -> None:
    """Show a model's components, parameter counts, resolution and frames (and a folder's adapters)."""
    from ..loading import default_model_dir
    from ..models import count_parameters
    from ..pipeline import load_pipeline

    pipe = load_pipeline(model)
    height, width = pipe.default_size
    click.echo(f"model: {model or default_model_dir()}")
    for name in (
        "vae",
        "text_encoder",
        "tokenizer",
        "unet",
        "retention_branch",
        "scheduler",
        "reference_decoder",
    ):
        component = getattr(pipe, name, None)
        if component is None:
            click.echo(f"  {name:17s} none (the VAE decodes)")
            continue
        line = f"  {name:17s} {type(component).__name__}"
        if isinstance(component, __import__("torch").nn.Module):
            line += f"  {count_parameters(component):,} parameters"
        click.echo(line)
    cfg = pipe.config
    click.echo(f"resolution: {width}x{height} (multiples of {pipe.spatial_multiple})")
    click.echo(f"frames: {cfg.default_num_frames} at {cfg.default_fps} fps")
    click.echo(f"latents: {pipe.unet.config.in_channels} channels, VAE downscale {pipe.vae_scale_factor}")
    click.echo(
        f"text context: {pipe.tokenizer.model_max_length} tokens x {pipe.unet.config.cross_attention_dim}"
    )
    click.echo(
        f"guidance defaults: image {cfg.default_image_guidance_scale}, text {cfg.default_text_guidance_scale}"
    )
    sampler = f"{pipe.default_num_inference_steps} steps, {type(pipe.scheduler).__name__}"
    pinned = ", first frame pinned" if pipe.default_pin_first_frame else ""
    click.echo(f"sampling: {sampler}, strength {pipe.default_strength}{pinned}")
    if lora_dir is not None:
        _list_adapters(pipe, lora_dir)


def _list_adapters(pipe, folder: Path) -> None:
    from ..lora import base_fingerprint, describe_adapter, find_adapters, read_adapter

    adapters = find_adapters(folder)
    click.echo(f"LoRA adapters in {folder}: {len(adapters) or 'none'}")
    fingerprint = base_fingerprint(pipe)
    for path in adapters:
        try:
            adapter = read_adapter(path)
        except UserError as error:
            click.echo(f"  {path.name}: unusable ({error})")
            continue
        recorded = adapter.info.get("base_fingerprint")
        fits = (
            "unknown base"
            if not recorded
            else ("fits this model" if recorded == fingerprint else "another base")
        )
        click.echo(f"  {describe_adapter(adapter)}; {fits}")
