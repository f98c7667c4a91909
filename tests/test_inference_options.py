"""Full-size inference options, checked for correctness on CPU with a tiny model: attention and
VAE slicing and model CPU offload (accelerate hooks) leave the output unchanged; bf16 runs;
sampling at twice the trained size works without retraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import Attention, SlicedAttnProcessor

from dreamvideo.cli import main
from dreamvideo.testing import tiny_dreamvideo_pipeline


@pytest.fixture
def fresh():
    return tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=3)


def run(pipe, **kwargs) -> np.ndarray:
    image = torch.linspace(-1, 1, 3 * 64 * 64).reshape(3, 64, 64)
    return pipe(
        image,
        "a ball moves left",
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        **kwargs,
    ).frames


def test_attention_slicing_reaches_the_branch_and_keeps_the_output(fresh):
    base = run(fresh)
    fresh.enable_attention_slicing("max")
    for module in (fresh.unet, fresh.retention_branch):
        processors = [m.processor for m in module.modules() if isinstance(m, Attention)]
        assert processors and all(isinstance(p, SlicedAttnProcessor) for p in processors)
    np.testing.assert_allclose(run(fresh), base, atol=1e-5)
    fresh.disable_attention_slicing()
    assert not any(isinstance(m.processor, SlicedAttnProcessor) for m in fresh.retention_branch.modules()
                   if isinstance(m, Attention))  # fmt: skip


def test_vae_slicing_keeps_the_output(fresh):
    base = run(fresh)
    fresh.enable_vae_slicing()
    np.testing.assert_allclose(run(fresh), base, atol=1e-5)


def test_model_cpu_offload_hooks_keep_the_output(fresh):
    base = run(fresh)
    fresh.enable_model_cpu_offload(device="cpu")  # accelerate's hooks, with CPU as the "accelerator"
    assert getattr(fresh.retention_branch, "_hf_hook", None) is not None
    assert getattr(fresh.unet, "_hf_hook", None) is not None
    np.testing.assert_array_equal(run(fresh), base)


def test_bf16_weights_sample_close_to_fp32(fresh):
    base = run(fresh)
    half = fresh.to(torch.bfloat16)
    out = run(half)
    assert np.isfinite(out).all() and np.abs(out - base).mean() < 0.05


def test_twice_the_trained_size_without_retraining(fresh):
    frames = run(fresh, height=128, width=128)
    assert frames.shape == (1, 3, 128, 128, 3) and np.isfinite(frames).all()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--dtype", "fp16", "--device", "cpu"], "fp16 needs a CUDA device"),
        (["--cpu-offload", "--device", "cpu"], "--cpu-offload"),
    ],
)
def test_gpu_only_options_refused_on_cpu(flags, message, model_dir, photo, tmp_path, capsys):
    out = tmp_path / "o.mp4"
    args = ["generate", photo, "-p", "x", "-o", str(out), "--model", str(model_dir), *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err and not out.exists()
