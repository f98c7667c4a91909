"""Figures for model cards and reports: loss curves and contact sheets."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw


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
        strip = np.concatenate(list((np.clip(video, 0, 1) * 255).round().astype(np.uint8)), 1)
        strip = Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST)
        lines.append(_label(strip, label, label_width))
    sheet = Image.new("RGB", (max(x.width for x in lines), sum(x.height + 4 for x in lines)), (255, 255, 255))
    y = 0
    for line in lines:
        sheet.paste(line, (0, y))
        y += line.height + 4
    sheet.save(out)
    return out
