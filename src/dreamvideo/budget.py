"""Peak memory of a generation, estimated from the model's config files before anything loads.

`dreamvideo generate` refuses a request whose estimate is over the budget (default: this
machine's physical memory; `--max-memory`) with one line naming the estimate and how to lower
it, instead of working for a minute and dying in an allocation. No torch import here.

The estimate (docs/limits.md; `scripts/memory_calibration.py` measures it against real peaks):
    peak = runtime + weights + max(denoising, decoding) + output frames
- runtime: the interpreter with torch, diffusers and transformers imported (measured);
- weights: the model folder's safetensors files (+ the packaged text encoder when the folder
  has none), at the requested precision;
- denoising: the UNet's and the branch's skip tensors of every level, kept for the up path,
  plus a block's working tensors at the first level, for all guidance conditions at once;
- decoding: the VAE decoder's full-resolution tensors for one chunk of frames (a reference-aware
  decoder's chunk is whole videos, plus its cross-attention scores);
- output: the finished frames as floats and bytes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .sizes import vae_scale_factor

RUNTIME_BYTES = 600 * 2**20  # `dreamvideo generate` at the smallest size, less the weights (measured)
PACKAGED_TEXT_ENCODER_BYTES = 91 * 2**20  # all-MiniLM-L6-v2 fp32, loaded from its package
WORKING_TENSORS = 14  # a first-level block's live tensors (norms, convs, attention q/k/v/out)
DECODER_TENSORS = 12  # the decoder's live full-resolution tensors per frame
OUTPUT_COPIES = 3  # float frames, their [0, 1] copy, uint8 video


@dataclass(frozen=True)
class ModelFacts:
    """What the estimate needs from a model folder's config files."""

    weight_bytes: int
    vae_factor: int
    vae_top_channels: int
    unet_widths: tuple[int, ...]
    layers_per_block: int
    attention_heads: int
    default_frames: int
    default_side: int
    # a reference-aware decoder's cross-attention: (token-count factor over the latent's, heads)
    decoder_attention: tuple[tuple[int, int], ...] = ()

    @classmethod
    def read(cls, folder: str | Path) -> ModelFacts:
        folder = Path(folder)
        unet = _read_json(folder / "unet" / "config.json")
        vae = _read_json(folder / "vae" / "config.json")
        weights = sum(f.stat().st_size for f in folder.rglob("*.safetensors"))
        if not any((folder / "text_encoder").glob("*.safetensors")):
            weights += PACKAGED_TEXT_ENCODER_BYTES
        index = _read_json(folder / "model_index.json")
        widths = tuple(vae["block_out_channels"])
        factor = vae_scale_factor(vae)
        sample_size = unet.get("sample_size") or 32
        decoder_attention = ()
        if isinstance(index.get("reference_decoder"), list) and index["reference_decoder"][0] is not None:
            decoder = _read_json(folder / "reference_decoder" / "config.json")
            top = len(decoder["block_out_channels"]) - 1  # the last up block does not upsample
            heads = int(decoder.get("attention_heads", 4))
            levels = decoder.get("cross_attention_levels", ())
            decoder_attention = tuple((4 ** min(level, top), heads) for level in levels)
        return cls(
            weight_bytes=weights,
            vae_factor=int(factor),
            vae_top_channels=int(widths[0]),
            unet_widths=tuple(unet["block_out_channels"]),
            layers_per_block=int(unet.get("layers_per_block", 1)),
            # UNet3DConditionModel reads `attention_head_dim` as the number of heads
            attention_heads=int(unet.get("num_attention_heads") or unet.get("attention_head_dim") or 8),
            default_frames=int(index.get("default_num_frames", 16)),
            default_side=int(sample_size if isinstance(sample_size, int) else sample_size[0]) * int(factor),
            decoder_attention=decoder_attention,
        )


def _read_json(path: Path):
    from .io.files import read_json

    return read_json(path, "model config", max_bytes=2**20)


def estimate_peak_bytes(
    facts: ModelFacts,
    num_frames: int,
    height: int,
    width: int,
    conditions: int = 3,
    batch: int = 1,
    num_segments: int = 1,
    dtype_bytes: int = 4,
    decode_chunk: int = 16,
) -> int:
    """Estimated peak resident memory of one generation (bytes); see the module docstring."""
    latent_pixels = (height // facts.vae_factor) * (width // facts.vae_factor)
    elements = conditions * batch * num_frames * latent_pixels  # per channel at the first level
    skips = sum(
        (facts.layers_per_block + 1) * channels * elements / 4**level
        for level, channels in enumerate(facts.unet_widths)
    )
    # Temporal attention's scores and softmax: every latent pixel attends over the frames.
    temporal_attention = 2 * conditions * batch * latent_pixels * facts.attention_heads * num_frames**2
    denoising = (
        2 * skips + WORKING_TENSORS * facts.unet_widths[0] * elements + temporal_attention
    ) * dtype_bytes
    chunk = min(decode_chunk, batch * num_frames)
    if facts.decoder_attention:  # a reference-aware decoder decodes whole videos at a time
        chunk = min(max(1, decode_chunk // num_frames), batch) * num_frames
    decoding = DECODER_TENSORS * chunk * height * width * facts.vae_top_channels * 4
    decoding += sum(
        chunk * heads * (latent_pixels * factor) ** 2 * 4 for factor, heads in facts.decoder_attention
    )
    total_frames = batch * (num_frames + (num_segments - 1) * (num_frames - 1))
    output = OUTPUT_COPIES * total_frames * height * width * 3 * 4
    weights = facts.weight_bytes * dtype_bytes // 4
    return int(RUNTIME_BYTES + weights + max(denoising, decoding) + output)


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def parse_size(text: str) -> int:
    """'8GB', '512MB', '1.5GiB', or bytes -> bytes (powers of 1024: what `free` shows)."""
    from .errors import UserError

    units = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20}
    units |= {"g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}
    value = text.strip().lower()
    number = value.rstrip("kmgtib")
    try:
        size = float(number) * units[value[len(number) :]]
    except (ValueError, KeyError):
        raise UserError(f"--max-memory must be a size such as 8GB or 512MB, got {text!r}") from None
    if not size > 0 or size == float("inf"):
        raise UserError(f"--max-memory must be above 0, got {text!r}")
    return int(size)


def check_budget(estimate: int, budget: int) -> None:
    """One line that says the estimate, the budget and how to get under it."""
    from .errors import UserError

    if estimate > budget:
        raise UserError(
            f"this request needs about {estimate / 2**30:.1f} GiB, over the {budget / 2**30:.1f} GiB budget: "
            "lower --frames, --height/--width or --segments, or raise --max-memory"
        )
