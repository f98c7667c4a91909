"""`dreamvideo convert`: a text-to-video folder into a DreamVideo folder."""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..errors import UserError
from .app import (
    cli,
    debug_option,
)


@cli.command()
@click.option("--t2v", "t2v", required=True, type=click.Path(path_type=Path), help="Text-to-video folder.")
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="DreamVideo folder to write."
)
@click.option(
    "--image-embed-channels", type=int, default=4, show_default=True, help="Image feature channels."
)
@click.option("--frames", type=int, default=16, show_default=True, help="Default frames of the new model.")
@click.option("--fps", type=int, default=8, show_default=True, help="Default fps of the new model.")
@click.option("--image-scale", type=float, default=1.5, show_default=True, help="Default image guidance.")
@click.option("--text-scale", type=float, default=7.5, show_default=True, help="Default text guidance.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@click.option(
    "--reference-decoder",
    is_flag=True,
    help="Add a reference-aware decoder (decodes as the VAE until trained with the decoder stage).",
)
@click.option("--no-verify", is_flag=True, help="Skip the check that the output equals the base at init.")
@debug_option
def convert(
    t2v: Path,
    out: Path,
    image_embed_channels: int,
    frames: int,
    fps: int,
    image_scale: float,
    text_scale: float,
    overwrite: bool,
    reference_decoder: bool,
    no_verify: bool,
    debug: bool,
) -> None:
    """Build a DreamVideo folder from a text-to-video folder (ModelScope T2V layout)."""
    from ..limits import check_sampling_values

    check_sampling_values(frames, None, image_scale, text_scale)
    if fps < 1:
        raise UserError(f"fps must be a positive integer, got {fps}")
    from ..convert import convert_t2v

    start = time.perf_counter()
    report = convert_t2v(
        t2v,
        out,
        image_embed_channels=image_embed_channels,
        verify=not no_verify,
        overwrite=overwrite,
        reference_decoder=reference_decoder,
        default_num_frames=frames,
        default_fps=fps,
        default_image_guidance_scale=image_scale,
        default_text_guidance_scale=text_scale,
    )
    click.echo(f"wrote {report.output} ({time.perf_counter() - start:.1f} s)")
    click.echo(f"  base UNet:   {report.base_unet_parameters:,} parameters")
    click.echo(f"  branch:      {report.branch_parameters:,} parameters")
    click.echo(f"  trainable:   {report.trainable_parameters:,} (branch + temporal layers)")
    if report.max_abs_difference is not None:
        click.echo(f"  equals the base at initialisation (max |difference| {report.max_abs_difference:g})")
    if report.reference_decoder_parameters is not None:
        click.echo(f"  reference-aware decoder: {report.reference_decoder_parameters:,} parameters")
    if report.decoder_max_abs_difference is not None:
        difference = report.decoder_max_abs_difference
        click.echo(f"  it decodes as the VAE at initialisation (max |difference| {difference:g})")
