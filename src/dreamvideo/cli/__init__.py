"""The `dreamvideo` command line, one module per command group (`app` holds the group itself,
its shared options and `main`); importing this package registers every command."""

from . import convert, evaluate, generate, serve, train  # noqa: F401  (each registers its commands)
from .app import DTYPES, SCHEDULERS, cli, main, set_scheduler
from .evaluate import eval_synthetic

__all__ = ["DTYPES", "SCHEDULERS", "cli", "eval_synthetic", "main", "set_scheduler"]
