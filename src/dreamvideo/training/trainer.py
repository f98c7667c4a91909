"""The training loop, on accelerate: one process on CPU, or several via `accelerate launch` /
`torchrun` (DDP; gloo on CPU).

Determinism: clip `i` of the data is a pure function of `i`, and every random draw of a step
(noise, timesteps, dropout) comes from a generator seeded by (seed, rank, step, micro-step).
So `--resume` continues exactly where the checkpoint left off, and ranks never see the same clip.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import shutil
import signal
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from diffusers.optimization import get_scheduler
from tqdm.auto import tqdm

from ..errors import UserError
from .checkpoint import latest_checkpoint, load_checkpoint, resume_candidates, save_checkpoint
from .config import TrainConfig
from .stages import STAGES


class EMA:
    """Exponential moving average of parameters, with the usual warm-up of the decay."""

    def __init__(self, params: list[torch.nn.Parameter], decay: float):
        self.decay = decay
        self.shadow = [p.detach().clone().float() for p in params]

    @torch.no_grad()
    def update(self, params: list[torch.nn.Parameter], step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        # One fused call, not one per tensor: on a GPU the tiny model's step is launch-bound.
        torch._foreach_lerp_(self.shadow, [p.detach().float() for p in params], 1 - decay)

    @torch.no_grad()
    def copy_to(self, params: list[torch.nn.Parameter]) -> None:
        for s, p in zip(self.shadow, params, strict=True):
            p.copy_(s.to(p.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {str(i): s for i, s in enumerate(self.shadow)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if len(state) != len(self.shadow):
            raise UserError("checkpoint EMA does not match the model's trainable parameters")
        self.shadow = [state[str(i)].float() for i in range(len(self.shadow))]


class _StopFlag:
    """SIGINT / SIGTERM ask the loop to checkpoint and leave at the end of the current step."""

    def __init__(self):
        self.signal: int | None = None

    def __enter__(self):
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self.previous.items():
            signal.signal(s, handler)


def step_generator(
    seed: int, rank: int, step: int, micro: int, device: torch.device | str = "cpu"
) -> torch.Generator:
    """The random stream of one micro-batch (noise, timesteps, dropout), on the training device:
    noise drawn on a CPU beside a GPU costs more than the GPU's whole step for small models."""
    return torch.Generator(device).manual_seed(((seed * 1_000_003 + rank) * 10_000_019 + step) * 97 + micro)


def train(config: TrainConfig, resume: bool = False, max_steps: int | None = None) -> dict:
    """Run (or resume) a stage. `max_steps` stops early (tests); returns a summary dict."""
    run = _Run(config)  # 1. set-up: stage, optimiser, schedule, EMA
    try:
        start_step = run.resume() if resume else run.check_fresh_start()  # 2. resume
        run.write_config(start_step)
        steps = config.optim.steps
        end_step = steps if max_steps is None else min(steps, start_step + max_steps)
        done, stopped_by = run.loop(start_step, end_step)  # 3. the loop
        return run.finish(start_step, done, stopped_by)  # 4. summary, export
    finally:
        run.stage.close()  # render workers, if any


class _Run:
    """One training run's state; `train` reads as its four steps."""

    def __init__(self, config: TrainConfig):
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.config = config
        optim = self.optim = config.optim
        # Without cpu=True, accelerate treats a multi-process CPU launch (torchrun) as one process
        # per rank, each training alone: gloo data parallelism needs it said.
        accelerator = Accelerator(mixed_precision=optim.mixed_precision, cpu=not torch.cuda.is_available())
        self.accelerator = accelerator
        torch.manual_seed(config.seed)  # model initialisation, identical on every rank
        with accelerator.main_process_first():  # rank 0 builds shared files (latent cache) first
            self.stage = STAGES[config.stage](config, accelerator.device)
        self.rank, self.world = accelerator.process_index, accelerator.num_processes
        self.stage.render_in_workers(config.data.workers, stride=self.world * optim.batch_size)
        self.params = self.stage.trainable_parameters()
        optimizer = torch.optim.AdamW(
            self.params,
            lr=optim.lr,
            weight_decay=optim.weight_decay,
            fused=accelerator.device.type == "cuda" or None,  # one kernel for the whole update
        )
        self.lr_scheduler = get_scheduler(
            optim.lr_schedule, optimizer, num_warmup_steps=optim.warmup_steps, num_training_steps=optim.steps
        )
        self.module, self.optimizer = accelerator.prepare(self.stage.module, optimizer)
        self.ema = EMA(self.params, optim.ema_decay)
        self.output_dir = Path(config.output_dir)
        self.checkpoints = self.output_dir / "checkpoints"
        self.log_path = self.output_dir / "loss.csv"
        self.seconds_before = 0.0  # training time of earlier runs, so resumed logs continue it
        self.saved_seconds: float | None = None  # the training time the last checkpoint holds
        self.started = time.time()  # reset when the loop starts

    def check_fresh_start(self) -> int:
        if latest_checkpoint(self.checkpoints) is not None:
            raise UserError(
                f"{self.checkpoints} already has checkpoints: pass --resume, or use another output_dir"
            )
        return 0

    def resume(self) -> int:
        """Restore the newest readable checkpoint; returns its step."""
        path, state = _readable_checkpoint(self.checkpoints, self.accelerator.print)
        _restore_weights(self.accelerator.unwrap_model(self.module), self.ema, state, path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["trainer"]["lr_scheduler"])
        torch.set_rng_state(state["rng"])
        self.seconds_before = float(state["trainer"].get("seconds", 0.0))  # absent in older checkpoints
        start_step = state["trainer"]["step"]
        self.accelerator.print(f"resumed from {path} at step {start_step}")
        return start_step

    def write_config(self, start_step: int) -> None:
        if not self.accelerator.is_main_process:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        described = {
            "config_path": self.config.config_path,
            **self.stage.describe(),
            "world_size": self.world,
        }
        (self.output_dir / "config.json").write_text(json.dumps(described, indent=2))
        _truncate_log(self.log_path, start_step)

    def training_seconds(self) -> float:
        return round(self.seconds_before + time.time() - self.started, 1)

    def loop(self, start_step: int, end_step: int) -> tuple[int, int | str | None]:
        """Steps until `end_step` or a stop signal; returns (steps done, what stopped it)."""
        config, accelerator = self.config, self.accelerator
        progress = tqdm(
            total=self.optim.steps,
            initial=start_step,
            disable=not accelerator.is_main_process,
            desc=f"train {config.stage}",
            dynamic_ncols=True,
        )
        self.module.train()
        self.started = time.time()
        self.last_loss, stopped_by, done = math.nan, None, start_step
        main = accelerator.is_main_process
        with (
            _StopFlag() as stop,
            open(self.log_path, "a", newline="") if main else contextlib.nullcontext() as log,
        ):
            writer = csv.writer(log) if log else None
            for step in range(start_step, end_step):
                self.last_loss = self.train_step(step)
                done = step + 1
                lr = self.lr_scheduler.get_last_lr()[0]
                progress.update(1)
                progress.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{lr:.2e}")
                if writer and (done % config.log_every == 0 or done == end_step):
                    writer.writerow(
                        [done, f"{self.last_loss:.6f}", f"{lr:.3e}", f"{self.training_seconds():.1f}"]
                    )
                    log.flush()
                if not math.isfinite(self.last_loss):
                    raise RuntimeError(f"loss is {self.last_loss} at step {done}: lower the learning rate")
                if _any_rank_stopped(accelerator, stop.signal):  # every rank stops at the same step
                    stopped_by = stop.signal or "on another rank"
                    self.save(done)
                    break
                if done % config.checkpoint_every == 0 or done == end_step:
                    self.save(done)
        progress.close()
        return done, stopped_by

    def train_step(self, step: int) -> float:
        """One optimiser step over `grad_accum` micro-batches; returns the loss averaged over ranks."""
        optim, accelerator = self.optim, self.accelerator
        total = 0.0
        for micro in range(optim.grad_accum):
            first = ((step * optim.grad_accum + micro) * self.world + self.rank) * optim.batch_size
            batch = self.stage.make_batch(list(range(first, first + optim.batch_size)))
            sync = micro == optim.grad_accum - 1
            with (
                contextlib.nullcontext() if sync else accelerator.no_sync(self.module),
                accelerator.autocast(),
            ):
                generator = step_generator(self.config.seed, self.rank, step, micro, accelerator.device)
                loss = self.stage.loss(self.module, batch, generator)
                accelerator.backward(loss / optim.grad_accum)
            total += loss.detach().float() / optim.grad_accum
        if optim.max_grad_norm > 0:
            accelerator.clip_grad_norm_(self.params, optim.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.params, step)
        return accelerator.reduce(total, "mean").item()

    def save(self, step: int) -> Path | None:
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        path = None
        if accelerator.is_main_process:
            trainer_state = {
                "step": step,
                "samples": step * self.optim.batch_size * self.optim.grad_accum * self.world,
                "lr_scheduler": self.lr_scheduler.state_dict(),
                "world_size": self.world,
                "seconds": self.training_seconds(),
            }
            self.saved_seconds = trainer_state["seconds"]
            path = save_checkpoint(
                self.checkpoints,
                step,
                accelerator.unwrap_model(self.module).state_dict(),
                self.ema.state_dict(),
                self.optimizer.state_dict(),
                trainer_state,
                self.config.keep_checkpoints,
            )
        accelerator.wait_for_everyone()
        return path

    def finish(self, start_step: int, done: int, stopped_by: int | str | None) -> dict:
        """The run's summary; a finished run exports its EMA weights."""
        digest = hashlib.sha1(b"".join(p.detach().float().cpu().numpy().tobytes() for p in self.params))
        summary = {
            "stage": self.config.stage,
            "start_step": start_step,
            "step": done,
            "param_digest": digest.hexdigest(),
            "loss": self.last_loss,
            "seconds": round(time.time() - self.started, 1),  # this run
            # since step 0, over every resume: what the last checkpoint holds (a run ends on one),
            # so a resumed run continues from exactly this figure; writing it is not counted
            "training_seconds": self.training_seconds() if self.saved_seconds is None else self.saved_seconds,
            "interrupted": stopped_by is not None,
        }
        if stopped_by is None and done >= self.optim.steps:
            self.accelerator.wait_for_everyone()
            if self.accelerator.is_main_process:
                self.ema.copy_to(self.params)  # export the EMA weights
                summary["exported"] = str(self.stage.export(self.output_dir))
        if stopped_by is not None:
            self.accelerator.print(
                f"stopped by signal {stopped_by} at step {done}; checkpoint saved, continue with --resume"
            )
        return summary


def _any_rank_stopped(accelerator: Accelerator, signal: int | None) -> bool:
    """Whether a stop signal reached any rank: each rank sees its own signal, and a rank that
    left the loop alone would hang the others' collectives."""
    if accelerator.num_processes == 1:
        return signal is not None
    flag = torch.tensor([0.0 if signal is None else 1.0], device=accelerator.device)
    return accelerator.reduce(flag, "sum").item() > 0


def _readable_checkpoint(checkpoints: Path, say) -> tuple[Path, dict]:
    """The newest checkpoint that loads, saying which ones were skipped and why."""
    candidates = resume_candidates(checkpoints)
    if not candidates:
        raise UserError(f"nothing to resume: no checkpoint in {checkpoints}")
    errors = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except UserError as e:
            errors.append(str(e))
            continue
        for error in errors:
            say(f"warning: {error}; resuming from {path.name} instead")
        return path, state
    if len(errors) == 1:
        raise UserError(errors[0])
    raise UserError(f"no readable checkpoint in {checkpoints}: {errors[0]}")


def export_checkpoint(config: TrainConfig, target: Path, checkpoint: Path | None = None) -> Path:
    """Export a checkpoint's EMA weights (default: the latest) the way a finished run exports
    its stage, into `target` — to evaluate or sample a run while it is still training. The
    folder appears complete or not at all."""
    target = Path(target)
    if target.exists():
        raise UserError(f"{target} already exists: choose a new folder")
    path = checkpoint or latest_checkpoint(Path(config.output_dir) / "checkpoints")
    if path is None:
        raise UserError(f"no checkpoint in {Path(config.output_dir) / 'checkpoints'} to export")
    state = load_checkpoint(path)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    device = torch.device("cpu")
    stage = STAGES[config.stage](config, device)
    params = stage.trainable_parameters()
    ema = EMA(params, config.optim.ema_decay)
    _restore_weights(stage.module, ema, state, path)
    ema.copy_to(params)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    exported = stage.export(staging)
    exported.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def _restore_weights(module: torch.nn.Module, ema: EMA, state: dict, path: Path) -> None:
    """Load a checkpoint's model and EMA weights; a checkpoint from another config is a user error."""
    try:
        module.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"checkpoint {path} does not match this config's model: {e}") from e


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows past the resumed step, so the curve has no duplicates."""
    if not path.exists():
        return
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and int(r[0]) <= step]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
