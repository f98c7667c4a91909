"""`dreamvideo generate` (with its LoRA options)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import click

from ..errors import UserError
from ..limits import MODES
from .app import (
    DTYPES,
    SCHEDULERS,
    cli,
    debug_option,
    lora_options,
    model_option,
    set_scheduler,
)


@cli.command()
@click.argument("image", type=click.Path(path_type=Path), required=False)
@click.option(
    "--prompt",
    "-p",
    multiple=True,
    help="The action to perform (empty: image guidance only). Repeat it for several videos "
    "in one run: out-1.mp4, out-2.mp4, ...",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    help="out.mp4, out.gif, or a folder for PNG frames.",
)
@click.option(
    "--jobs",
    "jobs_file",
    type=click.Path(path_type=Path),
    default=None,
    help="A CSV or JSON Lines file of jobs (columns image, prompt, output, seed, negative_prompt): "
    "one video a row, the model loaded once.",
)
@click.option("--negative-prompt", default="", help="Text to steer away from (replaces the null text).")
@model_option
@click.option("--frames", type=int, default=None, help="Frames per segment (default: the model's).")
@click.option("--height", type=int, default=None, help="Video height in pixels (default: the model's).")
@click.option("--width", type=int, default=None, help="Video width in pixels (default: the model's).")
@click.option(
    "--steps", type=int, default=None, help="Denoising steps (default: the model's; 10 for the shipped one)."
)
@click.option(
    "--image-scale", type=float, default=None, help="Image guidance scale s_img (default: the model's)."
)
@click.option(
    "--text-scale", type=float, default=None, help="Text guidance scale s_txt (default: the model's)."
)
@click.option(
    "--mode", type=click.Choice(MODES), default="image+text", show_default=True, help="Guidance mode."
)
@click.option(
    "--strength",
    type=float,
    default=None,
    help="Where sampling starts, as a share of the steps: 1 from pure noise, below 1 later, from the "
    "image noised (default: the model's).",
)
@click.option(
    "--pin-first-frame/--no-pin-first-frame",
    default=None,
    help="Keep the first frame on the image's own latents at every step, so it is the image as "
    "the VAE encodes it (default: the model's).",
)
@click.option(
    "--scheduler",
    type=click.Choice(sorted(SCHEDULERS)),
    default=None,
    help="Sampler (default: the model's, DDIM).",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: random, printed).")
@click.option("--fps", type=int, default=None, help="Frames per second of the file (default: the model's).")
@click.option(
    "--segments",
    type=int,
    default=1,
    show_default=True,
    help="Chain segments for a longer video, each from the previous last frame.",
)
@click.option(
    "--resize",
    type=click.Choice(["crop", "pad"]),
    default="crop",
    show_default=True,
    help="Fit the image by centre crop or by padding.",
)
@click.option("--device", default=None, help="torch device (default: cuda if available, else cpu).")
@click.option(
    "--dtype",
    type=click.Choice(list(DTYPES)),
    default="fp32",
    show_default=True,
    help="Precision: fp16/bf16 halve GPU memory; fp16 needs a GPU; on CPU fp32 is fastest.",
)
@click.option(
    "--max-memory",
    default=None,
    help="Refuse requests estimated to need more memory than this, e.g. 8GB (default: the machine's RAM).",
)
@click.option("--attention-slicing", is_flag=True, help="Compute attention in slices (less memory).")
@click.option("--vae-slicing", is_flag=True, help="Decode one frame at a time (less memory).")
@click.option("--cpu-offload", is_flag=True, help="Keep models on CPU until used (GPU memory; needs CUDA).")
@lora_options
@debug_option
def generate(
    image: Path | None,
    prompt: tuple[str, ...],
    output: Path | None,
    jobs_file: Path | None,
    negative_prompt: str,
    model: Path | None,
    frames: int | None,
    height: int | None,
    width: int | None,
    steps: int | None,
    image_scale: float | None,
    text_scale: float | None,
    mode: str,
    strength: float | None,
    pin_first_frame: bool | None,
    scheduler: str | None,
    seed: int | None,
    fps: int | None,
    segments: int,
    resize: str,
    device: str | None,
    dtype: str,
    max_memory: str | None,
    attention_slicing: bool,
    vae_slicing: bool,
    cpu_offload: bool,
    loras: tuple[Path, ...],
    lora_scales: tuple[float, ...],
    debug: bool,
) -> None:
    """Generate a video from IMAGE following --prompt (or one video a row of --jobs FILE)."""
    from ..jobs import file_jobs, labelled, prompt_jobs
    from ..limits import check_fps, check_sampling_values, check_seed, check_strength

    # Cheap checks first, so a mistake costs no library import and no model loading.
    check_sampling_values(frames, steps, image_scale, text_scale, segments, height, width)
    check_fps(fps)
    check_seed(seed)
    check_strength(strength)
    if jobs_file is not None:
        if image is not None or prompt:
            raise UserError("--jobs FILE takes images and prompts from the file: give no IMAGE or --prompt")
    elif image is None or output is None:
        raise UserError("give IMAGE and --output (or --jobs FILE)")
    _check_memory_budget(model, frames, height, width, segments, mode, dtype, vae_slicing, max_memory)
    adapter_weights = _check_lora_flags(loras, lora_scales)
    # Every job checked (images read, outputs writable, distinct, none an input) before a model loads.
    from ..loading import default_model_dir

    inputs = [model or default_model_dir(), *loras]
    if jobs_file is not None:
        jobs = file_jobs(jobs_file, output, negative_prompt, inputs)
    else:
        jobs = prompt_jobs(image, list(prompt), output, negative_prompt, inputs)
    import torch

    from ..io.images import unit_to_uint8
    from ..io.video import write_video
    from ..pipeline import load_pipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = torch.device(device).type == "cuda"
    if dtype == "fp16" and not on_gpu:
        raise UserError("--dtype fp16 needs a CUDA device; use bf16 (or fp32) on CPU")
    if cpu_offload and not on_gpu:
        raise UserError("--cpu-offload moves models to a GPU when used: it needs a CUDA device")
    pipe = load_pipeline(model, dtype=getattr(torch, DTYPES[dtype]) if DTYPES[dtype] else None)
    if loras:
        _load_adapters(pipe, loras, adapter_weights)
    if cpu_offload:
        pipe.enable_model_cpu_offload(device=device)
    else:
        pipe.to(device)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_slicing:
        pipe.enable_vae_slicing()
    if scheduler:
        set_scheduler(pipe, scheduler)
    shared_seed = random.randrange(2**31) if seed is None else seed  # one draw: a sweep shares noise
    for job in jobs:
        job_seed = shared_seed if job.seed is None else job.seed
        start = time.perf_counter()
        try:
            result = pipe(
                job.image,
                prompt=job.prompt,
                negative_prompt=job.negative_prompt,
                num_frames=frames,
                height=height,
                width=width,
                num_inference_steps=steps,
                image_guidance_scale=image_scale,
                text_guidance_scale=text_scale,
                guidance_mode=mode,
                strength=strength,
                pin_first_frame=pin_first_frame,
                num_segments=segments,
                generator=torch.Generator("cpu").manual_seed(job_seed),
                resize_mode=resize,
                output_type="np",
            )
        except UserError as error:
            raise labelled(job.label, error) from None
        video = unit_to_uint8(result.frames[0])
        write_video(video, job.output, fps=fps or pipe.config.default_fps)
        elapsed = time.perf_counter() - start
        click.echo(
            f"wrote {job.output} ({video.shape[0]} frames, {video.shape[2]}x{video.shape[1]}, "
            f"seed {job_seed}, {elapsed:.1f} s)"
        )


def _check_memory_budget(
    model, frames, height, width, segments, mode, dtype, vae_slicing, max_memory
) -> None:
    """Refuse, before any model loads, a request estimated over the memory budget."""
    from ..budget import ModelFacts, check_budget, estimate_peak_bytes, parse_size, physical_memory_bytes
    from ..loading import default_model_dir

    budget = parse_size(max_memory) if max_memory is not None else physical_memory_bytes()
    try:
        facts = ModelFacts.read(model or default_model_dir())
    except (OSError, ValueError, KeyError, TypeError, IndexError, UserError):
        return  # not a readable model folder: loading says what is wrong with it
    estimate = estimate_peak_bytes(
        facts,
        frames or facts.default_frames,
        height or facts.default_side,
        width or facts.default_side,
        conditions=3 if mode == "image+text" else 2,
        num_segments=segments,
        dtype_bytes=4 if dtype == "fp32" else 2,
        decode_chunk=1 if vae_slicing else 16,
    )
    check_budget(estimate, budget)


def _check_lora_flags(loras: tuple[Path, ...], scales: tuple[float, ...]) -> list[float]:
    """Before any model loads: peft installed, each adapter readable, scales in range and one
    for all or one per adapter. Returns each adapter's weight."""
    from ..lora import check_lora_scale, read_adapter, require_peft

    if scales and not loras:
        raise UserError("--lora-scale needs --lora")
    if len(scales) not in (0, 1, len(loras)):
        raise UserError(
            f"give one --lora-scale for all adapters or one per --lora ({len(loras)}), got {len(scales)}"
        )
    weights = [check_lora_scale(s) for s in scales] or [1.0]
    if loras:
        require_peft()
        for path in loras:
            read_adapter(path)
    return weights * len(loras) if len(weights) == 1 else weights


def _load_adapters(pipe, loras: tuple[Path, ...], weights: list[float]) -> None:
    """Load, weight and fuse the adapters: fused, sampling costs what it costs without them."""
    names = [pipe.load_lora_weights(path, adapter_name=f"lora{i}") for i, path in enumerate(loras)]
    pipe.set_adapters(names, weights)
    pipe.fuse_lora()
