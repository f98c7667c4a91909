"""Figures of the default model's card: loss curves of the training stages and a contact sheet
(one image, several prompts, the three guidance modes).

    python scripts/model_card_assets.py [--model DIR] [--runs runs/tiny] [--out docs/model-card]

Each stage's loss.csv is copied to OUT/losses/STAGE/loss.csv (small text files, kept in the repo)
and read from there when runs/ no longer has it, so the figure survives a new machine.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from dreamvideo.data.synthetic import make_clip
from dreamvideo.evaluation.report import contact_sheet, plot_losses
from dreamvideo.io.images import fit_image, load_image
from dreamvideo.pipeline import load_pipeline
from dreamvideo.training.config import read_recipe

RECIPE = Path(__file__).resolve().parents[1] / "configs" / "tiny" / "recipe.txt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--runs", default="runs/tiny")
    parser.add_argument("--out", default="docs/model-card")
    parser.add_argument("--steps", type=int, default=25)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs, kept = Path(args.runs), out / "losses"
    stages = {}
    for name in read_recipe(RECIPE):
        log = runs / name / "loss.csv"
        if log.is_file():
            (kept / name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, kept / name / "loss.csv")
        if (kept / name / "loss.csv").is_file():
            stages[name] = kept / name
    if stages:
        print(plot_losses(stages, out / "loss_curves.png"))

    pipe = load_pipeline(args.model)
    height, width = pipe.default_size
    cat = fit_image(load_image("examples/cat.png"), width, height)
    clip = make_clip(777, 0, "heldout", height, pipe.config.default_num_frames, action="still")
    scene = Image.fromarray(clip.frames[0])
    name = clip.spec.object_name
    rows = [
        ("cat: the camera pans left", cat, "the camera pans left", "image+text"),
        ("cat: the camera pans right", cat, "the camera pans right", "image+text"),
        ("cat: the camera zooms in", cat, "the camera zooms in", "image+text"),
        ("cat: the camera zooms out", cat, "the camera zooms out", "image+text"),
        ("cat: image-only mode", cat, "", "image"),
        ("cat: text-only 'zooms in' (no image)", cat, "the camera zooms in", "text"),
        (f"{name}: moves to the left", scene, f"the {name} moves to the left", "image+text"),
        (f"{name}: moves to the right", scene, f"the {name} moves to the right", "image+text"),
        (f"{name}: moves up", scene, f"the {name} moves up", "image+text"),
        (f"{name}: grows", scene, f"the {name} grows", "image+text"),
        (f"{name}: shrinks", scene, f"the {name} shrinks", "image+text"),
        (f"{name}: rotates clockwise", scene, f"the {name} rotates clockwise", "image+text"),
    ]
    print(contact_sheet(pipe, rows, out / "contact_sheet.png", steps=args.steps))
    Image.fromarray(np.concatenate([np.asarray(cat), clip.frames[0]], 1)).save(out / "references.png")


if __name__ == "__main__":
    main()
