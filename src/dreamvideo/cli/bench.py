"""`dreamvideo bench`."""

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
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@model_option
@click.option("--num", type=int, default=26, show_default=True, help="Held-out clips for the comparison.")
@click.option("--naive-steps", type=int, default=50, show_default=True, help="DDIM steps of the naive path.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's, one per core).")
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    default=None,
    help="Reference image of the README command's runs (default: examples/cat.png).",
)
@click.option("--smoke", is_flag=True, help="Every measurement at toy sizes, in seconds (for tests).")
@debug_option
def bench(
    out_dir: Path,
    model: Path | None,
    num: int,
    naive_steps: int,
    threads: int | None,
    image: Path | None,
    smoke: bool,
    debug: bool,
) -> None:
    """Measure speed, memory, FLOPs and start-up against a naive sampler and diffusers' pipeline.

    Writes OUT/bench.json, OUT/bench.md and OUT/scaling.png (docs/performance.md)."""
    if num < 1 or naive_steps < 1:
        raise UserError("--num and --naive-steps must be at least 1")
    if threads is not None and not 1 <= threads <= 1024:
        raise UserError(f"--threads must be from 1 to 1024, got {threads}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out is a file, not a folder: {out_dir}")
    import torch

    from ..benchmarks.suite import README_IMAGE, BenchSettings, run_benchmark
    from ..io.images import load_image
    from ..pipeline import load_pipeline

    image = image or README_IMAGE
    if not image.is_file():
        raise UserError(f"no example image at {image}: pass --image PATH")
    load_image(image)  # an unreadable image fails here, not after minutes of measuring
    if threads is not None:
        torch.set_num_threads(threads)
    load_pipeline(model)  # a wrong --model fails here, before any measurement
    settings = BenchSettings.smoke(image=image) if smoke else BenchSettings(image=image)
    if not smoke:
        settings.num_clips, settings.naive_steps = num, naive_steps
    results = run_benchmark(model, out_dir, settings, log=lambda m: click.echo(m, err=True))
    click.echo(
        f"default {results['seconds_per_clip']:.2f} s/clip, naive {results['naive_seconds_per_clip']:.2f} "
        f"s/clip ({results['speedup_vs_naive']:.2f}x), MFU {results['mfu']:.1%}; "
        f"wrote {out_dir / 'bench.json'}"
    )
