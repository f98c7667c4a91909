#!/usr/bin/env bash
# Re-measures every figure that README.md and docs/ quote from a measurement record, on the
# shipped model, and writes each record where the docs read it. Each record names the weights it
# was measured on (`measured_on`); tests/test_documented_figures.py fails while a quoted record
# was measured on other weights than the shipped ones, or the docs quote another value than the
# record's. A release runs this before it lands.
# Usage: bash scripts/remeasure_figures.sh   (about 75 minutes on 2 CPU cores; run it alone:
# the bench times things)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/evaluate_default_model.sh      # docs/model-card/eval, docs/evaluation/ablations
dreamvideo eval speed-words --out docs/model-card/speed_words.json
lora=runs/remeasure/lora                    # a fresh run of the LoRA worked example
rm -rf "$lora"
bash scripts/lora_example.sh "$lora"
mkdir -p docs/training/lora-example
cp "$lora/before/metrics.json" docs/training/lora-example/before.json
cp "$lora/after/metrics.json" docs/training/lora-example/after.json
dreamvideo bench --out docs/performance     # last: nothing else shares the cores while it times
