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

Training uses the VAE stage's own batches and loss (research/configs/latent/longer.toml: one
frame of 8 procedural clips and 4 photo crops a step, L1 + 0.5 (1 - SSIM), seed 39), with the
trainer's EMA; no KL (the code is deterministic; diffusion stages use the posterior mean).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dreamvideo.io.images import frames_to_signed
from dreamvideo.training.config import load_config
from dreamvideo.training.stages import VAEStage
from dreamvideo.training.trainer import EMA, step_generator

PATCH, CODE = 8, 16
RUNS = Path("runs/probes/latent")
CONFIG = Path("research/configs/latent/longer.toml")


class _Block(nn.Module):  # TAESD's block: three 3×3 convs with ReLU, plus the input
    def __init__(self, channels: int):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + x)


def _zero(conv: nn.Conv2d) -> nn.Conv2d:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class PatchResidualCode(nn.Module):
    """latent = linear(x) + E(x); pixels = linear⁻¹(latent) + D(latent); E, D start at zero."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 128)):  # the shipped VAE's widths
        super().__init__()
        self.project = nn.Conv2d(3 * PATCH * PATCH, CODE, 1)  # after pixel-unshuffle
        self.unproject = nn.Conv2d(CODE, 3 * PATCH * PATCH, 1)  # before pixel-shuffle
        encoder: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1), _Block(channels[0])]
        for c_in, c_out in itertools.pairwise(channels):
            encoder += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), _Block(c_out)]
        self.encoder = nn.Sequential(*encoder, _zero(nn.Conv2d(channels[-1], CODE, 3, padding=1)))
        decoder: list[nn.Module] = [nn.Conv2d(CODE, channels[-1], 3, padding=1), nn.ReLU()]
        for c_in, c_out in itertools.pairwise(channels[::-1]):
            decoder += [_Block(c_in), nn.Upsample(scale_factor=2), nn.Conv2d(c_in, c_out, 3, padding=1)]
        last = _zero(nn.Conv2d(channels[0], 3, 3, padding=1))
        self.decoder = nn.Sequential(*decoder, _Block(channels[0]), last)

    def set_linear(self, encode: torch.Tensor, bias: torch.Tensor, decode: torch.Tensor, mean: torch.Tensor):
        """The linear code: latent = encode @ (patch) + bias; patch = decode @ latent + mean."""
        with torch.no_grad():
            self.project.weight.copy_(encode[:, :, None, None])
            self.project.bias.copy_(bias)
            self.unproject.weight.copy_(decode[:, :, None, None])
            self.unproject.bias.copy_(mean)

    def encode(self, pixels: torch.Tensor):
        latents = self.project(F.pixel_unshuffle(pixels, PATCH)) + self.encoder(pixels)
        zero = torch.zeros((), device=latents.device)  # deterministic: a VAE's posterior interface
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=latents, kl=lambda: zero, std=zero))

    def decode(self, latents: torch.Tensor):
        return SimpleNamespace(sample=F.pixel_shuffle(self.unproject(latents), PATCH) + self.decoder(latents))

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None):
        posterior = self.encode(images).latent_dist
        return self.decode(posterior.mean).sample, posterior


def linear_code(align: bool) -> tuple[torch.Tensor, ...]:
    """The PCA code of `latent_probe.pca_code` (400 training clips), turned onto the ninth
    release's latents when `align`: (encode (16, 192), bias (16,), decode (192, 16), mean (192,))."""
    from latent_probe import PCA_CLIPS, SIZE, load_vae, pca_code

    from dreamvideo.data.sources import make_source
    from dreamvideo.training.config import DataConfig

    pca = pca_code()
    basis, mean = pca.basis, pca.mean  # (16, 192), (192,)
    rotation, shift = torch.eye(CODE), torch.zeros(CODE)
    if align:
        data = DataConfig(kind="synthetic", size=SIZE, num_frames=8, seed=0, motion_ranges="large")
        source = make_source(data)
        frames = frames_to_signed(np.concatenate([source.clip(i).frames for i in range(0, PCA_CLIPS, 4)]))
        shipped_vae = load_vae(None, None)
        with torch.no_grad():
            code = pca.encode(frames).latent_dist.mean  # (N, 16, 8, 8)
            shipped = torch.cat([shipped_vae.encode(c).latent_dist.mean for c in frames.split(64)])
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


def load_code(path: Path) -> PatchResidualCode:
    """A run's EMA weights: its folder (the latest state) or one of its step-NNNNNNN.pt files."""
    model = PatchResidualCode()
    # this probe's own files (the optimiser state holds a few Python objects)
    state = torch.load(path / "latest.pt" if path.is_dir() else path, weights_only=False)
    model.load_state_dict(state["model"])
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
    model = PatchResidualCode()
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
    batch_size = config.optim.batch_size
    log = (folder / "log.jsonl").open("a")
    began = time.time()
    for step in range(start, steps):
        batch = stage.make_batch(list(range(step * batch_size, (step + 1) * batch_size)))
        loss = stage.loss(model, batch, step_generator(config.seed, 0, step, 0))
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


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train")
    run.add_argument("name")
    run.add_argument("--steps", type=int, default=3000)
    run.add_argument("--lr", type=float, default=2e-4)
    run.add_argument("--align", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    train(args.name, args.steps, args.align, args.lr)


if __name__ == "__main__":
    main()
