"""`dreamvideo web`."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..errors import UserError
from .app import (
    cli,
    debug_option,
    model_option,
)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0: all).")
@click.option("--port", type=int, default=None, help="Port (default: the first free one from 7860).")
@model_option
@click.option("--concurrency", type=int, default=1, show_default=True, help="Videos generated at once.")
@click.option("--queue-size", type=int, default=64, show_default=True, help="Requests waiting at most.")
@click.option("--max-upload-mb", type=float, default=20, show_default=True, help="Upload size limit.")
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option(
    "--lora-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder of LoRA adapters the page can switch on (each a folder or .safetensors file).",
)
@debug_option
def web(
    host: str,
    port: int | None,
    model: Path | None,
    concurrency: int,
    queue_size: int,
    max_upload_mb: float,
    device: str | None,
    lora_dir: Path | None,
    debug: bool,
) -> None:
    """Serve the Gradio web app (binds 127.0.0.1; never a public share link)."""
    import importlib.util

    if port is not None and not 1 <= port <= 65535:
        raise UserError(f"port must be from 1 to 65535, got {port}")
    if concurrency < 1 or queue_size < 1 or not max_upload_mb > 0:
        raise UserError("--concurrency and --queue-size must be at least 1, --max-upload-mb above 0")
    if importlib.util.find_spec("gradio") is None:  # an optional extra: say how to get it
        raise UserError("the web app needs gradio, which is not installed: pip install -e '.[web]'")
    adapters = _adapters_in(lora_dir) if lora_dir is not None else None
    import torch

    from ..web import launch

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}: anyone who can reach this machine can use the app", err=True)
    from ..pipeline import load_pipeline

    pipe = load_pipeline(model).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    options = {"concurrency": concurrency, "queue_size": queue_size, "max_upload_mb": max_upload_mb}
    launch(pipe, host, port, **options, adapters=adapters)


def _adapters_in(folder: Path) -> dict[str, Path]:
    """name -> path of every adapter in `folder`, each read and checked before the model loads."""
    from ..lora import find_adapters, read_adapter, require_peft

    require_peft()
    adapters: dict[str, Path] = {}
    for path in find_adapters(folder):
        name = re.sub(r"\W+", "_", read_adapter(path).name)
        if name in adapters:
            raise UserError(f"two adapters in {folder} are named {name!r}: rename one")
        adapters[name] = path
    if not adapters:
        raise UserError(f"no LoRA adapter in {folder}")
    return adapters
