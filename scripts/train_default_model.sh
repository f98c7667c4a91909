#!/usr/bin/env bash
# Reproduce the embedded default model on this project's procedural data: vae -> vae_refine
# (continues the VAE at a new learning-rate schedule) -> t2v -> i2v -> i2v_more (continues
# i2v at a new schedule) -> i2v_motion (continues again with high-noise-biased timesteps; all
# four on latents of the refined VAE), then install the exported pipeline as the default.
# Each stage resumes from its checkpoints if interrupted; run again to continue.
# Usage: bash scripts/train_default_model.sh
set -euo pipefail
cd "$(dirname "$0")/.."
for stage in vae vae_refine t2v i2v i2v_more i2v_motion; do
  out="runs/tiny/$stage"
  if [ -d "$out/pipeline" ] || [ -d "$out/vae" ]; then
    echo "== $stage: already exported in $out"
    continue
  fi
  if [ -f "$out/checkpoints/latest" ]; then
    dreamvideo train "configs/tiny/$stage.toml" --resume
  else
    dreamvideo train "configs/tiny/$stage.toml"
  fi
done
target=src/dreamvideo/weights/dreamvideo-tiny
mkdir -p "$(dirname "$target")"
rm -rf "$target.tmp" && cp -r runs/tiny/i2v_motion/pipeline "$target.tmp"
rm -rf "$target" && mv "$target.tmp" "$target"
echo "installed the default model in $target"
