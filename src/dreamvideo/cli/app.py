"""The `dreamvideo` command line: the group, its shared options and `main`.

Exit codes: 0 success, 2 the user's mistake (one line on stderr, no traceback, no output
file), 1 an internal error, 130 / 143 / 129 stopped by SIGINT / SIGTERM / SIGHUP (whatever was
being written atomically is removed, as on SIGINT). `--debug` (anywhere on the line) shows
tracebacks.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import click

from ..errors import UserError

# name -> (diffusers class, config overrides). Euler-a and PNDM have no x-prediction ("sample").
SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "ddpm": ("DDPMScheduler", {}),
}
DTYPES = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}  # torch dtype names, resolved lazily


def _quiet(module_name: str) -> None:
    """Keep a library's chatter (load reports, loading bars) off the user's terminal."""
    library = sys.modules[module_name]
    library.utils.logging.set_verbosity_error()
    library.utils.logging.disable_progress_bar()


class _QuietOnImport(importlib.abc.MetaPathFinder):
    """Quiets diffusers and transformers the moment something first imports them, without
    importing them itself: a refused flag costs no library import (and no torch)."""

    def __init__(self, names: set[str]):
        self.pending = set(names)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.pending:
            return None
        self.pending.discard(fullname)  # the lookup below then passes this finder by
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _quiet(fullname)

        spec.loader.exec_module = exec_module
        return spec


def _quiet_libraries() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("dreamvideo").setLevel(logging.INFO)
    pending = set()
    for name in ("diffusers", "transformers"):
        if name in sys.modules:
            _quiet(name)
        else:
            pending.add(name)
    if pending and not any(isinstance(f, _QuietOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietOnImport(pending))


def set_scheduler(pipe, name: str) -> None:
    """Swap the pipeline's scheduler for one of SCHEDULERS, keeping the noise schedule."""
    import diffusers

    class_name, overrides = SCHEDULERS[name]
    prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
    if prediction == "sample" and name in ("euler-a", "pndm"):
        others = ", ".join(n for n in SCHEDULERS if n not in ("euler-a", "pndm"))
        raise UserError(f"--scheduler {name} cannot sample this model (x-prediction); use one of {others}")
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)


class _Command(click.Command):
    """Quiets the libraries once the arguments parsed: `--help` and refused flags stay light."""

    def invoke(self, ctx: click.Context):
        _quiet_libraries()
        return super().invoke(ctx)


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Groups too


debug_option = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
model_option = click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=None,
    help="DreamVideo model folder (default: the shipped model).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dreamvideo")
@debug_option
def cli(debug: bool) -> None:
    """DreamVideo: image-to-video generation with text control."""


_lora_options = [
    click.option(
        "--lora",
        "loras",
        multiple=True,
        type=click.Path(path_type=Path),
        help="A LoRA adapter (its folder or .safetensors file); repeat to combine adapters.",
    ),
    click.option(
        "--lora-scale",
        "lora_scales",
        multiple=True,
        type=float,
        help="Adapter weight (default 1): one for every --lora, or one per --lora in order.",
    ),
]


def lora_options(f):
    for option in reversed(_lora_options):
        f = option(f)
    return f


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the command is, so that every atomic writer cleans up
    exactly as on SIGINT (they catch BaseException). A KeyboardInterrupt, so code that stops
    cleanly on Ctrl-C (the web server) stops the same way."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise `Terminated` while the command runs (the training loop installs
    its own handler, which checkpoints first); the previous handlers come back after."""
    previous = {}
    with contextlib.suppress(ValueError):  # not the main thread: the host program owns signals
        for signum in (signal.SIGTERM, signal.SIGHUP):
            previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    # The command never reaches a model hub (every model is a local folder or an installed
    # package); set before any hub library loads, for this process only. The library itself
    # relies on local_files_only instead of changing a host program's environment.
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(name, "1")
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args or os.environ.get("DREAMVIDEO_DEBUG") == "1"
    try:
        with stop_signals_interrupt():
            cli.main(args=args, prog_name="dreamvideo", standalone_mode=False)
    except Terminated as e:
        click.echo(f"stopped by {signal.Signals(e.signum).name}", err=True)
        return 128 + e.signum
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:  # usage errors: click's own message, exit 2
        e.show()
        return e.exit_code
    except click.Abort as e:  # click turns a KeyboardInterrupt (and so `Terminated`) into Abort
        if isinstance(e.__cause__, Terminated):
            click.echo(f"stopped by {signal.Signals(e.__cause__.signum).name}", err=True)
            return 128 + e.__cause__.signum
        click.echo("aborted", err=True)
        return 130
    except UserError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as e:
        if debug:
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
