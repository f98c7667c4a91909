"""Measured peak memory of `dreamvideo generate` against `dreamvideo.budget`'s estimate.

Each request runs as its own process (peak resident memory from the kernel); the table shows
measured, estimated and their ratio (the estimate should stay above the measurement without
refusing requests that fit by a wide margin). docs/limits.md shows its output.

    python scripts/memory_calibration.py [--model DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from dreamvideo.benchmarks.suite import README_IMAGE, run_command
from dreamvideo.budget import ModelFacts, estimate_peak_bytes
from dreamvideo.loading import default_model_dir

GRID = [(8, 64), (32, 64), (128, 64), (8, 256), (32, 256), (8, 512), (16, 512)]  # frames, side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    facts = ModelFacts.read(args.model or default_model_dir())
    print("| frames | side | measured MB | estimated MB | estimate / measured |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for frames, side in GRID:
            command = [sys.executable, "-m", "dreamvideo", "generate", str(README_IMAGE), "-p", "x"]
            command += ["--seed", "0"]
            command += [
                "-o",
                str(Path(tmp) / f"{frames}-{side}.mp4"),
                "--seed",
                "0",
                "--steps",
                str(args.steps),
            ]
            command += ["--frames", str(frames), "--height", str(side), "--width", str(side)]
            if args.model:
                command += ["--model", str(args.model)]
            result = run_command(command, env={"OMP_NUM_THREADS": str(args.threads)})
            if result["exit_code"]:
                print(f"| {frames} | {side} | failed: {result['stderr_tail']} | | |")
                continue
            estimate = estimate_peak_bytes(facts, frames, side, side) / 2**20
            measured = result["peak_rss_mb"]
            print(
                f"| {frames} | {side} | {measured:.0f} | {estimate:.0f} | {estimate / measured:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
