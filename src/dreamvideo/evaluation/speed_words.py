"""Speed words: does "slowly" / "quickly" after a prompt change how fast the video moves?

Each held-out moving clip's reference is generated three times from the same noise, its
held-out caption followed by each of `data.synthetic.SPEED_WORDS` ("slowly", none, "quickly").
A video's speed is its motion along the action's own axis, in pixels per frame at the moving
region's edge (`evaluation.motion`), signed: positive is the prompt's direction, so motion the
wrong way counts as slower. The bar: slowly < none < quickly in at least 80 % of clips. The
clips rendered with each word are measured the same way, for the data's own speeds.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.synthetic import ACTION_NAMES, SPEED_WORDS, make_clip, with_speed_word
from ..io.images import unit_to_uint8
from ..loading import measured_on
from .motion import Motion, estimate_motion
from .synthetic import EVAL_SEED, motion_along

MOVING_ACTIONS = [a for a in ACTION_NAMES if a != "still"]
ROTATING_OR_SCALING = ("rotate_cw", "rotate_ccw", "grow", "shrink", "zoom_in", "zoom_out")


def speed_along(action: str, motion: Motion) -> float:
    """Signed speed along the action's axis, px / frame at the moving region's edge."""
    along = motion_along(action, motion)
    return along * motion.radius if action in ROTATING_OR_SCALING else along


def _ordered(speeds: dict[str, float]) -> bool:
    words = list(SPEED_WORDS)  # slowly, none, quickly
    return all(speeds[a] < speeds[b] for a, b in itertools.pairwise(words))


@torch.no_grad()
def evaluate_speed_words(
    pipe,
    num: int,
    out: str | Path | None = None,
    steps: int | None = None,
    clips_per_batch: int = 2,
) -> dict:
    """Measured speed per word of `num` held-out moving clips (actions balanced), beside the data's;
    written to `out` (a JSON file) when given."""
    pipe.set_progress_bar_config(disable=True)
    size, num_frames = pipe.default_size[0], pipe.config.default_num_frames
    words = list(SPEED_WORDS)
    rows = []
    progress = tqdm(total=num * len(words), desc="eval speed words", dynamic_ncols=True)
    for start in range(0, num, clips_per_batch):
        group = range(start, min(start + clips_per_batch, num))
        clips = {
            (i, w): make_clip(EVAL_SEED, i, "heldout", size, num_frames, _action(i), speed_word=w)
            for i in group
            for w in words
        }
        references = [clips[i, ""].frames[0] for i in group for _ in words]
        captions = [with_speed_word(clips[i, ""].caption, w) for i in group for w in words]
        # one noise a clip, shared by its three words: only the word differs
        shape = (
            1,
            pipe.unet.config.in_channels,
            num_frames,
            size // pipe.vae_scale_factor,
            size // pipe.vae_scale_factor,
        )
        noise = [torch.randn(shape, generator=torch.Generator().manual_seed(EVAL_SEED + i)) for i in group]
        latents = torch.cat([n for n in noise for _ in words])
        videos = pipe(
            [Image.fromarray(r) for r in references],
            captions,
            num_inference_steps=steps,
            num_frames=num_frames,
            height=size,
            width=size,
            latents=latents,
        ).frames
        for k, i in enumerate(group):
            action = clips[i, ""].spec.action
            videos_of_clip = videos[k * len(words) : (k + 1) * len(words)]
            generated = {
                w: speed_along(action, estimate_motion(unit_to_uint8(v)))
                for w, v in zip(words, videos_of_clip, strict=True)
            }
            data = {w: speed_along(action, estimate_motion(clips[i, w].frames)) for w in words}
            caption = clips[i, ""].caption
            rows.append(
                {"clip": i, "action": action, "caption": caption, "speed": generated, "data_speed": data}
            )
        progress.update(len(group) * len(words))
    progress.close()
    result = _summary(rows, steps or pipe.default_num_inference_steps) | {"measured_on": measured_on(pipe)}
    if out is not None:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(result | {"clips": rows}, indent=2) + "\n")
        tmp.replace(out)
    return result


def _summary(rows: list[dict], steps: int) -> dict:
    label = {w: w or "(none)" for w in SPEED_WORDS}
    per_action: dict[str, list[bool]] = {}
    for row in rows:
        per_action.setdefault(row["action"], []).append(_ordered(row["speed"]))
    return {
        "num_clips": len(rows),
        "steps": steps,
        "ordered_fraction": float(np.mean([_ordered(r["speed"]) for r in rows])),
        "data_ordered_fraction": float(np.mean([_ordered(r["data_speed"]) for r in rows])),
        "speed_per_word": {label[w]: float(np.mean([r["speed"][w] for r in rows])) for w in SPEED_WORDS},
        "data_speed_per_word": {
            label[w]: float(np.mean([r["data_speed"][w] for r in rows])) for w in SPEED_WORDS
        },
        "ordered_fraction_per_action": {a: float(np.mean(v)) for a, v in per_action.items()},
    }


def _action(index: int) -> str:
    return MOVING_ACTIONS[index % len(MOVING_ACTIONS)]
