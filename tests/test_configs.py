"""Every shipped training config loads, and every accelerate config is one accelerate accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from dreamvideo.training.config import load_config, read_recipe

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.toml")), ids=lambda p: p.name)
def test_training_configs_load(path):
    config = load_config(path)
    assert config.optim.steps > 0 and config.data.size % 8 == 0


def test_fullsize_configs_follow_the_paper_setting():
    config = load_config(ROOT / "configs" / "fullsize" / "i2v_256.toml")
    assert (config.stage, config.data.size, config.data.num_frames) == ("i2v", 256, 16)
    assert config.optim.gradient_checkpointing and config.optim.mixed_precision == "bf16"
    assert not config.stage_options.get("train_all", False)  # branch + temporal layers only


@pytest.mark.parametrize(
    "path", sorted((ROOT / "configs" / "accelerate").glob("*.yaml")), ids=lambda p: p.name
)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import ClusterConfig

    config = ClusterConfig.from_yaml_file(path)
    assert config.mixed_precision == "bf16" and config.num_processes >= 1
    if config.distributed_type == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 2


@pytest.mark.parametrize("recipe", ["recipe.txt"])
def test_default_model_recipe_is_a_chain_of_shipped_configs(recipe):
    """configs/tiny/recipe.txt (read by the training and model-card scripts) names configs that
    each start from the previous stage's export and end in a DreamVideo pipeline (an i2v stage's,
    or a vae stage refining a pipeline's decoder)."""
    stages = read_recipe(ROOT / "configs" / "tiny" / recipe)
    assert stages
    configs = [load_config(ROOT / "configs" / "tiny" / f"{name}.toml") for name in stages]
    assert not configs[0].init
    for name, config in zip(stages, configs, strict=True):
        assert Path(config.output_dir) == Path("runs/tiny") / name
    for previous, config in zip(stages[:-1], configs[1:], strict=True):
        # An i2v stage with [init] dreamvideo continues that model; a t2v inherited from its base
        # config is then unused (the trainer's precedence).
        if "dreamvideo" in config.init:
            source = config.init["dreamvideo"]
        else:
            (source,) = config.init.values()
        assert Path(source).parent == Path("runs/tiny") / previous
    last = configs[-1]
    assert last.stage == "i2v" or (last.stage == "vae" and "dreamvideo" in last.init)


def test_a_config_extends_its_base_and_overrides_only_what_it_names(tmp_path):
    from dreamvideo.errors import UserError

    (tmp_path / "base.toml").write_text(
        'stage = "t2v"\noutput_dir = "runs/a"\n[optim]\nsteps = 100\nlr = 1e-3\n'
        "[stage_options]\ntext_dropout = 0.1\n"
    )
    (tmp_path / "more.toml").write_text(
        'base = "base.toml"\noutput_dir = "runs/b"\n[optim]\nsteps = 300\n[stage_options]\nmax_tokens = 8\n'
    )
    config = load_config(tmp_path / "more.toml", {"optim.lr": 5e-4})
    assert (config.stage, config.output_dir) == ("t2v", "runs/b")
    assert (config.optim.steps, config.optim.lr) == (300, 5e-4)
    assert config.stage_options == {"text_dropout": 0.1, "max_tokens": 8}
    (tmp_path / "loop.toml").write_text('base = "loop.toml"\nstage = "t2v"\noutput_dir = "x"\n')
    with pytest.raises(UserError, match="extends itself"):
        load_config(tmp_path / "loop.toml")
    (tmp_path / "orphan.toml").write_text('base = "missing.toml"\n')
    with pytest.raises(UserError, match="training config not found"):
        load_config(tmp_path / "orphan.toml")


@pytest.mark.parametrize(
    ("stage", "table", "key"),
    [
        ("vae", "model", "latent_chanels"),
        ("t2v", "stage_options", "text_dropuot"),
        ("t2v", "model", "image_embed_channels"),  # an i2v key in a t2v config
        ("i2v", "stage_options", "max_tokens"),  # a t2v key in an i2v config
        ("i2v", "model", "image_encoder"),
    ],
)
def test_a_stage_refuses_keys_it_does_not_have(tmp_path, stage, table, key):
    from dreamvideo.errors import UserError

    path = tmp_path / "typo.toml"
    path.write_text(f'stage = "{stage}"\noutput_dir = "runs/x"\n[{table}]\n{key} = 1\n')
    with pytest.raises(UserError, match=f"unknown key.*\\[{table}\\].*{key}"):
        load_config(path)


def test_stage_tables_give_typed_defaults(tmp_path):
    path = tmp_path / "i2v.toml"
    path.write_text('stage = "i2v"\noutput_dir = "runs/x"\n[stage_options]\ncondition_dropout = 0.1\n')
    options = load_config(path).options()
    assert options.condition_dropout == 0.1 and options.timestep_sampling == "uniform"
    assert options.default_fps is None


def _config_files(path: Path) -> list[Path]:
    """A config and every file it extends through `base`."""
    import tomllib

    files = [path]
    while base := tomllib.loads(files[-1].read_text()).get("base"):
        files.append((files[-1].parent / base).resolve())
    return files


@pytest.mark.parametrize("folder", ["tiny", "gpu"])
def test_the_recipe_and_gpu_configs_stand_on_their_own(folder):
    """A reader of the recipe learns what the shipped model was trained with from configs/ alone:
    no recipe or GPU config extends a probe's (probe configs live in research/ and extend the
    recipe, never the other way round)."""
    recipe = read_recipe(ROOT / "configs" / "tiny" / "recipe.txt")
    paths = [ROOT / "configs" / "tiny" / f"{n}.toml" for n in recipe] if folder == "tiny" else []
    paths += sorted((ROOT / "configs" / "gpu").glob("*.toml")) if folder == "gpu" else []
    for path in paths:
        for file in _config_files(path):
            assert file.parent == path.parent.resolve(), f"{path.name} extends {file}"
    assert not (ROOT / "configs" / "tiny" / "probes").exists()


def test_the_model_card_records_each_recipe_stage_as_its_config_says():
    """The model card's recipe table (steps, batch, and the lr and seed it names) is what each
    stage's config resolves to."""
    import re

    card = (ROOT / "docs" / "model-card.md").read_text()
    stages = read_recipe(ROOT / "configs" / "tiny" / "recipe.txt")
    for name in stages:
        config = load_config(ROOT / "configs" / "tiny" / f"{name}.toml")
        row = re.search(rf"^\| {name} \| `configs/tiny/{name}\.toml`(.*?)\| (\d+)(?: × (\d+))?", card, re.M)
        assert row, f"no row for {name} in the model card's recipe table"
        described, steps, batch = row.groups()
        assert int(steps) == config.optim.steps, name
        if batch is not None:
            assert int(batch) == config.optim.batch_size, name
        if lr := re.search(r"\blr ([\d.e-]+)", described + row.group(0)):
            assert float(lr.group(1)) == config.optim.lr, name
        if seed := re.search(r"(?<!data )\bseed (\d+)", described):  # not "data seed"
            assert int(seed.group(1)) == config.seed, name
