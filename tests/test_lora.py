"""LoRA adapters: output-preserving at init, save -> load round trip, fuse == unfused, adapter
weights, training lowers the loss and resumes, the CLI flags, and every bad adapter input."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from dreamvideo import lora
from dreamvideo.errors import UserError
from dreamvideo.testing import tiny_dreamvideo_pipeline
from dreamvideo.training.checkpoint import latest_checkpoint
from dreamvideo.training.config import load_config
from dreamvideo.training.trainer import train

from .conftest import gen, run, train_in_two_processes

pytest.importorskip("peft")
ALL_MODULES = lora.LoraSettings(rank=4, modules=["branch", "temporal", "spatial"])


@pytest.fixture()
def lora_pipe():
    return tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=4)


def _sample(pipe, image) -> torch.Tensor:
    out = pipe(image, "a ball moves left", num_inference_steps=2, generator=gen(0), output_type="latent")
    return out.frames


def _random_adapter(pipe, name: str = "default", seed: int = 0, settings=ALL_MODULES) -> None:
    params = lora.add_adapter(pipe, settings, name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(0.3 * torch.randn(p.shape, generator=generator))


def _saved(pipe, folder, name: str = "default", settings=ALL_MODULES, **info):
    record = {"base_fingerprint": lora.base_fingerprint(pipe), "base_model": "tiny"} | info
    return lora.save_adapter(folder, lora.adapter_state_dict(pipe, name), settings, record)


@pytest.fixture()
def image():
    return torch.rand(1, 3, 64, 64, generator=gen(1))


def test_a_new_adapter_leaves_the_output_unchanged_and_trains_only_itself(lora_pipe, image):
    base = _sample(lora_pipe, image)
    params = lora.add_adapter(lora_pipe, ALL_MODULES)
    assert torch.equal(_sample(lora_pipe, image), base)
    trainable = [
        p for c in ("unet", "retention_branch") for p in getattr(lora_pipe, c).parameters() if p.requires_grad
    ]
    assert {id(p) for p in trainable} == {id(p) for p in params} and params
    assert lora_pipe.get_list_adapters() == {"unet": ["default"], "retention_branch": ["default"]}


def test_module_groups_pick_the_layers_they_name(lora_pipe):
    lora.add_adapter(lora_pipe, lora.LoraSettings(rank=2, modules=["temporal"]), "t")
    names = [n for n, _ in lora_pipe.unet.named_parameters() if "lora_A" in n]
    assert names and all("temp_attentions" in n or n.startswith("transformer_in") for n in names)
    assert not lora_pipe.get_list_adapters().get("retention_branch")
    lora.add_adapter(lora_pipe, lora.LoraSettings(rank=2, modules=["spatial"]), "s")
    spatial = [n for n, _ in lora_pipe.unet.named_parameters() if "lora_A.s." in n]
    assert spatial and not any("temp_attentions" in n or n.startswith("transformer_in") for n in spatial)


def test_save_load_round_trip_fuse_and_adapter_weights(lora_pipe, image, tmp_path):
    base = _sample(lora_pipe, image)
    _random_adapter(lora_pipe)
    adapted = _sample(lora_pipe, image)
    assert (adapted - base).abs().max() > 1e-3
    path = _saved(lora_pipe, tmp_path / "a")
    assert path.name == "pytorch_lora_weights.safetensors"
    keys = load_file(path)
    assert all(k.startswith(("unet.", "retention_branch.")) and "lora_" in k for k in keys)
    lora_pipe.unload_lora_weights()
    assert torch.equal(_sample(lora_pipe, image), base)

    assert lora_pipe.load_lora_weights(tmp_path / "a", adapter_name="a") == "a"
    torch.testing.assert_close(_sample(lora_pipe, image), adapted)  # save -> load: same output
    lora_pipe.fuse_lora()
    torch.testing.assert_close(_sample(lora_pipe, image), adapted, rtol=1e-4, atol=1e-4)
    lora_pipe.unfuse_lora()
    torch.testing.assert_close(_sample(lora_pipe, image), adapted, rtol=1e-4, atol=1e-4)
    lora_pipe.fuse_lora(lora_scale=0.5)
    fused_half = _sample(lora_pipe, image)
    lora_pipe.unfuse_lora()
    lora_pipe.set_adapters("a", 0.5)
    torch.testing.assert_close(_sample(lora_pipe, image), fused_half, rtol=1e-4, atol=1e-4)
    assert (fused_half - adapted).abs().max() > 1e-4

    _random_adapter(lora_pipe, "b", seed=5)  # a second, different adapter
    lora_pipe.set_adapters(["a", "b"], [1.0, 0.0])
    torch.testing.assert_close(_sample(lora_pipe, image), adapted, rtol=1e-4, atol=1e-4)
    lora_pipe.set_adapters(["a", "b"], [1.0, 1.0])
    assert (_sample(lora_pipe, image) - adapted).abs().max() > 1e-3
    assert lora_pipe.get_active_adapters() == ["a", "b"]
    lora_pipe.delete_adapters("b")
    assert lora_pipe.get_list_adapters_flat() == ["a"]
    torch.testing.assert_close(_sample(lora_pipe, image), adapted, rtol=1e-4, atol=1e-4)
    lora_pipe.unload_lora_weights()
    torch.testing.assert_close(_sample(lora_pipe, image), base, rtol=1e-4, atol=1e-4)


def test_bad_adapters_are_one_line_errors(lora_pipe, tmp_path, t2v):
    _random_adapter(lora_pipe)
    good = _saved(lora_pipe, tmp_path / "good")
    lora_pipe.unload_lora_weights()
    state = load_file(good)
    with pytest.raises(UserError, match="not found"):
        lora_pipe.load_lora_weights(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no pytorch_lora_weights\.safetensors"):
        lora_pipe.load_lora_weights(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UserError, match=r"folder or a \.safetensors file"):
        lora_pipe.load_lora_weights(tmp_path / "notes.txt")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:300])
    with pytest.raises(UserError, match="unreadable"):
        lora_pipe.load_lora_weights(corrupt)
    plain = tmp_path / "plain.safetensors"
    save_file({"unet.conv_in.weight": torch.zeros(2)}, plain)
    with pytest.raises(UserError, match="not a LoRA weight"):
        lora_pipe.load_lora_weights(plain)
    # a rank that does not match its config
    from safetensors import safe_open

    with safe_open(str(good), "pt") as f:
        metadata = f.metadata()
    cut = {k: (v[:2] if ".lora_A." in k else v[:, :2]).contiguous() for k, v in state.items()}
    wrong_rank = tmp_path / "rank.safetensors"
    save_file(cut, wrong_rank, metadata=metadata)
    with pytest.raises(UserError, match="rank 2, its config says 4"):
        lora_pipe.load_lora_weights(wrong_rank)
    # made for another base model: recorded fingerprint differs
    info = json.loads(metadata[lora.DREAMVIDEO_METADATA_KEY]) | {"base_fingerprint": "0" * 16}
    other = tmp_path / "other.safetensors"
    save_file(state, other, metadata=metadata | {lora.DREAMVIDEO_METADATA_KEY: json.dumps(info)})
    with pytest.raises(UserError, match="trained on another base model"):
        lora_pipe.load_lora_weights(other)
    # ... and shaped for another one (a different architecture): one line, no half-loaded adapter
    wider = {
        k: torch.cat([v, v[:1]]) if ".lora_B." in k and k.startswith("unet.") else v for k, v in state.items()
    }
    misfit = tmp_path / "misfit.safetensors"
    save_file(wider, misfit, metadata=metadata)
    with pytest.raises(UserError, match="does not fit this model"):
        lora_pipe.load_lora_weights(misfit, check_base=False)
    assert lora_pipe.get_list_adapters_flat() == []
    lora_pipe.load_lora_weights(good, adapter_name="g")
    with pytest.raises(UserError, match="scale must be from"):
        lora_pipe.set_adapters("g", 9.0)
    with pytest.raises(UserError, match="already loaded"):
        lora_pipe.load_lora_weights(good, adapter_name="g")
    with pytest.raises(UserError, match="no adapter named"):
        lora_pipe.set_adapters("nope")
    for settings in ({"rank": 0}, {"dropout": 1.5}, {"modules": ["everything"]}, {"alpha": -1}):
        with pytest.raises(UserError, match=r"\[lora\]"):
            lora.LoraSettings(**settings).check()


LORA_CONFIG = """
stage = "i2v"
output_dir = "{out}"
seed = 0
checkpoint_every = 4
log_every = 1
[init]
dreamvideo = "{model}"
[data]
size = 64
num_frames = 4
num_clips = 2
[lora]
rank = 4
modules = ["branch", "temporal"]
[optim]
steps = {steps}
batch_size = 2
lr = 1e-2
warmup_steps = 0
lr_schedule = "constant"
ema_decay = 0.5
[stage_options]
condition_dropout = 0.0
"""


def _lora_config(tmp_path, model_dir, name: str, steps: int):
    path = tmp_path / f"{name}.toml"
    path.write_text(LORA_CONFIG.format(out=tmp_path / name, model=model_dir, steps=steps))
    return load_config(path)


def test_lora_training_lowers_the_loss_saves_only_the_adapter_and_resumes(tmp_path, model_dir):
    config = _lora_config(tmp_path, model_dir, "run", 24)
    summary = train(config)
    losses = [float(r.split(",")[1]) for r in (tmp_path / "run" / "loss.csv").read_text().split()]
    assert sum(losses[-6:]) / 6 < 0.93 * sum(losses[:6]) / 6  # measured 0.87
    folder = tmp_path / "run" / "lora"
    assert summary["exported"] == str(folder) and sorted(os.listdir(folder)) == [lora.LORA_WEIGHT_NAME]
    adapter = lora.read_adapter(folder)
    assert adapter.name == "run" and adapter.rank == 4 and adapter.info["base_model"] == str(model_dir)
    from dreamvideo.pipeline import load_pipeline

    pipe = load_pipeline(model_dir)
    assert adapter.info["base_fingerprint"] == lora.base_fingerprint(pipe)
    assert pipe.load_lora_weights(folder) == "run"

    # stopped at step 4: a checkpoint, no adapter file; resumed, the same adapter as one run
    part = _lora_config(tmp_path, model_dir, "part", 8)
    train(part, max_steps=4)
    assert latest_checkpoint(tmp_path / "part" / "checkpoints").name == "step-0000004"
    assert not (tmp_path / "part" / "lora").exists()
    train(part, resume=True)
    whole = _lora_config(tmp_path, model_dir, "whole", 8)
    train(whole)
    a, b = (
        load_file(tmp_path / "part" / "lora" / lora.LORA_WEIGHT_NAME),
        load_file(tmp_path / "whole" / "lora" / lora.LORA_WEIGHT_NAME),
    )
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_lora_config_errors(tmp_path, model_dir):
    path = tmp_path / "bad.toml"
    for table, message in (
        ("[lora]\nrank = 0", "rank must be a positive"),
        ("[lora]\nranks = 4", "unknown key"),
        ("[lora]\nmodules = ['vae']", "modules must be some of"),
    ):
        block = '[lora]\nrank = 4\nmodules = ["branch", "temporal"]'
        path.write_text(
            LORA_CONFIG.format(out=tmp_path / "x", model=model_dir, steps=2).replace(block, table)
        )
        with pytest.raises(UserError, match=message):
            load_config(path)
    text = LORA_CONFIG.format(out=tmp_path / "x", model=model_dir, steps=2).replace(
        'stage = "i2v"', 'stage = "t2v"'
    )
    path.write_text(text)
    with pytest.raises(UserError, match="needs stage = 'i2v'"):
        load_config(path)


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory, model_dir):
    """An adapter of the CLI tests' model (random, so its effect shows)."""
    from dreamvideo.pipeline import load_pipeline

    folder = tmp_path_factory.mktemp("adapters")
    pipe = load_pipeline(model_dir)
    _random_adapter(pipe, settings=lora.LoraSettings(rank=4))
    _saved(pipe, folder / "wave", settings=lora.LoraSettings(rank=4))
    return folder


def test_generate_with_lora_flags_and_info_lists_adapters(tmp_path, capsys, photo, model_dir, adapter_dir):
    common = ["--model", model_dir, "--steps", "2", "--frames", "4", "--seed", "3", "-p", "a ball moves left"]
    outputs = {}
    for name, flags in {
        "plain": [],
        "zero": ["--lora", adapter_dir / "wave", "--lora-scale", "0"],
        "full": ["--lora", adapter_dir / "wave"],
        "twice": [
            "--lora",
            adapter_dir / "wave",
            "--lora",
            adapter_dir / "wave" / lora.LORA_WEIGHT_NAME,
            "--lora-scale",
            "0.5",
            "--lora-scale",
            "0.5",
        ],
    }.items():
        out = tmp_path / f"{name}.mp4"
        code, _, err = run(capsys, "generate", photo, "-o", out, *common, *flags)
        assert code == 0, err
        outputs[name] = out.read_bytes()
    assert outputs["zero"] == outputs["plain"] and outputs["full"] != outputs["plain"]
    assert outputs["twice"] != outputs["plain"]
    code, stdout, err = run(capsys, "info", "--model", model_dir, "--lora-dir", adapter_dir)
    assert code == 0, err
    assert (
        "LoRA adapters in" in stdout
        and "wave: rank 4, branch,temporal" in stdout
        and "fits this model" in stdout
    )


def test_lora_cli_bad_inputs_one_line_exit_2_nothing_written(tmp_path, capsys, photo, model_dir, adapter_dir):
    (tmp_path / "bad.safetensors").write_bytes(b"nonsense")
    out = tmp_path / "out.mp4"
    good = adapter_dir / "wave"
    for flags, message in (
        (["--lora", tmp_path / "missing"], "not found"),
        (["--lora", tmp_path / "bad.safetensors"], "unreadable"),
        (["--lora", photo], "folder or a .safetensors file"),
        (["--lora", good, "--lora-scale", "5"], "scale must be from"),
        (["--lora", good, "--lora-scale", "nan"], "scale must be from"),
        (["--lora-scale", "1"], "--lora-scale needs --lora"),
        (
            ["--lora", good, "--lora", good, "--lora-scale", "1", "--lora-scale", "1", "--lora-scale", "1"],
            "one per --lora",
        ),
    ):
        before = set(os.listdir(tmp_path))
        code, _, err = run(capsys, "generate", photo, "-o", out, "--model", model_dir, "-p", "x", *flags)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], (flags, err)
        assert set(os.listdir(tmp_path)) == before
    code, _, err = run(capsys, "info", "--model", model_dir, "--lora-dir", tmp_path / "nowhere")
    assert code == 2 and "LoRA folder not found" in err


@pytest.mark.slow  # gloo on 2 cores dies in about 1 run in 6 (tests/test_training.py's DDP checks)
def test_lora_training_in_two_processes_keeps_ranks_equal(tmp_path, model_dir):
    """torchrun, 2 CPU processes (gloo), as `accelerate launch` runs it: the ranks end with the
    same adapter, and rank 0 writes the one file."""
    config = tmp_path / "ddp.toml"
    config.write_text(LORA_CONFIG.format(out=tmp_path / "ddp", model=model_dir, steps=3))
    train_in_two_processes(config, tmp_path)
    assert lora.read_adapter(tmp_path / "ddp" / "lora").rank == 4


def test_without_peft_each_lora_command_names_the_install(
    tmp_path, capsys, photo, model_dir, adapter_dir, monkeypatch
):
    """peft is an optional extra: without it, --lora and a [lora] run say how to get it (exit 2)."""
    import sys

    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    code, _, err = run(capsys, "generate", photo, "-o", tmp_path / "o.mp4", "--model", model_dir, "-p", "x",
                       "--lora", adapter_dir / "wave")  # fmt: skip
    assert code == 2 and 'pip install -e ".[lora]"' in err and not (tmp_path / "o.mp4").exists()
    with pytest.raises(UserError, match=r"pip install -e \".\[lora\]\""):
        _lora_config(tmp_path, model_dir, "nopeft", 2)  # refused as the config loads


def test_eval_clips_scores_a_dataset_s_own_motion(tmp_path, capsys, model_dir, adapter_dir):
    """`data synth --action` writes clips of one motion (also one no training clip has);
    `eval clips` generates from each first frame and caption and scores the measured motion."""
    data = tmp_path / "diag"
    code, _, err = run(
        capsys, "data", "synth", "--out", data, "--num", "2", "--frames", "4", "--action", "move_up_right"
    )
    assert code == 0, err
    rows = [json.loads(line) for line in (data / "motion.jsonl").read_text().splitlines()]
    assert all(r["action"] == "move_up_right" and r["dx"] > 0 and r["dy"] < 0 for r in rows)
    records = []
    for flags in ([], ["--lora", adapter_dir / "wave"]):
        out = tmp_path / f"eval{len(flags)}"
        code, stdout, err = run(
            capsys, "eval", "clips", data, "--model", model_dir, "--out", out, "--steps", "1", *flags
        )
        assert code == 0, err
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["num_clips"] == 2 and 0 <= metrics["direction_accuracy"] <= 1
        assert metrics["label_accuracy"] is None and "direction_accuracy" in stdout
        records.append(metrics["measured_on"])
    # the record names the base model's weights (taken before the adapter is fused) and the adapter
    assert records[0]["fingerprint"] == records[1]["fingerprint"] and "lora" not in records[0]
    assert records[1]["lora"] == [{"path": str(adapter_dir / "wave"), "scale": 1.0}]
    for args, message in (
        (["eval", "clips", tmp_path / "nowhere", "--out", tmp_path / "e"], "no motion.jsonl"),
        (["data", "synth", "--out", tmp_path / "d", "--num", "1", "--action", "jump"], "unknown action"),
    ):
        code, _, err = run(capsys, *args)
        assert code == 2 and message in err and not (tmp_path / "e").exists()


def test_weights_fingerprint_names_the_weights_not_the_adapters_loaded(lora_pipe):
    """What eval and bench records name as their model (`measured_on`): every component's
    weights count (a VAE or decoder change too), an unfused adapter does not."""
    from dreamvideo.loading import weights_fingerprint

    before = weights_fingerprint(lora_pipe)
    lora.add_adapter(lora_pipe, lora.LoraSettings(rank=2, modules=["temporal"]), "fingerprint")
    assert weights_fingerprint(lora_pipe) == before
    lora_pipe.unload_lora_weights()
    with torch.no_grad():
        weight = next(lora_pipe.vae.parameters())
        weight.add_(1e-3)
        assert weights_fingerprint(lora_pipe) != before
        weight.sub_(1e-3)
