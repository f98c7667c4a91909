"""Which latent space of the shipped size (8×8×16 for 64×64) keeps colour and motion? (Issue 39's
candidates; the table is read in docs/research-log.md.)

Candidates are VAEs trained from the ninth release's by research/configs/latent/NAME.toml
(`longer.toml`, and one change each). Beside them: `shipped`, the ninth release's own VAE, and
`pca`, the floor a trained code must beat: a linear code of the same size, PCA with 16 numbers
per 8×8×3 patch fitted on the frames of 400 training clips.

    python research/latent_probe.py measure shipped
    python research/latent_probe.py measure pca
    python research/latent_probe.py measure NAME --vae runs/probes/latent/NAME/vae
    python research/latent_probe.py measure NAME@1000 \
        --checkpoint runs/probes/latent/NAME/checkpoints/step-0001000
    python research/latent_probe.py measure patch@750 --patch-code runs/probes/latent/patch/step-0000750.pt
    python research/latent_probe.py table shipped pca longer anchored
    python research/latent_probe.py rotation --patch-code runs/probes/latent/patch/step-0002250.pt
    python research/latent_probe.py noise shipped     # add the latent-noise measure to a kept record

Each measure is of the round trip (encode to the posterior mean, decode):
- SSIM and PSNR on held-out frames and unseen-photo crops (`evaluation.reconstruction`'s sets);
- the motion class the suite's estimator reads from the round trip of the 104 held-out clips'
  ground truth, overall and per action (the ground truth itself scores 1.00);
- colour: R² of a linear read-out of each patch's mean R, G, B from its latent (random blocks
  of independent colours, `latent_colour.py`), and flat green, yellow and teal cards' error in
  grey levels (the worst channel);
- drift: the RMS distance of a code's latents from the shipped encoder's, in the shipped
  unit-variance scale (what a continued UNet sees change); none for the unturned PCA code.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from decoder_probe import CARDS, _classes
from diffusers import AutoencoderKL
from latent_colour import channel_r2, random_blocks
from safetensors.torch import load_file

from dreamvideo.data.sources import make_source
from dreamvideo.evaluation.reconstruction import reconstruction_sets
from dreamvideo.evaluation.synthetic import heldout_clips
from dreamvideo.io.images import frames_to_signed, frames_to_unit, tensor_to_images
from dreamvideo.loading import DEFAULT_MODEL_DIR
from dreamvideo.loading import load_vae as dreamvideo_load_vae
from dreamvideo.metrics import ssim
from dreamvideo.training.config import DataConfig

SHIPPED = DEFAULT_MODEL_DIR / "vae"  # the ninth release (runs/tiny/i2v_speed/pipeline/vae, in fp16)
KEPT = Path("docs/model-card/latent-probes")
SIZE, FRAMES, NUM_CLIPS, PCA_CLIPS, PATCH, CODE = 64, 8, 104, 400, 8, 16


class PatchPCA(torch.nn.Module):
    """A linear code with a VAE's interface: each 8×8×3 patch -> its first 16 principal
    components (one latent cell of 16 channels)."""

    def __init__(self, frames: np.ndarray):
        super().__init__()
        patches = self._patches(frames_to_signed(frames))
        self.mean = patches.mean(0)
        _, _, vh = torch.linalg.svd(patches - self.mean, full_matrices=False)
        self.basis = vh[:CODE]  # (16, 192)

    @staticmethod
    def _patches(pixels: torch.Tensor) -> torch.Tensor:
        cells = torch.nn.functional.unfold(pixels, PATCH, stride=PATCH)  # (N, 192, L)
        return cells.transpose(1, 2).reshape(-1, cells.shape[1])

    def encode(self, pixels: torch.Tensor):
        n, _, h, w = pixels.shape
        code = (self._patches(pixels) - self.mean) @ self.basis.T  # (N*L, 16)
        latents = code.reshape(n, (h // PATCH) * (w // PATCH), CODE).transpose(1, 2)
        return SimpleNamespace(
            latent_dist=SimpleNamespace(mean=latents.reshape(n, CODE, h // PATCH, w // PATCH))
        )

    def decode(self, latents: torch.Tensor):
        n, _, h, w = latents.shape
        patches = latents.reshape(n, CODE, h * w).transpose(1, 2) @ self.basis + self.mean  # (N, L, 192)
        pixels = torch.nn.functional.fold(
            patches.transpose(1, 2), (h * PATCH, w * PATCH), PATCH, stride=PATCH
        )
        return SimpleNamespace(sample=pixels)


def pca_code() -> PatchPCA:
    source = make_source(
        DataConfig(kind="synthetic", size=SIZE, num_frames=FRAMES, seed=0, motion_ranges="large")
    )
    return PatchPCA(np.concatenate([source.clip(i).frames for i in range(PCA_CLIPS)]))


def load_vae(vae: str | None, checkpoint: str | None):
    if not checkpoint:  # a VAE folder: an AutoencoderKL or a PatchAutoencoder
        return dreamvideo_load_vae(vae or SHIPPED, torch_dtype=torch.float32).eval()
    model = AutoencoderKL.from_pretrained(vae or SHIPPED, local_files_only=True, torch_dtype=torch.float32)
    if checkpoint:  # a probe's run before its export: the EMA weights it would export
        state = load_file(Path(checkpoint) / "model.safetensors")  # the stage's VAERoundTrip, or the bare VAE
        model.load_state_dict({k.removeprefix("vae."): v for k, v in state.items()})
        shadow = load_file(Path(checkpoint) / "ema.safetensors")  # one a trained parameter, in order
        with torch.no_grad():
            for i, parameter in enumerate(model.parameters()):  # the VAE stage trains every one
                parameter.copy_(shadow[str(i)])
    return model.eval()


@torch.no_grad()
def round_trip(codec, frames: np.ndarray, chunk: int = 64) -> np.ndarray:
    """uint8 (N, H, W, 3) -> the code's round trip, uint8."""
    pixels = frames_to_signed(frames)
    return np.concatenate(
        [tensor_to_images(codec.decode(codec.encode(c).latent_dist.mean).sample) for c in pixels.split(chunk)]
    )


def _fidelity(codec, frames: np.ndarray) -> dict[str, float]:
    out = round_trip(codec, frames)
    error = ((out.astype(np.float64) - frames) ** 2).reshape(len(frames), -1).mean(1)
    return {
        "ssim": float(ssim(frames_to_unit(out), frames_to_unit(frames), reduction="none").mean()),
        "psnr": float(np.mean(10 * np.log10(255.0**2 / np.maximum(error, 1e-10)))),
    }


@torch.no_grad()
def _drift(codec, frames: np.ndarray) -> float | None:
    if isinstance(codec, PatchPCA):  # its basis is not turned onto any other code
        return None
    shipped = load_vae(None, None)
    pixels = frames_to_signed(frames)
    new, old = codec.encode(pixels).latent_dist.mean, shipped.encode(pixels).latent_dist.mean
    return float(((new - old) * shipped.config.scaling_factor).pow(2).mean().sqrt())


NOISE_LEVELS = (0.05, 0.1)  # latent noise, in units of the latents' std


@torch.no_grad()
def noise_sensitivity(codec, frames: np.ndarray, chunk: int = 64) -> dict[str, float]:
    """Mean |decode(z + level · std_c · n) - decode(z)| in grey levels (0-255) per noise level,
    std_c each latent channel's std over the frames: what a diffusion model's error in the latents
    costs in pixels. A sampled latent is never an exact encoding, so a code whose decoder
    amplifies small errors cannot carry a generated video."""
    pixels = frames_to_signed(frames)
    generator = torch.Generator().manual_seed(0)
    change = {str(level): 0.0 for level in NOISE_LEVELS}
    encoded = [codec.encode(c).latent_dist.mean for c in pixels.split(chunk)]
    std = torch.cat(encoded).std((0, 2, 3))
    for latents in encoded:
        clean = codec.decode(latents).sample
        for level in NOISE_LEVELS:
            noise = torch.randn(latents.shape, generator=generator) * level * std.view(-1, 1, 1)
            delta = (codec.decode(latents + noise).sample - clean).abs().mean().item() * 127.5
            change[str(level)] += delta * len(latents) / len(pixels)
    return change


def measure(name: str, codec) -> dict:
    torch.set_num_threads(1)
    sets = reconstruction_sets(SIZE, num_frames=256, num_photos=96)
    clips = heldout_clips(NUM_CLIPS, SIZE, FRAMES)
    truth = np.stack([c.frames for c in clips])
    actions = [c.spec.action for c in clips]
    videos = round_trip(codec, truth.reshape(-1, SIZE, SIZE, 3)).reshape(truth.shape)
    kept, per_action = _classes(videos, actions)
    cards = np.stack([np.full((SIZE, SIZE, 3), c, np.uint8) for c in CARDS.values()])
    card_error = np.abs(round_trip(codec, cards).astype(np.float64) - cards).mean((1, 2))  # (cards, 3)
    r2 = channel_r2(codec, random_blocks(400, SIZE))
    record = {
        "name": name,
        "held-out frames": _fidelity(codec, sets["synthetic"]),
        "unseen photos": _fidelity(codec, sets["photos"]),
        "held-out clips, all frames": _fidelity(codec, truth.reshape(-1, SIZE, SIZE, 3)),
        "motion class kept": kept,
        "motion class kept per action": per_action,
        "colour read-out R2 (r, g, b)": [float(v) for v in r2],
        "card error, worst channel": {c: float(e.max()) for c, e in zip(CARDS, card_error, strict=True)},
        "drift from the shipped latents (RMS)": _drift(codec, sets["synthetic"]),
        "decode change under latent noise (grey levels)": noise_sensitivity(codec, sets["synthetic"]),
    }
    KEPT.mkdir(parents=True, exist_ok=True)
    (KEPT / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


@torch.no_grad()
def rotation_clips(codecs: dict[str, object]) -> str:
    """Per rotation clip of the held-out set: its true rate and object size, and the motion the
    suite's estimator reads (class, rotation at the region's edge px / frame, largest other
    component) from the ground truth and from each code's round trip."""
    from dreamvideo.evaluation.motion import estimate_motion

    rotations = ("rotate_cw", "rotate_ccw")
    clips = [c for c in heldout_clips(NUM_CLIPS, SIZE, FRAMES) if c.spec.action in rotations]
    lines = ["| clip | truth °/frame, size px | " + " | ".join(["ground truth", *codecs]) + " |"]
    lines.append("|---" * (len(codecs) + 3) + "|")
    for clip in clips:
        cells = []
        for codec in [None, *codecs.values()]:
            frames = clip.frames if codec is None else round_trip(codec, clip.frames)
            motion = estimate_motion(frames)
            parts = motion.components()
            other = max(parts["translation"], parts["scale"])
            cells.append(f"{motion.label()} {parts['rotation']:.2f} / {other:.2f}")
        truth = f"{clip.spec.rotation_deg:+.1f}, {clip.spec.meta['object_size']:.0f}"
        lines.append(f"| {clip.spec.action} | {truth} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table(names: list[str]) -> str:
    records = [json.loads((KEPT / f"{n}.json").read_text()) for n in names]
    per = sorted({a for r in records for a in r["motion class kept per action"]})
    rows = [
        ("SSIM / PSNR, held-out frames", lambda r: "{ssim:.3f} / {psnr:.1f}".format(**r["held-out frames"])),
        ("SSIM / PSNR, unseen photos", lambda r: "{ssim:.3f} / {psnr:.1f}".format(**r["unseen photos"])),
        ("SSIM, held-out clips", lambda r: f"{r['held-out clips, all frames']['ssim']:.3f}"),
        ("motion class kept", lambda r: f"{r['motion class kept']:.3f}"),
        *[
            (f"  {a}", lambda r, a=a: f"{r['motion class kept per action'].get(a, float('nan')):.2f}")
            for a in per
        ],
        ("colour R² (r / g / b)", lambda r: " / ".join(
            f"{v:.2f}" for v in r["colour read-out R2 (r, g, b)"])),
        *[
            (f"{c} card error", lambda r, c=c: f"{r['card error, worst channel'][c]:.0f}")
            for c in CARDS
        ],
        ("drift from shipped latents", lambda r: "–" if r["drift from the shipped latents (RMS)"] is None
         else f"{r['drift from the shipped latents (RMS)']:.3f}"),
        ("decode change, latent noise 5 % / 10 % (grey levels)", lambda r: " / ".join(
            f"{v:.1f}" for v in r["decode change under latent noise (grey levels)"].values())
         if "decode change under latent noise (grey levels)" in r else "not measured"),
    ]  # fmt: skip
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in records) + " |" for label, cell in rows]
    return "\n".join(lines)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("measure")
    noise = commands.add_parser("noise", help="add the latent-noise measure to a kept record")
    for command in (one, noise):
        command.add_argument("name")
        command.add_argument("--vae", default=None, help="a VAE folder (default: the ninth release's)")
        command.add_argument("--checkpoint", default=None, help="a training checkpoint's folder (its EMA)")
        command.add_argument("--patch-code", default=None, help="a patch_code.py run's file (its EMA)")
    many = commands.add_parser("table")
    many.add_argument("names", nargs="+")
    rotations = commands.add_parser("rotation", help="per rotation clip: what each round trip keeps")
    rotations.add_argument("--patch-code", default=None, help="a patch_code.py run's file")
    args = parser.parse_args()
    if args.command in ("measure", "noise"):
        if args.name == "pca":
            codec = pca_code()
        elif args.patch_code:
            from patch_code import load_code

            codec = load_code(Path(args.patch_code))
        else:
            codec = load_vae(args.vae, args.checkpoint)
        if args.command == "measure":
            print(json.dumps(measure(args.name, codec), indent=2))
        else:  # a record measured before the noise measure existed: the same frames, this one added
            torch.set_num_threads(1)
            record = json.loads((KEPT / f"{args.name}.json").read_text())
            frames = reconstruction_sets(SIZE, num_frames=256, num_photos=96)["synthetic"]
            record["decode change under latent noise (grey levels)"] = noise_sensitivity(codec, frames)
            (KEPT / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
            print(args.name, record["decode change under latent noise (grey levels)"])
    elif args.command == "rotation":
        codecs: dict[str, object] = {"shipped VAE": load_vae(None, None), "pca": pca_code()}
        if args.patch_code:
            from patch_code import load_code

            codecs["patch code"] = load_code(Path(args.patch_code))
        print(rotation_clips(codecs))
    else:
        print(table(args.names))


if __name__ == "__main__":
    main()
