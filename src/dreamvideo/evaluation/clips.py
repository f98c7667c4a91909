"""`dreamvideo eval clips`: does a model move things the way a dataset's own clips do?

For a folder written by `dreamvideo data synth` (clips, `captions.csv`, `motion.jsonl` with each
clip's ground-truth motion), the model gets each clip's first frame and caption; the motion
estimator (`evaluation.motion`) measures the generated video, and we score
- direction_accuracy: on clips whose truth translates, the measured translation points within
  45° of the true direction and moves at least the estimator's "still" threshold;
- label_accuracy: on clips of the suite's actions, the measured motion class is the action's;
- the mean measured and true displacement per frame, and how many clips came out still.
It measures a fine-tuned motion (a LoRA adapter's, docs/training.md) before and after.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from ..io.files import check_regular_file, read_json_lines
from ..io.video import read_video
from ..limits import is_finite_number
from ..loading import measured_on
from .motion import ACTION_TO_MOTION, Motion, estimate_motion
from .synthetic import _SuiteSampler

STILL_THRESHOLD = 0.3  # px / frame, as Motion.label
MAX_ANGLE_DEGREES = 45.0


def direction_agrees(true_dx: float, true_dy: float, measured: Motion) -> bool:
    """The measured translation within 45° of the true one, and not still."""
    speed = math.hypot(measured.dx, measured.dy)
    if speed < STILL_THRESHOLD:
        return False
    cosine = (true_dx * measured.dx + true_dy * measured.dy) / (math.hypot(true_dx, true_dy) * speed)
    return cosine >= math.cos(math.radians(MAX_ANGLE_DEGREES))


def read_motion_dataset(folder: Path, num: int | None) -> list[dict]:
    """`motion.jsonl` rows (the first `num`), each with its clip's frames."""
    index = Path(folder) / "motion.jsonl"
    if not index.exists():
        raise UserError(f"{folder} has no motion.jsonl: write one with `dreamvideo data synth`")
    rows = read_json_lines(index, "motion list")
    rows = rows[:num] if num else rows
    if not rows:
        raise UserError(f"{index} lists no clips")
    for number, row in enumerate(rows, 1):
        texts = all(isinstance(row.get(k), str) for k in ("path", "caption", "action"))
        numbers = all(is_finite_number(row.get(k)) for k in ("dx", "dy"))
        if not (texts and numbers):
            raise UserError(f"{index} line {number}: needs path, caption, action (text) and dx, dy (numbers)")
        clip = check_regular_file(Path(folder) / row["path"], f"clip listed in {index}")
        row["frames"] = read_video(clip)
    return rows


@torch.no_grad()
def evaluate_clips(
    pipe,
    folder: Path,
    out_dir: Path,
    num: int | None = None,
    steps: int | None = None,
    batch_size: int = 8,
    model_record: dict | None = None,
) -> dict:
    """Generate from each clip's first frame and caption; writes out_dir/metrics.json.
    `model_record` is what the record names as its model (default: `loading.measured_on(pipe)`;
    give the base's, taken before adapters were fused, with the adapters added)."""
    rows = read_motion_dataset(folder, num)
    pipe.set_progress_bar_config(disable=True)
    num_frames = len(rows[0]["frames"])
    sampler = _SuiteSampler(pipe, num_frames, steps, None, None, batch_size)
    started = time.perf_counter()
    with tqdm(total=len(rows), desc="eval clips", dynamic_ncols=True) as progress:
        videos = sampler([r["frames"][0] for r in rows], [r["caption"] for r in rows], progress)
    measured = [estimate_motion(v) for v in videos]
    moving = [(r, m) for r, m in zip(rows, measured, strict=True) if math.hypot(r["dx"], r["dy"]) > 0]
    labelled = [(r, m) for r, m in zip(rows, measured, strict=True) if r["action"] in ACTION_TO_MOTION]
    metrics = {
        "dataset": str(folder),
        "num_clips": len(rows),
        "steps": steps or pipe.default_num_inference_steps,
        "direction_accuracy": float(np.mean([direction_agrees(r["dx"], r["dy"], m) for r, m in moving]))
        if moving
        else None,
        "label_accuracy": float(np.mean([m.label() == ACTION_TO_MOTION[r["action"]] for r, m in labelled]))
        if labelled
        else None,
        "measured_still": sum(m.label() == "still" for m in measured),
        "mean_measured_dx": float(np.mean([m.dx for m in measured])),
        "mean_measured_dy": float(np.mean([m.dy for m in measured])),
        "mean_true_dx": float(np.mean([r["dx"] for r in rows])),
        "mean_true_dy": float(np.mean([r["dy"] for r in rows])),
        "seconds": round(time.perf_counter() - started, 1),
        "measured_on": model_record or measured_on(pipe),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
