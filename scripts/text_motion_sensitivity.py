"""Does a DreamVideo model use the prompt's *direction*? The training loss (v or ε MSE) on
latent-cache clips of opposite-pair actions (left/right, up/down, cw/ccw, grow/shrink, pans,
zooms), with their true caption, with the opposite action's caption and with no caption, at
fixed noise levels. If the opposite caption costs no more than the true one, the model has not
learnt which way to move — whatever the guidance scale at sampling.

    python scripts/text_motion_sensitivity.py [--model DIR] [--cache runs/tiny/latents_refine.safetensors]
"""

from __future__ import annotations

import argparse

import torch
from diffusers import DDPMScheduler

from dreamvideo.data.latent_cache import LatentCache
from dreamvideo.data.synthetic import ACTIONS, OPPOSITES
from dreamvideo.loading import load_pipeline
from dreamvideo.models import DreamVideoDenoiser
from dreamvideo.text import encode_prompts
from dreamvideo.training.stages import noised_target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache", default="runs/tiny/latents_refine.safetensors")
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--timesteps", default="950,800,600,400,200")
    args = parser.parse_args()
    torch.set_num_threads(2)
    pipe = load_pipeline(args.model)
    model = DreamVideoDenoiser(pipe.unet, pipe.retention_branch).eval()
    cache = LatentCache(args.cache)
    opposite = dict(OPPOSITES) | {b: a for a, b in OPPOSITES}
    picked = [k for k, m in enumerate(cache.meta) if m.get("action") in opposite][: args.clips]
    latents = torch.stack([cache.latents[k].float() for k in picked]) * pipe.vae.config.scaling_factor
    images = torch.stack([cache.first_frames[k].permute(2, 0, 1).float() / 127.5 - 1 for k in picked])

    def caption(k: int, action: str) -> str:
        return ACTIONS[action][1][0].format(obj=cache.meta[k]["object"])

    captions = {
        "true": [caption(k, cache.meta[k]["action"]) for k in picked],
        "opposite": [caption(k, opposite[cache.meta[k]["action"]]) for k in picked],
        "none": [""] * len(picked),
    }
    contexts = {name: encode_prompts(pipe.tokenizer, pipe.text_encoder, c) for name, c in captions.items()}
    scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    generator = torch.Generator().manual_seed(0)
    print(f"{len(picked)} clips; loss with the true / opposite / no caption")
    print("    t    true  opposite    none  opposite-true")
    for t in (int(x) for x in args.timesteps.split(",")):
        noise = torch.randn(latents.shape, generator=generator)
        steps = torch.full((len(picked),), t)
        noisy, target = noised_target(scheduler, latents, noise, steps)
        loss = {}
        with torch.no_grad():
            for name, context in contexts.items():
                chunks = [slice(i, i + 16) for i in range(0, len(picked), 16)]
                pred = torch.cat([model(noisy[c], steps[c], context[c], image=images[c]) for c in chunks])
                loss[name] = ((pred - target) ** 2).mean().item()
        gap = (loss["opposite"] - loss["true"]) / loss["opposite"]
        print(f"{t:5d}  {loss['true']:.4f}    {loss['opposite']:.4f}  {loss['none']:.4f}  {100 * gap:+.2f}%")


if __name__ == "__main__":
    main()
