"""How big is each action's motion per frame, and can the estimator resolve it?

For clips of every action (held-out split by default), the ground truth of
`data.synthetic.make_clip` (translation px / frame, rotation degrees / frame, scale change
% / frame, and each as the displacement it causes at the object's edge, px / frame) beside what
`evaluation.motion.estimate_motion` measures on the same frames (its dominant component, px /
frame at the moving region's edge) and how often its label is right. The estimator calls a
clip "still" below 0.3 px / frame.

    python research/motion_magnitudes.py [--clips-per-action 24] [--split heldout|train] [--first-design]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from dreamvideo.data.synthetic import ACTION_NAMES, make_clip
from dreamvideo.evaluation.motion import ACTION_TO_MOTION, estimate_motion


def edge_displacement(spec) -> float:
    """Ground-truth displacement at the content's edge, px / frame."""
    radius = spec.meta["object_size"] / 2
    if spec.action.startswith("zoom"):  # the whole frame scales about its centre
        radius = spec.size / 2
    return max(
        math.hypot(spec.dx, spec.dy),
        abs(math.radians(spec.rotation_deg)) * radius,
        abs(spec.scale_rate - 1) * radius,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips-per-action", type=int, default=24)
    parser.add_argument("--split", choices=["heldout", "train"], default="heldout")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument(
        "--first-design", action="store_true", help="the first design's rotation / scale / zoom ranges"
    )
    args = parser.parse_args()
    ranges = "small" if args.first_design else "large"
    seed = 12345 if args.split == "heldout" else 0
    print(
        "| action | translation px/f | rotation °/f | scale %/f | truth at edge px/f | "
        "measured px/f (min–median) | estimator right |"
    )
    print("|---|---|---|---|---|---|---|")
    for k, action in enumerate(ACTION_NAMES):
        truth, measured, right = [], [], []
        trans, rot, scale = [], [], []
        for i in range(args.clips_per_action):
            clip = make_clip(
                seed, 10_000 * k + i, args.split, args.size, args.frames, action=action, motion_ranges=ranges
            )
            spec, motion = clip.spec, estimate_motion(clip.frames)
            truth.append(edge_displacement(spec))
            measured.append(max(motion.components().values()))
            right.append(motion.label() == ACTION_TO_MOTION[action])
            trans.append(math.hypot(spec.dx, spec.dy))
            rot.append(abs(spec.rotation_deg))
            scale.append(abs(spec.scale_rate - 1) * 100)

        def span(values) -> str:
            return f"{np.min(values):.2f}–{np.max(values):.2f}" if np.max(values) > 0 else "0"

        print(
            f"| {action} | {span(trans)} | {span(rot)} | {span(scale)} | {span(truth)} | "
            f"{np.min(measured):.2f}–{np.median(measured):.2f} | {np.mean(right):.2f} |"
        )


if __name__ == "__main__":
    main()
