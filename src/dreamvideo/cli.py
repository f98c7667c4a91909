"""The `dreamvideo` command line.

Exit codes: 0 success, 2 the user's mistake (one line on stderr, no traceback, no output
file), 1 an internal error. `--debug` (anywhere on the line) shows tracebacks.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import time
from pathlib import Path

import click

from .errors import UserError
from .evaluation import SPLITS, VARIANTS
from .limits import MODES

# name -> (diffusers class, config overrides). Euler-a and PNDM have no x-prediction ("sample").
SCHEDULERS = {
    "ddim": ("DDIMScheduler", {}),
    "dpm++": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "pndm": ("PNDMScheduler", {"skip_prk_steps": True}),
    "ddpm": ("DDPMScheduler", {}),
}
DTYPES = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}  # torch dtype names, resolved lazily


def _quiet_libraries() -> None:
    """Keep library chatter (load reports, loading bars) off the user's terminal."""
    import diffusers
    import transformers

    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("dreamvideo").setLevel(logging.INFO)


def set_scheduler(pipe, name: str) -> None:
    """Swap the pipeline's scheduler for one of SCHEDULERS, keeping the noise schedule."""
    import diffusers

    class_name, overrides = SCHEDULERS[name]
    prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
    if prediction == "sample" and name in ("euler-a", "pndm"):
        others = ", ".join(n for n in SCHEDULERS if n not in ("euler-a", "pndm"))
        raise UserError(f"--scheduler {name} cannot sample this model (x-prediction); use one of {others}")
    pipe.scheduler = getattr(diffusers, class_name).from_config(pipe.scheduler.config, **overrides)


class _Command(click.Command):
    """Quiets the libraries once the arguments parsed: `--help` and refused flags stay light."""

    def invoke(self, ctx: click.Context):
        _quiet_libraries()
        return super().invoke(ctx)


class _Group(click.Group):
    command_class = _Command
    group_class = type  # subgroups are _Groups too


debug_option = click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
model_option = click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=None,
    help="DreamVideo model folder (default: the shipped model).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dreamvideo")
@debug_option
def cli(debug: bool) -> None:
    """DreamVideo: image-to-video generation with text control."""


_lora_options = [
    click.option(
        "--lora",
        "loras",
        multiple=True,
        type=click.Path(path_type=Path),
        help="A LoRA adapter (its folder or .safetensors file); repeat to combine adapters.",
    ),
    click.option(
        "--lora-scale",
        "lora_scales",
        multiple=True,
        type=float,
        help="Adapter weight (default 1): one for every --lora, or one per --lora in order.",
    ),
]


def lora_options(f):
    for option in reversed(_lora_options):
        f = option(f)
    return f


@cli.command()
@click.argument("image", type=click.Path(path_type=Path), required=False)
@click.option(
    "--prompt",
    "-p",
    multiple=True,
    help="The action to perform (empty: image guidance only). Repeat it for several videos "
    "in one run: out-1.mp4, out-2.mp4, ...",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="out.mp4, out.gif, or a folder for PNG frames.",
)
@click.option(
    "--jobs",
    "jobs_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A CSV or JSON Lines file of jobs (columns image, prompt, output, seed, negative_prompt): "
    "one video a row, the model loaded once.",
)
@click.option("--negative-prompt", default="", help="Text to steer away from (replaces the null text).")
@model_option
@click.option("--frames", type=int, default=None, help="Frames per segment (default: the model's).")
@click.option("--height", type=int, default=None, help="Video height in pixels (default: the model's).")
@click.option("--width", type=int, default=None, help="Video width in pixels (default: the model's).")
@click.option(
    "--steps", type=int, default=None, help="Denoising steps (default: the model's; 10 for the shipped one)."
)
@click.option(
    "--image-scale", type=float, default=None, help="Image guidance scale s_img (default: the model's)."
)
@click.option(
    "--text-scale", type=float, default=None, help="Text guidance scale s_txt (default: the model's)."
)
@click.option(
    "--mode", type=click.Choice(MODES), default="image+text", show_default=True, help="Guidance mode."
)
@click.option(
    "--scheduler",
    type=click.Choice(sorted(SCHEDULERS)),
    default=None,
    help="Sampler (default: the model's, DDIM).",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: random, printed).")
@click.option("--fps", type=int, default=None, help="Frames per second of the file (default: the model's).")
@click.option(
    "--segments",
    type=int,
    default=1,
    show_default=True,
    help="Chain segments for a longer video, each from the previous last frame.",
)
@click.option(
    "--resize",
    type=click.Choice(["crop", "pad"]),
    default="crop",
    show_default=True,
    help="Fit the image by centre crop or by padding.",
)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option(
    "--dtype",
    type=click.Choice(list(DTYPES)),
    default="fp32",
    show_default=True,
    help="Precision: fp16/bf16 halve GPU memory; fp16 needs a GPU; on CPU fp32 is fastest.",
)
@click.option(
    "--max-memory",
    default=None,
    help="Refuse requests estimated to need more memory than this, e.g. 8GB (default: the machine's RAM).",
)
@click.option("--attention-slicing", is_flag=True, help="Compute attention in slices (less memory).")
@click.option("--vae-slicing", is_flag=True, help="Decode one frame at a time (less memory).")
@click.option("--cpu-offload", is_flag=True, help="Keep models on CPU until used (GPU memory; needs CUDA).")
@lora_options
@debug_option
def generate(
    image: Path | None,
    prompt: tuple[str, ...],
    output: Path | None,
    jobs_file: Path | None,
    negative_prompt: str,
    model: Path | None,
    frames: int | None,
    height: int | None,
    width: int | None,
    steps: int | None,
    image_scale: float | None,
    text_scale: float | None,
    mode: str,
    scheduler: str | None,
    seed: int | None,
    fps: int | None,
    segments: int,
    resize: str,
    device: str | None,
    dtype: str,
    max_memory: str | None,
    attention_slicing: bool,
    vae_slicing: bool,
    cpu_offload: bool,
    loras: tuple[Path, ...],
    lora_scales: tuple[float, ...],
    debug: bool,
) -> None:
    """Generate a video from IMAGE following --prompt (or one video a row of --jobs FILE)."""
    from .jobs import file_jobs, labelled, prompt_jobs
    from .limits import check_fps, check_sampling_values, check_seed

    # Cheap checks first, so a mistake costs no library import and no model loading.
    check_sampling_values(frames, steps, image_scale, text_scale, segments, height, width)
    check_fps(fps)
    check_seed(seed)
    if jobs_file is not None:
        if image is not None or prompt:
            raise UserError("--jobs FILE takes images and prompts from the file: give no IMAGE or --prompt")
    elif image is None or output is None:
        raise UserError("give IMAGE and --output (or --jobs FILE)")
    _check_memory_budget(model, frames, height, width, segments, mode, dtype, vae_slicing, max_memory)
    adapter_weights = _check_lora_flags(loras, lora_scales)
    # Every job checked (images read, outputs writable and distinct) before any model loads.
    if jobs_file is not None:
        jobs = file_jobs(jobs_file, output, negative_prompt)
    else:
        jobs = prompt_jobs(image, list(prompt), output, negative_prompt)
    import torch

    from .io.images import unit_to_uint8
    from .io.video import write_video
    from .pipeline import load_pipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = torch.device(device).type == "cuda"
    if dtype == "fp16" and not on_gpu:
        raise UserError("--dtype fp16 needs a CUDA device; use bf16 (or fp32) on CPU")
    if cpu_offload and not on_gpu:
        raise UserError("--cpu-offload moves models to a GPU when used: it needs a CUDA device")
    pipe = load_pipeline(model, dtype=getattr(torch, DTYPES[dtype]) if DTYPES[dtype] else None)
    if loras:
        _load_adapters(pipe, loras, adapter_weights)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_slicing:
        pipe.enable_vae_slicing()
    if scheduler:
        set_scheduler(pipe, scheduler)
    shared_seed = random.randrange(2**31) if seed is None else seed  # one draw: a sweep shares noise
    for job in jobs:
        job_seed = shared_seed if job.seed is None else job.seed
        start = time.perf_counter()
        try:
            result = pipe(
                job.image,
                prompt=job.prompt,
                negative_prompt=job.negative_prompt,
                num_frames=frames,
                height=height,
                width=width,
                num_inference_steps=steps,
                image_guidance_scale=image_scale,
                text_guidance_scale=text_scale,
                guidance_mode=mode,
                num_segments=segments,
                generator=torch.Generator("cpu").manual_seed(job_seed),
                resize_mode=resize,
                output_type="np",
            )
        except UserError as error:
            raise labelled(job.label, error) from None
        video = unit_to_uint8(result.frames[0])
        write_video(video, job.output, fps=fps or pipe.config.default_fps)
        elapsed = time.perf_counter() - start
        click.echo(
            f"wrote {job.output} ({video.shape[0]} frames, {video.shape[2]}x{video.shape[1]}, "
            f"seed {job_seed}, {elapsed:.1f} s)"
        )


def _check_memory_budget(
    model, frames, height, width, segments, mode, dtype, vae_slicing, max_memory
) -> None:
    """Refuse, before any model loads, a request estimated over the memory budget."""
    from .budget import ModelFacts, check_budget, estimate_peak_bytes, parse_size, physical_memory_bytes
    from .loading import default_model_dir

    budget = parse_size(max_memory) if max_memory is not None else physical_memory_bytes()
    try:
        facts = ModelFacts.read(model or default_model_dir())
    except (OSError, ValueError, KeyError, TypeError):
        return  # not a readable model folder: loading says what is wrong with it
    estimate = estimate_peak_bytes(
        facts,
        frames or facts.default_frames,
        height or facts.default_side,
        width or facts.default_side,
        conditions=3 if mode == "image+text" else 2,
        num_segments=segments,
        dtype_bytes=4 if dtype == "fp32" else 2,
        decode_chunk=1 if vae_slicing else 16,
    )
    check_budget(estimate, budget)


def _check_lora_flags(loras: tuple[Path, ...], scales: tuple[float, ...]) -> list[float]:
    """Before any model loads: peft installed, each adapter readable, scales in range and one
    for all or one per adapter. Returns each adapter's weight."""
    from .lora import check_lora_scale, read_adapter, require_peft

    if scales and not loras:
        raise UserError("--lora-scale needs --lora")
    if len(scales) not in (0, 1, len(loras)):
        raise UserError(
            f"give one --lora-scale for all adapters or one per --lora ({len(loras)}), got {len(scales)}"
        )
    weights = [check_lora_scale(s) for s in scales] or [1.0]
    if loras:
        require_peft()
        for path in loras:
            read_adapter(path)
    return weights * len(loras) if len(weights) == 1 else weights


def _load_adapters(pipe, loras: tuple[Path, ...], weights: list[float]) -> None:
    """Load, weight and fuse the adapters: fused, sampling costs what it costs without them."""
    names = [pipe.load_lora_weights(path, adapter_name=f"lora{i}") for i, path in enumerate(loras)]
    pipe.set_adapters(names, weights)
    pipe.fuse_lora()


@cli.command()
@model_option
@click.option(
    "--lora-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Also list the LoRA adapters in this folder, and whether each was trained on this model.",
)
@debug_option
def info(model: Path | None, lora_dir: Path | None, debug: bool) -> None:
    """Show a model's components, parameter counts, resolution and frames (and a folder's adapters)."""
    from .loading import default_model_dir
    from .models import count_parameters
    from .pipeline import load_pipeline

    pipe = load_pipeline(model)
    height, width = pipe.default_size
    click.echo(f"model: {model or default_model_dir()}")
    for name in ("vae", "text_encoder", "tokenizer", "unet", "retention_branch", "scheduler"):
        component = getattr(pipe, name)
        line = f"  {name:17s} {type(component).__name__}"
        if isinstance(component, __import__("torch").nn.Module):
            line += f"  {count_parameters(component):,} parameters"
        click.echo(line)
    cfg = pipe.config
    click.echo(f"resolution: {width}x{height} (multiples of {pipe.spatial_multiple})")
    click.echo(f"frames: {cfg.default_num_frames} at {cfg.default_fps} fps")
    click.echo(f"latents: {pipe.unet.config.in_channels} channels, VAE downscale {pipe.vae_scale_factor}")
    click.echo(
        f"text context: {pipe.tokenizer.model_max_length} tokens x {pipe.unet.config.cross_attention_dim}"
    )
    click.echo(
        f"guidance defaults: image {cfg.default_image_guidance_scale}, text {cfg.default_text_guidance_scale}"
    )
    click.echo(f"sampling: {pipe.default_num_inference_steps} steps, {type(pipe.scheduler).__name__}")
    if lora_dir is not None:
        _list_adapters(pipe, lora_dir)


def _list_adapters(pipe, folder: Path) -> None:
    from .lora import base_fingerprint, describe_adapter, find_adapters, read_adapter

    adapters = find_adapters(folder)
    click.echo(f"LoRA adapters in {folder}: {len(adapters) or 'none'}")
    fingerprint = base_fingerprint(pipe)
    for path in adapters:
        try:
            adapter = read_adapter(path)
        except UserError as error:
            click.echo(f"  {path.name}: unusable ({error})")
            continue
        recorded = adapter.info.get("base_fingerprint")
        fits = (
            "unknown base"
            if not recorded
            else ("fits this model" if recorded == fingerprint else "another base")
        )
        click.echo(f"  {describe_adapter(adapter)}; {fits}")


@cli.command()
@click.option("--t2v", "t2v", required=True, type=click.Path(path_type=Path), help="Text-to-video folder.")
@click.option(
    "--out", "out", required=True, type=click.Path(path_type=Path), help="DreamVideo folder to write."
)
@click.option(
    "--image-embed-channels", type=int, default=4, show_default=True, help="Image feature channels."
)
@click.option("--frames", type=int, default=16, show_default=True, help="Default frames of the new model.")
@click.option("--fps", type=int, default=8, show_default=True, help="Default fps of the new model.")
@click.option("--image-scale", type=float, default=1.5, show_default=True, help="Default image guidance.")
@click.option("--text-scale", type=float, default=7.5, show_default=True, help="Default text guidance.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty output folder.")
@click.option("--no-verify", is_flag=True, help="Skip the check that the output equals the base at init.")
@debug_option
def convert(
    t2v: Path,
    out: Path,
    image_embed_channels: int,
    frames: int,
    fps: int,
    image_scale: float,
    text_scale: float,
    overwrite: bool,
    no_verify: bool,
    debug: bool,
) -> None:
    """Build a DreamVideo folder from a text-to-video folder (ModelScope T2V layout)."""
    from .convert import convert_t2v
    from .pipeline import check_sampling_values

    check_sampling_values(frames, None, image_scale, text_scale)
    if fps < 1:
        raise UserError(f"fps must be a positive integer, got {fps}")
    start = time.perf_counter()
    report = convert_t2v(
        t2v,
        out,
        image_embed_channels=image_embed_channels,
        verify=not no_verify,
        overwrite=overwrite,
        default_num_frames=frames,
        default_fps=fps,
        default_image_guidance_scale=image_scale,
        default_text_guidance_scale=text_scale,
    )
    click.echo(f"wrote {report.output} ({time.perf_counter() - start:.1f} s)")
    click.echo(f"  base UNet:   {report.base_unet_parameters:,} parameters")
    click.echo(f"  branch:      {report.branch_parameters:,} parameters")
    click.echo(f"  trainable:   {report.trainable_parameters:,} (branch + temporal layers)")
    if report.max_abs_difference is not None:
        click.echo(f"  equals the base at initialisation (max |difference| {report.max_abs_difference:g})")


@cli.command()
@click.argument("config", type=click.Path(path_type=Path))
@click.option(
    "--resume", is_flag=True, help="Continue from the latest checkpoint in the config's output_dir."
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set optim.steps=100 (TOML value syntax).",
)
@click.option(
    "--export-checkpoint",
    "export_to",
    type=click.Path(path_type=Path),
    default=None,
    help="Do not train: export the latest checkpoint's EMA weights to this new folder "
    "(a pipeline, or a VAE for the vae stage), e.g. to evaluate a run that is still going.",
)
@debug_option
def train(
    config: Path, resume: bool, overrides: tuple[str, ...], export_to: Path | None, debug: bool
) -> None:
    """Train a stage (vae, t2v or i2v) from a TOML CONFIG; see configs/."""
    import tomllib

    from .training.config import load_config
    from .training.trainer import export_checkpoint
    from .training.trainer import train as run_training

    values = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            values[key.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key.strip()] = raw  # a bare string
    if export_to is not None:
        click.echo(f"exported to {export_checkpoint(load_config(config, values), export_to)}")
        return
    summary = run_training(load_config(config, values), resume=resume)
    click.echo(json.dumps(summary))
    if summary["interrupted"]:
        raise SystemExit(130)


@cli.group()
def data() -> None:
    """Datasets: write the procedural motion clips to disk."""


@data.command("synth")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New folder to write.")
@click.option("--num", type=int, required=True, help="Number of clips.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split", type=click.Choice(["train", "heldout"]), default="train", show_default=True)
@click.option("--size", type=int, default=64, show_default=True, help="Frame side in pixels.")
@click.option("--frames", type=int, default=16, show_default=True)
@click.option("--fps", type=int, default=8, show_default=True)
@click.option(
    "--action",
    default=None,
    help="Every clip this action (e.g. move_left; move_up_right is one the default model never saw).",
)
@debug_option
def data_synth(
    out: Path,
    num: int,
    seed: int,
    split: str,
    size: int,
    frames: int,
    fps: int,
    action: str | None,
    debug: bool,
) -> None:
    """Write procedural clips (mp4) + captions.csv + motion.jsonl (ground truth)."""
    from .data.synthetic import write_dataset

    if size < 16 or frames < 2:
        raise UserError("--size must be at least 16 and --frames at least 2")
    path = write_dataset(out, num, seed, split, size, frames, fps, action=action)
    click.echo(f"wrote {num} clips to {path}")


@cli.group("eval")
def evaluate() -> None:
    """Evaluation suites."""


def _scales(text: str | None, flag: str) -> list[float]:
    if not text:
        return []
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as e:
        raise UserError(f"{flag} takes comma-separated numbers, e.g. 1,1.5,3; got {text!r}") from e
    if not values or any(not 0 <= v < float("inf") for v in values):
        raise UserError(f"{flag} needs finite scales of 0 or more, got {text!r}")
    return values


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out exists and is not a folder: {out}")


@evaluate.command("clips")
@click.argument("dataset", type=click.Path(path_type=Path))
@model_option
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for metrics.json.")
@click.option("--num", type=int, default=None, help="At most this many clips (default: all).")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option("--batch-size", type=int, default=8, show_default=True)
@lora_options
@debug_option
def eval_clips(
    dataset: Path,
    model: Path | None,
    out: Path,
    num: int | None,
    steps: int | None,
    batch_size: int,
    loras: tuple[Path, ...],
    lora_scales: tuple[float, ...],
    debug: bool,
) -> None:
    """Does the model move each clip of DATASET (from `data synth`) the way the clip moves?"""
    from .evaluation.clips import evaluate_clips
    from .pipeline import check_sampling_values, load_pipeline

    if (num is not None and num < 1) or batch_size < 1:
        raise UserError("--num and --batch-size must be positive")
    check_sampling_values(None, steps, None, None)
    _check_out_dir(out)
    weights = _check_lora_flags(loras, lora_scales)
    if not (dataset / "motion.jsonl").is_file():
        raise UserError(f"{dataset} has no motion.jsonl: write one with `dreamvideo data synth`")
    pipe = load_pipeline(model)
    if loras:
        _load_adapters(pipe, loras, weights)
    metrics = evaluate_clips(pipe, dataset, out, num, steps, batch_size)
    for key in (
        "direction_accuracy",
        "label_accuracy",
        "measured_still",
        "mean_measured_dx",
        "mean_measured_dy",
    ):
        value = metrics[key]
        click.echo(f"{key:20s} {'n/a' if value is None else f'{value:.4f}'}")
    click.echo(f"wrote {out / 'metrics.json'}")


@evaluate.command("synthetic")
@model_option
@click.option("--num", type=int, default=200, show_default=True, help="Held-out clips.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for metrics.json.")
@click.option("--image-scale", type=float, default=None)
@click.option("--text-scale", type=float, default=None)
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option("--frames", type=int, default=None)
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option(
    "--photos",
    type=int,
    default=24,
    show_default=True,
    help="Held-out real photographs for the camera pan / zoom test (4 prompts each).",
)
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default="full",
    show_default=True,
    help="Ablation: the model as is, without its retention branch, without image guidance, "
    "the reference image repeated (no model), or text only (--mode text: the null image).",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="heldout",
    show_default=True,
    help="Held-out clips, photos and phrasings; the same clips with training phrasings; or the "
    "clips, photos and phrasings the default recipe trained on.",
)
@click.option("--sweep-image", default=None, help="Also sweep these image scales, e.g. 1,1.5,3.")
@click.option("--sweep-text", default=None, help="... against these text scales, e.g. 1,5,9.")
@click.option("--sweep-num", type=int, default=39, show_default=True, help="Clips per sweep cell.")
@click.option(
    "--scheduler",
    type=click.Choice(sorted(SCHEDULERS)),
    default=None,
    help="Sampler (default: the model's), to compare samplers at equal quality.",
)
@debug_option
def eval_synthetic(
    model: Path | None,
    num: int,
    out: Path,
    image_scale: float | None,
    text_scale: float | None,
    steps: int | None,
    frames: int | None,
    batch_size: int,
    photos: int,
    variant: str,
    split: str,
    sweep_image: str | None,
    sweep_text: str | None,
    sweep_num: int,
    scheduler: str | None,
    debug: bool,
) -> None:
    """Fidelity, action accuracy, opposite prompts, temporal consistency on held-out clips.

    --model may also be a text-to-video folder (a t2v stage's export) with --variant no-branch:
    the base's own text -> motion (8 frames unless --frames)."""
    from .evaluation.report import write_report
    from .evaluation.synthetic import evaluate_synthetic, sweep_guidance
    from .pipeline import check_sampling_values

    if num < 1 or batch_size < 1 or photos < 1 or sweep_num < 1:
        raise UserError("--num, --batch-size, --photos and --sweep-num must be positive")
    check_sampling_values(frames, steps, image_scale, text_scale)
    sweep_i, sweep_t = _scales(sweep_image, "--sweep-image"), _scales(sweep_text, "--sweep-text")
    if bool(sweep_i) != bool(sweep_t):
        raise UserError("a sweep needs both --sweep-image and --sweep-text")
    _check_out_dir(out)
    pipe = _pipeline_for_synthetic_eval(model, variant, frames)
    if scheduler is not None:
        set_scheduler(pipe, scheduler)
    metrics = evaluate_synthetic(
        pipe,
        num,
        out,
        frames,
        steps,
        image_scale,
        text_scale,
        batch_size,
        num_photos=photos,
        variant=variant,
        split=split,
    )
    if sweep_i:
        sweep_guidance(pipe, sweep_i, sweep_t, sweep_num, out, frames, steps, batch_size)
    report = write_report(metrics, out, f"Synthetic suite: {variant}")
    keys = (
        "first_frame_ssim",
        "first_frame_psnr",
        "vae_reconstruction_ssim",
        "action_accuracy",
        "opposite_pair_accuracy",
        "temporal_consistency",
        "real_photo_camera_accuracy",
        "real_photo_opposite_pair_accuracy",
        "real_photo_first_frame_ssim",
    )
    for key in keys:
        click.echo(f"{key:36s} {metrics[key]:.4f}")
    click.echo(f"wrote {out / 'metrics.json'} and {report}")


def _pipeline_for_synthetic_eval(model: Path | None, variant: str, frames: int | None):
    """A DreamVideo folder, or a text-to-video base (a t2v stage's export) wrapped as DreamVideo
    with a fresh zero-initialised branch, which predicts exactly what the base predicts: its
    text -> motion is measured with --variant no-branch (the base alone)."""
    from .loading import T2V_PIPELINE_CLASSES, read_model_index
    from .pipeline import DreamVideoPipeline, load_pipeline

    if model is None or read_model_index(model)["_class_name"] not in T2V_PIPELINE_CLASSES:
        return load_pipeline(model)
    if variant != "no-branch":
        raise UserError(f"{model} is a text-to-video model (no image branch): use --variant no-branch")
    return DreamVideoPipeline.from_t2v(model, default_num_frames=frames or 8)


_network_options = [
    click.option("--i3d", type=click.Path(path_type=Path), default=None, help="TorchScript I3D for FVD."),
    click.option(
        "--c3d", type=click.Path(path_type=Path), default=None, help="TorchScript C3D (UCF101) for IS."
    ),
    click.option(
        "--clip", type=click.Path(path_type=Path), default=None, help="transformers CLIP folder for FFF-CLIP."
    ),
    click.option("--no-fid", is_flag=True, help="Skip frame FID (it runs Inception on every frame)."),
    click.option("--fid-frames", type=int, default=None, help="Frames per video for FID (default: all)."),
    click.option("--device", default="cpu", show_default=True, help="torch device for the feature networks."),
]


def network_options(f):
    for option in reversed(_network_options):
        f = option(f)
    return f


def _print_video_metrics(metrics: dict, out: Path) -> None:
    from .evaluation.report import write_report

    for key in ("fvd", "is_mean", "fid", "fff_ssim", "fff_psnr", "fff_clip"):
        if key in metrics:
            click.echo(f"{key:10s} {metrics[key]:.4f}")
    for key, reason in metrics["skipped"].items():
        click.echo(f"{key:10s} skipped: {reason}")
    report = write_report(metrics, out, "Video metrics")
    click.echo(f"wrote {out / 'metrics.json'} and {report}")


@evaluate.command("videos")
@click.option("--real", required=True, type=click.Path(path_type=Path), help="Folder of real videos.")
@click.option("--fake", required=True, type=click.Path(path_type=Path), help="Folder of generated videos.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for metrics.json.")
@network_options
@debug_option
def eval_videos(
    real: Path,
    fake: Path,
    out: Path,
    i3d: Path | None,
    c3d: Path | None,
    clip: Path | None,
    no_fid: bool,
    fid_frames: int | None,
    device: str,
    debug: bool,
) -> None:
    """FID, FVD, IS, FFF-SSIM and FFF-CLIP between two folders of videos."""
    from .evaluation.videos import evaluate_videos

    if fid_frames is not None and fid_frames < 1:
        raise UserError("--fid-frames must be positive")
    _check_out_dir(out)
    metrics = evaluate_videos(
        real, fake, out, i3d, c3d, clip, fid=not no_fid, fid_frames=fid_frames, device=device
    )
    _print_video_metrics(metrics, out)


_protocol_options = [
    model_option,
    click.option(
        "--out", required=True, type=click.Path(path_type=Path), help="Folder for clips and metrics."
    ),
    click.option("--frames", type=int, default=16, show_default=True, help="Frames per clip."),
    click.option("--size", type=int, default=256, show_default=True, help="Clip side in pixels."),
    click.option("--fps", type=float, default=8.0, show_default=True, help="Frames per second sampled."),
    click.option("--seed", type=int, default=0, show_default=True, help="Clip choice and generation seed."),
    click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's)."),
    click.option("--image-scale", type=float, default=None),
    click.option("--text-scale", type=float, default=None),
    click.option("--batch-size", type=int, default=1, show_default=True),
]


def protocol_options(f):
    for option in reversed(_protocol_options):
        f = option(f)
    return network_options(f)


def _run_protocol(items, model, out, frames, size, fps, seed, steps, image_scale, text_scale, batch_size,
                  i3d, c3d, clip, no_fid, fid_frames, device, debug) -> None:  # fmt: skip
    """Generate the planned clips (sharded over accelerate's processes), then the video metrics."""
    from accelerate import PartialState

    from .evaluation.protocols import ProtocolSettings, generate_protocol
    from .evaluation.videos import evaluate_videos
    from .pipeline import check_sampling_values, load_pipeline

    if size < 8 or fps <= 0 or batch_size < 1:
        raise UserError("--size must be at least 8, --fps above 0, --batch-size at least 1")
    check_sampling_values(frames, steps, image_scale, text_scale)
    _check_out_dir(out)
    settings = ProtocolSettings(frames, size, fps, seed, steps, image_scale, text_scale, batch_size)
    counts = generate_protocol(load_pipeline(model), items, out, settings)
    if not PartialState().is_main_process:
        return
    click.echo(
        f"clips: {counts['planned']} planned, {counts['already_done']} already generated, "
        f"{counts['generated_now']} generated now, {len(counts['unreadable'])} unreadable"
    )
    metrics = evaluate_videos(
        out / "real", out / "fake", out, i3d, c3d, clip, fid=not no_fid, fid_frames=fid_frames, device=device
    )
    _print_video_metrics(metrics, out)


@evaluate.command("ucf101")
@click.option(
    "--root", required=True, type=click.Path(path_type=Path), help="UCF101 folder (one folder per class)."
)
@click.option("--per-class", type=int, default=20, show_default=True, help="Clips per class.")
@click.option("--template", default="a person {label}", show_default=True, help="Prompt from the class name.")
@protocol_options
@debug_option
def eval_ucf101(root: Path, per_class: int, template: str, **options) -> None:
    """The UCF101 protocol: first real frame + class prompt -> video; FVD, IS, FFF-SSIM/CLIP."""
    from .evaluation.protocols import ucf101_plan

    if per_class < 1:
        raise UserError("--per-class must be positive")
    _run_protocol(ucf101_plan(root, per_class, options["seed"], template), **options)


@evaluate.command("msrvtt")
@click.option(
    "--root", required=True, type=click.Path(path_type=Path), help="MSR-VTT folder (videos + annotations)."
)
@click.option(
    "--annotations",
    type=click.Path(path_type=Path),
    default=None,
    help="test_videodatainfo.json, MSRVTT_data.json or MSRVTT_JSFUSION_test.csv (default: under --root).",
)
@click.option("--num", type=int, default=None, help="At most this many test videos (default: all).")
@protocol_options
@debug_option
def eval_msrvtt(root: Path, annotations: Path | None, num: int | None, **options) -> None:
    """The MSR-VTT protocol: first real frame + caption -> video; FVD, IS, FFF-SSIM/CLIP."""
    from .evaluation.protocols import msrvtt_plan

    if num is not None and num < 1:
        raise UserError("--num must be positive")
    _run_protocol(msrvtt_plan(root, num, options["seed"], annotations), **options)


@evaluate.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for comparison.md/png.")
@click.option("--names", default=None, help="Comma-separated column names (default: the folder names).")
@debug_option
def eval_report(runs: tuple[Path, ...], out: Path, names: str | None, debug: bool) -> None:
    """Put several eval output folders (their metrics.json) side by side."""
    from .evaluation.report import compare_reports

    labels = [n.strip() for n in names.split(",")] if names else [r.name for r in runs]
    if len(labels) != len(runs):
        raise UserError(f"--names has {len(labels)} names for {len(runs)} folders")
    loaded = {}
    for label, run in zip(labels, runs, strict=True):
        file = run / "metrics.json" if run.is_dir() else run
        try:
            loaded[label] = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"cannot read {file}: {e}") from e
    _check_out_dir(out)
    path = compare_reports(loaded, out)
    click.echo(f"wrote {path}")


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path), help="Output folder.")
@model_option
@click.option("--num", type=int, default=26, show_default=True, help="Held-out clips for the comparison.")
@click.option("--naive-steps", type=int, default=50, show_default=True, help="DDIM steps of the naive path.")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's, one per core).")
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    default=None,
    help="Reference image of the README command's runs (default: examples/cat.png).",
)
@click.option("--smoke", is_flag=True, help="Every measurement at toy sizes, in seconds (for tests).")
@debug_option
def bench(
    out_dir: Path,
    model: Path | None,
    num: int,
    naive_steps: int,
    threads: int | None,
    image: Path | None,
    smoke: bool,
    debug: bool,
) -> None:
    """Measure speed, memory, FLOPs and start-up against a naive sampler and diffusers' pipeline.

    Writes OUT/bench.json, OUT/bench.md and OUT/scaling.png (docs/performance.md)."""
    if num < 1 or naive_steps < 1:
        raise UserError("--num and --naive-steps must be at least 1")
    if threads is not None and not 1 <= threads <= 1024:
        raise UserError(f"--threads must be from 1 to 1024, got {threads}")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out is a file, not a folder: {out_dir}")
    import torch

    from .benchmark import README_IMAGE, BenchSettings, run_benchmark
    from .io.images import load_image
    from .pipeline import load_pipeline

    image = image or README_IMAGE
    if not image.is_file():
        raise UserError(f"no example image at {image}: pass --image PATH")
    load_image(image)  # an unreadable image fails here, not after minutes of measuring
    if threads is not None:
        torch.set_num_threads(threads)
    load_pipeline(model)  # a wrong --model fails here, before any measurement
    settings = BenchSettings.smoke(image=image) if smoke else BenchSettings(image=image)
    if not smoke:
        settings.num_clips, settings.naive_steps = num, naive_steps
    results = run_benchmark(model, out_dir, settings, log=lambda m: click.echo(m, err=True))
    click.echo(
        f"default {results['seconds_per_clip']:.2f} s/clip, naive {results['naive_seconds_per_clip']:.2f} "
        f"s/clip ({results['speedup_vs_naive']:.2f}x), MFU {results['mfu']:.1%}; "
        f"wrote {out_dir / 'bench.json'}"
    )


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind (0.0.0.0: all).")
@click.option("--port", type=int, default=None, help="Port (default: the first free one from 7860).")
@model_option
@click.option("--concurrency", type=int, default=1, show_default=True, help="Videos generated at once.")
@click.option("--queue-size", type=int, default=64, show_default=True, help="Requests waiting at most.")
@click.option("--max-upload-mb", type=float, default=20, show_default=True, help="Upload size limit.")
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option(
    "--lora-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A folder of LoRA adapters the page can switch on (each a folder or .safetensors file).",
)
@debug_option
def web(
    host: str,
    port: int | None,
    model: Path | None,
    concurrency: int,
    queue_size: int,
    max_upload_mb: float,
    device: str | None,
    lora_dir: Path | None,
    debug: bool,
) -> None:
    """Serve the Gradio web app (binds 127.0.0.1; never a public share link)."""
    import importlib.util

    if port is not None and not 1 <= port <= 65535:
        raise UserError(f"port must be from 1 to 65535, got {port}")
    if concurrency < 1 or queue_size < 1 or not max_upload_mb > 0:
        raise UserError("--concurrency and --queue-size must be at least 1, --max-upload-mb above 0")
    if importlib.util.find_spec("gradio") is None:  # an optional extra: say how to get it
        raise UserError("the web app needs gradio, which is not installed: pip install -e '.[web]'")
    adapters = _adapters_in(lora_dir) if lora_dir is not None else None
    import torch

    from .web import launch

    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: serving on {host}: anyone who can reach this machine can use the app", err=True)
    from .pipeline import load_pipeline

    pipe = load_pipeline(model).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    options = {"concurrency": concurrency, "queue_size": queue_size, "max_upload_mb": max_upload_mb}
    launch(pipe, host, port, **options, adapters=adapters)


def _adapters_in(folder: Path) -> dict[str, Path]:
    """name -> path of every adapter in `folder`, each read and checked before the model loads."""
    from .lora import find_adapters, read_adapter, require_peft

    require_peft()
    adapters: dict[str, Path] = {}
    for path in find_adapters(folder):
        name = re.sub(r"\W+", "_", read_adapter(path).name)
        if name in adapters:
            raise UserError(f"two adapters in {folder} are named {name!r}: rename one")
        adapters[name] = path
    if not adapters:
        raise UserError(f"no LoRA adapter in {folder}")
    return adapters


def main(argv: list[str] | None = None) -> int:
    # The command never reaches a model hub (every model is a local folder or an installed
    # package); set before any hub library loads, for this process only. The library itself
    # relies on local_files_only instead of changing a host program's environment.
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(name, "1")
    args = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in args or os.environ.get("DREAMVIDEO_DEBUG") == "1"
    try:
        cli.main(args=args, prog_name="dreamvideo", standalone_mode=False)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:  # usage errors: click's own message, exit 2
        e.show()
        return e.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 130
    except UserError as e:
        if debug:
            raise
        click.echo(f"error: {e}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as e:
        if debug:
            raise
        click.echo(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
