"""`dreamvideo eval ...`: the synthetic suite, clips, video sets, UCF101 / MSR-VTT, reports."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UserError
from ..evaluation import SPLITS, VARIANTS
from ..io.files import read_json
from .app import (
    SCHEDULERS,
    cli,
    debug_option,
    lora_options,
    model_option,
    set_scheduler,
)
from .generate import _check_lora_flags, _load_adapters


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
    from ..limits import check_sampling_values

    if (num is not None and num < 1) or batch_size < 1:
        raise UserError("--num and --batch-size must be positive")
    check_sampling_values(None, steps, None, None)
    _check_out_dir(out)
    weights = _check_lora_flags(loras, lora_scales)
    if not (dataset / "motion.jsonl").is_file():
        raise UserError(f"{dataset} has no motion.jsonl: write one with `dreamvideo data synth`")
    from ..evaluation.clips import evaluate_clips
    from ..loading import measured_on
    from ..pipeline import load_pipeline

    pipe = load_pipeline(model)
    record = measured_on(pipe)  # the base model's weights, before adapters are fused into them
    if loras:
        _load_adapters(pipe, loras, weights)
        record["lora"] = [{"path": str(p), "scale": w} for p, w in zip(loras, weights, strict=True)]
    metrics = evaluate_clips(pipe, dataset, out, num, steps, batch_size, model_record=record)
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


@evaluate.command("reconstruction")
@model_option
@click.option(
    "--vae",
    "vae_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="A VAE folder (an AutoencoderKL or a PatchAutoencoder) instead of the model's own VAE.",
)
@click.option(
    "--image",
    "images",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Also score this image; repeatable.",
)
@click.option("--num-frames", type=int, default=128, show_default=True, help="Held-out synthetic frames.")
@click.option("--num-photos", type=int, default=48, show_default=True, help="Crops of held-out photographs.")
@click.option("--size", type=int, default=None, help="Image side (default: the model's).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Write the report to this JSON file."
)
@debug_option
def eval_reconstruction(
    model: Path | None,
    vae_dir: Path | None,
    images: tuple[Path, ...],
    num_frames: int,
    num_photos: int,
    size: int | None,
    out: Path | None,
    debug: bool,
) -> None:
    """How much of an image the VAE keeps (the first frame's ceiling), beside a 4x thumbnail."""
    from ..evaluation.reconstruction import evaluate_reconstruction
    from ..io.images import load_image

    if num_frames < 1 or num_photos < 1 or (size is not None and size < 8):
        raise UserError("--num-frames and --num-photos must be positive, --size at least 8")
    if out is not None and out.is_dir():
        raise UserError(f"--out is a folder; give a file name: {out}")
    for path in images:
        load_image(path)  # a bad image fails here, in one line, before any work
    if vae_dir is not None:
        from ..loading import load_vae

        vae = load_vae(vae_dir)
        size = size or int(vae.config.sample_size)
    else:
        from ..pipeline import load_pipeline

        pipe = load_pipeline(model)
        vae = pipe.vae
        size = size or pipe.default_size[0]
    report = evaluate_reconstruction(vae, size, num_frames, num_photos, images)
    click.echo(f"{'set':10s} {'count':>5s} {'SSIM':>7s} {'PSNR':>6s}   thumbnail SSIM / PSNR")
    for name, row in report.items():
        click.echo(
            f"{name:10s} {row['count']:5d} {row['ssim']:7.4f} {row['psnr']:6.2f}   "
            f"{row['thumbnail_ssim']:.4f} / {row['thumbnail_psnr']:.2f}"
        )
    if out is not None:
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(out)  # whole or not at all
        click.echo(f"wrote {out}")


@evaluate.command("synthetic")
@model_option
@click.option("--num", type=int, default=200, show_default=True, help="Held-out clips.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for metrics.json.")
@click.option("--image-scale", type=float, default=None)
@click.option("--text-scale", type=float, default=None)
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option("--strength", type=float, default=None, help="Sampling start (default: the model's).")
@click.option(
    "--pin-first-frame/--no-pin-first-frame", default=None, help="First-frame pinning (default: the model's)."
)
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
    strength: float | None,
    pin_first_frame: bool | None,
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
    from ..limits import check_sampling_values, check_strength

    if num < 1 or batch_size < 1 or photos < 1 or sweep_num < 1:
        raise UserError("--num, --batch-size, --photos and --sweep-num must be positive")
    check_sampling_values(frames, steps, image_scale, text_scale)
    check_strength(strength)
    sweep_i, sweep_t = _scales(sweep_image, "--sweep-image"), _scales(sweep_text, "--sweep-text")
    if bool(sweep_i) != bool(sweep_t):
        raise UserError("a sweep needs both --sweep-image and --sweep-text")
    _check_out_dir(out)
    from ..evaluation.report import write_report
    from ..evaluation.synthetic import evaluate_synthetic, sweep_guidance

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
        strength=strength,
        pin_first_frame=pin_first_frame,
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


@evaluate.command("speed-words")
@model_option
@click.option("--num", type=int, default=48, show_default=True, help="Held-out moving clips.")
@click.option("--steps", type=int, default=None, help="Denoising steps (default: the model's).")
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Write the per-clip report to this JSON."
)
@debug_option
def eval_speed_words(model: Path | None, num: int, steps: int | None, out: Path | None, debug: bool) -> None:
    """Speed per word: each clip's prompt with "slowly", no word and "quickly", from the same noise."""
    from ..limits import check_sampling_values

    if num < 1:
        raise UserError("--num must be positive")
    check_sampling_values(num_inference_steps=steps)
    if out is not None and out.is_dir():
        raise UserError(f"--out is a folder; give a file name: {out}")
    from ..evaluation.speed_words import evaluate_speed_words
    from ..pipeline import load_pipeline

    result = evaluate_speed_words(load_pipeline(model), num, out, steps)
    click.echo(f"{'word':10s} {'model px/frame':>15s} {'data px/frame':>14s}")
    for word, speed in result["speed_per_word"].items():
        click.echo(f"{word:10s} {speed:15.3f} {result['data_speed_per_word'][word]:14.3f}")
    click.echo(
        f"ordered slowly < none < quickly: {result['ordered_fraction']:.3f} of {result['num_clips']} clips "
        f"(the data: {result['data_ordered_fraction']:.3f})"
    )
    if out is not None:
        click.echo(f"wrote {out}")


def _pipeline_for_synthetic_eval(model: Path | None, variant: str, frames: int | None):
    """A DreamVideo folder, or a text-to-video base (a t2v stage's export) wrapped as DreamVideo
    with a fresh zero-initialised branch, which predicts exactly what the base predicts: its
    text -> motion is measured with --variant no-branch (the base alone)."""
    from ..loading import T2V_PIPELINE_CLASSES, read_model_index
    from ..pipeline import DreamVideoPipeline, load_pipeline

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
    from ..evaluation.report import write_report

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
    from ..evaluation.videos import evaluate_videos

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


def _check_protocol_options(options: dict) -> None:
    """The protocol's numbers and output folder, before the dataset is scanned or torch loads."""
    from ..limits import check_sampling_values

    if options["size"] < 8 or options["fps"] <= 0 or options["batch_size"] < 1:
        raise UserError("--size must be at least 8, --fps above 0, --batch-size at least 1")
    check_sampling_values(options["frames"], options["steps"], options["image_scale"], options["text_scale"])
    _check_out_dir(options["out"])


def _run_protocol(items, model, out, frames, size, fps, seed, steps, image_scale, text_scale, batch_size,
                  i3d, c3d, clip, no_fid, fid_frames, device, debug) -> None:  # fmt: skip
    """Generate the planned clips (sharded over accelerate's processes), then the video metrics."""
    from accelerate import PartialState

    from ..evaluation.protocols import ProtocolSettings, generate_protocol
    from ..evaluation.videos import evaluate_videos
    from ..pipeline import load_pipeline

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
    if per_class < 1:
        raise UserError("--per-class must be positive")
    _check_protocol_options(options)
    from ..evaluation.protocols import ucf101_plan

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
    if num is not None and num < 1:
        raise UserError("--num must be positive")
    _check_protocol_options(options)
    from ..evaluation.protocols import msrvtt_plan

    _run_protocol(msrvtt_plan(root, num, options["seed"], annotations), **options)


@evaluate.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for comparison.md/png.")
@click.option("--names", default=None, help="Comma-separated column names (default: the folder names).")
@debug_option
def eval_report(runs: tuple[Path, ...], out: Path, names: str | None, debug: bool) -> None:
    """Put several eval output folders (their metrics.json) side by side."""
    from ..evaluation.report import compare_reports

    labels = [n.strip() for n in names.split(",")] if names else [r.name for r in runs]
    if len(labels) != len(runs):
        raise UserError(f"--names has {len(labels)} names for {len(runs)} folders")
    loaded = {}
    for label, run in zip(labels, runs, strict=True):
        file = run / "metrics.json" if run.is_dir() else run
        loaded[label] = read_json(file, "metrics file")
        if not isinstance(loaded[label], dict):
            raise UserError(f"{file} is not a JSON object of metrics")
    _check_out_dir(out)
    path = compare_reports(loaded, out)
    click.echo(f"wrote {path}")
