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
        for s, p in zip(self.shadow, params, strict=True):
            s.lerp_(p.detach().float(), 1 - decay)

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


def step_generator(seed: int, rank: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 10_000_019 + step) * 97 + micro)


def train(config: TrainConfig, resume: bool = False, max_steps: int | None = None) -> dict:
    """Run (or resume) a stage. `max_steps` stops early (tests); returns a summary dict."""
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    optim = config.optim
    # Without cpu=True, accelerate treats a multi-process CPU launch (torchrun) as one process
    # per rank, each training alone: gloo data parallelism needs it said.
    accelerator = Accelerator(mixed_precision=optim.mixed_precision, cpu=not torch.cuda.is_available())
    torch.manual_seed(config.seed)  # model initialisation, identical on every rank
    with accelerator.main_process_first():  # rank 0 builds shared files (latent cache) first
        stage = STAGES[config.stage](config, accelerator.device)
    params = stage.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
    lr_scheduler = get_scheduler(
        optim.lr_schedule, optimizer, num_warmup_steps=optim.warmup_steps, num_training_steps=optim.steps
    )
    module, optimizer = accelerator.prepare(stage.module, optimizer)
    ema = EMA(params, optim.ema_decay)

    output_dir = Path(config.output_dir)
    checkpoints = output_dir / "checkpoints"
    log_path = output_dir / "loss.csv"
    start_step, seconds_before = 0, 0.0  # training time of earlier runs, so resumed logs continue it
    if resume:
        path, state = _readable_checkpoint(checkpoints, accelerator.print)
        _restore_weights(accelerator.unwrap_model(module), ema, state, path)
        optimizer.load_state_dict(state["optimizer"])
        lr_scheduler.load_state_dict(state["trainer"]["lr_scheduler"])
        torch.set_rng_state(state["rng"])
        start_step = state["trainer"]["step"]
        seconds_before = float(state["trainer"].get("seconds", 0.0))  # absent in older checkpoints
        accelerator.print(f"resumed from {path} at step {start_step}")
    elif latest_checkpoint(checkpoints) is not None:
        raise UserError(f"{checkpoints} already has checkpoints: pass --resume, or use another output_dir")

    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(
            json.dumps(
                {
                    "config_path": config.config_path,
                    **stage.describe(),
                    "world_size": accelerator.num_processes,
                },
                indent=2,
            )
        )
        _truncate_log(log_path, start_step)
    end_step = optim.steps if max_steps is None else min(optim.steps, start_step + max_steps)
    rank, world = accelerator.process_index, accelerator.num_processes
    per_step = optim.batch_size * optim.grad_accum
    started = time.time()

    def training_seconds() -> float:
        return round(seconds_before + time.time() - started, 1)

    def save(step: int) -> Path:
        accelerator.wait_for_everyone()
        path = None
        if accelerator.is_main_process:
            trainer_state = {
                "step": step,
                "samples": step * per_step * world,
                "lr_scheduler": lr_scheduler.state_dict(),
                "world_size": world,
                "seconds": training_seconds(),
            }
            path = save_checkpoint(
                checkpoints,
                step,
                accelerator.unwrap_model(module).state_dict(),
                ema.state_dict(),
                optimizer.state_dict(),
                trainer_state,
                config.keep_checkpoints,
            )
        accelerator.wait_for_everyone()
        return path

    progress = tqdm(
        total=optim.steps,
        initial=start_step,
        disable=not accelerator.is_main_process,
        desc=f"train {config.stage}",
        dynamic_ncols=True,
    )
    module.train()
    last_loss, stopped_by, done = math.nan, None, start_step
    with (
        _StopFlag() as stop,
        (
            open(log_path, "a", newline="") if accelerator.is_main_process else contextlib.nullcontext()
        ) as log_file,
    ):
        writer = csv.writer(log_file) if log_file else None
        for step in range(start_step, end_step):
            total = 0.0
            for micro in range(optim.grad_accum):
                first = ((step * optim.grad_accum + micro) * world + rank) * optim.batch_size
                batch = stage.make_batch(list(range(first, first + optim.batch_size)))
                sync = micro == optim.grad_accum - 1
                with (
                    contextlib.nullcontext() if sync else accelerator.no_sync(module),
                    accelerator.autocast(),
                ):
                    loss = stage.loss(module, batch, step_generator(config.seed, rank, step, micro))
                    accelerator.backward(loss / optim.grad_accum)
                total += loss.detach().float() / optim.grad_accum
            if optim.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, optim.max_grad_norm)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            ema.update(params, step)
            last_loss = accelerator.reduce(total, "mean").item()
            done = step + 1
            progress.update(1)
            progress.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr_scheduler.get_last_lr()[0]:.2e}")
            if writer and (done % config.log_every == 0 or done == end_step):
                writer.writerow(
                    [
                        done,
                        f"{last_loss:.6f}",
                        f"{lr_scheduler.get_last_lr()[0]:.3e}",
                        f"{training_seconds():.1f}",
                    ]
                )
                log_file.flush()
            if not math.isfinite(last_loss):
                raise RuntimeError(f"loss is {last_loss} at step {done}: lower the learning rate")
            if _any_rank_stopped(accelerator, stop.signal):  # every rank stops at the same step
                stopped_by = stop.signal or "on another rank"
                save(done)
                break
            if done % config.checkpoint_every == 0 or done == end_step:
                save(done)
    progress.close()

    digest = hashlib.sha1(b"".join(p.detach().float().cpu().numpy().tobytes() for p in params)).hexdigest()
    summary = {
        "stage": config.stage,
        "start_step": start_step,
        "step": done,
        "param_digest": digest,
        "loss": last_loss,
        "seconds": round(time.time() - started, 1),  # this run
        "training_seconds": training_seconds(),  # since step 0, over every resume
        "interrupted": stopped_by is not None,
    }
    if stopped_by is None and summary["step"] >= optim.steps:
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            ema.copy_to(params)  # export the EMA weights
            summary["exported"] = str(stage.export(output_dir))
    if stopped_by is not None:
        accelerator.print(
            f"stopped by signal {stopped_by} at step {summary['step']}; checkpoint saved, "
            "continue with --resume"
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
