#!/usr/bin/env bash
# Reproduce the embedded default model on this project's procedural data: the stages of
# configs/tiny/recipe.txt in order (vae, a VAE refinement, t2v, i2v and its continuations at new
# schedules, timestep distributions and data; the diffusion stages train on latents of the
# refined VAE; the last stage fine-tunes the VAE's decoder alone), then install the last stage's
# exported pipeline as the default, its weights in fp16.
# Each stage resumes from its checkpoints if interrupted; run again to continue.
# Usage: bash scripts/train_default_model.sh [RECIPE]   (default configs/tiny/recipe.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
recipe=${1:-configs/tiny/recipe.txt}
[ -f "$recipe" ] || { echo "error: recipe file not found: $recipe" >&2; exit 2; }
mapfile -t stages < <(python -c 'import sys; from dreamvideo.training.config import read_recipe
print("\n".join(read_recipe(sys.argv[1])))' "$recipe")
for stage in "${stages[@]}"; do
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
# the last stage's pipeline, its weights in fp16 (what the repo ships)
python scripts/install_release.py "runs/tiny/${stages[-1]}/pipeline"
