"""The memory budget: estimated from config files before loading, refused in one line, and
checked against measured peaks on small sizes."""

import sys

import pytest

from dreamvideo.benchmarks.suite import run_command
from dreamvideo.budget import ModelFacts, estimate_peak_bytes, parse_size
from dreamvideo.errors import UserError

from .conftest import run


def test_requests_over_the_budget_are_refused_before_loading(tmp_path, capsys, photo, model_dir):
    cases = [
        (["--max-memory", "100MB"], "over the 0.1 GiB budget"),
        (["--frames", "512", "--height", "4096", "--width", "4096"], "lower --frames, --height/--width"),
        (["--max-memory", "lots"], "--max-memory must be a size"),
        (["--max-memory", "0GB"], "--max-memory must be above 0"),
    ]
    for extra, message in cases:
        args = ["generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", model_dir, *extra]
        code, _, err = run(capsys, *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not (tmp_path / "o.mp4").exists()
    # A budget the request fits in: it runs.
    args = ["generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", model_dir, "--steps", "1"]
    assert run(capsys, *args, "--max-memory", "64GB")[0] == 0


def test_estimate_grows_with_every_factor(model_dir):
    facts = ModelFacts.read(model_dir)
    base = estimate_peak_bytes(facts, 8, 64, 64)
    assert estimate_peak_bytes(facts, 16, 64, 64) > base
    assert estimate_peak_bytes(facts, 8, 128, 64) > base
    assert estimate_peak_bytes(facts, 8, 64, 64, num_segments=4) > base
    long = estimate_peak_bytes(facts, 256, 64, 64)  # denoising, not decoding, sets this peak
    assert estimate_peak_bytes(facts, 256, 64, 64, conditions=2) < long
    assert estimate_peak_bytes(facts, 8, 64, 64, dtype_bytes=2) < base


@pytest.mark.parametrize(("frames", "side"), [(4, 64), (16, 128)])
def test_estimate_is_above_the_measured_peak_but_not_far(tmp_path, photo, model_dir, frames, side):
    out = tmp_path / "o.mp4"
    command = [sys.executable, "-m", "dreamvideo", "generate", photo, "-p", "x", "-o", str(out)]
    command += ["--model", str(model_dir), "--steps", "2", "--frames", str(frames)]
    command += ["--height", str(side), "--width", str(side)]
    result = run_command([str(c) for c in command], env={"OMP_NUM_THREADS": "1"})
    assert result["exit_code"] == 0, result
    estimate_mb = estimate_peak_bytes(ModelFacts.read(model_dir), frames, side, side) / 2**20
    assert result["peak_rss_mb"] <= estimate_mb <= 2.5 * result["peak_rss_mb"], (result, estimate_mb)


def test_sizes_parse():
    assert parse_size("8GB") == parse_size("8g") == 8 * 2**30
    assert parse_size("512MiB") == 512 * 2**20 and parse_size("1.5GiB") == int(1.5 * 2**30)
    assert parse_size("4096") == 4096
    for bad in ("", "GB", "-1GB", "inf", "8XB", "nan"):
        with pytest.raises(UserError):
            parse_size(bad)


def test_a_reference_aware_decoder_counts_whole_videos_and_its_attention(tmp_path, model_dir):
    """It decodes whole videos at a time (its layers look across frames) and attends to the
    reference: a long video at a large size costs more to decode with it than with the VAE."""
    from dreamvideo import ReferenceAwareDecoder
    from dreamvideo.pipeline import load_pipeline

    pipe = load_pipeline(model_dir)
    pipe.register_modules(reference_decoder=ReferenceAwareDecoder.from_vae(pipe.vae))
    pipe.save_pretrained(tmp_path / "with")
    plain, ours = ModelFacts.read(model_dir), ModelFacts.read(tmp_path / "with")
    assert not plain.decoder_attention and ours.decoder_attention
    extra_weights = ours.weight_bytes - plain.weight_bytes
    for frames, side in ((64, 512), (16, 512)):
        with_decoder = estimate_peak_bytes(ours, frames, side, side, decode_chunk=1)
        assert (
            with_decoder - estimate_peak_bytes(plain, frames, side, side, decode_chunk=1)
            > extra_weights + 2**30
        )
