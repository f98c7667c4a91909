"""How far do a model's sampled clips move along their prompt's action, against the data?

The suite calls a clip "still" under 0.3 px / frame at the moving region's edge. Rotation and
shrinking have read 0.00 in every model since the first design; this says whether their samples
move the right way too little to be seen, or not at all. For each held-out suite clip of the
chosen actions (the suite's clips and captions, sampled as the suite samples: the same seeds batch
by batch, each model's default settings), the suite's estimator reads
the motion along the action (`evaluation.synthetic.motion_along`, as px / frame at the region's
edge) in the ground truth and in each model's sample; the table gives per action the median of
each, their ratio, and how many samples move the right way at all. With --detail each cell also
gives the median size of the motion either way (a model that rotates, but the wrong way half the
time, has a signed median near 0 and a large one here) and how many samples the suite's estimator
classes as the action (the suite's per-action accuracy). `--split seen-phrasings` captions the
same clips with a training phrasing; `--split train` takes clips of the recipe's training pool
(data seed 0, as `eval synthetic --split train`: rendered without a speed word), to tell a model
that cannot draw a motion from one that cannot generalise it.

    python research/motion_ratio.py --model baseline=runs/probes/ninth_baseline/pipeline --pin-first-frame
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dreamvideo.evaluation import SPLITS
from dreamvideo.evaluation.motion import ACTION_TO_MOTION, Motion, estimate_motion
from dreamvideo.evaluation.synthetic import _SuiteSampler, motion_along, split_clips
from dreamvideo.pipeline import load_pipeline

NUM_CLIPS, SIZE, FRAMES, BATCH = 104, 64, 8, 8
ACTIONS = ("rotate_cw", "rotate_ccw", "shrink", "grow", "move_right")


def along_at_edge(action: str, motion: Motion) -> float:
    """Motion along the action, px / frame at the moving region's edge (translations as they are)."""
    along = motion_along(action, motion)
    per_radian = action.startswith(("rotate", "grow", "shrink", "zoom"))
    return along * motion.radius if per_radian else along


def sample(model: str, clips: list, pin_first_frame: bool | None, steps: int | None) -> list[np.ndarray]:
    """The suite's own batched sampling (its per-batch seeds), at the model's default scales."""
    sampler = _SuiteSampler(
        load_pipeline(model), FRAMES, steps, None, None, BATCH, pin_first_frame=pin_first_frame
    )
    with tqdm(total=len(clips), desc=model, dynamic_ncols=True) as progress:
        return sampler([c.frames[0] for c in clips], [c.caption for c in clips], progress)


def cell(motions: list[Motion], action: str, truth: float, detail: bool) -> str:
    """One model's cell for one action: median along it (its ratio to the truth's), right way;
    with `detail`, the median size either way and how many the suite classes as the action."""
    along = [along_at_edge(action, m) for m in motions]
    median = float(np.median(along))
    text = f"{median:+.2f} ({median / truth:+.2f}), {sum(v > 0 for v in along)}/{len(along)}"
    if detail:
        labelled = sum(m.label() == ACTION_TO_MOTION[action] for m in motions)
        text += f", size {np.median(np.abs(along)):.2f}, classed {labelled}/{len(along)}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", required=True, help="NAME=FOLDER, repeatable")
    parser.add_argument("--actions", default=",".join(ACTIONS))
    parser.add_argument("--pin-first-frame", action="store_true", default=None)
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default: each model's)")
    parser.add_argument(
        "--detail", action="store_true", help="add the median size either way and the suite's class"
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default="heldout",
        help="the suite's held-out clips; the same with training phrasings; or clips the recipe trained on",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    actions = args.actions.split(",")
    clips = [c for c in split_clips(args.split, NUM_CLIPS, SIZE, FRAMES) if c.spec.action in actions]
    models = dict(m.split("=", 1) for m in args.model)
    truth = [along_at_edge(c.spec.action, estimate_motion(c.frames)) for c in clips]
    moved = {
        name: [estimate_motion(v) for v in sample(path, clips, args.pin_first_frame, args.steps)]
        for name, path in models.items()
    }
    extra = ", size either way, classed" if args.detail else ""
    head = " | ".join(f"{n}: median (ratio), right way{extra}" for n in models)
    lines = [f"| action | clips | ground truth: median px/frame | {head} |", "|---" * (len(models) + 3) + "|"]
    for action in actions:
        idx = [i for i, c in enumerate(clips) if c.spec.action == action]
        gt = float(np.median([truth[i] for i in idx]))
        cells = [cell([motions[i] for i in idx], action, gt, args.detail) for motions in moved.values()]
        lines.append(f"| {action} | {len(idx)} | {gt:+.2f} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
