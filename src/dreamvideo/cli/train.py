"""`dreamvideo train` and `dreamvideo data`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from .app import (
    cli,
    debug_option,
)


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--resume", is_flag=True, help="Continue from the latest checkpoint in the config's output_dir."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set optim.steps=100 (TOML value syntax).",
)
@click.option(
    "--export-checkpoint",
    "export_to",
    type=click.Path(path_type=Path),
    default=None,
    help="Do not train: export the latest checkpoint's EMA weights to this new folder "
    "(a pipeline, or a VAE for the vae stage), e.g. to evaluate a run that is still going.",
)
@debug_option
def train(
    config: Path, resume: bool, overrides: tuple[str, ...], export_to: Path | None, debug: bool
) -> None:
    """Train a stage (vae, t2v or i2v) from a TOML CONFIG; see configs/."""
    import tomllib

    from ..training.config import load_config
    from ..training.trainer import export_checkpoint
    from ..training.trainer import train as run_training

    values = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            values[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = raw  # a bare string
    if export_to is not None:
        click.echo(f"exported to {export_checkpoint(load_config(config, values), export_to)}")
        return
    summary = run_training(load_config(config, values), resume=resume)
    click.echo(json.dumps(summary))
    if summary["interrupted"]:
        raise SystemExit(130)


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
