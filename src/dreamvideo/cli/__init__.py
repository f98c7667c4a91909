"""The `dreamvideo` command line: one module per command, named after it (a group's subcommands
with it); `app` holds the group itself, its shared options and `main`. Importing this package
registers every command."""

from . import bench, convert, data, evaluate, generate, info, train, web  # noqa: F401  (each registers its commands)
from .app import DTYPES, SCHEDULERS, cli, main, set_scheduler
from .evaluate import eval_synthetic

__all__ = ["DTYPES", "SCHEDULERS", "cli", "eval_synthetic", "main", "set_scheduler"]
