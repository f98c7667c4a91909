#!/usr/bin/env bash
# The figures of docs/model-card.md and docs/evaluation.md for a model (default: the shipped one):
# the synthetic suite on 208 held-out clips, the ablations on 26 clips (with a guidance sweep on
# the full model), and their side-by-side comparison.
# Usage: bash scripts/evaluate_default_model.sh [--model DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
model=("$@")
ablations=docs/evaluation/ablations
for variant in full no-branch no-image-guidance repeat-reference; do
  sweep=()
  if [ "$variant" = full ]; then sweep=(--sweep-image 1.5,3 --sweep-text 2,5 --sweep-num 13); fi
  dreamvideo eval synthetic "${model[@]}" --num 26 --steps 10 --photos 1 --variant "$variant" \
    --out "$ablations/$variant" "${sweep[@]}"
done
dreamvideo eval report "$ablations"/{full,no-branch,no-image-guidance,repeat-reference} \
  --names "DreamVideo,no branch (text only),no image guidance,reference repeated" --out "$ablations"
dreamvideo eval synthetic "${model[@]}" --num 208 --steps 10 --photos 4 --out docs/model-card/eval
