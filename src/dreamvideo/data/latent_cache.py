"""A cache of VAE latents for the diffusion stages.

Encoding every frame with the VAE costs as much as the UNet step on a CPU, and the VAE is
frozen after stage 0: encoding a fixed set of clips once and training the t2v and i2v stages
on it halves their time. The cache keeps the posterior means (unscaled), the first frame of
each clip (the i2v reference image) and each clip's action and object name, so captions are
re-drawn from the training phrasings every epoch.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..errors import UserError
from ..io.images import frames_to_signed
from .sources import ClipSource
from .synthetic import ACTION_NAMES, action_probabilities, training_phrasings, with_speed_word


@dataclass
class LatentItem:
    latents: torch.Tensor  # (C, F, h, w), unscaled posterior mean
    reference: torch.Tensor  # (3, H, W) in [-1, 1]
    caption: str


@torch.no_grad()
def encode_frames(vae, frames: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """Clips (B, F, 3, H, W) in [-1, 1] -> the VAE's posterior means (B, C, F, h, w), unscaled,
    float32 on the CPU, encoded `chunk` frames at a time."""
    b, f = frames.shape[:2]
    flat = frames.flatten(0, 1)
    mean = torch.cat(
        [vae.encode(c.to(vae.device, vae.dtype)).latent_dist.mean.float().cpu() for c in flat.split(chunk)]
    )
    return mean.reshape(b, f, *mean.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def build_latent_cache(vae, source: ClipSource, num_clips: int, path: Path, batch: int = 16) -> Path:
    """Encode clips 0..num_clips-1 of `source` and write them to `path` (atomically)."""
    latents, firsts, meta = [], [], []
    for start in tqdm(range(0, num_clips, batch), desc="encoding latent cache", dynamic_ncols=True):
        clips = [source.clip(i) for i in range(start, min(start + batch, num_clips))]
        frames = torch.from_numpy(np.stack([c.frames for c in clips]))  # (B, F, H, W, 3)
        latents.append(encode_frames(vae, frames_to_signed(frames), chunk=batch * frames.shape[1]))
        firsts.append(frames[:, 0].contiguous())
        meta += [_clip_meta(c) for c in clips]
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        {"latents": torch.cat(latents).half(), "first_frames": torch.cat(firsts)},
        tmp,
        metadata={"clips": json.dumps(meta)},
    )
    os.replace(tmp, path)
    return path


def _clip_meta(clip) -> dict:
    """What a cached clip keeps besides its latents: the caption, and for a synthetic clip what
    re-drawing its phrasing needs (action, object, speed word)."""
    if not clip.spec:
        return {"caption": clip.caption}
    meta = {"action": clip.spec.action, "object": clip.spec.object_name, "caption": clip.caption}
    if clip.spec.meta.get("speed_word"):
        meta["speed_word"] = clip.spec.meta["speed_word"]
    return meta


class LatentCache:
    """Indexable cached clips; item `i` is clip `perm_epoch[i % N]` with a fresh phrasing (one of
    the first `train_phrasings` of its action's training phrasings; 0: all). With `action_weights`
    (`data.action_weights`), item `i` is instead a draw in which each action's clips together
    weigh as the action's probability would among rendered clips."""

    def __init__(
        self,
        path: Path,
        seed: int = 0,
        train_phrasings: int = 0,
        action_weights: dict[str, float] | None = None,
    ):
        try:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                self.meta = json.loads(f.metadata()["clips"])
            tensors = load_file(path)
        except Exception as e:
            raise UserError(f"latent cache {path} is unreadable: {e}") from e
        self.latents = tensors["latents"]
        self.first_frames = tensors["first_frames"]
        self.seed, self.train_phrasings = seed, train_phrasings
        self.clip_probabilities = self._clip_probabilities(action_weights) if action_weights else None

    def _clip_probabilities(self, action_weights: dict[str, float]) -> np.ndarray:
        """Each cached clip's draw probability: its action's weight over its action's share of the
        cache, so the drawn actions follow the weights whatever the cache's own mix."""
        weight = dict(zip(ACTION_NAMES, action_probabilities(action_weights), strict=True))
        actions = [m.get("action") for m in self.meta]
        counts = Counter(actions)
        p = np.array([weight.get(a, 1.0 / len(ACTION_NAMES)) / counts[a] for a in actions])
        return p / p.sum()

    def __len__(self) -> int:
        return len(self.meta)

    def item(self, index: int) -> LatentItem:
        n = len(self)
        if self.clip_probabilities is None:
            epoch, offset = divmod(index, n)
            k = int(np.random.default_rng([self.seed, epoch]).permutation(n)[offset])
        else:
            k = int(np.random.default_rng([self.seed, index, 5]).choice(n, p=self.clip_probabilities))
        meta = self.meta[k]
        caption = meta["caption"]
        if "action" in meta:  # re-draw among the training phrasings (never the held-out one)
            phrasings = training_phrasings(meta["action"], self.train_phrasings)
            rng = np.random.default_rng([self.seed, index, 7])
            caption = str(rng.choice(phrasings)).format(obj=meta["object"])
            caption = with_speed_word(caption, meta.get("speed_word", ""))
        reference = frames_to_signed(self.first_frames[k])
        return LatentItem(self.latents[k].float(), reference, caption)
