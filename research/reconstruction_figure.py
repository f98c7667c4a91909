"""What a VAE keeps of an image, as a picture: one row an image (the README's examples and a few
held-out synthetic frames and photo crops), one column a model's round trip, the original and a
4× bicubic thumbnail beside them. The figures behind it: `dreamvideo eval reconstruction`.

    python research/reconstruction_figure.py --model NAME=DIR [--model NAME=DIR ...] --out PNG
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from dreamvideo.evaluation.reconstruction import reconstruct, reconstruction_sets, thumbnail
from dreamvideo.pipeline import load_pipeline

EXAMPLES = tuple(Path("examples") / f"{name}.png" for name in ("cat", "coffee", "rocket"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", action="append", required=True, help="NAME=DIR, repeatable")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sets = reconstruction_sets(64, num_frames=4, num_photos=3, images=EXAMPLES)
    originals = np.concatenate([sets["images"], sets["photos"], sets["synthetic"]])
    columns = [("original", originals), ("4x thumbnail", thumbnail(originals))]
    for spec in args.model:
        name, _, folder = spec.partition("=")
        columns.append((name, reconstruct(load_pipeline(folder).vae, originals)))
    side, label = 64 * args.scale, 18
    sheet = Image.new("RGB", (side * len(columns), label + side * len(originals)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for c, (name, images) in enumerate(columns):
        draw.text((c * side + 4, 3), name, fill=(0, 0, 0))
        for r, image in enumerate(images):
            tile = Image.fromarray(image).resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(tile, (c * side, label + r * side))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
