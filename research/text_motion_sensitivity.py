"""Does a model use the prompt's *direction*? (Answered in docs/model-card.md, "Does the model
use the prompt's direction?", and in every probe of research/probe.py.)

The training loss (ε, v or x MSE) on clips of opposite-pair actions (left/right, up/down,
cw/ccw, grow/shrink, pans, zooms), with their true caption, with the opposite action's caption
and with no caption, at fixed noise levels. If the opposite caption costs no more than the true
one, the model has not learnt which way to move — whatever the guidance scale at sampling; if
no caption costs no more either, it ignores the text.

The model is a DreamVideo folder (the reference image is the clip's first frame) or a
text-to-video folder (a t2v stage's export: the UNet alone). Clips come from a latent cache
(`--cache`, the first design's) or are rendered from the held-out split and encoded with the
model's own `vae` (`--cache` omitted).

    python research/text_motion_sensitivity.py [--model DIR] [--cache runs/tiny/latents_refine.safetensors]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers import DDPMScheduler

from dreamvideo.data.latent_cache import LatentCache, encode_frames
from dreamvideo.data.synthetic import OPPOSITES, training_phrasings
from dreamvideo.evaluation.synthetic import heldout_clips
from dreamvideo.io.images import frames_to_signed
from dreamvideo.loading import T2V_PIPELINE_CLASSES, load_t2v, read_model_index
from dreamvideo.models import DreamVideoDenoiser
from dreamvideo.pipeline import DreamVideoPipeline, load_pipeline
from dreamvideo.sizes import vae_scale_factor
from dreamvideo.text import encode_prompts
from dreamvideo.training.stages import noised_target


def cached_clips(path: str, opposite: dict, count: int, scale: float):
    """(latents, first frames, actions, object names) of a latent cache's opposite-pair clips."""
    cache = LatentCache(path)
    picked = [k for k, m in enumerate(cache.meta) if m.get("action") in opposite][:count]
    latents = torch.stack([cache.latents[k].float() for k in picked]) * scale
    images = torch.stack([frames_to_signed(cache.first_frames[k]) for k in picked])
    return (
        latents,
        images,
        [cache.meta[k]["action"] for k in picked],
        [cache.meta[k]["object"] for k in picked],
    )


@torch.no_grad()
def rendered_clips(vae, opposite: dict, count: int, size: int, frames: int):
    """The same from held-out clips rendered now and encoded with `vae`."""
    clips = [c for c in heldout_clips(4 * count, size, frames) if c.spec.action in opposite][:count]
    pixels = frames_to_signed(np.stack([c.frames for c in clips]))  # (B, F, 3, H, W)
    latents = encode_frames(vae, pixels) * vae.config.scaling_factor
    return (
        latents,
        pixels[:, 0],
        [c.spec.action for c in clips],
        [c.spec.object_name for c in clips],
    )


def direction_gaps(
    pipe, clips: int = 48, timesteps: tuple[int, ...] = (950, 800, 600, 400, 200), cache: str | None = None
) -> list[dict]:
    """Per timestep: the loss with the true, the opposite and no caption, and the direction gap
    (opposite − true) / opposite. `pipe` is a DreamVideo or text-to-video pipeline."""
    if isinstance(pipe, DreamVideoPipeline):
        model = DreamVideoDenoiser(pipe.unet, pipe.retention_branch).eval()
    else:

        def model(noisy, steps, context, image):
            return pipe.unet(noisy, steps, encoder_hidden_states=context).sample

    opposite = dict(OPPOSITES) | {b: a for a, b in OPPOSITES}
    if cache:
        scale = pipe.vae.config.scaling_factor
        latents, images, actions, objects = cached_clips(cache, opposite, clips, scale)
    else:
        size = pipe.unet.config.sample_size * vae_scale_factor(pipe.vae.config)
        latents, images, actions, objects = rendered_clips(pipe.vae, opposite, clips, size, 8)

    def caption(k: int, action: str) -> str:
        return training_phrasings(action)[0].format(obj=objects[k])

    count = len(actions)
    captions = {
        "true": [caption(k, actions[k]) for k in range(count)],
        "opposite": [caption(k, opposite[actions[k]]) for k in range(count)],
        "none": [""] * count,
    }
    contexts = {name: encode_prompts(pipe.tokenizer, pipe.text_encoder, c) for name, c in captions.items()}
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for t in timesteps:
        noise = torch.randn(latents.shape, generator=generator)
        steps = torch.full((count,), t)
        noisy, target = noised_target(scheduler, latents, noise, steps)
        loss = {}
        with torch.no_grad():
            for name, context in contexts.items():
                chunks = [slice(i, i + 16) for i in range(0, count, 16)]
                pred = torch.cat([model(noisy[c], steps[c], context[c], image=images[c]) for c in chunks])
                loss[name] = ((pred - target) ** 2).mean().item()
        gap = (loss["opposite"] - loss["true"]) / loss["opposite"]
        rows.append({"timestep": t, "clips": count, **loss, "direction_gap": gap})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="DreamVideo or text-to-video folder")
    parser.add_argument("--cache", default=None, help="a latent cache (default: render held-out clips)")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--timesteps", default="950,800,600,400,200")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    is_t2v = args.model and read_model_index(args.model)["_class_name"] in T2V_PIPELINE_CLASSES
    pipe = load_t2v(args.model) if is_t2v else load_pipeline(args.model)
    timesteps = tuple(int(x) for x in args.timesteps.split(","))
    rows = direction_gaps(pipe, args.clips, timesteps, args.cache)
    print(f"{rows[0]['clips']} clips; loss with the true / opposite / no caption")
    print("    t    true  opposite    none  opposite-true")
    for r in rows:
        print(
            f"{r['timestep']:5d}  {r['true']:.4f}    {r['opposite']:.4f}  {r['none']:.4f}  "
            f"{100 * r['direction_gap']:+.2f}%"
        )


if __name__ == "__main__":
    main()
