"""Where does a DreamVideo model lose its action accuracy? Six runs of the synthetic suite on the
same number of clips, side by side:

- `train`: clips, photographs and phrasings the default recipe trained on (data seed 0);
- `seen-phrasings`: the held-out clips captioned with training phrasings;
- `heldout`: the held-out clips and phrasings (what the model card reports), at 10 steps and at
  the model's own 25 steps (is the eval setting what holds the numbers down?);
- `text-only`: `--mode text` (the branch fed the null image: the prompt alone);
- `no-branch`: the main UNet alone (the base's own text -> motion).

train ≫ seen-phrasings: the clips are memorised (over-fitting); seen-phrasings ≫ heldout: unseen
wording is the gap. `--first-design` renders clips and phrasings as the first design trained on
them (its motion ranges and its five training phrasings), to diagnose the seventh release.

    python research/diagnose_model.py [--model DIR] [--num 104] [--first-design] --out runs/diag
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dreamvideo.evaluation.synthetic import evaluate_synthetic
from dreamvideo.pipeline import load_pipeline

RUNS = [  # (name, split, variant, steps)
    ("train", "train", "full", 10),
    ("seen-phrasings", "seen-phrasings", "full", 10),
    ("heldout", "heldout", "full", 10),
    ("heldout, 25 steps", "heldout", "full", 25),
    ("text-only", "heldout", "text-only", 10),
    ("no-branch", "heldout", "no-branch", 10),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="DreamVideo folder (default: the shipped model)")
    parser.add_argument("--num", type=int, default=104)
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument("--first-design", action="store_true")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # The first design's clips: its motion ranges and its five training phrasings per action.
    data = {"motion_ranges": "small", "train_phrasings": 5} if args.first_design else {}
    pipe = load_pipeline(args.model)
    rows = []
    for name, split, variant, steps in RUNS:
        folder = args.out / name.replace(", ", "_").replace(" ", "_")
        with torch.no_grad():
            m = evaluate_synthetic(
                pipe,
                args.num,
                folder,
                steps=steps,
                num_photos=args.photos,
                variant=variant,
                split=split,
                **data,
            )
        rows.append((name, m))
    print(
        "| run | first-frame SSIM | action accuracy | opposite pairs | photo camera acc. / pairs "
        "| warp error | per action |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, m in rows:
        per_action = ", ".join(f"{a} {v:.2f}" for a, v in m["action_accuracy_per_action"].items())
        print(
            f"| {name} | {m['first_frame_ssim']:.3f} | {m['action_accuracy']:.3f} | "
            f"{m['opposite_pair_accuracy']:.3f} | {m['real_photo_camera_accuracy']:.2f} / "
            f"{m['real_photo_opposite_pair_accuracy']:.2f} | {m['temporal_consistency']:.4f} | {per_action} |"
        )
    (args.out / "diagnosis.json").write_text(json.dumps(dict(rows), indent=2) + "\n")


if __name__ == "__main__":
    main()
