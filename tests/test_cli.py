"""The `dreamvideo` CLI end to end: files written, exit codes, one-line errors, no leftovers."""

import json
import os
import signal
import subprocess
import sys

import av
import pytest
from PIL import Image

from .conftest import run

GEN = ["--steps", "2", "--frames", "4", "--seed", "3"]


def test_generate_writes_mp4_pyav_decodes(tmp_path, capsys, photo, model_dir):
    out = tmp_path / "out.mp4"
    code, stdout, err = run(
        capsys,
        "generate",
        photo,
        "--prompt",
        "a ball moves left",
        "--output",
        out,
        "--model",
        model_dir,
        *GEN,
    )
    assert code == 0, err
    assert "wrote" in stdout and "seed 3" in stdout
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)


def test_generate_options_gif_frames_segments_schedulers(tmp_path, capsys, photo, model_dir):
    for scheduler, out, extra in [
        ("dpm++", tmp_path / "a.gif", ["--segments", "2", "--fps", "4"]),
        ("euler", tmp_path / "frames", ["--mode", "image", "--height", "48", "--width", "80"]),
        (
            "ddim",
            tmp_path / "t.mp4",
            [
                "--mode",
                "text",
                "--image-scale",
                "0",
                "--text-scale",
                "3",
                "--negative-prompt",
                "blurry",
                "--resize",
                "pad",
            ],
        ),
    ]:
        code, _, err = run(
            capsys,
            "generate",
            photo,
            "-p",
            "a ball moves left",
            "-o",
            out,
            "--model",
            model_dir,
            "--scheduler",
            scheduler,
            *GEN,
            *extra,
        )
        assert code == 0, err
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 4 + 3
    assert len(os.listdir(tmp_path / "frames")) == 4
    assert Image.open(tmp_path / "frames" / "frame_0000.png").size == (80, 48)


def test_same_seed_same_video(tmp_path, capsys, photo, model_dir):
    for name in ("a", "b"):
        assert (
            run(capsys, "generate", photo, "-p", "x", "-o", tmp_path / name, "--model", model_dir, *GEN)[0]
            == 0
        )
    a, b = sorted((tmp_path / "a").iterdir()), sorted((tmp_path / "b").iterdir())
    assert [f.read_bytes() for f in a] == [f.read_bytes() for f in b]
    # mp4 too: one encoder thread (x264's threaded output depends on the core count), bit-exact mux.
    for name in ("a.mp4", "b.mp4"):
        code = run(capsys, "generate", photo, "-p", "x", "-o", tmp_path / name, "--model", model_dir, *GEN)[0]
        assert code == 0
    data = (tmp_path / "a.mp4").read_bytes()
    assert data == (tmp_path / "b.mp4").read_bytes()
    assert b"threads=1 " in data and b"Lavf" not in data


def test_info(capsys, model_dir):
    code, stdout, _ = run(capsys, "info", "--model", model_dir)
    assert code == 0
    assert "FrameRetentionBranch" in stdout and "UNet3DConditionModel" in stdout
    assert "resolution: 64x64" in stdout and "frames: 4" in stdout and "parameters" in stdout
    assert "sampling: 25 steps, DDIMScheduler" in stdout and "pinned" not in stdout


def test_shipped_model_samples_with_10_steps(capsys):
    code, stdout, _ = run(capsys, "info")
    assert code == 0 and "sampling: 10 steps, DDIMScheduler" in stdout


def _bad_inputs(tmp_path, photo, model_dir):
    """(arguments, expected message) for user mistakes."""
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with open(photo, "rb") as f:
        data = f.read()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "nomodel").mkdir()
    (tmp_path / "badjson").mkdir()
    (tmp_path / "badjson" / "model_index.json").write_text("{nope")
    out = ["-o", tmp_path / "out.mp4", "--model", model_dir]
    return [
        (["generate", photo, "-p", "x", *out, "--strength", "0"], "strength"),
        (["generate", photo, "-p", "x", *out, "--strength", "1.2"], "strength"),
        (
            ["eval", "synthetic", "--model", model_dir, "--out", tmp_path / "e", "--strength", "-1"],
            "strength",
        ),
        (["eval", "speed-words", "--model", model_dir, "--num", "0"], "must be positive"),
        (["eval", "speed-words", "--model", model_dir, "--out", tmp_path], "is a folder"),
        (["generate", tmp_path / "missing.png", "-p", "x", *out], "image not found"),
        (["generate", tmp_path, "-p", "x", *out], "directory"),
        (["generate", tmp_path / "empty.png", "-p", "x", *out], "empty"),
        (["generate", tmp_path / "text.png", "-p", "x", *out], "not an image"),
        (["generate", tmp_path / "cut.png", "-p", "x", *out], "truncated"),
        (["generate", tmp_path / "dot.png", "-p", "x", *out], "1x1"),
        (["generate", photo, "-p", "x", *out, "--steps", "0"], "steps"),
        (["generate", photo, "-p", "x", *out, "--steps", "-2"], "steps"),
        (["generate", photo, "-p", "x", *out, "--frames", "0"], "frames"),
        (["generate", photo, "-p", "x", *out, "--height", "50"], "multiple of 16"),
        (["generate", photo, "-p", "x", *out, "--width", "-64"], "width"),
        (["generate", photo, "-p", "x", *out, "--image-scale", "nan"], "image guidance"),
        (["generate", photo, "-p", "x", *out, "--text-scale", "inf"], "text guidance"),
        (["generate", photo, "-p", "x", *out, "--image-scale", "-1"], "image guidance"),
        (["generate", photo, "-p", "x", *out, "--fps", "0"], "fps"),
        (["generate", photo, "-p", "x", *out, "--segments", "0"], "segments"),
        (["generate", photo, "-p", "", *out, "--mode", "text"], "text-only"),
        # Every number range-checked before loading (issue: reliability).
        (["generate", photo, "-p", "x", *out, "--image-scale", "1e38"], "image guidance scale must be"),
        (["generate", photo, "-p", "x", *out, "--text-scale", "101"], "text guidance scale must be"),
        (["generate", photo, "-p", "x", *out, "--fps", "2147483648"], "fps must be an integer from 1 to 240"),
        (["generate", photo, "-p", "x", *out, "--seed", "18446744073709551616"], "seed must be"),
        (["generate", photo, "-p", "x", *out, "--seed", "-1"], "seed must be"),
        (["generate", photo, "-p", "x", *out, "--steps", "1001"], "steps must be an integer from 1 to 1000"),
        (["generate", photo, "-p", "x", *out, "--frames", "513"], "frames must be"),
        (["generate", photo, "-p", "x", *out, "--segments", "1000000"], "segments x frames"),
        (["generate", photo, "-p", "x", *out, "--frames", "64", "--segments", "17"], "segments x frames"),
        (["generate", photo, "-p", "x", *out, "--height", "4097"], "height must be"),
        (
            ["generate", photo, "-p", "x", "-o", tmp_path / "no" / "dir" / "o.mp4", "--model", model_dir],
            "does not exist",
        ),
        (["generate", photo, "-p", "x", "-o", tmp_path / "o.avi", "--model", model_dir], "unknown output"),
        (
            ["generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", tmp_path / "absent"],
            "not found",
        ),
        (
            ["generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", tmp_path / "nomodel"],
            "no model_index.json",
        ),
        (
            ["generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", tmp_path / "badjson"],
            "corrupt",
        ),
        (["info", "--model", tmp_path / "absent"], "not found"),
    ]


def test_every_bad_input_is_one_line_exit_2_no_output(tmp_path, capsys, photo, model_dir):
    for args, message in _bad_inputs(tmp_path, photo, model_dir):
        before = set(os.listdir(tmp_path))
        code, _, err = run(capsys, *args)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, err)
        assert "Traceback" not in err
        assert set(os.listdir(tmp_path)) == before, args  # nothing written


def test_usage_errors_exit_2(capsys, photo):
    assert run(capsys, "generate", photo)[0] == 2  # missing --output
    assert run(capsys, "generate", photo, "-o", "x.mp4", "--mode", "video")[0] == 2
    assert run(capsys, "generate", photo, "-o", "x.mp4", "--steps", "many")[0] == 2
    assert run(capsys, "nonsense")[0] == 2


def test_model_folder_of_wrong_kind_and_corrupt_weights(tmp_path, capsys, photo, model_dir, t2v):
    t2v.save_pretrained(tmp_path / "t2v")
    code, _, err = run(
        capsys, "generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", tmp_path / "t2v"
    )
    assert code == 2 and "text-to-video model" in err

    other = tmp_path / "other"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    code, _, err = run(capsys, "info", "--model", other)
    assert code == 2 and "StableDiffusionPipeline" in err

    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    code, _, err = run(capsys, "generate", photo, "-p", "x", "-o", tmp_path / "o.mp4", "--model", broken)
    assert code == 2 and "cannot load" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.mp4").exists()


def test_pickle_weights_are_refused(tmp_path, capsys, photo, model_dir):
    import shutil

    import torch
    from safetensors.torch import load_file

    pickled = tmp_path / "pickled"
    shutil.copytree(model_dir, pickled)
    weights = pickled / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), pickled / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()
    code, _, err = run(capsys, "info", "--model", pickled)
    assert code == 2 and "cannot load" in err


def test_missing_default_model_says_so(tmp_path, capsys, photo, monkeypatch):
    monkeypatch.setenv("DREAMVIDEO_MODEL", str(tmp_path / "nowhere"))
    code, _, err = run(capsys, "generate", photo, "-p", "x", "-o", tmp_path / "o.mp4")
    assert code == 2 and "default model is not installed" in err


def test_debug_shows_traceback_and_console_script(tmp_path, photo):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamvideo.cli",
            "generate",
            str(tmp_path / "missing.png"),
            "-o",
            str(tmp_path / "o.mp4"),
            "--debug",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr and "UserError" in result.stderr


@pytest.mark.parametrize("argv", [["--help"], ["generate", "--help"], ["--version"]])
def test_help_and_version(capsys, argv):
    code, stdout, _ = run(capsys, *argv)
    assert code == 0 and stdout


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["generate", "--help"],
        ["eval", "synthetic", "--help"],
        ["generate", "x.png", "--mode", "up"],
    ],
)
def test_help_and_refused_flags_import_no_heavy_library(argv):
    """Start-up stays light (issue: `--help` in under a second): no torch, diffusers or numpy."""
    code = (
        "import sys; from dreamvideo.cli import main; rc = main(sys.argv[1:]); "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy') if m in sys.modules), rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] in ("[] 0", "[] 2"), result.stdout + result.stderr


def test_lazy_package_attributes():
    import dreamvideo

    assert dreamvideo.load_pipeline.__module__ == "dreamvideo.pipeline"
    assert "DreamVideoPipeline" in dir(dreamvideo) and set(dreamvideo.__all__) <= set(dir(dreamvideo))
    with pytest.raises(AttributeError):
        dreamvideo.no_such_name  # noqa: B018


def test_data_synth_and_eval_synthetic_cli(tmp_path, capsys, model_dir):
    code, stdout, err = run(
        capsys, "data", "synth", "--out", tmp_path / "synth", "--num", "2", "--size", "32", "--frames", "4"
    )
    assert code == 0, err
    assert (tmp_path / "synth" / "captions.csv").is_file() and "wrote 2 clips" in stdout
    assert run(capsys, "data", "synth", "--out", tmp_path / "synth", "--num", "2")[0] == 2  # not empty
    assert run(capsys, "data", "synth", "--out", tmp_path / "x", "--num", "0")[0] == 2
    code, stdout, err = run(
        capsys,
        "eval",
        "synthetic",
        "--model",
        model_dir,
        "--num",
        "13",
        "--steps",
        "1",
        "--out",
        tmp_path / "eval",
        "--batch-size",
        "13",
        "--photos",
        "2",
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    for key in (
        "first_frame_ssim",
        "first_frame_psnr",
        "action_accuracy",
        "opposite_pair_accuracy",
        "temporal_consistency",
    ):
        assert key in metrics and metrics[key] is not None
    assert (tmp_path / "eval" / "samples.png").is_file()
    assert (
        run(capsys, "eval", "synthetic", "--model", model_dir, "--num", "0", "--out", tmp_path / "e2")[0] == 2
    )


def test_train_cli_bad_config(tmp_path, capsys):
    code, _, err = run(capsys, "train", tmp_path / "missing.toml")
    assert code == 2 and "not found" in err
    (tmp_path / "c.toml").write_text('stage = "vae"\noutput_dir = "x"\nbogus = 1\n')
    code, _, err = run(capsys, "train", tmp_path / "c.toml")
    assert code == 2 and "bogus" in err
    code, _, err = run(capsys, "train", tmp_path / "c.toml", "--set", "novalue")
    assert code == 2 and "KEY=VALUE" in err


def test_shipped_default_model_generates(tmp_path, capsys, monkeypatch):
    """Right after install, `generate` works with no --model: the embedded default model."""
    from pathlib import Path

    from dreamvideo.loading import DEFAULT_MODEL_DIR

    monkeypatch.delenv("DREAMVIDEO_MODEL", raising=False)
    assert (DEFAULT_MODEL_DIR / "model_index.json").is_file(), "the default model must ship in the package"
    example = Path(__file__).resolve().parent.parent / "examples" / "cat.png"
    out = tmp_path / "cat.mp4"
    code, _stdout, err = run(
        capsys,
        "generate",
        example,
        "--prompt",
        "the camera pans left",
        "--output",
        out,
        "--steps",
        "4",
        "--seed",
        "0",
    )
    assert code == 0, err
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    info_code, info, _ = run(capsys, "info")
    assert info_code == 0 and f"frames: {len(frames)}" in info
    assert frames[0].shape == (64, 64, 3)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_remove_a_partial_output_as_sigint_does(tmp_path, signum):
    """`data synth` writes into a hidden temporary folder; a stop signal removes it and exits
    128 + the signal's number."""
    import time

    args = ["data", "synth", "--out", str(tmp_path / "d"), "--num", "100000"]
    process = subprocess.Popen(
        [sys.executable, "-m", "dreamvideo", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not any(tmp_path.iterdir()) and time.monotonic() < deadline:  # the temporary folder exists
        time.sleep(0.1)
    time.sleep(1.0)  # a few clips written into it
    assert any(tmp_path.iterdir())
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert f"stopped by {signal.Signals(signum).name}" in err
    assert not list(tmp_path.iterdir())  # nothing left behind


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "IMAGE", "-p", "x", "-o", "OUT/o.mp4", "--steps", "0"],
        ["eval", "synthetic", "--num", "2", "--out", "OUT/e", "--steps", "0"],
        ["eval", "clips", "OUT", "--out", "OUT/c", "--steps", "0"],
        ["eval", "speed-words", "--steps", "0"],
        ["eval", "ucf101", "--root", "OUT", "--out", "OUT/u", "--frames", "0"],
        ["convert", "--t2v", "OUT", "--out", "OUT/m", "--frames", "0"],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_an_out_of_range_number_is_refused_before_torch_loads(args, tmp_path, photo):
    """A mistake costs no torch import: the checks come from `limits` (torch-free), and the
    libraries are quieted when something imports them, not by importing them."""
    args = [a.replace("IMAGE", photo).replace("OUT", str(tmp_path)) for a in args]
    code = (
        "import sys; from dreamvideo.cli import main; code = main(sys.argv[1:]); "
        "print(code, 'torch' in sys.modules, 'diffusers' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False", "False"], done.stdout + done.stderr
    assert "must be" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_model_s_own_defaults_show_on_every_surface(tmp_path, capsys, model_dir, photo):
    """model_index.json is the one home of a model's defaults: info, generate, the web page and
    eval all read them from the loaded pipeline (pipeline.fill_defaults)."""
    import json
    import shutil

    from dreamvideo.io.video import read_video
    from dreamvideo.pipeline import load_pipeline
    from dreamvideo.web import Settings

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    unusual = {
        "default_image_guidance_scale": 2.25,
        "default_text_guidance_scale": 3.75,
        "default_num_frames": 3,
        "default_fps": 5,
        "default_num_inference_steps": 2,
        "default_pin_first_frame": True,
    }
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps(index | unusual))
    code, out, err = run(capsys, "info", "--model", model)
    assert code == 0, err
    assert "frames: 3 at 5 fps" in out and "guidance defaults: image 2.25, text 3.75" in out
    assert "sampling: 2 steps" in out and "first frame pinned" in out
    for name, flags in (
        ("v.gif", []),
        ("free.gif", ["--no-pin-first-frame"]),
        ("pinned.gif", ["--pin-first-frame"]),
    ):
        code, out, err = run(capsys, "generate", photo, "-p", "x", "--model", model, "-o", tmp_path / name,
                             "--seed", 1, *flags)  # fmt: skip
        assert code == 0, err
    assert len(read_video(tmp_path / "v.gif")) == 3
    assert (tmp_path / "v.gif").read_bytes() == (tmp_path / "pinned.gif").read_bytes()
    assert (tmp_path / "v.gif").read_bytes() != (tmp_path / "free.gif").read_bytes()
    page = Settings.model_defaults(load_pipeline(model))
    assert (page.image_scale, page.text_scale, page.steps, page.frames, page.fps) == (2.25, 3.75, 2, 3, 5)
    code, _, err = run(
        capsys, "eval", "synthetic", "--model", model, "--num", 1, "--photos", 1, "--out", tmp_path / "e"
    )
    assert code == 0, err
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert (metrics["image_guidance_scale"], metrics["text_guidance_scale"]) == (2.25, 3.75)
    assert (metrics["num_frames"], metrics["steps"], metrics["pin_first_frame"]) == (3, 2, True)
