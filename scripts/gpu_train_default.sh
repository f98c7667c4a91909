#!/usr/bin/env bash
# The default model's continuation on one lent GPU, in one command of at most 9 minutes:
# configs/gpu/i2v.toml continues a DreamVideo model (default: the shipped release; INIT=DIR for
# another) on rendered clips, stops at a wall-clock budget (SIGTERM: the trainer checkpoints and
# exits) and exports its checkpoint's EMA weights. Under OUT it writes the pipeline as a tar split
# into 15 MiB parts (model.tar.part-NN), the stage's log (logs.tar) and summary.json.
# Rebuild the model here with: cat OUT/model.tar.part-* | tar -x -C DIR   (-> DIR/pipeline)
#
# Usage: bash scripts/gpu_train_default.sh OUT [KEY=VALUE ...]
#   KEY=VALUE pairs are --set overrides (the CPU dry run in the tests uses them).
#   Environment: PYTHON (python3), RUNS (runs/gpu), I2V_SECONDS (420), INIT (the shipped release).
#   On a machine without the MiniLM package: DREAMVIDEO_MINILM_DIR=folder of its files.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_train_default.sh OUT [KEY=VALUE ...]}
shift
python=${PYTHON:-python3}
runs=${RUNS:-runs/gpu}
sets=()
for pair in "$@"; do sets+=(--set "$pair"); done
mkdir -p "$out" "$runs"

# fail NAME WHAT: say what went wrong with the end of the stage's log, and stop.
fail() {
  echo "error: $1 $2; the end of $runs/$1.log:" >&2
  tail -c 2000 "$runs/$1.log" | tr '\r' '\n' | tail -n 20 >&2
  exit 1
}

# run_stage NAME SECONDS [--set ...]: train configs/gpu/NAME.toml for at most SECONDS, then make
# sure $runs/NAME/pipeline holds its (EMA) export.
run_stage() {
  local name=$1 seconds=$2
  shift 2
  local dir=$runs/$name
  local args=(-m dreamvideo train "configs/gpu/$name.toml" --set "output_dir=$dir" "${sets[@]}" "$@")
  local rc=0
  echo "== $name: at most ${seconds}s"
  timeout -s TERM -k 60 "$seconds" "$python" "${args[@]}" >"$runs/$name.log" 2>&1 || rc=$?
  if [ ! -d "$dir/pipeline" ]; then
    [ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$rc" = 130 ] || fail "$name" "failed (exit $rc)"
    "$python" "${args[@]}" --export-checkpoint "$dir/pipeline" >>"$runs/$name.log" 2>&1 ||
      fail "$name" "left no checkpoint to export"
  fi
  tail -n 1 "$dir/loss.csv" | awk -F, -v n="$name" '{printf "== %s: step %d, loss %s, %.0f s of training\n", n, $1, $2, $4}'
}

init=${INIT:-src/dreamvideo/weights/dreamvideo-tiny}
[ -f "$init/model_index.json" ] || { echo "error: INIT=$init is not a model folder" >&2; exit 2; }
run_stage i2v "${I2V_SECONDS:-420}" --set "init.dreamvideo=$init"

tar -C "$runs/i2v" -cf - pipeline | split -b 15m -d - "$out/model.tar.part-"
tar -cf "$out/logs.tar" "$runs"/*.log "$runs"/*/loss.csv "$runs"/*/config.json
"$python" - "$runs" "$out/summary.json" <<'EOF'
import json, sys
from pathlib import Path
import torch

runs, summary = Path(sys.argv[1]), {}
for stage in ("i2v",):
    step, loss, _, seconds = (runs / stage / "loss.csv").read_text().split()[-1].split(",")
    summary[stage] = {"steps": int(step), "loss": float(loss), "seconds": float(seconds),
                      "steps_per_second": round(int(step) / float(seconds), 2)}
summary["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
Path(sys.argv[2]).write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary))
EOF
