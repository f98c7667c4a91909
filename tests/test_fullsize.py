"""The full-size path's tools: ModelScope's configs, the memory estimate, the GPU smoke script
and the full-width check (its reduced-width dry runs here; the full width is a slow test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dreamvideo.models import checkpoint_unet_blocks
from dreamvideo.models.modelscope import UNET_CONFIG, build_denoiser, unet_config
from dreamvideo.training.memory import parameter_pointers, saved_activation_bytes, training_memory

ROOT = Path(__file__).resolve().parents[1]


def test_full_width_config_is_modelscope():
    config = unet_config(1)
    assert config == UNET_CONFIG
    assert config["block_out_channels"] == [320, 640, 1280, 1280]
    assert (config["cross_attention_dim"], config["attention_head_dim"]) == (1024, 64)


def test_memory_formula_and_zero2_sharding():
    single = training_memory(1000, 100, activation_bytes=50)
    assert (single.weights, single.gradients, single.optimizer, single.ema) == (4000, 400, 800, 400)
    assert single.total == 4000 + 400 + 800 + 400 + 50
    zero = training_memory(1000, 100, activation_bytes=50, gpus=4, zero_stage=2)
    assert (zero.gradients, zero.optimizer, zero.ema) == (100, 200, 400)
    assert training_memory(1000, 100, 50, gpus=4).gradients == 400  # plain DDP replicates


def test_activation_count_grows_with_frames_and_shrinks_with_checkpointing():
    denoiser = build_denoiser(width_divisor=16)
    generator = torch.Generator().manual_seed(0)

    def count(frames: int) -> int:
        latents = torch.randn(1, 4, frames, 8, 8, generator=generator)
        text = torch.randn(1, 7, denoiser.unet.config.cross_attention_dim, generator=generator)
        image = torch.rand(1, 3, 64, 64, generator=generator)
        t = torch.tensor([10])
        return saved_activation_bytes(
            lambda: denoiser(latents, t, text, image=image), parameter_pointers(denoiser)
        )

    one, two = count(1), count(2)
    assert 0 < one < two
    denoiser.branch.gradient_checkpointing = True
    checkpoint_unet_blocks(denoiser.unet)
    assert count(2) < two / 2


def run_script(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_gpu_smoke_script_dry_run_on_cpu():
    out = run_script(
        "scripts/gpu_smoke.py", "--device", "cpu", "--width-divisor", "16", "--frames", "2", "--size", "64",
        "--steps", "1", "--dtype", "fp32", "--checkpointing",
    )  # fmt: skip
    result = json.loads(out[out.index("{") :])
    assert result["device"] == "cpu" and result["trainable"] < result["parameters"]
    assert result["seconds_per_step"] > 0 and result["last_loss"] == pytest.approx(result["last_loss"])


def test_fullsize_check_dry_run(tmp_path):
    out = tmp_path / "check.json"
    run_script(
        "scripts/fullsize_check.py", "--width-divisor", "16", "--step-size", "64", "--train-size", "64",
        "--out", str(out),
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert result["denoising_step"]["max_abs_difference_from_base"] == 0.0
    rows = {r["setting"]: r for r in result["memory_per_gpu"]}
    assert len(rows) == 7 and all(r["total_gib"] > 0 for r in rows.values())
    # LoRA: the same weights, a sliver of the optimiser state, measured activations of its own
    full, lora = rows["1 GPU or DDP, no checkpointing"], rows["LoRA rank 8, 1 GPU, no checkpointing"]
    assert lora["weights_gib"] == full["weights_gib"]
    assert lora["grads_optimizer_ema_gib"] < 0.05 * full["grads_optimizer_ema_gib"]
    assert 0 < result["parameters"]["lora_trainable"] < 0.1 * result["parameters"]["trainable"]
    # the LoRA rows alone, from that file: the same trainable count, the same rows' shape
    again = tmp_path / "lora.json"
    run_script(
        "scripts/fullsize_check.py", "--width-divisor", "16", "--lora-from", str(out), "--out", str(again)
    )
    estimate = json.loads(again.read_text())
    assert estimate["lora_trainable"] == result["parameters"]["lora_trainable"]
    assert [r["setting"] for r in estimate["memory_per_gpu"]] == [s for s in rows if s.startswith("LoRA")]


def test_gpu_smoke_script_trains_only_a_lora_adapter_with_lora_rank():
    out = run_script(
        "scripts/gpu_smoke.py", "--device", "cpu", "--width-divisor", "16", "--frames", "2", "--size", "64",
        "--steps", "1", "--dtype", "fp32", "--lora-rank", "4",
    )  # fmt: skip
    result = json.loads(out[out.index("{") :])
    assert result["lora_rank"] == 4 and 0 < result["trainable"] < 0.05 * result["parameters"]


@pytest.mark.slow  # minutes and ~20 GB of RAM: the real ModelScope widths
def test_full_width_check(tmp_path):
    out = tmp_path / "check.json"
    run_script("scripts/fullsize_check.py", "--out", str(out))
    result = json.loads(out.read_text())
    counts = result["parameters"]
    assert 1.2e9 < counts["base_unet"] < 1.5e9  # ModelScope's UNet: about 1.4 B parameters
    assert result["denoising_step"]["max_abs_difference_from_base"] == 0.0
