"""A copy of the MiniLM text encoder for a machine without its package (a lent GPU): fp16, and
its word embeddings trimmed to the tokens of every caption the procedural data can write
(every phrasing of every action, training and held-out, with every object name).

    python scripts/pack_minilm.py OUT          # then DREAMVIDEO_MINILM_DIR=OUT on that machine

The full fp16 copy is 45 MB, of which 23 MB are the 30 522-word embedding table; trimmed, the
folder leaves room in the device's 64 MiB tree for a warm start's model. The script checks that
the copy encodes every such caption as the packaged model does (up to fp16 rounding).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from dreamvideo.data.synthetic import ACTIONS, COLORS, SHAPES
from dreamvideo.text import (
    MINILM_DIR_VARIABLE,
    MINILM_FILES,
    TRIMMED_WORD_IDS,
    encode_prompts,
    load_minilm,
    minilm_path,
)


def every_caption() -> list[str]:
    """All captions `data.synthetic` can write, and the empty prompt (dropped text)."""
    names = [f"{c} {s}" for c in COLORS for s in SHAPES]
    names += [f"striped {n}" for n in names] + ["picture"]
    phrasings = [p for _, options in ACTIONS.values() for p in options]
    return ["", *sorted({p.format(obj=n) for p in phrasings for n in names})]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="new folder")
    args = parser.parse_args()
    if args.out.exists():
        raise SystemExit(f"error: {args.out} already exists")
    source = minilm_path()
    tokenizer, encoder = load_minilm()
    captions = every_caption()
    tokens = tokenizer(captions, padding="max_length", truncation=True, return_tensors="pt")["input_ids"]
    ids = torch.unique(tokens)
    weights = load_file(source / "model.safetensors")
    weights = {k: v.half().contiguous() if v.is_floating_point() else v for k, v in weights.items()}
    key = "embeddings.word_embeddings.weight"
    weights[key] = weights[key][ids].contiguous()
    weights[TRIMMED_WORD_IDS] = ids.to(torch.int32)
    staging = args.out.with_name(f".{args.out.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in MINILM_FILES:
        shutil.copy(source / name, staging / name)
    save_file(weights, str(staging / "model.safetensors"))

    os.environ[MINILM_DIR_VARIABLE] = str(staging)
    copy_tokenizer, copy = load_minilm()
    error, peak = 0.0, 0.0
    for start in range(0, len(captions), 512):  # batches: one batch of 25 000 thrashes memory
        batch = captions[start : start + 512]
        reference = encode_prompts(tokenizer, encoder, batch)
        error = max(error, (encode_prompts(copy_tokenizer, copy, batch) - reference).abs().max().item())
        peak = max(peak, reference.abs().max().item())
    # fp16 weights: about 1% of the states' range at worst over every caption (measured 1.1%).
    if not error < 0.02 * peak:
        shutil.rmtree(staging)
        raise SystemExit(
            f"error: the copy differs from the packaged model by {error:.4f} (states reach {peak:.2f})"
        )
    staging.rename(args.out)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 1e6
    print(
        f"{len(captions)} captions, {len(ids)} of {encoder.config.vocab_size} words kept; "
        f"{size:.1f} MB in {args.out}; largest difference from the packaged model {error:.4f} "
        f"(its states reach {peak:.2f})"
    )


if __name__ == "__main__":
    main()
