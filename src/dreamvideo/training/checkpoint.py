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


def save_checkpoint(
    root: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    ema_state: dict[str, torch.Tensor],
    optimizer_state: dict,
    trainer_state: dict[str, Any],
    keep: int = 2,
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()}, tmp / "model.safetensors")
    save_file({k: v.detach().cpu().contiguous() for k, v in ema_state.items()}, tmp / "ema.safetensors")
    tensors, structure = _flatten_optimizer(optimizer_state)
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "optimizer.json").write_text(json.dumps(structure))
    save_file({"torch": torch.get_rng_state()}, tmp / "rng.safetensors")
    (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    latest_tmp = root / ".latest.tmp"
    latest_tmp.write_text(final.name + "\n")
    os.replace(latest_tmp, root / "latest")
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: Path) -> Path | None:
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    path = root / pointer.read_text().strip()
    return path if path.is_dir() else None


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
