"""Figures for model cards and reports: loss curves and contact sheets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..io.images import unit_to_uint8


def plot_losses(runs: dict[str, Path], out: Path) -> Path:
    """One panel per training stage from its loss.csv (step, loss, lr, seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.2), squeeze=False)
    for ax, (name, run) in zip(axes[0], runs.items(), strict=True):
        rows = [r for r in csv.reader((run / "loss.csv").read_text().splitlines()) if r]
        steps = np.array([int(r[0]) for r in rows])
        loss = np.array([float(r[1]) for r in rows])
        ax.plot(steps, loss, alpha=0.35, lw=0.8, label="logged")
        k = max(1, len(loss) // 20)
        smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, lw=1.6, label=f"mean of {k}")
        ax.set_title(f"{name} ({rows[-1][3]} s)")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _label(image: Image.Image, text: str, width: int) -> Image.Image:
    canvas = Image.new("RGB", (width + image.width, image.height), (255, 255, 255))
    canvas.paste(image, (width, 0))
    ImageDraw.Draw(canvas).text((4, image.height // 2 - 6), text, fill=(0, 0, 0))
    return canvas


@torch.no_grad()
def contact_sheet(
    pipe,
    rows: list[tuple[str, Image.Image, str, str]],
    out: Path,
    steps: int = 25,
    seed: int = 0,
    scale: int = 2,
    label_width: int = 230,
) -> Path:
    """rows: (label, reference image, prompt, guidance mode); each row shows the generated frames."""
    pipe.set_progress_bar_config(disable=True)
    lines = []
    for label, image, prompt, mode in rows:
        video = pipe(
            image,
            prompt,
            guidance_mode=mode,
            num_inference_steps=steps,
            generator=torch.Generator().manual_seed(seed),
        ).frames[0]
        strip = np.concatenate(list(unit_to_uint8(video)), 1)
        strip = Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST)
        lines.append(_label(strip, label, label_width))
    sheet = Image.new("RGB", (max(x.width for x in lines), sum(x.height + 4 for x in lines)), (255, 255, 255))
    y = 0
    for line in lines:
        sheet.paste(line, (0, y))
        y += line.height + 4
    sheet.save(out)
    return out


# ----------------------------------------------------------------- metric reports

# Scalar metrics in report order, with the direction that is better.
METRIC_LABELS = {
    "first_frame_ssim": ("first-frame SSIM", "↑"),
    "first_frame_psnr": ("first-frame PSNR (dB)", "↑"),
    "vae_reconstruction_ssim": ("VAE reconstruction SSIM (ceiling)", "↑"),
    "vae_reconstruction_psnr": ("VAE reconstruction PSNR (dB)", "↑"),
    "first_frame_colourfulness_ratio": ("first-frame colourfulness ratio", "→1"),
    "action_accuracy": ("action accuracy", "↑"),
    "opposite_pair_accuracy": ("opposite-prompt pairs", "↑"),
    "temporal_consistency": ("temporal consistency (warp error)", "↓"),
    "real_photo_camera_accuracy": ("real-photo camera accuracy", "↑"),
    "real_photo_opposite_pair_accuracy": ("real-photo opposite pairs", "↑"),
    "real_photo_first_frame_ssim": ("real-photo first-frame SSIM", "↑"),
    "estimator_accuracy_on_ground_truth": ("estimator on ground truth", "↑"),
    "ground_truth_temporal_consistency": ("ground-truth warp error", "↓"),
    "fid": ("frame FID", "↓"),
    "fvd": ("FVD", "↓"),
    "is_mean": ("IS (C3D)", "↑"),
    "fff_ssim": ("FFF-SSIM", "↑"),
    "fff_psnr": ("FFF-PSNR (dB)", "↑"),
    "fff_clip": ("FFF-CLIP", "↑"),
}


def _fmt(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.1f}"
    return str(value)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(rows: list[dict], out: Path) -> Path:
    """Fidelity (first-frame SSIM) against control (action accuracy), one point per scale pair."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4))
    for r in rows:
        ax.scatter(r["first_frame_ssim"], r["action_accuracy"], s=30)
        ax.annotate(
            f"{r['image_guidance_scale']:g}/{r['text_guidance_scale']:g}",
            (r["first_frame_ssim"], r["action_accuracy"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("first-frame SSIM (fidelity)")
    ax.set_ylabel("action accuracy (control)")
    ax.set_title("guidance sweep (labels: image / text scale)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _scalar_rows(metrics: dict) -> list[tuple[str, str, str]]:
    rows = []
    for key, (label, better) in METRIC_LABELS.items():
        if key in metrics and not isinstance(metrics[key], dict):
            value = _fmt(metrics[key])
            if key == "is_mean" and "is_std" in metrics:
                value += f" ± {_fmt(metrics['is_std'])}"
            rows.append((label, better, value))
    return rows


def write_report(metrics: dict, out_dir: Path, title: str) -> Path:
    """out_dir/report.md: the scalar metrics, per-action table, confusion matrix, figures."""
    out_dir = Path(out_dir)
    lines = [f"# {title}", ""]
    settings = {
        k: metrics[k]
        for k in (
            "variant",
            "num_clips",
            "num_frames",
            "steps",
            "image_guidance_scale",
            "text_guidance_scale",
        )
        if k in metrics
    }
    settings |= {k: metrics[k] for k in ("real", "fake", "num_real", "num_fake", "num_pairs") if k in metrics}
    if settings:
        lines += ["Settings: " + ", ".join(f"{k} = {_fmt(v)}" for k, v in settings.items()), ""]
    lines += ["| metric | better | value |", "|---|---|---|"]
    lines += [f"| {label} | {better} | {value} |" for label, better, value in _scalar_rows(metrics)]
    if metrics.get("skipped"):
        lines += ["", "Skipped (no value, not estimated):", ""]
        lines += [f"- {k}: {reason}" for k, reason in metrics["skipped"].items()]
    if "action_accuracy_per_action" in metrics:
        lines += ["", "## Action accuracy per action", "", "| action | accuracy |", "|---|---|"]
        lines += [f"| {a} | {_fmt(v)} |" for a, v in sorted(metrics["action_accuracy_per_action"].items())]
    if "confusion_matrix" in metrics:
        classes = list(metrics["confusion_matrix"])
        lines += ["", "## Confusion matrix (rows: prompted motion, columns: measured)", ""]
        lines += ["| | " + " | ".join(classes) + " |", "|---" * (len(classes) + 1) + "|"]
        for t, row in metrics["confusion_matrix"].items():
            lines.append(f"| {t} | " + " | ".join(str(row.get(m, 0)) for m in classes) + " |")
    for name, caption in (
        ("samples.png", "Samples (ground truth above, generated below)"),
        ("sweep.png", "Guidance sweep"),
    ):
        if (out_dir / name).is_file():
            lines += ["", f"## {caption}", "", f"![{caption}]({name})"]
    if "seconds" in metrics:
        lines += ["", f"Wall time: {metrics['seconds']} s."]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def compare_reports(runs: dict[str, dict], out_dir: Path, title: str = "Comparison") -> Path:
    """Several metrics.json side by side: out_dir/comparison.md and comparison.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = [k for k in METRIC_LABELS if any(isinstance(m.get(k), int | float) for m in runs.values())]
    lines = [
        f"# {title}",
        "",
        "| metric | better | " + " | ".join(runs) + " |",
        "|---|---|" + "---|" * len(runs),
    ]
    for k in keys:
        label, better = METRIC_LABELS[k]
        lines.append(f"| {label} | {better} | " + " | ".join(_fmt(m.get(k)) for m in runs.values()) + " |")
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(2.3 * max(len(keys), 1), 3.2), squeeze=False)
    for ax, k in zip(axes[0], keys, strict=True):
        values = [m.get(k) if isinstance(m.get(k), int | float) else np.nan for m in runs.values()]
        ax.bar(range(len(runs)), values, color=[f"C{i}" for i in range(len(runs))])
        ax.set_xticks(range(len(runs)), list(runs), rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{METRIC_LABELS[k][0]} {METRIC_LABELS[k][1]}", fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "comparison.png", dpi=110)
    plt.close(fig)
    lines += ["", "![comparison](comparison.png)"]
    path = out_dir / "comparison.md"
    path.write_text("\n".join(lines) + "\n")
    return path
