"""Training checkpoints: safetensors for every tensor, JSON for the rest; written atomically.

A checkpoint folder `step-000500/` holds
- `model.safetensors`: the trained module's state (trainable and frozen parts);
- `ema.safetensors`: the EMA weights of the trainable parameters;
- `optimizer.safetensors` + `optimizer.json`: optimiser tensors and their structure;
- `trainer.json`: step, samples consumed, LR schedule state;
- `rng.safetensors`: torch RNG state.
It is written under a temporary name and renamed, and `latest` names the newest one, so a
crash mid-write never leaves a checkpoint that `--resume` would pick up.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import UserError


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, structure = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entry in state["state"].items():
        structure["state"][str(pid)] = {}
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
                structure["state"][str(pid)][key] = {"tensor": f"{pid}.{key}"}
            else:
                structure["state"][str(pid)][key] = {"value": value}
    return tensors, structure


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], structure: dict) -> dict:
    state = {}
    for pid, entry in structure["state"].items():
        state[int(pid)] = {
            key: tensors[spec["tensor"]] if "tensor" in spec else spec["value"] for key, spec in entry.items()
        }
    return {"state": state, "param_groups": structure["param_groups"]}


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a rename is durable once its folder is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    root: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor],
    optimizer_state: dict,
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write `root/step-N` durably: every file and the folder are fsync'd before the rename, and
    `latest` moves only after that. A failed write (a full disk) leaves no temporary folder."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, state in (("model", model_state), ("ema", ema_state)):
            tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
            save_file(tensors, tmp / f"{name}.safetensors")
        tensors, structure = _flatten_optimizer(optimizer_state)
        save_file(tensors, tmp / "optimizer.safetensors")
        (tmp / "optimizer.json").write_text(json.dumps(structure))
        save_file({"torch": torch.get_rng_state()}, tmp / "rng.safetensors")
        (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=2))
        for file in tmp.iterdir():
            _fsync(file)
        _fsync(tmp)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        latest_tmp = root / ".latest.tmp"
        latest_tmp.write_text(final.name + "\n")
        _fsync(latest_tmp)
        os.replace(latest_tmp, root / "latest")
        _fsync(root)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        (root / ".latest.tmp").unlink(missing_ok=True)
        reason = e.strerror or str(e)
        raise UserError(f"cannot write checkpoint step {step} to {root}: {reason} (is the disk full?)") from e
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if path.is_dir() else None


def resume_candidates(root: Path) -> list[Path]:
    """Checkpoints to resume from, best first: the one `latest` names, then the others newest
    first (after a power loss `latest` may name files that never reached the disk)."""
    kept = sorted((p for p in root.glob("step-*") if p.is_dir()), reverse=True)
    latest = latest_checkpoint(root)
    return ([latest] if latest else []) + [p for p in kept if p != latest]


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Everything `save_checkpoint` wrote; a missing, truncated or corrupt file is a UserError."""
    try:
        structure = json.loads((path / "optimizer.json").read_text())
        return {
            "model": load_file(path / "model.safetensors"),
            "ema": load_file(path / "ema.safetensors"),
            "optimizer": _unflatten_optimizer(load_file(path / "optimizer.safetensors"), structure),
            "rng": load_file(path / "rng.safetensors")["torch"],
            "trainer": json.loads((path / "trainer.json").read_text()),
        }
    except (OSError, SafetensorError, json.JSONDecodeError, KeyError, ValueError) as e:
        raise UserError(f"checkpoint {path} is corrupt or incomplete: {e}") from e
