"""`dreamvideo train`."""

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
    """Train a stage (vae, t2v, i2v or decoder) from a TOML CONFIG; see configs/."""
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
