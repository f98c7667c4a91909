"""Install a trained DreamVideo folder as the embedded default model, its weights stored in
half precision (the release is committed to the repo: fp16 halves what every clone downloads;
`load_pipeline` loads them back as float32, and the model card's figures are measured on the
installed copy).

    python scripts/install_release.py runs/tiny/vae_decoder/pipeline [--target DIR]

The target (default: src/dreamvideo/weights/dreamvideo-tiny) is replaced whole or not at all.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

TARGET = Path(__file__).resolve().parents[1] / "src" / "dreamvideo" / "weights" / "dreamvideo-tiny"


def to_half(path: Path) -> None:
    """Rewrite a .safetensors file with its floating-point tensors in fp16, metadata kept."""
    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    half = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    save_file(half, str(path), metadata=metadata)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", type=Path, help="a DreamVideo pipeline folder (model_index.json)")
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args()
    if not (args.source / "model_index.json").is_file():
        raise SystemExit(f"error: not a DreamVideo folder (no model_index.json): {args.source}")
    staging = args.target.with_name(args.target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(args.source, staging)
    for weights in staging.rglob("*.safetensors"):
        to_half(weights)
    old = args.target.with_name(args.target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if args.target.exists():
        args.target.rename(old)
    staging.rename(args.target)
    shutil.rmtree(old, ignore_errors=True)
    size = sum(p.stat().st_size for p in args.target.rglob("*") if p.is_file())
    print(f"installed {args.source} in {args.target} ({size / 2**20:.1f} MiB, fp16 weights)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
