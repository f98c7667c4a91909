"""Can a trained code of the shipped size beat the linear one by starting from it? (Issue 39's
third latent candidate; the table is read in docs/research-log.md.)

The code is the linear PCA code of `latent_probe.py` (16 numbers per 8×8×3 patch) plus a learned
residual on each side, as DC-AE adds learned blocks to a fixed space-to-channel shortcut:

    latent = P(x) + E(x)        P: pixel-unshuffle 8 -> 1×1 conv 192 -> 16 (the PCA projection)
    pixels = P⁺(latent) + D(latent)   P⁺: 1×1 conv 16 -> 192 -> pixel-shuffle 8

E and D are TAESD-style plain conv stacks (ReLU, residual blocks, no normalisation or attention)
whose last conv is zero-initialised, so training starts exactly at the linear code's round trip
and can only be pulled away from it by the loss. The PCA basis is turned by an affine map A
fitted by least squares onto the ninth release's latents (`P = A·PCA + b`, `P⁺ = PCA⁺·A⁻¹`): the
round trip is unchanged and the new latents start as close to today's as a linear code allows,
so today's UNet and branch can be continued on them.

    python research/patch_code.py train NAME [--steps 3000] [--align/--no-align]   # resumable
    python research/latent_probe.py measure NAME --patch-code runs/probes/latent/NAME[/step-0000750.pt]
    python research/patch_code.py export NAME runs/probes/latent/NAME/vae   # a VAE folder (PatchAutoencoder)
    python research/patch_code.py on-latents MODEL VAE OUT    # MODEL on VAE's latents, for the decoder stage
    python research/patch_code.py splice MODEL DECODER OUT    # MODEL with DECODER's reference decoder

Training uses the VAE stage's own batches and loss (research/configs/latent/longer.toml: one
frame of 8 procedural clips and 4 photo crops a step, L1 + 0.5 (1 - SSIM), seed 39), with the
trainer's EMA; no KL (the code is deterministic; diffusion stages use the posterior mean).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from dreamvideo.io.images import frames_to_signed
from dreamvideo.models.patch_autoencoder import PatchAutoencoder
from dreamvideo.training.config import load_config
from dreamvideo.training.stages import VAERoundTrip, VAEStage
from dreamvideo.training.trainer import EMA, step_generator

PATCH, CODE = 8, 16
RUNS = Path("runs/probes/latent")
CONFIG = Path("research/configs/latent/longer.toml")


@torch.no_grad()
def _alignment_frames() -> tuple[torch.Tensor, torch.Tensor]:
    """Frames of 100 training clips (every 4th of the PCA's 400) in [-1, 1] and the ninth
    release's latents of them: what a code's basis is fitted to."""
    from latent_probe import PCA_CLIPS, SIZE, load_vae

    from dreamvideo.data.sources import make_source
    from dreamvideo.training.config import DataConfig

    source = make_source(DataConfig(kind="synthetic", size=SIZE, num_frames=8, seed=0, motion_ranges="large"))
    frames = frames_to_signed(np.concatenate([source.clip(i).frames for i in range(0, PCA_CLIPS, 4)]))
    shipped_vae = load_vae(None, None)
    return frames, torch.cat([shipped_vae.encode(c).latent_dist.mean for c in frames.split(64)])


def linear_code(align: bool) -> tuple[torch.Tensor, ...]:
    """The PCA code of `latent_probe.pca_code` (400 training clips), turned onto the ninth
    release's latents when `align`: (encode (16, 192), bias (16,), decode (192, 16), mean (192,))."""
    from latent_probe import pca_code

    pca = pca_code()
    basis, mean = pca.basis, pca.mean  # (16, 192), (192,)
    rotation, shift = torch.eye(CODE), torch.zeros(CODE)
    if align:
        frames, shipped = _alignment_frames()
        with torch.no_grad():
            code = pca.encode(frames).latent_dist.mean  # (N, 16, 8, 8)
        x = torch.cat([code, torch.ones_like(code[:, :1])], 1).permute(0, 2, 3, 1).reshape(-1, CODE + 1)
        y = shipped.permute(0, 2, 3, 1).reshape(-1, CODE)
        solution = torch.linalg.lstsq(x.double(), y.double()).solution.float()  # (17, 16)
        rotation, shift = solution[:CODE].T, solution[CODE]
        fit = 1 - (y - x @ solution).pow(2).sum() / (y - y.mean(0)).pow(2).sum()
        print(f"affine map from the PCA code onto the ninth release's latents: R² {fit:.3f}")
    encode = rotation @ basis
    return (
        encode,
        shift - encode @ mean,
        basis.T @ torch.linalg.inv(rotation),
        mean + basis.T @ (torch.linalg.inv(rotation) @ -shift),
    )


def load_code(path: Path) -> PatchAutoencoder:
    """A run's EMA weights: its folder (the latest state) or one of its step-NNNNNNN.pt files."""
    model = PatchAutoencoder()
    # this probe's own files (the optimiser state holds a few Python objects)
    state = torch.load(path / "latest.pt" if path.is_dir() else path, weights_only=False)
    # runs from before the model had a latent shift: it is zero
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    if unexpected or set(missing) - {"latent_shift"}:
        raise SystemExit(f"error: {path} is not a patch code's state ({missing=}, {unexpected=})")
    with torch.no_grad():
        for parameter, shadow in zip(model.parameters(), state["ema"], strict=True):
            parameter.copy_(shadow)
    return model.eval()


def train(name: str, steps: int, align: bool, lr: float) -> None:
    torch.set_num_threads(1)
    folder = RUNS / name
    folder.mkdir(parents=True, exist_ok=True)
    config = load_config(CONFIG)
    torch.manual_seed(config.seed)
    stage = VAEStage(config, torch.device("cpu"))  # its batches and loss; its own VAE is unused
    model = PatchAutoencoder()
    params = list(model.parameters())
    linear = [*model.project.parameters(), *model.unproject.parameters()]
    learned = [*model.encoder.parameters(), *model.decoder.parameters()]
    # Adam moves every weight by about lr a step: the PCA weights (about 0.07) move 20× slower.
    optimizer = torch.optim.AdamW([{"params": linear, "lr": lr / 20}, {"params": learned, "lr": lr}])
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    ema, start = EMA(params, config.optim.ema_decay), 0
    if (folder / "latest.pt").exists():
        state = torch.load(folder / "latest.pt", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        ema.shadow, start = state["ema"], state["step"]
    else:
        model.set_linear(*linear_code(align))
    batch_size, round_trip = config.optim.batch_size, VAERoundTrip(model)
    log = (folder / "log.jsonl").open("a")
    began = time.time()
    for step in range(start, steps):
        batch = stage.make_batch(list(range(step * batch_size, (step + 1) * batch_size)))
        loss = stage.loss(round_trip, batch, step_generator(config.seed, 0, step, 0))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.optim.max_grad_norm)
        optimizer.step()
        schedule.step()
        ema.update(params, step)
        if (step + 1) % 10 == 0:
            record = {"step": step + 1, "loss": loss.item(), "seconds": time.time() - began}
            log.write(json.dumps(record) + "\n")
            log.flush()
        if (step + 1) % 250 == 0 or step + 1 == steps:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict(), "ema": ema.shadow, "step": step + 1}  # fmt: skip
            torch.save(state, folder / "latest.tmp")
            (folder / "latest.tmp").replace(folder / "latest.pt")
            if (step + 1) % 750 == 0:
                torch.save(state, folder / f"step-{step + 1:07d}.pt")


@torch.no_grad()
def isometric_basis(model: PatchAutoencoder) -> None:
    """Turn the code's latent basis (in place, the round trip unchanged) into one where a latent
    error costs the same in pixels in every direction, as near the ninth release's latents as
    such a basis can be.

    The affine map of `linear_code` (the least-squares fit onto the shipped latents) squashes some
    directions, so its inverse in the decoder magnifies latent errors along them: an error of 5 %
    of each latent channel's std moves the decoded pixels by 220 grey levels on average, against
    0.8 for the shipped VAE (`latent_probe.noise_sensitivity`). Here the linear decoder
    `unproject` (192 × 16) is split as Q·S (Q orthonormal columns) and the new latents are
    s·R·S·z + t (t centres them as the shipped ones are): the decoder's linear part
    becomes Q·Rᵀ / s, an isometry up to the scale s, while R (orthogonal) and s are the
    Procrustes fit of s·R·S·z to the shipped latents on 100 training clips' frames."""

    def flat(latents: torch.Tensor) -> torch.Tensor:
        return latents.permute(0, 2, 3, 1).reshape(-1, CODE).double()

    frames, shipped_latents = _alignment_frames()
    ours = flat(torch.cat([model.encode(c).latent_dist.mean for c in frames.split(64)]))
    shipped = flat(shipped_latents)
    _, stretch = torch.linalg.qr(model.unproject.weight[:, :, 0, 0].double())  # unproject = Q·S
    coords = ours @ stretch.T  # S·z: orthonormal coordinates of the linear decode
    centred, target = coords - coords.mean(0), shipped - shipped.mean(0)
    u, sigma, vh = torch.linalg.svd(target.T @ centred)
    rotation = u @ vh
    scale = sigma.sum() / centred.pow(2).sum()
    fit = 1 - (target - scale * centred @ rotation.T).pow(2).sum() / target.pow(2).sum()
    print(f"isometric basis: scale {scale:.3f}, Procrustes fit to the ninth release's latents R² {fit:.3f}")
    matrix = scale * rotation @ stretch  # new latents: matrix @ z + shift, centred as the shipped ones
    shift = shipped.mean(0) - matrix @ ours.mean(0)
    model.transform_latents(matrix.float(), shift.float())


def export(name: str, out: Path, checkpoint: Path | None, basis: str = "aligned") -> None:
    """A run's EMA weights as a VAE folder (`PatchAutoencoder.save_pretrained`), with the shipped
    VAE's latent scale: the code is aligned to its latents, so a model continued on it keeps the
    scale its UNet learned. `basis="isometric"` turns it first (`isometric_basis`)."""
    from latent_probe import SHIPPED

    from dreamvideo.loading import load_vae

    model = load_code(checkpoint or RUNS / name)
    if basis == "isometric":
        isometric_basis(model)
    model.register_to_config(scaling_factor=float(load_vae(SHIPPED).config.scaling_factor))
    model.save_pretrained(out)
    print(f"wrote {out} (scaling factor {model.config.scaling_factor})")


def on_latents(model: Path, vae: Path, out: Path) -> None:
    """The DreamVideo folder `model` with the VAE folder `vae` in place of its own and no
    reference-aware decoder (it decodes the old latents): where the decoder stage can retrain one
    for the new latents while the i2v stage continues the UNet on them."""
    from dreamvideo.loading import load_vae
    from dreamvideo.pipeline import load_pipeline

    pipe = load_pipeline(model)
    pipe.register_modules(vae=load_vae(vae, torch_dtype=pipe.vae.dtype), reference_decoder=None)
    pipe.save_pretrained(out)
    print(f"wrote {out}: {model} on the latents of {vae}")


def splice(model: Path, decoder: Path, out: Path) -> None:
    """`model` with the reference-aware decoder of the DreamVideo folder `decoder`, which must have
    been trained on the same VAE (its weights equal, or the decoder reads other latents)."""
    from dreamvideo.pipeline import load_pipeline

    pipe, source = load_pipeline(model), load_pipeline(decoder)
    theirs = source.vae.state_dict()
    if any(not torch.equal(v.float(), theirs[k].float()) for k, v in pipe.vae.state_dict().items()):
        raise SystemExit(f"error: {decoder}'s VAE is not {model}'s: its decoder reads other latents")
    pipe.register_modules(reference_decoder=source.reference_decoder)
    pipe.save_pretrained(out)
    print(f"wrote {out}: {model} with the reference-aware decoder of {decoder}")


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train")
    run.add_argument("name")
    run.add_argument("--steps", type=int, default=3000)
    run.add_argument("--lr", type=float, default=2e-4)
    run.add_argument("--align", action=argparse.BooleanOptionalAction, default=True)
    save = commands.add_parser("export", help="a run's EMA weights as a VAE folder")
    save.add_argument("name")
    save.add_argument("out", type=Path)
    save.add_argument("--checkpoint", type=Path, default=None, help="a step-NNNNNNN.pt (default: latest)")
    save.add_argument("--basis", choices=("aligned", "isometric"), default="aligned")
    move = commands.add_parser("on-latents", help="a DreamVideo folder on another VAE, no reference decoder")
    splicing = commands.add_parser("splice", help="a DreamVideo folder with another's reference decoder")
    for command, names in ((move, ("model", "vae", "out")), (splicing, ("model", "decoder", "out"))):
        for name in names:
            command.add_argument(name, type=Path)
    args = parser.parse_args()
    if args.command == "train":
        train(args.name, args.steps, args.align, args.lr)
    elif args.command == "export":
        export(args.name, args.out, args.checkpoint, args.basis)
    elif args.command == "on-latents":
        on_latents(args.model, args.vae, args.out)
    else:
        splice(args.model, args.decoder, args.out)


if __name__ == "__main__":
    main()
