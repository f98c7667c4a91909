"""Build a DreamVideo folder from a diffusers text-to-video folder (ModelScope T2V layout).

`text-to-video-ms-1.7b` is laid out as `model_index.json` + `unet/` (UNet3DConditionModel),
`vae/` (AutoencoderKL), `text_encoder/` (CLIP), `tokenizer/` and `scheduler/`. The parts are
checked from their configs before any weight is read, so a wrong folder fails in a second
with a message that names the problem; the converted model is then checked to predict exactly
what the base predicts (zero-initialised injections) before it is written.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .errors import UserError
from .io.files import read_json
from .loading import T2V_PIPELINE_CLASSES, read_model_index
from .sizes import unet_downscale

REQUIRED_PARTS = {
    "unet": ("config.json", "UNet3DConditionModel"),
    "vae": ("config.json", "AutoencoderKL"),
    "text_encoder": ("config.json", None),
    "tokenizer": (None, None),
    "scheduler": ("scheduler_config.json", None),
}


@dataclass
class ConversionReport:
    output: str
    base_unet_parameters: int
    branch_parameters: int
    trainable_parameters: int
    max_abs_difference: float | None  # DreamVideo vs base noise prediction; None: not verified
    reference_decoder_parameters: int | None = None  # None: no reference-aware decoder added
    decoder_max_abs_difference: float | None = None  # its decode vs the VAE's; None: not verified


def _read_json(path: Path) -> dict:
    data = read_json(path, "config file", max_bytes=2**20)
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a JSON object")
    return data


def check_t2v_folder(path: str | Path) -> dict[str, dict]:
    """Check a text-to-video folder's kind, parts and shapes from its configs alone."""
    path = Path(path)
    index = read_model_index(path)
    kind = index["_class_name"]
    if kind == "DreamVideoPipeline":
        raise UserError(f"{path} is already a DreamVideo model; convert takes a text-to-video folder")
    if kind not in T2V_PIPELINE_CLASSES:
        raise UserError(
            f"{path} holds a {kind}, not a text-to-video pipeline ({' or '.join(T2V_PIPELINE_CLASSES)})"
        )
    configs: dict[str, dict] = {}
    for part, (config_name, expected_class) in REQUIRED_PARTS.items():
        folder = path / part
        if part not in index or not folder.is_dir():
            raise UserError(f"text-to-video folder is incomplete: '{part}/' is missing in {path}")
        if config_name is None:
            continue
        config_file = folder / config_name
        if not config_file.is_file():
            raise UserError(f"text-to-video folder is incomplete: {part}/{config_name} is missing")
        config = _read_json(config_file)
        if expected_class and config.get("_class_name") != expected_class:
            raise UserError(
                f"{part}/ holds a {config.get('_class_name')}, expected a {expected_class} (is this a "
                "text-to-video folder?)"
            )
        configs[part] = config
    unet, vae, text = configs["unet"], configs["vae"], configs["text_encoder"]
    latent = vae.get("latent_channels", 4)
    if unet.get("in_channels") != latent or unet.get("out_channels") != latent:
        raise UserError(
            f"shape mismatch: the VAE has {latent} latent channels but the UNet takes "
            f"{unet.get('in_channels')} and predicts {unet.get('out_channels')}"
        )
    hidden = text.get("hidden_size", text.get("text_config", {}).get("hidden_size"))
    if hidden is not None and hidden != unet.get("cross_attention_dim"):
        raise UserError(
            f"shape mismatch: the text encoder gives {hidden}-d states but the UNet's cross-attention "
            f"expects {unet.get('cross_attention_dim')}"
        )
    return configs


@torch.no_grad()
def zero_init_difference(pipe, num_frames: int = 2, seed: int = 0) -> float:
    """Largest |DreamVideo − base| noise prediction on random latents, text and image (0 at init)."""
    generator = torch.Generator().manual_seed(seed)
    unet = pipe.unet
    device, dtype = unet.device, unet.dtype
    side = unet_downscale(unet.config)  # the smallest latent side the UNet takes
    size = side * pipe.vae_scale_factor
    latents = torch.randn(1, unet.config.in_channels, num_frames, side, side, generator=generator)
    text = torch.randn(1, 4, unet.config.cross_attention_dim, generator=generator)
    image = torch.rand(1, 3, size, size, generator=generator) * 2 - 1
    latents, text, image = (x.to(device, dtype) for x in (latents, text, image))
    t = torch.tensor([500], device=device)
    denoiser = pipe.denoiser
    base = denoiser(latents, t, text, image=image, conditioning_scale=0.0)  # the UNet alone
    ours = denoiser(latents, t, text, image=image)
    return (ours - base).abs().max().item()


@torch.no_grad()
def decoder_zero_init_difference(pipe, num_frames: int = 2, seed: int = 0) -> float:
    """Largest |difference| between the reference-aware decoder and the VAE on random latents."""
    vae, decoder = pipe.vae, pipe.reference_decoder
    generator = torch.Generator().manual_seed(seed)
    side = 4
    latents = torch.randn(num_frames, vae.config.latent_channels, side, side, generator=generator)
    image = torch.rand(1, 3, side * pipe.vae_scale_factor, side * pipe.vae_scale_factor, generator=generator)
    latents, image = latents.to(vae.device, vae.dtype), (image * 2 - 1).to(vae.device, vae.dtype)
    return (decoder(latents, image, num_frames) - vae.decode(latents).sample).abs().max().item()


# A converted model's reference-aware decoder: frame-0 residuals after every up block and
# cross-attention only at the two lowest-resolution levels (a 512-px SD VAE's higher levels would
# attend over 16k tokens a frame).
CONVERT_DECODER_OPTIONS = {"cross_attention_levels": (0, 1)}


def convert_t2v(
    t2v: str | Path,
    output: str | Path,
    image_embed_channels: int = 4,
    verify: bool = True,
    overwrite: bool = False,
    reference_decoder: bool = False,
    **pipeline_config,
) -> ConversionReport:
    """Write a DreamVideo folder built from the text-to-video folder `t2v` (see module doc).
    `reference_decoder` adds an untrained `ReferenceAwareDecoder` (decodes as the VAE until trained)."""
    from .models import ReferenceAwareDecoder, count_parameters, mark_trainable
    from .pipeline import DreamVideoPipeline

    t2v, output = Path(t2v), Path(output)
    if image_embed_channels < 1:
        raise UserError(f"image embed channels must be at least 1, got {image_embed_channels}")
    if output.resolve() == t2v.resolve():
        raise UserError("the output folder must differ from the text-to-video folder")
    replacing = output.exists() and not (output.is_dir() and not any(output.iterdir()))
    if replacing and not overwrite:
        raise UserError(f"output {output} exists and is not empty (pass --overwrite to replace it)")
    if replacing:
        _check_replaceable(output, t2v)
    if not output.parent.is_dir():
        raise UserError(f"output's parent folder does not exist: {output.parent}")
    check_t2v_folder(t2v)
    pipe = DreamVideoPipeline.from_t2v(t2v, image_embed_channels=image_embed_channels, **pipeline_config)
    difference = zero_init_difference(pipe) if verify else None
    if difference is not None and difference != 0.0:
        raise RuntimeError(f"converted model differs from the base by {difference:g} at initialisation")
    decoder_difference = None
    if reference_decoder:
        pipe.register_modules(
            reference_decoder=ReferenceAwareDecoder.from_vae(pipe.vae, **CONVERT_DECODER_OPTIONS)
        )
        decoder_difference = decoder_zero_init_difference(pipe) if verify else None
        # float32 sums in another order, not a different function: the additions are exactly zero
        if decoder_difference is not None and decoder_difference > 1e-4:
            raise RuntimeError(f"the reference-aware decoder differs from the VAE by {decoder_difference:g}")

    mark_trainable(pipe.unet, pipe.retention_branch)
    trainable = count_parameters(pipe.unet, trainable_only=True) + count_parameters(pipe.retention_branch)
    report = ConversionReport(
        output=str(output),
        base_unet_parameters=count_parameters(pipe.unet),
        branch_parameters=count_parameters(pipe.retention_branch),
        trainable_parameters=trainable,
        max_abs_difference=difference,
        reference_decoder_parameters=count_parameters(pipe.reference_decoder) if reference_decoder else None,
        decoder_max_abs_difference=decoder_difference,
    )
    # Written beside the output and renamed into place: a failure leaves no half-written model.
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        pipe.save_pretrained(partial)
        record = asdict(report) | {"source": str(t2v.resolve())}
        (partial / "conversion.json").write_text(json.dumps(record, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    # The old folder is moved aside, not deleted, until the new one is in place.
    aside = output.with_name(output.name + ".replaced")
    if output.exists():
        shutil.rmtree(aside, ignore_errors=True)
        output.rename(aside)
    try:
        partial.rename(output)
    except BaseException:
        if aside.exists():
            aside.rename(output)
        shutil.rmtree(partial, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)
    return report


def _check_replaceable(output: Path, t2v: Path) -> None:
    """`--overwrite` replaces a DreamVideo folder only: never another folder, never the source
    or a folder that holds it."""
    from .loading import read_model_index

    if t2v.resolve().is_relative_to(output.resolve()):
        raise UserError(f"--overwrite would delete the text-to-video source inside {output}")
    if not output.is_dir():
        raise UserError(f"output {output} is a file; --overwrite replaces model folders only")
    try:
        kind = read_model_index(output).get("_class_name")
    except UserError:
        kind = None
    if kind != "DreamVideoPipeline":
        raise UserError(f"output {output} is not a DreamVideo model folder; --overwrite replaces only those")
