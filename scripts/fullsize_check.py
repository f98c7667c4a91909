"""Full-width check on CPU, no downloads: ModelScope T2V's UNet config (widths 320/640/1280/1280,
cross-attention 1024, head dim 64) with random weights, DreamVideo built from it.

Reports parameter counts (base, branch, trainable), one denoising step at a small size (the
three guidance conditions batched, as the pipeline runs them), the zero-init property at full
width, activation bytes measured at 256x256 for 1 and 2 frames (extrapolated to 16: linear in
frames), and the per-GPU training memory table of docs/full-size.md, with the rows for a LoRA
adapter (`--lora-rank`, on the branch and the temporal layers: dreamvideo.lora) measured the same
way on the model with the adapter in place.

    python scripts/fullsize_check.py --out docs/full-size/fullsize_check.json
    (minutes on 2 CPU cores; about 20 GB of RAM at full width)
    python scripts/fullsize_check.py --lora-from docs/full-size/fullsize_check.json \\
        --out docs/full-size/lora_estimate.json   (the LoRA rows alone, from that run: seconds)
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from dreamvideo.models import count_parameters, is_temporal_parameter
from dreamvideo.models.modelscope import TEXT_CONFIG, VAE_CONFIG, build_denoiser
from dreamvideo.training.memory import GiB, parameter_pointers, saved_activation_bytes, training_memory


def parameter_counts(denoiser, width_divisor: int) -> dict[str, int]:
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    unet, branch = denoiser.unet, denoiser.branch
    temporal = sum(p.numel() for n, p in unet.named_parameters() if is_temporal_parameter(n))
    counts = {
        "base_unet": count_parameters(unet),
        "base_unet_temporal": temporal,
        "branch": count_parameters(branch),
        "trainable": count_parameters(unet, trainable_only=True)
        + count_parameters(branch, trainable_only=True),
    }
    if width_divisor == 1:  # the frozen parts that also sit in GPU memory during training
        with torch.device("meta"):
            counts["vae"] = count_parameters(AutoencoderKL.from_config(VAE_CONFIG))
            counts["text_encoder"] = count_parameters(CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)))
    return counts


def inputs(denoiser, batch: int, frames: int, latent: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    config = denoiser.unet.config
    latents = torch.randn(batch, config.in_channels, frames, latent, latent, generator=generator)
    text = torch.randn(batch, 77, config.cross_attention_dim, generator=generator)
    image = torch.rand(batch, 3, latent * 8, latent * 8, generator=generator) * 2 - 1
    return latents, torch.full((batch,), 500), text, image


@torch.no_grad()
def denoising_step(denoiser, frames: int, latent: int) -> dict[str, float]:
    latents, t, text, image = inputs(denoiser, 3, frames, latent)  # 3 = the guidance conditions
    start = time.perf_counter()
    base = denoiser.unet(latents, t, encoder_hidden_states=text).sample
    base_s = time.perf_counter() - start
    start = time.perf_counter()
    ours = denoiser(latents, t, text, image=image)
    ours_s = time.perf_counter() - start
    return {
        "frames": frames,
        "height": latent * 8,
        "width": latent * 8,
        "batch": 3,
        "base_unet_seconds": round(base_s, 2),
        "dreamvideo_seconds": round(ours_s, 2),
        "max_abs_difference_from_base": float((ours - base).abs().max()),
    }


def activation_bytes(denoiser, frames: int, latent: int, checkpointing: bool) -> int:
    from dreamvideo.models import checkpoint_unet_blocks

    denoiser.branch.gradient_checkpointing = checkpointing
    if checkpointing:
        checkpoint_unet_blocks(denoiser.unet)
    latents, t, text, image = inputs(denoiser, 1, frames, latent)
    with torch.enable_grad():
        return saved_activation_bytes(
            lambda: denoiser(latents, t, text, image=image), parameter_pointers(denoiser)
        )


def memory_rows(settings, total: int, trainable: int, measured: dict, args) -> list[dict]:
    rows = []
    for label, size, gpus, zero, checkpointing in settings:
        fp32 = measured[checkpointing][f"fp32_bytes_{args.train_frames}_frames_extrapolated"]
        # bf16 autocast keeps most saved activations in half precision; pixels scale linearly.
        activations = 0.5 * fp32 * (size / args.train_size) ** 2
        memory = training_memory(total, trainable, activations, gpus=gpus, zero_stage=zero)
        rows.append(
            {
                "setting": label,
                "size": size,
                "frames": args.train_frames,
                "batch_per_gpu": 1,
                "weights_gib": memory.weights / GiB,
                "grads_optimizer_ema_gib": (memory.gradients + memory.optimizer + memory.ema) / GiB,
                "activations_gib": memory.activations / GiB,
                "total_gib": memory.total / GiB,
            }
        )
    return rows


def measured_activations(denoiser, latent: int, args) -> dict:
    """Saved activation bytes at 1 and 2 frames, without and with checkpointing, extrapolated."""
    measured = {}
    for checkpointing in (False, True):
        per_frames = {f: activation_bytes(denoiser, f, latent, checkpointing) for f in (1, 2)}
        slope = per_frames[2] - per_frames[1]
        extrapolated = per_frames[1] + slope * (args.train_frames - 1)
        measured[checkpointing] = {
            "fp32_bytes_1_frame": per_frames[1],
            "fp32_bytes_2_frames": per_frames[2],
            f"fp32_bytes_{args.train_frames}_frames_extrapolated": extrapolated,
        }
        print(f"activations, checkpointing={checkpointing}: {measured[checkpointing]}")
    return measured


def lora_activations(denoiser, latent: int, args) -> tuple[int, dict]:
    """Trainable parameters and activations with a LoRA adapter on the branch and temporal layers
    (the base frozen: autograd still keeps what the backward pass to the adapters needs)."""
    from types import SimpleNamespace

    from dreamvideo.lora import LoraSettings, add_adapter

    unet = denoiser.unet  # undo the full rows' block checkpointing, so the first LoRA row runs without
    for block in [*unet.down_blocks, unet.mid_block, *unet.up_blocks]:
        if getattr(block, "_dreamvideo_checkpointed", False):
            del block.forward, block._dreamvideo_checkpointed  # the class's own forward again
    components = SimpleNamespace(unet=unet, retention_branch=denoiser.branch)
    params = add_adapter(components, LoraSettings(rank=args.lora_rank))
    return sum(p.numel() for p in params), measured_activations(denoiser, latent, args)


def lora_estimate(args) -> None:
    """The LoRA rows without measuring again: a frozen base still saves what the backward pass to
    the adapters needs, so the earlier run's activations stand in for the LoRA run's (the
    adapters' own low-rank intermediates are not counted)."""
    from types import SimpleNamespace

    from dreamvideo.lora import LoraSettings, add_adapter

    earlier = json.loads(args.lora_from.read_text())
    measured = {
        key == "True": value for key, value in earlier["activations"].items() if key in ("True", "False")
    }
    with torch.device("meta"):
        denoiser = build_denoiser(args.width_divisor)
    components = SimpleNamespace(unet=denoiser.unet, retention_branch=denoiser.branch)
    trainable = sum(p.numel() for p in add_adapter(components, LoraSettings(rank=args.lora_rank)))
    counts = earlier["parameters"]
    total = sum(v for k, v in counts.items() if k in ("base_unet", "branch", "vae", "text_encoder"))
    settings = [
        (f"LoRA rank {args.lora_rank}, 1 GPU, no checkpointing", 256, 1, 0, False),
        (f"LoRA rank {args.lora_rank}, 1 GPU, gradient checkpointing", 256, 1, 0, True),
        (f"LoRA rank {args.lora_rank}, 1 GPU, checkpointing, 512x512", 512, 1, 0, True),
    ]
    rows = memory_rows(settings, total, trainable, measured, args)
    print(f"LoRA rank {args.lora_rank} (branch + temporal): {trainable / 1e6:.2f} M trainable")
    for r in rows:
        print(f"| {r['setting']} | {r['weights_gib']:.1f} GiB | {r['grads_optimizer_ema_gib']:.2f} GiB | "
              f"{r['activations_gib']:.1f} GiB | **{r['total_gib']:.1f} GiB** |")  # fmt: skip
    result = {
        "lora_rank": args.lora_rank,
        "lora_trainable": trainable,
        "from": str(args.lora_from),
        "memory_per_gpu": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--width-divisor", type=int, default=1, help="1: the real widths (8: a quick dry run)"
    )
    parser.add_argument("--step-frames", type=int, default=2)
    parser.add_argument("--step-size", type=int, default=128, help="pixels, for the denoising step")
    parser.add_argument("--train-size", type=int, default=256, help="pixels, for the activation count")
    parser.add_argument("--train-frames", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--lora-rank", type=int, default=8, help="the LoRA rows' rank (0: no LoRA rows)")
    parser.add_argument(
        "--lora-from",
        type=Path,
        default=None,
        help="only the LoRA rows, from this earlier run's JSON: the model built on the meta device "
        "(parameter counts, seconds, no RAM) and its activations taken as the LoRA run's",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.lora_from:
        return lora_estimate(args)
    start = time.perf_counter()
    torch.manual_seed(0)
    denoiser = build_denoiser(args.width_divisor).eval()
    build_s = time.perf_counter() - start
    counts = parameter_counts(denoiser, args.width_divisor)
    print(f"built in {build_s:.0f} s: " + ", ".join(f"{k} {v / 1e6:.1f} M" for k, v in counts.items()))
    step = denoising_step(denoiser, args.step_frames, args.step_size // 8)
    print(f"one denoising step: {step}")

    latent = args.train_size // 8
    measured = measured_activations(denoiser, latent, args)

    total = sum(v for k, v in counts.items() if k in ("base_unet", "branch", "vae", "text_encoder"))
    settings = [
        ("1 GPU or DDP, no checkpointing", 256, 1, 0, False),
        ("1 GPU or DDP, gradient checkpointing", 256, 1, 0, True),
        ("8 GPUs, DeepSpeed ZeRO-2, checkpointing", 256, 8, 2, True),
        ("1 GPU or DDP, checkpointing, 512x512", 512, 1, 0, True),
    ]
    rows = memory_rows(settings, total, counts["trainable"], measured, args)
    if args.lora_rank:
        counts["lora_trainable"], lora_measured = lora_activations(denoiser, latent, args)
        lora_settings = [
            (f"LoRA rank {args.lora_rank}, 1 GPU, no checkpointing", 256, 1, 0, False),
            (f"LoRA rank {args.lora_rank}, 1 GPU, gradient checkpointing", 256, 1, 0, True),
            (f"LoRA rank {args.lora_rank}, 1 GPU, checkpointing, 512x512", 512, 1, 0, True),
        ]
        rows += memory_rows(lora_settings, total, counts["lora_trainable"], lora_measured, args)
        measured |= {f"lora_{k}": v for k, v in lora_measured.items()}
        print(f"LoRA rank {args.lora_rank}: {counts['lora_trainable'] / 1e6:.2f} M trainable parameters")
    print("\n| setting | weights | grads + AdamW + EMA | activations (bf16) | total per GPU |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['weights_gib']:.1f} GiB | {r['grads_optimizer_ema_gib']:.1f} GiB | "
            f"{r['activations_gib']:.1f} GiB | **{r['total_gib']:.1f} GiB** |"
        )
    result = {
        "width_divisor": args.width_divisor,
        "parameters": counts,
        "build_seconds": round(build_s, 1),
        "denoising_step": step,
        "activations": {str(k): v for k, v in measured.items()},
        "memory_per_gpu": rows,
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
