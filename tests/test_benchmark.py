"""`dreamvideo bench`: the smoke run writes every figure the issue names; bad input is refused early."""

import json
import math

import pytest
import torch

from dreamvideo.models import DreamVideoDenoiser

from .conftest import run


def test_bench_smoke_writes_every_figure(tmp_path, capsys, model_dir, photo):
    out = tmp_path / "bench"
    code, stdout, err = run(capsys, "bench", "--smoke", "--model", model_dir, "--out", out, "--image", photo)
    assert code == 0, err
    assert "s/clip" in stdout
    results = json.loads((out / "bench.json").read_text())
    for key in ("naive_seconds_per_clip", "seconds_per_clip", "speedup_vs_naive", "peak_rss_mb", "mfu"):
        assert results[key] > 0 and math.isfinite(results[key]), key
    assert results["startup_seconds"] > 0
    from dreamvideo.loading import weights_fingerprint
    from dreamvideo.pipeline import load_pipeline

    assert results["measured_on"]["fingerprint"] == weights_fingerprint(load_pipeline(model_dir))
    assert results["speedup_vs_naive"] == pytest.approx(
        results["naive_seconds_per_clip"] / results["seconds_per_clip"], rel=0.02
    )
    for path in ("naive", "default"):  # the quality of both paths on the same clips
        quality = results["naive_vs_default"][path]
        assert 0 <= quality["first_frame_ssim"] <= 1 and 0 <= quality["action_accuracy"] <= 1
    startup = results["startup"]
    assert startup["help"]["exit_code"] == 0 and startup["refused_flag"]["exit_code"] == 2
    assert startup["readme_command"]["exit_code"] == 0
    # start-up beside a bare `import torch` of the same run, and the one-call prompt sweep
    assert startup["import_torch"]["exit_code"] == 0 and startup["sweep_command"]["exit_code"] == 0
    assert startup["sweep_command"]["prompts"] == 2
    assert startup["sweep_vs_one_prompt"] == pytest.approx(
        startup["sweep_command"]["seconds"] / startup["readme_command"]["seconds"], rel=0.01
    )
    overhead = startup["overhead"]
    assert overhead["overhead_seconds"] == pytest.approx(
        startup["readme_command"]["seconds"]
        - startup["import_torch"]["seconds"]
        - results["readme_phases"]["denoising"]
        - results["readme_phases"]["decoding"],
        abs=0.01,
    )
    # A light command's peak memory is its own, not the benchmark's (which loaded models).
    assert startup["help"]["peak_rss_mb"] < startup["readme_command"]["peak_rss_mb"]
    assert set(results["readme_phases"]) == {
        "model_load",
        "text_encoding",
        "image_encoding",
        "denoising",
        "decoding",
        "writing",
    }
    assert results["diffusers_peer"]["diffusers_seconds_per_step"] > 0
    assert {r["frames"] for r in results["scaling"]["by_frames"]} == {4, 8}
    for stage in ("t2v", "i2v"):
        assert results["training"][stage]["flops_per_step"] > 0 and results["training"][stage]["mfu"] > 0
    assert (out / "scaling.png").stat().st_size > 0
    assert "Speed-up of the default over the naive path" in (out / "bench.md").read_text()


def test_bench_bad_input_is_refused_before_measuring(tmp_path, capsys, model_dir, photo):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (["--num", "0"], "--num"),
        (["--threads", "0"], "--threads"),
        (["--out", a_file], "is a file"),
        (["--image", tmp_path / "missing.png"], "no example image"),
        (["--image", a_file], "image"),
        (["--model", tmp_path / "nowhere"], "model folder not found"),
    ]
    for extra, message in cases:
        args = ["bench", "--smoke", "--model", model_dir, "--out", tmp_path / "b", "--image", photo, *extra]
        code, _, err = run(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not (tmp_path / "b").exists()


def test_zero_conditioning_scale_skips_the_branch_exactly(pipe):
    """The no-branch path runs the UNet alone; its output equals the branch's zero-scaled residuals."""
    denoiser = DreamVideoDenoiser(pipe.unet, pipe.retention_branch)
    x = torch.randn(2, pipe.unet.config.in_channels, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(2, 8, pipe.unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    image = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        skipped = denoiser(x, 500, text, image=image, conditioning_scale=0.0)
        down, mid = pipe.retention_branch(x, 500, text, pipe.retention_branch.encode_image(image), 0.0)
        residuals = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        scaled = pipe.unet(x, 500, encoder_hidden_states=text, **residuals).sample
    assert torch.equal(skipped, scaled)
