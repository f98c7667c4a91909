"""Training configuration: a TOML file per stage (see configs/), read into dataclasses.

Unknown keys are errors, so a typo never silently falls back to a default. A config may extend
another with `base = "other.toml"` (a path relative to it): its tables are read first and this
file's keys replace theirs, so a stage that continues another states only what differs.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

STAGES = ("vae", "t2v", "i2v", "decoder")


@dataclass
class DataConfig:
    kind: str = "synthetic"  # "synthetic" | "videos" (a CSV/JSONL of path,caption) | "ucf101"
    size: int = 64
    num_frames: int = 8
    seed: int = 0
    num_clips: int = 0  # > 0: a finite dataset of that many clips, cycled (0: endless)
    # Synthetic clips: rotation / size / zoom ranges ("large" or "small", data.synthetic), and how
    # many of each action's training phrasings captions use (0: all 15).
    motion_ranges: str = "large"
    train_phrasings: int = 0
    # A speed word ("slowly", none, "quickly") after each moving clip's caption, the motion scaled
    # to match (data.synthetic.SPEED_WORDS).
    speed_words: bool = False
    # Relative frequency of synthetic actions (an action left out weighs 1), in rendered clips and
    # in draws from a latent cache of them: e.g. {rotate_cw = 3.0} for more of a motion learned last.
    action_weights: dict[str, float] = field(default_factory=dict)
    root: str | None = None  # real videos: folder
    captions: str | None = None  # real videos: CSV/JSONL file
    frame_stride: int = 1
    # Diffusion stages: train on VAE latents of `cache_clips` clips encoded once into this file.
    latent_cache: str | None = None
    cache_clips: int = 0
    # > 0: clips rendered on the fly come from this many worker processes, one batch ahead (a
    # GPU's step outruns one process rendering its batch).
    workers: int = 0


@dataclass
class OptimConfig:
    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # any diffusers.optimization scheduler name
    warmup_steps: int = 100
    max_grad_norm: float = 1.0
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    gradient_checkpointing: bool = False


# ----------------------------------------------------------------- per-stage tables
# `[model]` (architecture) and `[stage_options]` (losses, sampling of noise levels, dropout,
# pipeline defaults) differ by stage: each stage's keys and defaults live here, once.
@dataclass
class VAEModel:
    latent_channels: int = 4
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    layers_per_block: int = 1
    norm_num_groups: int = 16


@dataclass
class VAEOptions:
    frames_per_clip: int = 2  # frames of a clip decoded per step
    ssim_weight: float = 0.5
    kl_weight: float = 1e-6
    sample_posterior: bool = False
    # Fine-tune the decoder alone, the encoder frozen (as Stability's sd-vae-ft-mse): the latent
    # space stays, so every diffusion model trained on it keeps working. Needs an [init].
    train_decoder_only: bool = False
    # Random crops of photographs (data.synthetic.DECODER_PHOTOS, never the held-out ones)
    # added to each step's frames: natural detail that procedural clips lack.
    photo_crops_per_batch: int = 0
    # Mean squared distance between the encoder's latents and the [init] encoder's (frozen), in
    # the init's unit-variance scale: a new latent space that stays close to the old one, so the
    # diffusion models trained on the old latents start near their optimum. Needs an [init].
    anchor_weight: float = 0.0


@dataclass
class T2VModel:
    block_out_channels: list[int] = field(default_factory=lambda: [64, 128, 128])
    down_block_types: list[str] = field(
        default_factory=lambda: ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"]
    )
    up_block_types: list[str] = field(
        default_factory=lambda: ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"]
    )
    layers_per_block: int = 1
    attention_head_dim: int = 8
    norm_num_groups: int = 16


@dataclass
class I2VModel:
    image_embed_channels: int = 4
    # Additions to the branch's time embedding (docs/method.md), zero-initialised: true adds them,
    # also to a warm-started model; false keeps what the model has.
    frame_position_embedding: bool = False
    caption_time_embedding: bool = False
    # The reference at frame 0 only, with a mask channel (zero-initialised weights), instead of
    # broadcast to every frame; a warm-started model's other weights carry over.
    reference_first_frame: bool = False


@dataclass
class DiffusionOptions:
    """What the t2v and i2v stages share: the parametrisation and which noise levels they visit."""

    prediction_type: str | None = None  # t2v: "epsilon" if unset; i2v: must equal the base's
    # "uniform" (DDPM) or "logit_normal" (as SD3: t/T = sigmoid(N(mean, std)), mixed with a
    # `timestep_uniform_share` of uniform draws; a positive mean favours high noise).
    timestep_sampling: str = "uniform"
    timestep_logit_mean: float = 0.0
    timestep_logit_std: float = 1.0
    timestep_uniform_share: float = 0.0


@dataclass
class T2VOptions(DiffusionOptions):
    max_tokens: int = 32  # prompts padded to this many MiniLM tokens
    text_dropout: float = 0.1


@dataclass
class I2VOptions(DiffusionOptions):
    condition_dropout: float = 0.05  # each of: image only, text only, both
    train_all: bool = False  # train the main UNet's spatial layers too (not DreamVideo's recipe)
    # Against conditional image leakage (Zhao et al. 2024: an i2v model leans on its image at high
    # noise and makes still videos): Gaussian noise on the reference in training, its std
    # reference_noise * (t / T) * u, u ~ U(0, 1) per clip, in [-1, 1] pixel units; sampling sees
    # the clean image. 0: off.
    reference_noise: float = 0.0
    # > 0: the loss weighs each latent pixel by how much the clip's clean latents change there from
    # frame 0 (stages.motion_weighted_mse), so small in-place motions count. 0: a plain mean.
    motion_loss_weight: float = 0.0
    # The exported pipeline's defaults (None: the base's or the pipeline's own).
    default_num_frames: int | None = None
    default_fps: int | None = None
    default_image_guidance_scale: float | None = None
    default_text_guidance_scale: float | None = None
    default_num_inference_steps: int | None = None
    default_strength: float | None = None
    default_pin_first_frame: bool | None = None


@dataclass
class DecoderModel:
    """The reference-aware decoder's additions (models.ReferenceAwareDecoder); decoder levels run
    from 0 (after the mid block) to the number of up blocks. No residual and no cross-attention
    level is the plain decoder, trained the same way (the probes' baseline)."""

    # "encoder": the frozen encoder's features (an AutoencoderKL's only); "stem": trainable convs
    reference_features: str = "encoder"
    residual_levels: list[int] = field(default_factory=lambda: [1, 2, 3, 4])  # frame 0 only
    cross_attention_levels: list[int] = field(default_factory=lambda: [1, 2])  # every frame
    attention_heads: int = 4
    temporal_layers: bool = False


@dataclass
class DecoderOptions:
    # Training latents are the frozen encoder's, plus Gaussian noise of std u * latent_noise *
    # (their std), u ~ U(0, 1) per clip: sampled latents are never exactly an encoding.
    latent_noise: float = 0.3
    ssim_weight: float = 0.5
    # The first frame's loss weight against another frame's (1: all alike): it is the frame that
    # must equal the reference, and one frame in a clip.
    first_frame_weight: float = 1.0
    train_decoder: bool = True  # the copied decoder trains beside the additions (as ToonCrafter's)


STAGE_TABLES: dict[str, tuple[type, type]] = {
    "vae": (VAEModel, VAEOptions),
    "t2v": (T2VModel, T2VOptions),
    "i2v": (I2VModel, I2VOptions),
    "decoder": (DecoderModel, DecoderOptions),
}


@dataclass
class TrainConfig:
    stage: str
    output_dir: str
    seed: int = 0
    threads: int = 0  # torch threads per process (0: leave torch's default)
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    model: dict[str, Any] = field(default_factory=dict)  # stage-specific architecture
    # Stage inputs: vae folder (t2v), t2v pipeline folder (i2v).
    init: dict[str, str] = field(default_factory=dict)
    # Stage-specific knobs (losses, condition dropout, pipeline defaults).
    stage_options: dict[str, Any] = field(default_factory=dict)
    # i2v only: train a LoRA adapter (dreamvideo.lora.LoraSettings) instead of the model itself.
    lora: dict[str, Any] | None = None
    config_path: str | None = None  # paths inside a config are relative to the working directory

    def model_table(self):
        """`[model]` as this stage's typed table (`VAEModel`, `T2VModel` or `I2VModel`)."""
        return _build(STAGE_TABLES[self.stage][0], self.model, f"{self.config_path} [model]")

    def lora_settings(self):
        """`[lora]` as `LoraSettings`, or None when the config has no such table."""
        if self.lora is None:
            return None
        from ..lora import LoraSettings, require_peft

        require_peft()  # before any work: without peft, say how to install it
        return _build(LoraSettings, self.lora, f"{self.config_path} [lora]").check()

    def options(self):
        """`[stage_options]` as this stage's typed table (`VAEOptions`, `T2VOptions`, `I2VOptions`)."""
        return _build(STAGE_TABLES[self.stage][1], self.stage_options, f"{self.config_path} [stage_options]")


def _build(cls, values: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise UserError(f"unknown key(s) in {where}: {', '.join(sorted(unknown))}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if not _has_type(value, hints[name]):
            shown = repr(value) if len(repr(value)) < 60 else f"{repr(value)[:60]}..."
            raise UserError(f"{where}: {name} must be {_type_name(hints[name])}, got {shown}")
    return cls(**values)


def _has_type(value: Any, hint: Any) -> bool:
    """`value` (from TOML) fits the field's annotation: ints within 64 bits, floats finite."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63
    if hint is float:
        return _has_type(value, int) or (isinstance(value, float) and math.isfinite(value))
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        return isinstance(value, list) and all(_has_type(v, args[0]) for v in value) if args else True
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            return False
        return all(_has_type(v, args[1]) for v in value.values()) if args else True
    return True


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin in (list, tuple):
        return f"a list of {_type_name(args[0])}" if args else "a list"
    if origin is dict:
        return f"a table whose values are each {_type_name(args[1])}" if args else "a table"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    names[type(None)] = "unset"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _merge(base: dict, over: dict) -> dict:
    """`over` on top of `base`, table by table."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A config file's tables, on top of its `base = "other.toml"` (relative to the file) if any."""
    from ..io.files import read_text

    text = read_text(path, "training config")
    if path.resolve() in seen:
        raise UserError(f"config {path} extends itself through 'base'")
    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as e:
        raise UserError(f"cannot parse {path}: {str(e)[:200] or 'nested too deeply'}") from None
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise UserError(f"{path}: base must be a file name, got {base!r}")
    return _merge(_read_toml(path.parent / base, (*seen, path.resolve())), raw)


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read a stage config (and the configs it extends with `base`), then apply `overrides`."""
    path = Path(path)
    raw = _read_toml(path)
    for key, value in (overrides or {}).items():
        section, _, name = key.rpartition(".")
        target = raw.setdefault(section, {}) if section else raw
        target[name] = value
    try:
        data = _build(DataConfig, raw.pop("data", {}), f"{path} [data]")
        optim = _build(OptimConfig, raw.pop("optim", {}), f"{path} [optim]")
        config = _build(
            TrainConfig, {**raw, "data": data, "optim": optim, "config_path": str(path)}, str(path)
        )
    except TypeError as e:
        raise UserError(f"{path}: {e}") from e
    if config.stage not in STAGES:
        raise UserError(f"{path}: stage must be one of {', '.join(STAGES)}, got {config.stage!r}")
    if config.lora is not None and config.stage != "i2v":
        raise UserError(f"{path}: a [lora] table needs stage = 'i2v', got {config.stage!r}")
    try:  # unknown keys in the stage's tables are errors too
        config.model_table(), config.options(), config.lora_settings()
    except TypeError as e:
        raise UserError(f"{path}: {e}") from e
    if config.optim.steps < 1 or config.optim.batch_size < 1 or config.optim.grad_accum < 1:
        raise UserError(f"{path}: steps, batch_size and grad_accum must be positive")
    _check_synthetic_data(config.data, path)
    for name in ("checkpoint_every", "log_every", "keep_checkpoints"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UserError(f"{path}: {name} must be an integer of at least 1, got {value!r}")
    return config


def _check_synthetic_data(data: DataConfig, path: Path) -> None:
    from ..data.synthetic import MAX_TRAIN_PHRASINGS, MOTION_RANGES, action_probabilities

    if data.motion_ranges not in MOTION_RANGES:
        raise UserError(
            f"{path}: data.motion_ranges must be one of {', '.join(MOTION_RANGES)}, "
            f"got {data.motion_ranges!r}"
        )
    count = data.train_phrasings
    if not isinstance(count, int) or isinstance(count, bool) or not 0 <= count <= MAX_TRAIN_PHRASINGS:
        raise UserError(
            f"{path}: data.train_phrasings must be an integer from 0 to {MAX_TRAIN_PHRASINGS}, got {count!r}"
        )
    if not isinstance(data.speed_words, bool):
        raise UserError(f"{path}: data.speed_words must be true or false, got {data.speed_words!r}")
    try:
        action_probabilities(data.action_weights)
    except ValueError as e:
        raise UserError(f"{path}: data.action_weights: {e}") from None


def read_recipe(path: str | Path) -> list[str]:
    """A recipe (configs/tiny/recipe.txt): stage names in training order, one a line; blank
    lines and `#` comments are skipped. Each name is configs/tiny/NAME.toml."""
    from ..io.files import read_text

    path = Path(path)
    lines = (line.strip() for line in read_text(path, "recipe file").splitlines())
    return [line for line in lines if line and not line.startswith("#")]
