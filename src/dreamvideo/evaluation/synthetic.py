"""`dreamvideo eval synthetic`: fidelity and motion control on held-out procedural clips.

For each held-out clip (held-out seeds, held-out photographs, held-out phrasings) the model
gets the clip's first frame and caption; we measure
- first_frame_ssim / first_frame_psnr: generated first frame vs the reference image, beside
  the VAE's own reconstruction of the reference (the ceiling for any latent model);
- action_accuracy: the motion class measured from the generated frames (optical flow +
  similarity fit, `evaluation.motion`) equals the prompt's; per action and a confusion matrix;
- opposite_pair_accuracy: the same image with opposite prompts (left/right, up/down, cw/ccw,
  grow/shrink, pan left/right, zoom in/out) moves in opposite directions along that axis;
- temporal_consistency: mean flow-warping error between consecutive frames (lower is smoother);
- colourfulness ratios: how much of the reference's colour the first frame (and the VAE) keeps;
- the same camera pan / zoom tests on crops of real photographs never seen in training.
The motion estimator's own accuracy on the ground-truth clips is reported as its ceiling.

Variants (the ablations of docs/evaluation.md), all on the same clips and seeds:
- `full`: DreamVideo with its guidance defaults (or the given scales);
- `no-branch`: the retention branch switched off (its residuals scaled by 0) and the null
  image: the main UNet alone, text guidance only, as a text-to-video model;
- `text-only`: `--mode text` of `dreamvideo generate`: the branch on, fed the null image, text
  guidance only (what the prompt alone makes the model do);
- `no-image-guidance`: image guidance scale 1 (the image conditions, but is not amplified);
- `repeat-reference`: no model, the reference image repeated: perfect fidelity, no motion,
  a check that the metrics discriminate.
`sweep_guidance` runs the fidelity / motion part over a grid of image x text scales.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.clip import Clip
from ..data.synthetic import (
    ACTION_NAMES,
    DEFAULT_MOTION_RANGES,
    HELDOUT_PHOTOS,
    OPPOSITES,
    TRAIN_PHOTOS,
    heldout_phrasing_of,
    load_photo,
    make_clip,
    random_crop,
    training_phrasings,
)
from ..io.images import frames_to_unit, tensor_to_images, unit_to_uint8
from ..loading import measured_on
from ..metrics import psnr, ssim
from . import SPLITS, VARIANTS
from .motion import (
    ACTION_TO_MOTION,
    MOTION_CLASSES,
    Motion,
    action_accuracy,
    estimate_motion,
    label_accuracy,
    temporal_consistency,
)

EVAL_SEED = 12345
CAMERA_PROMPTS = {
    "pan_left": "the camera pans left",
    "pan_right": "the camera pans right",
    "zoom_in": "the camera zooms in",
    "zoom_out": "the camera zooms out",
}
CAMERA_PAIRS = [("pan_left", "pan_right"), ("zoom_in", "zoom_out")]


def motion_along(action: str, m: Motion) -> float:
    """Signed motion along the axis of an action's opposite pair (positive = the action's way)."""
    return {
        "move_left": -m.dx,
        "move_right": m.dx,
        "move_up": -m.dy,
        "move_down": m.dy,
        "rotate_cw": m.rotation,
        "rotate_ccw": -m.rotation,
        "grow": m.scale,
        "shrink": -m.scale,
        "pan_left": m.dx,
        "pan_right": -m.dx,
        "zoom_in": m.scale,
        "zoom_out": -m.scale,
    }[action]


def colourfulness(images: torch.Tensor) -> float:
    """Mean absolute deviation of each pixel's channels from their mean (0 for grey images)."""
    return float((images - images.mean(1, keepdim=True)).abs().mean())


class _SuiteSampler:
    """Batched generation with per-batch seeds; returns uint8 videos."""

    def __init__(
        self,
        pipe,
        num_frames: int,
        steps: int | None,
        image_scale: float | None,
        text_scale: float | None,
        batch_size: int,
        variant: str = "full",
        strength: float | None = None,
        pin_first_frame: bool | None = None,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}")
        self.pipe, self.num_frames, self.steps, self.variant = pipe, num_frames, steps, variant
        self.image_scale, self.text_scale, self.batch_size = image_scale, text_scale, batch_size
        self.strength, self.pin_first_frame = strength, pin_first_frame
        if variant == "no-image-guidance":
            self.image_scale = 1.0
        self.calls = 0

    def __call__(self, references: list[np.ndarray], prompts: list[str], progress) -> list[np.ndarray]:
        videos = []
        for start in range(0, len(prompts), self.batch_size):
            refs = [Image.fromarray(r) for r in references[start : start + self.batch_size]]
            if self.variant == "repeat-reference":
                videos += [np.repeat(np.asarray(r)[None], self.num_frames, 0) for r in refs]
                progress.update(len(refs))
                continue
            no_branch = self.variant == "no-branch"
            text_only = no_branch or self.variant == "text-only"
            out = self.pipe(
                refs,
                prompts[start : start + self.batch_size],
                num_frames=self.num_frames,
                num_inference_steps=self.steps,
                image_guidance_scale=self.image_scale,
                text_guidance_scale=self.text_scale,
                guidance_mode="text" if text_only else "image+text",
                conditioning_scale=0.0 if no_branch else 1.0,
                strength=self.strength,
                pin_first_frame=self.pin_first_frame,
                height=refs[0].height,
                width=refs[0].width,
                generator=torch.Generator().manual_seed(EVAL_SEED + self.calls),
            ).frames
            self.calls += 1
            videos += [unit_to_uint8(v) for v in out]
            progress.update(len(refs))
        return videos


def heldout_clips(
    num: int,
    size: int,
    num_frames: int,
    heldout_phrasing: bool = True,
    motion_ranges: str = DEFAULT_MOTION_RANGES,
) -> list[Clip]:
    """Held-out clips (seeds, photographs, phrasings never trained on), actions balanced.
    `heldout_phrasing=False` captions the same clips with training phrasings."""
    return [
        make_clip(
            EVAL_SEED,
            i,
            "heldout",
            size,
            num_frames,
            action=ACTION_NAMES[i % len(ACTION_NAMES)],
            heldout_phrasing=heldout_phrasing,
            motion_ranges=motion_ranges,
        )
        for i in range(num)
    ]


def training_clips(
    num: int,
    size: int,
    num_frames: int,
    seed: int = 0,
    pool: int = 2500,
    motion_ranges: str = DEFAULT_MOTION_RANGES,
    train_phrasings: int = 0,
) -> list[Clip]:
    """Clips the default recipe trained on (data seed 0, the first `pool` indices, training
    phrasings), actions balanced: the over-/under-fitting check beside `heldout_clips`."""
    by_action: dict[str, list[Clip]] = defaultdict(list)
    data = {"motion_ranges": motion_ranges, "train_phrasings": train_phrasings}
    for i in range(pool):
        clip = make_clip(seed, i, "train", size, num_frames, **data)
        by_action[clip.spec.action].append(clip)
        if all(len(by_action[a]) * len(ACTION_NAMES) >= num for a in ACTION_NAMES):
            break
    picked = [by_action[ACTION_NAMES[i % len(ACTION_NAMES)]][i // len(ACTION_NAMES)] for i in range(num)]
    return picked


def split_clips(split: str, num: int, size: int, num_frames: int, data: dict | None = None) -> list[Clip]:
    """The suite's clips of a split: held-out ("heldout"), the same captioned with training
    phrasings ("seen-phrasings"), or the recipe's training pool ("train"). `data` holds
    `motion_ranges` (every split) and `train_phrasings` (the training pool)."""
    data = data or {}
    if split == "train":
        return training_clips(num, size, num_frames, **data)
    ranges = data.get("motion_ranges", DEFAULT_MOTION_RANGES)
    return heldout_clips(num, size, num_frames, split == "heldout", motion_ranges=ranges)


@torch.no_grad()
def evaluate_synthetic(
    pipe,
    num: int,
    out_dir: str | Path,
    num_frames: int | None = None,
    steps: int | None = None,
    image_scale: float | None = None,
    text_scale: float | None = None,
    batch_size: int = 8,
    num_pairs: int | None = None,
    num_photos: int = 24,
    variant: str = "full",
    split: str = "heldout",
    motion_ranges: str = DEFAULT_MOTION_RANGES,
    train_phrasings: int = 0,
    strength: float | None = None,
    pin_first_frame: bool | None = None,
) -> dict:
    """Run the suite; writes out_dir/metrics.json and a sample sheet; returns the metrics.

    `split="train"` scores clips, photographs and phrasings the default recipe trained on.
    `motion_ranges` and `train_phrasings` render the clips as data of that kind (e.g. "small",
    5: the recipe's early stages' data), to diagnose a model on its own training data.
    `strength` and `pin_first_frame` default to the model's."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe.set_progress_bar_config(disable=True)
    num_frames, size, _, steps, image_scale, text_scale = pipe.fill_defaults(
        num_frames, None, None, steps, image_scale, text_scale, None
    )
    strength = pipe.default_strength if strength is None else strength
    pin = pipe.default_pin_first_frame if pin_first_frame is None else pin_first_frame
    sampler = _SuiteSampler(
        pipe, num_frames, steps, image_scale, text_scale, batch_size, variant, strength, pin
    )
    started = time.perf_counter()
    data = {"motion_ranges": motion_ranges, "train_phrasings": train_phrasings}
    suite = _Suite.build(split, num, size, num_frames, num_pairs, num_photos, data)
    with tqdm(total=suite.total_videos, desc="eval synthetic", dynamic_ncols=True) as progress:
        videos = sampler(suite.references, [clip.caption for clip in suite.clips], progress)
        pair_videos = sampler(*suite.pair_requests(split), progress)
        photo_requests = [r for r in suite.photo_refs for _ in CAMERA_PROMPTS]
        photo_prompts = [CAMERA_PROMPTS[a] for _ in suite.photo_refs for a in CAMERA_PROMPTS]
        photo_videos = sampler(photo_requests, photo_prompts, progress)

    metrics = {
        "variant": variant,
        "split": split,
        "num_clips": num,
        "num_frames": num_frames,
        "steps": steps,
        "scheduler": type(pipe.scheduler).__name__,
        "image_guidance_scale": sampler.image_scale,
        "text_guidance_scale": text_scale,
        "strength": strength,
        "pin_first_frame": pin,
        **_fidelity(pipe, suite.references, videos),
        # the photo bar's fidelity: each camera prompt's first frame against its photo crop
        "real_photo_first_frame_ssim": _mean_ssim(*_first_frames(photo_requests, photo_videos)),
        **_motion_control(suite, videos, pair_videos, photo_videos),
        "seconds": round(time.perf_counter() - started, 1),
        "measured_on": measured_on(pipe),
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    _sample_sheet(suite.clips, videos, out_dir / "samples.png")
    return metrics


@dataclass
class _Suite:
    """The suite's inputs: clips, opposite-prompt pairs on their images, photo crops."""

    clips: list[Clip]
    pair_sources: list[tuple[int, str, str]]  # (clip, action, opposite action)
    photo_refs: list[np.ndarray]

    @classmethod
    def build(
        cls,
        split: str,
        num: int,
        size: int,
        num_frames: int,
        num_pairs: int | None,
        num_photos: int,
        data: dict | None = None,
    ):
        clips = split_clips(split, num, size, num_frames, data)
        pairs = [(i, a, b) for i in range(num) for a, b in OPPOSITES if clips[i].spec.action == a]
        pairs = pairs[: num_pairs if num_pairs is not None else max(12, num // 4)]
        photos = TRAIN_PHOTOS if split == "train" else HELDOUT_PHOTOS
        photo_refs = []
        for k in range(num_photos):
            rng = np.random.default_rng([EVAL_SEED, k, 99])
            photo_refs.append(np.asarray(random_crop(rng, load_photo(photos[k % len(photos)]), size)))
        return cls(clips, pairs, photo_refs)

    @property
    def references(self) -> list[np.ndarray]:
        return [clip.frames[0] for clip in self.clips]

    @property
    def total_videos(self) -> int:
        return len(self.clips) + 2 * len(self.pair_sources) + len(CAMERA_PROMPTS) * len(self.photo_refs)

    def pair_requests(self, split: str) -> tuple[list[np.ndarray], list[str]]:
        """Opposite prompts on the same image, same object name: the held-out phrasing (or, off
        the held-out split, a trained one)."""
        refs, prompts = [], []
        for i, a, b in self.pair_sources:
            clip = self.clips[i]
            for action in (a, b):
                phrasing = (
                    heldout_phrasing_of(action) if split == "heldout" else training_phrasings(action)[0]
                )
                prompts.append(phrasing.format(obj=clip.spec.object_name))
                refs.append(clip.frames[0])
        return refs, prompts


def _first_frames(
    references: list[np.ndarray], videos: list[np.ndarray]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The videos' first frames and their references, as [0, 1] tensors."""
    return frames_to_unit(np.stack([v[0] for v in videos])), frames_to_unit(np.stack(references))


def _mean_ssim(firsts: torch.Tensor, refs: torch.Tensor) -> float:
    return float(ssim(firsts, refs, reduction="none").mean())


def _fidelity(pipe, references: list[np.ndarray], videos: list[np.ndarray]) -> dict:
    """First frame against the reference, beside the latent space's own reconstruction (the ceiling)."""
    firsts, refs = _first_frames(references, videos)
    vae = pipe.vae
    pixels = (refs * 2 - 1).to(pipe.device, vae.dtype)
    recon = torch.cat([vae.decode(vae.encode(chunk).latent_dist.mode()).sample for chunk in pixels.split(16)])
    recon = frames_to_unit(tensor_to_images(recon))  # through uint8, as the generated frames
    return {
        "first_frame_ssim": _mean_ssim(firsts, refs),
        "first_frame_psnr": float(psnr(firsts, refs).mean()),
        "vae_reconstruction_ssim": float(ssim(recon, refs)),
        "vae_reconstruction_psnr": float(psnr(recon, refs).mean()),
        # generated (or VAE-reconstructed) colourfulness / the reference's: 1 keeps colour, 0 is grey
        "first_frame_colourfulness_ratio": colourfulness(firsts) / max(colourfulness(refs), 1e-8),
        "vae_colourfulness_ratio": colourfulness(recon) / max(colourfulness(refs), 1e-8),
    }


def _motion_control(suite: _Suite, videos: list, pair_videos: list, photo_videos: list) -> dict:
    """Action accuracy (overall, per action, confusion), opposite pairs, real-photo camera motion,
    temporal consistency, and the estimator's own accuracy on the ground truth."""
    clips = suite.clips
    actions = [clip.spec.action for clip in clips]
    truth = [ACTION_TO_MOTION[a] for a in actions]
    measured = [estimate_motion(v).label() for v in videos]
    estimator = [estimate_motion(clip.frames).label() for clip in clips]
    confusion = {t: Counter() for t in MOTION_CLASSES}
    for t, m in zip(truth, measured, strict=True):
        confusion[t][m] += 1
    accuracy, per_action = label_accuracy(measured, actions)
    pair_ok = []
    for k, (_, a, _b) in enumerate(suite.pair_sources):
        ma, mb = estimate_motion(pair_videos[2 * k]), estimate_motion(pair_videos[2 * k + 1])
        pair_ok.append(motion_along(a, ma) > 0 and motion_along(a, mb) < 0)
    photo_measured = [estimate_motion(v) for v in photo_videos]
    photo_actions = [a for _ in suite.photo_refs for a in CAMERA_PROMPTS]
    photo_accuracy = label_accuracy([m.label() for m in photo_measured], photo_actions)[0]
    photo_pairs = []
    for k in range(len(suite.photo_refs)):
        by_action = dict(zip(CAMERA_PROMPTS, photo_measured[4 * k : 4 * k + 4], strict=True))
        for a, b in CAMERA_PAIRS:
            photo_pairs.append(motion_along(a, by_action[a]) > 0 and motion_along(a, by_action[b]) < 0)
    return {
        "action_accuracy": accuracy,
        "action_accuracy_per_action": per_action,
        "opposite_pair_accuracy": float(np.mean(pair_ok)) if pair_ok else None,
        "num_opposite_pairs": len(pair_ok),
        "temporal_consistency": float(np.mean([temporal_consistency(v) for v in videos])),
        "real_photo_camera_accuracy": photo_accuracy,
        "real_photo_opposite_pair_accuracy": float(np.mean(photo_pairs)),
        "num_real_photo_videos": len(photo_videos),
        "estimator_accuracy_on_ground_truth": float(
            np.mean([t == e for t, e in zip(truth, estimator, strict=True)])
        ),
        "ground_truth_temporal_consistency": float(np.mean([temporal_consistency(c.frames) for c in clips])),
        "confusion_matrix": {t: {m: confusion[t][m] for m in MOTION_CLASSES} for t in MOTION_CLASSES},
    }


def _sample_sheet(clips: list[Clip], videos: list, path: Path, rows: int = 13) -> None:
    """One row per action: the ground-truth clip above the generated video."""
    lines = []
    for clip, video in list(zip(clips, videos, strict=True))[:rows]:
        lines += [np.concatenate(list(clip.frames), 1), np.concatenate(list(video), 1)]
    Image.fromarray(np.concatenate(lines, 0)).save(path)


@torch.no_grad()
def sweep_guidance(
    pipe,
    image_scales: list[float],
    text_scales: list[float],
    num: int,
    out_dir: str | Path,
    num_frames: int | None = None,
    steps: int | None = None,
    batch_size: int = 8,
) -> list[dict]:
    """First-frame SSIM, action accuracy and temporal consistency on a grid of guidance scales.

    Writes out_dir/sweep.json and sweep.png (the fidelity / motion trade-off)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pipe.set_progress_bar_config(disable=True)
    num_frames = num_frames or pipe.config.default_num_frames
    clips = heldout_clips(num, pipe.default_size[0], num_frames)
    references = [clip.frames[0] for clip in clips]
    refs = frames_to_unit(np.stack(references))
    actions = [clip.spec.action for clip in clips]
    rows = []
    grid = [(si, st) for si in image_scales for st in text_scales]
    steps = steps or pipe.default_num_inference_steps
    with tqdm(total=len(grid) * num, desc="guidance sweep", dynamic_ncols=True) as progress:
        for si, st in grid:
            sampler = _SuiteSampler(pipe, num_frames, steps, si, st, batch_size)
            videos = sampler(references, [clip.caption for clip in clips], progress)
            firsts = frames_to_unit(np.stack([v[0] for v in videos]))
            rows.append(
                {
                    "image_guidance_scale": si,
                    "text_guidance_scale": st,
                    "first_frame_ssim": float(ssim(firsts, refs)),
                    "action_accuracy": action_accuracy(videos, actions)[0],
                    "temporal_consistency": float(np.mean([temporal_consistency(v) for v in videos])),
                }
            )
    record = {"num_clips": num, "steps": steps, "grid": rows, "measured_on": measured_on(pipe)}
    (out_dir / "sweep.json").write_text(json.dumps(record, indent=2) + "\n")
    from .report import plot_sweep

    plot_sweep(rows, out_dir / "sweep.png")
    return rows
