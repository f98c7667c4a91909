"""`dreamvideo data`."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UserError
from .app import (
    cli,
    debug_option,
)


@cli.group()
def data() -> None:
    """Datasets: write the procedural motion clips to disk."""


@data.command("synth")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New folder to write.")
@click.option("--num", type=int, required=True, help="Number of clips.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", type=click.Choice(["train", "heldout"]), default="train", show_default=True)
@click.option("--size", type=int, default=64, show_default=True, help="Frame side in pixels.")
@click.option("--frames", type=int, default=16, show_default=True)
@click.option("--fps", type=int, default=8, show_default=True)
@click.option(
    "--action",
    default=None,
    help="Every clip this action (e.g. move_left; move_up_right is one the default model never saw).",
)
@debug_option
def data_synth(
    out: Path,
    num: int,
    seed: int,
    split: str,
    size: int,
    frames: int,
    fps: int,
    action: str | None,
    debug: bool,
) -> None:
    """Write procedural clips (mp4) + captions.csv + motion.jsonl (ground truth)."""
    from ..data.synthetic import write_dataset

    if size < 16 or frames < 2:
        raise UserError("--size must be at least 16 and --frames at least 2")
    path = write_dataset(out, num, seed, split, size, frames, fps, action=action)
    click.echo(f"wrote {num} clips to {path}")
