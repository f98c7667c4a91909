"""`dreamvideo bench`: where the time goes, against a naive sampler and diffusers' own, in one run.

Everything is measured in the same process on the same machine (docs/performance.md):
- the naive reference path (`benchmarks.naive.reference_sample`: one forward per condition per step,
  prompt and reference features recomputed every step, DDIM 50) against the default path
  (`pipe(image, prompt)` with the model's defaults), seconds per clip and the quality of both on
  the same held-out clips (first-frame SSIM, action accuracy);
- a peer: diffusers' `TextToVideoSDPipeline` on the same UNet, VAE, text encoder and scheduler
  against our `--mode text` and our no-branch path, seconds per denoising step;
- start-up: `dreamvideo --help`, a refused flag, and the README's command as a subprocess
  (wall time, peak resident memory) and in process split into its phases;
- FLOPs per clip (`torch.utils.flop_counter`) and achieved FLOP/s against this machine's measured
  fp32 matmul peak (MFU), for sampling and for a training step of each stage;
- scaling of a denoising step with frames and with side.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from ..data.clip import Clip

README_IMAGE = Path(__file__).resolve().parents[3] / "examples" / "cat.png"  # the repository root's
README_PROMPT = "the camera zooms in"
# The prompt sweep timed beside the README's command: one `generate` call, one video each.
SWEEP_PROMPTS = (README_PROMPT, "the camera pans left", "the camera pans right", "the camera zooms out",
                 "the camera pans up")  # fmt: skip


@dataclass
class BenchSettings:
    """What one `dreamvideo bench` run measures (`smoke()` is the seconds-long variant for tests)."""

    num_clips: int = 26
    naive_steps: int = 50
    peer_steps: int = 25
    frames: tuple[int, ...] = (8, 16, 32, 64)
    sides: tuple[int, ...] = (64, 128, 256)
    train_batch: int = 8
    repeats: int = 3
    default_steps: int | None = None  # None: the pipeline's own default, as `dreamvideo generate`
    startup: bool = True
    sweep_prompts: int = 5  # prompts in the one-call sweep (start-up paid once)
    image: Path = field(default_factory=lambda: README_IMAGE)
    prompt: str = README_PROMPT

    @classmethod
    def smoke(cls, **overrides) -> BenchSettings:
        values = dict(
            num_clips=2,
            naive_steps=3,
            peer_steps=2,
            frames=(4, 8),
            sides=(64,),
            train_batch=2,
            repeats=1,
            default_steps=2,
            sweep_prompts=2,
        )
        return cls(**{**values, **overrides})


def _timed(fn: Callable[[], object], repeats: int = 1) -> tuple[float, object]:
    """Median wall seconds of `repeats` calls after one untimed warm-up, and the last result."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call (matmuls and convolutions, as PyTorch counts them)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak_flops(size: int = 1024, seconds: float = 1.0) -> float:
    """This machine's fp32 matmul rate (FLOP/s) at the current thread count: the MFU denominator."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


# Runs the measured command from a small launcher process: a child forked from the benchmark
# itself would count the benchmark's own memory in its peak RSS.
_LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "exit_code": done.returncode, "stderr": done.stderr,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_command(args: list[str], env: dict[str, str] | None = None) -> dict:
    """Wall seconds, exit code and peak resident memory (MB) of a command (`env`: added variables)."""
    launcher = [sys.executable, "-c", _LAUNCHER, *args]
    environment = {**os.environ, **(env or {})}
    launched = subprocess.run(launcher, capture_output=True, text=True, check=True, env=environment)
    result = json.loads(launched.stdout)
    return {
        "seconds": round(result["seconds"], 3),
        "exit_code": result["exit_code"],
        "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),  # Linux reports KiB
        "stderr_tail": result["stderr"].strip().splitlines()[-1:] if result["exit_code"] else [],
    }


# ---------------------------------------------------------------------------------- start-up
def measure_startup(model: Path | None, settings: BenchSettings) -> dict:
    """`--help`, a refused flag, the import of the sampling code, and the README's command."""
    cli = [sys.executable, "-m", "dreamvideo"]
    model_args = ["--model", str(model)] if model else []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.mp4"

        def generate(prompts: Sequence[str], output: Path) -> list[str]:
            prompt_args = [a for prompt in prompts for a in ("--prompt", prompt)]
            steps = ["--steps", str(settings.default_steps)] if settings.default_steps else []
            return [*cli, "generate", str(settings.image), *prompt_args, "--output", str(output),
                    "--seed", "0", *model_args, *steps]  # fmt: skip

        readme = generate([settings.prompt], out)
        sweep = generate(SWEEP_PROMPTS[: settings.sweep_prompts], Path(tmp) / "sweep.mp4")
        results = {
            "help": run_command([*cli, "--help"]),
            "refused_flag": run_command([*cli, "generate", str(settings.image), "--mode", "sideways"]),
            # The floor of any command that samples: the interpreter and torch, nothing of ours.
            "import_torch": run_command([sys.executable, "-c", "import torch"]),
            "import_seconds": _import_seconds(),
            "readme_command": run_command(readme),
            "sweep_command": run_command(sweep),
        }
    results["sweep_command"]["prompts"] = settings.sweep_prompts
    results["sweep_vs_one_prompt"] = round(
        results["sweep_command"]["seconds"] / results["readme_command"]["seconds"], 3
    )
    # As a reader would type it: the image relative to here when it is below, the output "out.mp4".
    shown = [_relative(a) if a == str(settings.image) else "out.mp4" if a == str(out) else a for a in readme]
    results["readme_command"]["command"] = shlex.join(["dreamvideo", *shown[len(cli) :]])
    return results


def startup_overhead(startup: dict, phases: dict) -> dict:
    """What the README's command spends beyond `import torch` and the sampling itself (issue 30's
    target: at most 1.5 s): its wall time less a bare `import torch` and the in-process
    denoising and decoding."""
    sampling = phases["denoising"] + phases["decoding"]
    overhead = startup["readme_command"]["seconds"] - startup["import_torch"]["seconds"] - sampling
    return {
        "import_torch_seconds": startup["import_torch"]["seconds"],
        "denoising_and_decoding_seconds": round(sampling, 3),
        "overhead_seconds": round(overhead, 3),
    }


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def _import_seconds() -> float:
    code = "import time; t = time.perf_counter(); import dreamvideo.pipeline; print(time.perf_counter() - t)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return round(float(output.stdout.strip().splitlines()[-1]), 3)


def readme_phases(pipe_loader: Callable[[], object], settings: BenchSettings) -> dict:
    """The README's command in process, phase by phase (seconds)."""
    from ..io.images import load_image, tensor_to_images
    from ..io.video import write_video

    phases: dict[str, float] = {}
    start = time.perf_counter()
    pipe = pipe_loader()
    phases["model_load"] = time.perf_counter() - start
    pipe.set_progress_bar_config(disable=True)
    height, width = pipe.default_size

    start = time.perf_counter()
    pipe.encode_text([settings.prompt], [""])
    phases["text_encoding"] = time.perf_counter() - start
    start = time.perf_counter()
    reference = load_image(settings.image)
    prepared = pipe.prepare_image(reference, height, width)
    pipe.encode_reference(prepared)
    pipe.encode_reference(torch.zeros_like(prepared))
    phases["image_encoding"] = time.perf_counter() - start

    kwargs = {"num_inference_steps": settings.default_steps} if settings.default_steps else {}
    start = time.perf_counter()
    latents = pipe(
        reference, settings.prompt, generator=torch.Generator().manual_seed(0), output_type="latent", **kwargs
    ).frames
    # The call encodes text and image again: what is left is the denoising loop.
    phases["denoising"] = max(
        0.0, time.perf_counter() - start - phases["text_encoding"] - phases["image_encoding"]
    )
    start = time.perf_counter()
    frames = tensor_to_images(pipe.decode_latents(latents)[0].transpose(0, 1))  # (F, H, W, 3)
    phases["decoding"] = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_video(frames, Path(tmp) / "out.mp4", fps=pipe.config.default_fps)
        phases["writing"] = time.perf_counter() - start
    return {k: round(v, 3) for k, v in phases.items()}


# ---------------------------------------------------------------------------------- sampling
def _clip_quality(clips: list[Clip], videos: list[np.ndarray]) -> dict:
    from ..evaluation.motion import action_accuracy
    from ..io.images import frames_to_unit
    from ..metrics import ssim

    refs = frames_to_unit(np.stack([clip.frames[0] for clip in clips]))
    firsts = frames_to_unit(np.stack([v[0] for v in videos]))
    return {
        "first_frame_ssim": round(float(ssim(firsts, refs)), 4),
        "action_accuracy": action_accuracy(videos, [clip.spec.action for clip in clips])[0],
    }


def compare_naive_and_default(pipe, settings: BenchSettings) -> dict:
    """Seconds per clip and quality of the naive reference sampler and of the default path,
    on the same held-out clips and initial noise."""
    from diffusers import DDIMScheduler
    from PIL import Image

    from ..evaluation.synthetic import EVAL_SEED, heldout_clips
    from ..io.images import image_to_tensor, tensor_to_images
    from .naive import reference_sample

    num_frames = pipe.config.default_num_frames
    height, width = pipe.default_size
    clips = heldout_clips(settings.num_clips, height, num_frames)
    s_img, s_txt = pipe.config.default_image_guidance_scale, pipe.config.default_text_guidance_scale
    kwargs = {"num_inference_steps": settings.default_steps} if settings.default_steps else {}
    shape = (
        1,
        pipe.unet.config.in_channels,
        num_frames,
        height // pipe.vae_scale_factor,
        width // pipe.vae_scale_factor,
    )
    naive_videos, default_videos, naive_times, default_times = [], [], [], []
    for k, clip in enumerate(clips):
        noise = torch.randn(shape, generator=torch.Generator().manual_seed(EVAL_SEED + k))
        image = image_to_tensor(Image.fromarray(clip.frames[0]))

        start = time.perf_counter()
        latents = reference_sample(
            pipe, image, clip.caption, noise, settings.naive_steps, "image+text", s_img, s_txt, DDIMScheduler
        )
        naive_videos.append(tensor_to_images(pipe.decode_latents(latents)[0].transpose(0, 1)))
        naive_times.append(time.perf_counter() - start)

        start = time.perf_counter()
        out = pipe(image, clip.caption, latents=noise, output_type="pt", **kwargs).frames[0]
        default_times.append(time.perf_counter() - start)
        default_videos.append((out.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy())
    naive_seconds, seconds = float(np.mean(naive_times)), float(np.mean(default_times))
    return {
        "num_clips": len(clips),
        "naive": {
            "sampler": f"DDIM {settings.naive_steps} steps, one forward per condition, "
            "prompt and reference features recomputed every step",
            "seconds_per_clip": round(naive_seconds, 3),
            **_clip_quality(clips, naive_videos),
        },
        "default": {
            "sampler": f"{type(pipe.scheduler).__name__} "
            f"{settings.default_steps or pipe.default_num_inference_steps} steps, conditions batched",
            "seconds_per_clip": round(seconds, 3),
            **_clip_quality(clips, default_videos),
        },
        "speedup_vs_naive": round(naive_seconds / seconds, 2),
    }


def compare_with_diffusers(pipe, settings: BenchSettings) -> dict:
    """Seconds per denoising step: diffusers' `TextToVideoSDPipeline` (text CFG, two conditions
    batched) on our UNet, VAE, text encoder and scheduler, against our text-only paths."""
    from diffusers import TextToVideoSDPipeline

    peer = TextToVideoSDPipeline(
        vae=pipe.vae,
        text_encoder=pipe.text_encoder,
        tokenizer=pipe.tokenizer,
        unet=pipe.unet,
        scheduler=copy.deepcopy(pipe.scheduler),
    )
    peer.set_progress_bar_config(disable=True)
    height, width = pipe.default_size
    frames, steps = pipe.config.default_num_frames, settings.peer_steps
    scale = pipe.config.default_text_guidance_scale
    reference = torch.zeros(1, 3, height, width)

    def run_peer():
        generator = torch.Generator().manual_seed(0)
        peer(
            "a red ball moves to the left",
            num_frames=frames,
            height=height,
            width=width,
            num_inference_steps=steps,
            guidance_scale=scale,
            generator=generator,
            output_type="latent",
        )

    def run_ours(conditioning_scale: float):
        def call():
            pipe(
                reference,
                "a red ball moves to the left",
                num_frames=frames,
                num_inference_steps=steps,
                text_guidance_scale=scale,
                guidance_mode="text",
                conditioning_scale=conditioning_scale,
                generator=torch.Generator().manual_seed(0),
                output_type="latent",
            )

        return call

    peer_s, _ = _timed(run_peer, settings.repeats)
    text_s, _ = _timed(run_ours(1.0), settings.repeats)
    no_branch_s, _ = _timed(run_ours(0.0), settings.repeats)
    return {
        "steps": steps,
        "diffusers_seconds_per_step": round(peer_s / steps, 4),
        "ours_text_mode_seconds_per_step": round(text_s / steps, 4),
        "ours_no_branch_seconds_per_step": round(no_branch_s / steps, 4),
        "text_mode_vs_diffusers": round(text_s / peer_s, 3),
        "no_branch_vs_diffusers": round(no_branch_s / peer_s, 3),
    }


# ---------------------------------------------------------------------------------- FLOPs
def sampling_flops(pipe, settings: BenchSettings, seconds_per_clip: float, peak: float) -> dict:
    """FLOPs of one default clip (text and image encoding, denoising, decoding) and the MFU."""
    height, width = pipe.default_size
    reference = torch.zeros(1, 3, height, width)
    kwargs = {"num_inference_steps": settings.default_steps} if settings.default_steps else {}
    flops = count_flops(lambda: pipe(reference, "a red ball moves to the left", output_type="pt", **kwargs))
    achieved = flops / seconds_per_clip
    return {"flops_per_clip": flops, "achieved_flops_per_second": achieved, "mfu": round(achieved / peak, 4)}


def training_step_flops(pipe, stage: str, batch: int, repeats: int, peak: float) -> dict:
    """Forward + backward + AdamW on the stage's trainable set at the model's size (the cost
    of a `dreamvideo train` step without data loading): t2v trains the whole UNet; i2v the
    retention branch and the main UNet's temporal layers."""
    from ..models import DreamVideoDenoiser, mark_trainable

    unet, branch = copy.deepcopy(pipe.unet), copy.deepcopy(pipe.retention_branch)
    height, width = pipe.default_size
    f = pipe.vae_scale_factor
    x = torch.randn(batch, unet.config.in_channels, pipe.config.default_num_frames, height // f, width // f)
    t = torch.randint(0, 1000, (batch,), generator=torch.Generator().manual_seed(0))
    text = torch.randn(batch, 8, unet.config.cross_attention_dim)
    image = torch.randn(batch, 3, height, width)
    if stage == "t2v":
        unet.requires_grad_(True)
        params = list(unet.parameters())

        def loss():
            return unet(x, t, encoder_hidden_states=text).sample.square().mean()
    else:
        params = mark_trainable(unet, branch)
        denoiser = DreamVideoDenoiser(unet, branch)

        def loss():
            return denoiser(x, t, text, image=image).square().mean()

    optimizer = torch.optim.AdamW(params, lr=1e-5)

    def step():
        loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds, _ = _timed(step, repeats)
    flops = count_flops(lambda: loss().backward())
    optimizer.zero_grad(set_to_none=True)
    return {
        "batch": batch,
        "seconds_per_step": round(seconds, 4),
        "clips_per_second": round(batch / seconds, 3),
        "flops_per_step": flops,
        "mfu": round(flops / seconds / peak, 4),
    }


# ---------------------------------------------------------------------------------- scaling
def denoising_step_scaling(pipe, settings: BenchSettings) -> dict:
    """Seconds of one guided denoising step (three conditions batched) against frames and side."""
    from ..guidance import guidance_conditions

    denoiser = pipe.denoiser
    n = len(guidance_conditions("image+text"))
    default_h, _ = pipe.default_size
    f = pipe.vae_scale_factor
    m = pipe.spatial_multiple

    def step_seconds(frames: int, side: int) -> float:
        side = max(m, side // m * m)
        x = torch.randn(n, pipe.unet.config.in_channels, frames, side // f, side // f)
        text = torch.randn(n, 8, pipe.unet.config.cross_attention_dim)
        features = pipe.encode_reference(torch.zeros(n, 3, side, side))
        with torch.no_grad():
            seconds, _ = _timed(lambda: denoiser(x, 500, text, image_features=features), settings.repeats)
        return round(seconds, 4)

    by_frames = [
        {"frames": n_frames, "side": default_h, "seconds": step_seconds(n_frames, default_h)}
        for n_frames in settings.frames
    ]
    base = settings.frames[0]
    by_side = [
        {"frames": base, "side": side, "seconds": step_seconds(base, side)}
        for side in settings.sides
        if side != default_h
    ]
    by_side = sorted([r for r in by_frames if r["frames"] == base] + by_side, key=lambda r: r["side"])
    first = by_frames[0]
    for row in by_frames:  # time per frame relative to the shortest clip: 1.0 is linear in frames
        row["per_frame_vs_shortest"] = round(
            row["seconds"] / row["frames"] / (first["seconds"] / first["frames"]), 3
        )
    return {"by_frames": by_frames, "by_side": by_side}


def plot_scaling(scaling: dict, path: Path) -> Path:
    from ..evaluation.report import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    rows = scaling["by_frames"]
    axes[0].plot([r["frames"] for r in rows], [r["seconds"] for r in rows], "o-")
    axes[0].set(xlabel="frames", ylabel="seconds per denoising step", title=f"side {rows[0]['side']}")
    rows = scaling["by_side"]
    axes[1].plot([r["side"] for r in rows], [r["seconds"] for r in rows], "o-")
    axes[1].set(xlabel="side (pixels)", title=f"{rows[0]['frames']} frames")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------- the run
def run_benchmark(model: Path | None, out_dir: Path, settings: BenchSettings, log=print) -> dict:
    """Every measurement above; writes out_dir/bench.json, bench.md and scaling.png."""
    from ..loading import measured_on
    from ..pipeline import load_pipeline

    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
    }
    log("measuring this machine's fp32 matmul peak")
    peak = matmul_peak_flops()
    results["machine"]["fp32_matmul_peak_flops"] = peak
    if settings.startup:
        log("start-up: --help, a refused flag, the README's command")
        results["startup"] = measure_startup(model, settings)
    log("the README's command in process, by phase")
    results["readme_phases"] = readme_phases(lambda: load_pipeline(model), settings)
    if settings.startup:
        results["startup"]["overhead"] = startup_overhead(results["startup"], results["readme_phases"])
    pipe = load_pipeline(model)
    pipe.set_progress_bar_config(disable=True)
    results["measured_on"] = measured_on(pipe)
    log(f"naive reference vs default path on {settings.num_clips} held-out clips")
    results["naive_vs_default"] = compare_naive_and_default(pipe, settings)
    log("diffusers' TextToVideoSDPipeline vs ours")
    results["diffusers_peer"] = compare_with_diffusers(pipe, settings)
    log("FLOPs and MFU")
    seconds_per_clip = results["naive_vs_default"]["default"]["seconds_per_clip"]
    results["sampling"] = sampling_flops(pipe, settings, seconds_per_clip, peak)
    results["training"] = {
        stage: training_step_flops(pipe, stage, settings.train_batch, settings.repeats, peak)
        for stage in ("t2v", "i2v")
    }
    log("scaling with frames and side")
    results["scaling"] = denoising_step_scaling(pipe, settings)
    plot_scaling(results["scaling"], out_dir / "scaling.png")
    results["bench_peak_rss_mb"] = round(_self_peak_rss_mb(), 1)

    comparison = results["naive_vs_default"]
    results.update(  # the headline figures, flat
        naive_seconds_per_clip=comparison["naive"]["seconds_per_clip"],
        seconds_per_clip=comparison["default"]["seconds_per_clip"],
        speedup_vs_naive=comparison["speedup_vs_naive"],
        naive_quality={k: comparison["naive"][k] for k in ("first_frame_ssim", "action_accuracy")},
        quality={k: comparison["default"][k] for k in ("first_frame_ssim", "action_accuracy")},
        peak_rss_mb=results["startup"]["readme_command"]["peak_rss_mb"] if settings.startup else None,
        mfu=results["sampling"]["mfu"],
        startup_seconds=results["startup"]["readme_command"]["seconds"] if settings.startup else None,
    )
    (out_dir / "bench.md").write_text(summary_markdown(results))
    (out_dir / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def _self_peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _startup_markdown(s: dict) -> list[str]:
    """The start-up section of `summary_markdown`."""
    lines = [
        "## Start-up and the README's command",
        "",
        "| command | wall s | peak RSS MB |",
        "|---|---|---|",
        f"| `dreamvideo --help` | {s['help']['seconds']:.2f} | {s['help']['peak_rss_mb']:.0f} |",
        f"| refused flag (`--mode sideways`) | {s['refused_flag']['seconds']:.2f} | "
        f"{s['refused_flag']['peak_rss_mb']:.0f} |",
        f'| `python -c "import torch"` | {s["import_torch"]["seconds"]:.2f} | '
        f"{s['import_torch']['peak_rss_mb']:.0f} |",
        f"| `{s['readme_command']['command']}` | {s['readme_command']['seconds']:.2f} | "
        f"{s['readme_command']['peak_rss_mb']:.0f} |",
        f"| the same, {s['sweep_command']['prompts']} `--prompt`s in one call | "
        f"{s['sweep_command']['seconds']:.2f} | {s['sweep_command']['peak_rss_mb']:.0f} |",
        "",
        f"Import of the sampling code: {s['import_seconds']:.2f} s. The sweep takes "
        f"{s['sweep_vs_one_prompt']:.2f}× one prompt's time.",
        "",
    ]
    if "overhead" in s:
        o = s["overhead"]
        lines += [
            f"The README's command = `import torch` {o['import_torch_seconds']:.2f} s + denoising and "
            f"decoding {o['denoising_and_decoding_seconds']:.2f} s + **{o['overhead_seconds']:.2f} s** "
            "of everything else (imports of diffusers and transformers, model loading, the CLI).",
            "",
        ]
    return lines


def summary_markdown(r: dict) -> str:
    """The figures of one run as Markdown (what docs/performance.md shows)."""
    m, c = r["machine"], r["naive_vs_default"]
    lines = [
        "# dreamvideo bench",
        "",
        f"Machine: {m['cpu_count']} CPUs ({m['cpu']}), {m['torch_threads']} torch threads, "
        f"torch {m['torch']}, fp32 matmul peak {m['fp32_matmul_peak_flops'] / 1e9:.1f} GFLOP/s. "
        f"Model: {r['measured_on']['model']} (weights {r['measured_on']['fingerprint']}).",
        "",
        f"## Sampling: naive reference vs default ({c['num_clips']} held-out clips)",
        "",
        "| path | sampler | s / clip | first-frame SSIM | action accuracy |",
        "|---|---|---|---|---|",
    ]
    for name in ("naive", "default"):
        p = c[name]
        lines.append(
            f"| {name} | {p['sampler']} | {p['seconds_per_clip']:.2f} | {p['first_frame_ssim']:.3f} | "
            f"{p['action_accuracy']:.3f} |"
        )
    lines += ["", f"Speed-up of the default over the naive path: **{c['speedup_vs_naive']:.2f}×**.", ""]
    p = r["diffusers_peer"]
    lines += [
        f"## Against diffusers' TextToVideoSDPipeline (same modules, {p['steps']} steps, text CFG)",
        "",
        "| pipeline | s / denoising step | vs diffusers |",
        "|---|---|---|",
        f"| diffusers TextToVideoSDPipeline | {p['diffusers_seconds_per_step']:.4f} | 1.00 |",
        f"| ours, `--mode text` (branch on, null image) | {p['ours_text_mode_seconds_per_step']:.4f} | "
        f"{p['text_mode_vs_diffusers']:.2f} |",
        f"| ours, no branch | {p['ours_no_branch_seconds_per_step']:.4f} | "
        f"{p['no_branch_vs_diffusers']:.2f} |",
        "",
    ]
    if "startup" in r:
        lines += _startup_markdown(r["startup"])
    phases = r["readme_phases"]
    lines += [
        "In process, by phase (s): " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in phases.items()),
        "",
        "## FLOPs and MFU",
        "",
        "| work | GFLOP | s | MFU |",
        "|---|---|---|---|",
        f"| one default clip | {r['sampling']['flops_per_clip'] / 1e9:.1f} | "
        f"{c['default']['seconds_per_clip']:.2f} | {r['sampling']['mfu']:.1%} |",
    ]
    for stage, t in r["training"].items():
        lines.append(
            f"| {stage} training step (batch {t['batch']}, {t['clips_per_second']:.2f} clips/s) | "
            f"{t['flops_per_step'] / 1e9:.1f} | {t['seconds_per_step']:.2f} | {t['mfu']:.1%} |"
        )
    lines += ["", "## Scaling of one denoising step (three conditions batched)", ""]
    lines += ["| frames | side | s | per frame vs shortest |", "|---|---|---|---|"]
    for row in r["scaling"]["by_frames"]:
        lines.append(
            f"| {row['frames']} | {row['side']} | {row['seconds']:.4f} | {row['per_frame_vs_shortest']:.2f} |"
        )
    for row in r["scaling"]["by_side"]:
        lines.append(f"| {row['frames']} | {row['side']} | {row['seconds']:.4f} | |")
    lines += ["", "![scaling](scaling.png)", ""]
    return "\n".join(lines)
