"""Loading models from local folders only, with clear errors for folders of the wrong kind.

Weights load from safetensors only (no pickle). Nothing is downloaded. Torch-free until a
loader runs; `DreamVideoPipeline` folders load through `pipeline.load_pipeline`, which builds
on the checks here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UserError
from .io.files import read_json

# The embedded default model ships inside the package (trained by this project's own code).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "weights" / "dreamvideo-tiny"
T2V_PIPELINE_CLASSES = ("TextToVideoSDPipeline", "VideoToVideoSDPipeline")


def default_model_dir() -> Path:
    """The shipped model's folder; the DREAMVIDEO_MODEL environment variable overrides it."""
    return Path(os.environ.get("DREAMVIDEO_MODEL", DEFAULT_MODEL_DIR))


def read_model_index(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise UserError(f"model folder not found: {path}")
    if not path.is_dir():
        raise UserError(f"model path is not a folder: {path}")
    index = path / "model_index.json"
    if not index.exists():
        raise UserError(f"not a diffusers model folder (no model_index.json): {path}")
    try:
        data = read_json(index, "model index", max_bytes=2**20)
    except UserError as e:
        raise UserError(f"model folder is corrupt: {e}") from None
    if not isinstance(data, dict) or "_class_name" not in data:
        raise UserError(f"model folder is corrupt: {index} has no _class_name")
    return data


def check_model_defaults(path: Path, index: dict) -> None:
    """A DreamVideo folder's sampling defaults (its model_index.json) in the ranges a request may
    ask for: a default fps of 0 is refused when the folder is read, not after sampling."""
    from .limits import check_fps, check_sampling_values, check_strength

    defaults = {k: index[k] for k in MODEL_DEFAULTS if k in index}
    try:
        check_sampling_values(
            num_frames=defaults.get("default_num_frames"),
            num_inference_steps=defaults.get("default_num_inference_steps"),
            image_guidance_scale=defaults.get("default_image_guidance_scale"),
            text_guidance_scale=defaults.get("default_text_guidance_scale"),
        )
        check_fps(defaults.get("default_fps"))
        check_strength(defaults.get("default_strength"))
        pin = defaults.get("default_pin_first_frame", False)
        if not isinstance(pin, bool):
            raise UserError(f"pin_first_frame must be true or false, got {repr(pin)[:40]}")
    except UserError as error:
        raise UserError(f"model folder {path}: model_index.json's default {error}") from None


MODEL_DEFAULTS = (
    "default_num_frames",
    "default_fps",
    "default_image_guidance_scale",
    "default_text_guidance_scale",
    "default_num_inference_steps",
    "default_strength",
    "default_pin_first_frame",
)


# The libraries a model folder's components may come from: diffusers imports the module that
# model_index.json names for each component, so a folder naming another module would run its import.
COMPONENT_LIBRARIES = ("diffusers", "transformers", "dreamvideo")


def check_components(path: Path, index: dict) -> None:
    """Every component a model_index.json names is a class of diffusers, transformers or this
    package, and has its folder; no file in the folder is a pipe, socket or device."""
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec == [None, None]:
            continue
        library = spec[0] if len(spec) == 2 and all(isinstance(part, str) for part in spec) else None
        if library is None or library.split(".")[0] not in COMPONENT_LIBRARIES or ".." in library:
            shown = json.dumps(spec)[:60]
            raise UserError(
                f"model folder {path}: component '{name[:40]}' names {shown}, not a class of "
                f"{', '.join(COMPONENT_LIBRARIES)}"
            )
        if not (path / name).is_dir():
            raise UserError(f"model folder is incomplete: component folder '{name}/' is missing in {path}")
    for item in path.rglob("*"):  # a FIFO under a weights file's name would block the loader
        if not (item.is_file() or item.is_dir()):
            raise UserError(
                f"model folder {path} holds {item.relative_to(path)}, which is not a regular file "
                "(a pipe, socket, device or broken link)"
            )


def load_folder(cls, path: Path, what: str, **kwargs):
    """`cls.from_pretrained` on a local folder, safetensors only; any failure is a user-facing error."""
    try:
        return cls.from_pretrained(path, use_safetensors=True, local_files_only=True, **kwargs)
    except UserError:
        raise
    except Exception as e:  # every loader failure of a user's folder is a user-facing error
        detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot load {what} from {path}: {detail}") from e


def load_t2v(path: str | Path, **kwargs):
    """Load a diffusers text-to-video folder (TextToVideoSDPipeline layout, e.g. ModelScope T2V)."""
    from diffusers import TextToVideoSDPipeline

    path = Path(path)
    index = read_model_index(path)
    if index["_class_name"] not in T2V_PIPELINE_CLASSES:
        raise UserError(f"{path} holds a {index['_class_name']}, not a text-to-video pipeline")
    check_components(path, index)
    return load_folder(TextToVideoSDPipeline, path, "the text-to-video model", **kwargs)


def state_fingerprint(pipe, components, sample: int | None = None) -> str:
    """A short hash of the named components' weights (names, shapes and values in float32), adapter
    layers left out so that loaded LoRAs do not change it. `sample` hashes that many strided
    values of each tensor instead of all of them."""
    import hashlib

    digest = hashlib.sha256()
    for component in components:
        for name, tensor in getattr(pipe, component).state_dict().items():
            # BERT's pooler, which no pipeline reads (they take the last hidden state), is built at
            # random when a checkpoint lacks it: it would name the same folder differently each load.
            if "lora_" in name or (component == "text_encoder" and name.startswith("pooler.")):
                continue
            flat = tensor.detach().flatten()
            if sample:
                flat = flat[:: max(1, flat.numel() // sample)][:sample]
            digest.update(f"{component}.{name.replace('.base_layer', '')}:{tuple(tensor.shape)}".encode())
            digest.update(flat.float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def weights_fingerprint(pipe) -> str:
    """Every weight of a pipeline's models: the model a measurement was made on. Every record that
    eval and bench write carries it (`measured_on`)."""
    import torch

    modules = sorted(name for name, part in pipe.components.items() if isinstance(part, torch.nn.Module))
    return state_fingerprint(pipe, modules)


def measured_on(pipe) -> dict:
    """What a measurement record names as its model: folder, weights fingerprint, package version."""
    from . import __version__

    folder = getattr(pipe, "name_or_path", None)
    if folder and Path(folder).resolve() == DEFAULT_MODEL_DIR:
        folder = "the shipped default"
    return {
        "model": str(folder) if folder else None,
        "fingerprint": weights_fingerprint(pipe),
        "dreamvideo": __version__,
    }


# The latent spaces a DreamVideo folder's `vae/` may hold, by the `_class_name` of its config.
VAE_CLASSES = {
    "AutoencoderKL": ("diffusers", "AutoencoderKL"),
    "PatchAutoencoder": ("dreamvideo.models.patch_autoencoder", "PatchAutoencoder"),
}


def load_vae(path: str | Path, **kwargs):
    """A VAE folder (`config.json` + safetensors): diffusers' `AutoencoderKL` or this project's
    `PatchAutoencoder`, as its config names; any other class is refused, not imported."""
    import importlib

    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"not a VAE folder (no config.json): {path}")
    config = read_json(path / "config.json", "VAE config", max_bytes=2**20)
    name = config.get("_class_name") if isinstance(config, dict) else None
    if name not in VAE_CLASSES:
        raise UserError(f"{path} holds a {name or 'model of no class'}, not one of {', '.join(VAE_CLASSES)}")
    module, cls = VAE_CLASSES[name]
    return load_folder(getattr(importlib.import_module(module), cls), path, "a VAE", **kwargs)
