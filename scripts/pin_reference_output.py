"""Pin the shipped model's output for a fixed seed (tests/test_reference_output.py checks it).

Run after a new release of `src/dreamvideo/weights/dreamvideo-tiny`, and only then (the pinned
frames change with the weights): `python scripts/pin_reference_output.py`. The file records the
platform that produced it (torch's version, its CPU capability and the CPU's instruction-set
flags); the test compares bit for bit on that platform and within one grey level elsewhere.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from dreamvideo.testing import REFERENCE_REQUEST, frames_checksum, generate_reference, kernel_platform

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "reference_output.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    frames = generate_reference(REPO)
    meta = {"sha256": frames_checksum(frames), **kernel_platform(), "request": REFERENCE_REQUEST}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, frames=frames, meta=json.dumps(meta))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
