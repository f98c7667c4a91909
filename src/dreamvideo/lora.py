"""LoRA adapters for DreamVideo: trained with peft, saved and loaded the way diffusers does.

An adapter is low-rank updates (Hu et al. 2021) on some of the denoiser's linear layers:
the retention branch, the main UNet's temporal layers and/or its spatial attention. Its file is
`pytorch_lora_weights.safetensors` (diffusers' `LORA_WEIGHT_NAME_SAFE`) with peft's keys
prefixed by the component (`unet.`, `retention_branch.`), each component's `LoraConfig` in the
`lora_adapter_metadata` entry as diffusers' `save_lora_weights` writes it, and our own
`dreamvideo_lora` entry: the base model's fingerprint, the settings and how it was trained.

`DreamVideoLoraLoaderMixin` gives the pipeline diffusers' names: `load_lora_weights`,
`set_adapters`, `fuse_lora` / `unfuse_lora`, `unload_lora_weights`, `delete_adapters`,
`get_active_adapters`, `get_list_adapters`. The UNet stays a plain `UNet3DConditionModel`
(which has no `PeftAdapterMixin`), so the layer work is peft's and diffusers' `peft_utils`
helpers, applied to each component.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import UserError
from .limits import MAX_LORA_SCALE, is_finite_number
from .loading import state_fingerprint

LORA_WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
ADAPTER_METADATA_KEY = "lora_adapter_metadata"  # diffusers' LORA_ADAPTER_METADATA_KEY
DREAMVIDEO_METADATA_KEY = "dreamvideo_lora"
COMPONENTS = ("unet", "retention_branch")
INSTALL_HINT = 'LoRA needs peft: pip install -e ".[lora]" (or pip install peft)'

_PROJECTIONS = r"(to_q|to_k|to_v|to_out\.0)"
# name -> (component, regex of the linear layers it adapts; peft matches whole module names)
MODULE_GROUPS: dict[str, tuple[str, str]] = {
    # every attention projection of DreamVideo's own module
    "branch": ("retention_branch", rf".*\.{_PROJECTIONS}"),
    # the main UNet's temporal attention (what DreamVideo trains beside the branch)
    "temporal": ("unet", rf"(transformer_in|.*\.temp_attentions\.\d+)\..*\.{_PROJECTIONS}"),
    # the main UNet's spatial self- and cross-attention (frozen in DreamVideo's recipe)
    "spatial": ("unet", rf".*\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.{_PROJECTIONS}"),
}


@dataclass
class LoraSettings:
    """The `[lora]` table of an i2v training config (docs/training.md)."""

    rank: int = 8
    alpha: float | None = None  # None: equal to rank, so the update's scale is 1
    dropout: float = 0.0
    modules: list[str] = field(default_factory=lambda: ["branch", "temporal"])

    def check(self) -> LoraSettings:
        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise UserError(f"[lora] rank must be a positive integer, got {self.rank!r}")
        if self.alpha is not None and not (isinstance(self.alpha, int | float) and self.alpha > 0):
            raise UserError(f"[lora] alpha must be positive, got {self.alpha!r}")
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise UserError(f"[lora] dropout must be in [0, 1), got {self.dropout!r}")
        unknown = [m for m in self.modules if m not in MODULE_GROUPS]
        if unknown or not self.modules:
            raise UserError(
                f"[lora] modules must be some of {', '.join(MODULE_GROUPS)}, got {self.modules!r}"
            )
        return self


def require_peft():
    try:
        import peft
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return peft


def check_lora_scale(scale: float) -> float:
    if not (
        isinstance(scale, int | float) and math.isfinite(scale) and -MAX_LORA_SCALE <= scale <= MAX_LORA_SCALE
    ):
        raise UserError(f"LoRA scale must be from {-MAX_LORA_SCALE} to {MAX_LORA_SCALE}, got {scale}")
    return float(scale)


def base_fingerprint(pipe) -> str:
    """A short hash of the denoiser's base weights (names, shapes and a strided sample of each
    tensor, in float32): an adapter records the one it was trained on. Adapter layers are left
    out, so the fingerprint reads the same with adapters loaded (unfused)."""
    return state_fingerprint(pipe, COMPONENTS, sample=64)


def _lora_config(settings: LoraSettings, pattern: str | list[str]):
    peft = require_peft()
    return peft.LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha if settings.alpha is not None else settings.rank,
        lora_dropout=settings.dropout,
        target_modules=pattern,
        init_lora_weights=True,  # B = 0: a new adapter leaves the model's output unchanged
    )


def component_patterns(modules: list[str]) -> dict[str, str]:
    """Component -> one regex for the chosen module groups."""
    patterns: dict[str, list[str]] = {}
    for group in modules:
        component, pattern = MODULE_GROUPS[group]
        patterns.setdefault(component, []).append(f"(?:{pattern})")
    return {c: "|".join(p) for c, p in patterns.items()}


def add_adapter(pipe, settings: LoraSettings, adapter_name: str = "default") -> list[torch.nn.Parameter]:
    """Inject a fresh (output-preserving) adapter into the pipeline's denoiser; returns its
    parameters, the only ones left trainable."""
    require_peft()
    params = []
    for component, pattern in component_patterns(settings.check().modules).items():
        model = getattr(pipe, component)
        model.requires_grad_(False)
        _inject(_lora_config(settings, pattern), model, adapter_name)
        for name, p in model.named_parameters():
            if f".{adapter_name}." in f".{name}." and "lora_" in name:
                p.requires_grad_(True)
                params.append(p)
    if not params:
        raise UserError(f"[lora] modules {settings.modules} match no layer of this model")
    return params


def adapter_state_dict(pipe, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The adapter's tensors in the file's layout: `component.` + peft's key (no adapter name)."""
    from peft import get_peft_model_state_dict

    state = {}
    for component in COMPONENTS:
        model = getattr(pipe, component)
        if not _adapters_of(model):
            continue
        for key, value in get_peft_model_state_dict(model, adapter_name=adapter_name).items():
            state[f"{component}.{key}"] = value.detach().cpu().contiguous()
    return state


def save_adapter(
    folder: str | Path, state: dict[str, torch.Tensor], settings: LoraSettings, info: dict[str, Any]
) -> Path:
    """Write `folder/pytorch_lora_weights.safetensors` atomically (a temporary name, then a rename)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    peft_metadata = {}
    for component in {k.split(".", 1)[0] for k in state}:
        # the layers by name, as diffusers writes them: a reader never needs to run a pattern
        layers = sorted(
            {k.split(".", 1)[1].rsplit(".lora_", 1)[0] for k in state if k.startswith(f"{component}.")}
        )
        config = _lora_config(settings, layers).to_dict()
        config = {k: sorted(v) if isinstance(v, set) else v for k, v in config.items()}
        peft_metadata |= {f"{component}.{k}": v for k, v in config.items()}
    metadata = {
        "format": "pt",
        ADAPTER_METADATA_KEY: json.dumps(peft_metadata, indent=2, sort_keys=True, default=str),
        DREAMVIDEO_METADATA_KEY: json.dumps({"settings": asdict(settings), **info}, sort_keys=True),
    }
    path = folder / LORA_WEIGHT_NAME
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp, metadata=metadata)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # as any file the user writes (the writer makes it private)
    os.replace(tmp, path)
    return path


@dataclass
class AdapterFile:
    path: Path
    state: dict[str, torch.Tensor]  # component-prefixed keys
    peft_configs: dict[str, dict]  # component -> LoraConfig fields
    info: dict[str, Any]  # our record: settings, base fingerprint, training

    @property
    def name(self) -> str:
        """The name training recorded (its run folder's), else the folder's or file's."""
        if self.info.get("name"):
            return str(self.info["name"])
        return self.path.parent.name if self.path.name == LORA_WEIGHT_NAME else self.path.stem

    @property
    def rank(self) -> int | None:
        return self.info.get("settings", {}).get("rank")

    @property
    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.state.values())


def adapter_path(path: str | Path) -> Path:
    """A folder holding `pytorch_lora_weights.safetensors`, or a `.safetensors` file."""
    path = Path(path)
    if path.is_dir():
        path = path / LORA_WEIGHT_NAME
        if not path.is_file():
            raise UserError(f"no {LORA_WEIGHT_NAME} in the adapter folder {path.parent}")
        return path
    if not path.exists():
        raise UserError(f"LoRA adapter not found: {path}")
    if not path.is_file() or path.suffix != ".safetensors":
        raise UserError(f"a LoRA adapter is a folder or a .safetensors file, got {path}")
    return path


def find_adapters(folder: str | Path) -> list[Path]:
    """The adapters in a folder: subfolders holding `pytorch_lora_weights.safetensors`, and
    `.safetensors` files (the folder itself, if it is one adapter's). Sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"LoRA folder not found: {folder}")
    if (folder / LORA_WEIGHT_NAME).is_file():
        return [folder]
    found = [p for p in folder.iterdir() if (p / LORA_WEIGHT_NAME).is_file()]
    found += [p for p in folder.glob("*.safetensors") if p.is_file()]
    return sorted(found, key=lambda p: p.name)


def describe_adapter(adapter: AdapterFile) -> str:
    """One line: name, rank, modules, parameters, size, base model."""
    settings = adapter.info.get("settings", {})
    modules = ",".join(settings.get("modules", [])) or "+".join(sorted(adapter.peft_configs))
    size = adapter.path.stat().st_size / 2**20
    base = adapter.info.get("base_model", "unknown base")
    return (
        f"{adapter.name}: rank {adapter.rank or '?'}, {modules}, {adapter.num_parameters:,} parameters, "
        f"{size:.2f} MiB, trained on {base}"
    )


def read_adapter(path: str | Path) -> AdapterFile:
    """Read and check an adapter file, which is untrusted data: JSON of the right types, LoRA
    tensors of known components (finite, 2-D, lora_A and lora_B of one rank per layer), and for
    each component a config whose layers come from the tensor names (as diffusers' loaders infer
    them), never from a pattern the file supplies. Any fault is one UserError."""
    from safetensors import safe_open

    file = adapter_path(path)
    try:
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
            names = list(f.keys())  # a safe_open handle is not iterable
            if len(names) > MAX_ADAPTER_TENSORS:
                raise ValueError(f"{len(names)} tensors (at most {MAX_ADAPTER_TENSORS})")
            state = {k: f.get_tensor(k) for k in names}
        peft_metadata = json.loads(metadata.get(ADAPTER_METADATA_KEY, "{}"))
        info = json.loads(metadata.get(DREAMVIDEO_METADATA_KEY, "{}"))
    except Exception as e:  # safetensors and json raise several kinds (RecursionError too)
        raise UserError(
            f"LoRA adapter {file} is unreadable: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None
    if not isinstance(peft_metadata, dict) or not isinstance(info, dict):
        raise UserError(
            f"{file}: its metadata must be JSON objects ('{ADAPTER_METADATA_KEY}', "
            f"'{DREAMVIDEO_METADATA_KEY}')"
        )
    if not state:
        raise UserError(f"{file} holds no LoRA weights (every key names a lora_A / lora_B layer)")
    layers = _layer_ranks(file, state)
    configs: dict[str, dict] = {c: {} for c, _ in layers}
    for key, value in peft_metadata.items():
        component, _, name = key.partition(".")
        if component in configs:
            configs[component][name] = value
    checked = {
        component: _checked_config(
            file, component, fields, {m: r for (c, m), r in layers.items() if c == component}
        )
        for component, fields in configs.items()
    }
    return AdapterFile(file, state, checked, _checked_info(file, info))


MAX_ADAPTER_TENSORS = 20_000
MAX_ADAPTER_RANK = 4096
_TENSOR_KEY = re.compile(r"(?P<component>\w+)\.(?P<module>\w+(?:\.\w+)*)\.lora_(?P<half>[AB])\.weight")


def _layer_ranks(file: Path, state: dict[str, torch.Tensor]) -> dict[tuple[str, str], int]:
    """(component, module name) -> rank, from the tensors: each a finite float matrix, named
    `component.module.lora_A.weight` / `.lora_B.weight`, the pair sharing one rank."""
    halves: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        match = _TENSOR_KEY.fullmatch(key)
        if match is None:
            raise UserError(f"{file}: {key[:80]!r} is not a LoRA weight (component.layer.lora_A.weight)")
        if match["component"] not in COMPONENTS:
            raise UserError(f"{file} adapts {match['component']}: not part of a DreamVideo model")
        if tensor.ndim != 2 or not tensor.is_floating_point():
            raise UserError(
                f"{file}: {key} must be a float matrix, got {tensor.dtype} of shape {tuple(tensor.shape)}"
            )
        if not torch.isfinite(tensor).all():
            raise UserError(f"{file}: {key} holds NaN or infinite values")
        halves.setdefault((match["component"], match["module"]), {})[match["half"]] = tensor
    ranks = {}
    for (component, module), pair in halves.items():
        if set(pair) != {"A", "B"}:
            raise UserError(f"{file}: {component}.{module} has lora_{''.join(pair)} but not its other half")
        rank = pair["A"].shape[0]
        if pair["B"].shape[1] != rank or not 1 <= rank <= MAX_ADAPTER_RANK:
            raise UserError(
                f"{file}: {component}.{module} has lora_A of rank {rank}, lora_B of {pair['B'].shape[1]}"
            )
        ranks[(component, module)] = rank
    return ranks


def _checked_config(file: Path, component: str, fields: dict, ranks: dict[str, int]) -> dict:
    """The `LoraConfig` fields to build this component's layers with: the file's rank, alpha and
    dropout checked for type and range; the layers and per-layer ranks from the tensors (as
    literal names: a pattern the file supplies is never run as a regular expression)."""

    def refuse(problem: str) -> UserError:
        return UserError(f"{file}: the LoRA config of {component} ('{ADAPTER_METADATA_KEY}') {problem}")

    if "r" not in fields:
        raise UserError(f"{file} has no LoRA config for {component} (metadata '{ADAPTER_METADATA_KEY}')")
    rank = fields["r"]
    if not (isinstance(rank, int) and not isinstance(rank, bool) and 1 <= rank <= MAX_ADAPTER_RANK):
        raise refuse(f"has r = {str(rank)[:40]!r}, not an integer from 1 to {MAX_ADAPTER_RANK}")
    alpha = fields.get("lora_alpha", rank)
    if not (is_finite_number(alpha) and 0 < alpha <= 1e6):
        raise refuse(f"has lora_alpha = {str(alpha)[:40]!r}, not a positive number")
    dropout = fields.get("lora_dropout", 0.0)
    if not (is_finite_number(dropout) and 0 <= dropout < 1):
        raise refuse(f"has lora_dropout = {str(dropout)[:40]!r}, not a number in [0, 1)")
    init = fields.get("init_lora_weights", True)
    if not (isinstance(init, bool) or (isinstance(init, str) and len(init) < 64)):
        raise refuse(f"has init_lora_weights = {str(init)[:40]!r}, not a boolean or a method name")
    for flag in ("use_rslora", "use_dora"):
        if not isinstance(fields.get(flag, False), bool):
            raise refuse(f"has {flag} = {str(fields[flag])[:40]!r}, not a boolean")
    if fields.get("use_dora") or fields.get("bias", "none") != "none":
        raise refuse("asks for DoRA or trained biases, which DreamVideo's adapters do not use")
    targets = fields.get("target_modules")
    if not (
        isinstance(targets, str) or (isinstance(targets, list) and all(isinstance(t, str) for t in targets))
    ):
        raise refuse("has no target_modules (a name or a list of names)")
    for name in ("rank_pattern", "alpha_pattern"):
        pattern = fields.get(name) or {}
        if not isinstance(pattern, dict) or not all(is_finite_number(v) and v > 0 for v in pattern.values()):
            raise refuse(f"has a {name} that is not an object of positive numbers")
    if not fields.get("rank_pattern"):  # one rank for every layer: the tensors must agree
        for module, got in ranks.items():
            if got != rank:
                raise UserError(
                    f"{file}: {component}.{module}.lora_A.weight has rank {got}, its config says {rank}"
                )
    # alpha_pattern keys name layers (diffusers writes full names): matched literally, by suffix
    alphas = {}
    for key, value in (fields.get("alpha_pattern") or {}).items():
        for module in ranks:
            if module == key or module.endswith(f".{key}"):
                alphas[module] = value
    return {
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": float(dropout),
        "use_rslora": fields.get("use_rslora", False),
        "init_lora_weights": True,  # the file's weights replace the initial ones
        "target_modules": sorted(ranks),
        "rank_pattern": {rf"{re.escape(m)}": r for m, r in ranks.items() if r != rank},
        "alpha_pattern": {rf"{re.escape(m)}": a for m, a in alphas.items()},
    }


def _checked_info(file: Path, info: dict) -> dict:
    """Our own record (`dreamvideo_lora`): the types that listing and loading rely on."""
    settings = info.get("settings", {})
    problem = None
    if not isinstance(settings, dict):
        problem = "settings is not an object"
    elif "rank" in settings and not (
        isinstance(settings["rank"], int) and not isinstance(settings["rank"], bool)
    ):
        problem = "settings.rank is not an integer"
    elif not isinstance(settings.get("modules", []), list) or not all(
        isinstance(m, str) for m in settings.get("modules", [])
    ):
        problem = "settings.modules is not a list of names"
    else:
        for key in ("name", "base_model", "base_fingerprint"):
            if key in info and not isinstance(info[key], str):
                problem = f"{key} is not a string"
    if problem:
        raise UserError(f"{file}: its '{DREAMVIDEO_METADATA_KEY}' metadata is malformed: {problem}")
    return info


def _adapters_of(model: torch.nn.Module) -> list[str]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    names: list[str] = []
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            for name in module.lora_A:
                if name not in names:
                    names.append(name)
    return names


class DreamVideoLoraLoaderMixin:
    """diffusers' pipeline LoRA API, for the UNet and the retention branch."""

    _lora_fused: list[str]

    def _lora_base(self) -> str:
        if getattr(self, "_lora_base_fingerprint", None) is None:
            self._lora_base_fingerprint = base_fingerprint(self)
        return self._lora_base_fingerprint

    def load_lora_weights(
        self, path: str | Path, adapter_name: str | None = None, check_base: bool = True
    ) -> str:
        """Load an adapter (a folder with `pytorch_lora_weights.safetensors`, or the file) under
        `adapter_name` (default: the folder's name) and make it active beside the ones loaded
        before. `check_base=False` skips the check that it was trained on this model."""
        peft = require_peft()
        adapter = read_adapter(path)
        name = adapter_name or re.sub(r"\W+", "_", adapter.name) or "default"
        if name in self.get_list_adapters_flat():
            raise UserError(f"an adapter named {name!r} is already loaded: pass another adapter_name")
        expected = adapter.info.get("base_fingerprint")
        if check_base and expected and expected != self._lora_base():
            raise UserError(
                f"LoRA adapter {adapter.path} was trained on another base model "
                f"({adapter.info.get('base_model', 'unknown')}, fingerprint {expected}; this model's is "
                f"{self._lora_base()})"
            )
        self._lora_base()  # fingerprint the base before any adapter changes it
        for component, fields in adapter.peft_configs.items():
            model = getattr(self, component)
            config = peft.LoraConfig(**fields)  # checked by read_adapter: literal layer names
            prefix = f"{component}."
            state = {k[len(prefix) :]: v for k, v in adapter.state.items() if k.startswith(prefix)}
            try:
                _inject(config, model, name)
                result = peft.set_peft_model_state_dict(model, state, adapter_name=name)
                problem = None
                if unexpected := getattr(result, "unexpected_keys", []):
                    problem = f"has weights for layers this model lacks: {unexpected[0]}"
            except (RuntimeError, ValueError) as e:
                problem = f"does not fit this model: {str(e).splitlines()[0]}"
            if problem:  # nothing of it stays behind, in any component
                for c in COMPONENTS:
                    _delete_from(getattr(self, c), name)
                raise UserError(f"LoRA adapter {adapter.path} {problem}")
            model.requires_grad_(False)
        self.set_adapters([*self.get_active_adapters(), name])
        return name

    def get_list_adapters(self) -> dict[str, list[str]]:
        """Component -> names of the adapters loaded into it."""
        require_peft()
        return {c: names for c in COMPONENTS if (names := _adapters_of(getattr(self, c)))}

    def get_list_adapters_flat(self) -> list[str]:
        names: list[str] = []
        for component_names in self.get_list_adapters().values():
            names += [n for n in component_names if n not in names]
        return names

    def get_active_adapters(self) -> list[str]:
        return list(getattr(self, "_lora_active", []))

    def set_adapters(
        self, adapter_names: list[str] | str, adapter_weights: list[float] | float | None = None
    ) -> None:
        """Activate these adapters with these weights (default 1 each); the others switch off."""
        from diffusers.utils.peft_utils import set_weights_and_activate_adapters

        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        if adapter_weights is None:
            adapter_weights = [1.0] * len(names)
        elif not isinstance(adapter_weights, list | tuple):
            adapter_weights = [adapter_weights] * len(names)
        if len(adapter_weights) != len(names):
            raise ValueError(f"{len(names)} adapters but {len(adapter_weights)} weights")
        weights = [check_lora_scale(w) for w in adapter_weights]
        loaded = self.get_list_adapters()
        unknown = [n for n in names if not any(n in v for v in loaded.values())]
        if unknown:
            raise UserError(
                f"no adapter named {unknown[0]!r} is loaded (loaded: {self.get_list_adapters_flat()})"
            )
        from diffusers.utils.peft_utils import set_adapter_layers

        for component, component_names in loaded.items():
            model = getattr(self, component)
            active = [(n, w) for n, w in zip(names, weights, strict=True) if n in component_names]
            set_adapter_layers(model, enabled=bool(active))  # none of them here: the base alone
            if active:
                set_weights_and_activate_adapters(model, [n for n, _ in active], [w for _, w in active])
        self._lora_active = names
        self._lora_weights = dict(zip(names, weights, strict=True))

    def fuse_lora(
        self, lora_scale: float = 1.0, adapter_names: list[str] | None = None, safe_fusing: bool = False
    ) -> None:
        """Merge the active adapters (times `lora_scale`) into the base weights: sampling then
        costs what it costs without adapters. `unfuse_lora` takes them out again."""
        check_lora_scale(lora_scale)
        if getattr(self, "_lora_fused", None):
            raise UserError("adapters are already fused: call unfuse_lora first")
        names = adapter_names or self.get_active_adapters()
        for layer in self._lora_layers():
            present = [n for n in names if n in layer.lora_A]
            if present:
                if lora_scale != 1.0:
                    layer.scale_layer(lora_scale)
                layer.merge(safe_merge=safe_fusing, adapter_names=present)
        self._lora_fused, self._lora_fuse_scale = names, lora_scale

    def unfuse_lora(self) -> None:
        """Take fused adapters out of the base weights (the exact inverse of `fuse_lora`)."""
        for layer in self._lora_layers():
            if layer.merged:
                layer.unmerge()
                if self._lora_fuse_scale != 1.0:
                    layer.unscale_layer(self._lora_fuse_scale)
        self._lora_fused = []

    def _lora_layers(self) -> list:
        from peft.tuners.tuners_utils import BaseTunerLayer

        return [
            module
            for component in self.get_list_adapters()
            for module in getattr(self, component).modules()
            if isinstance(module, BaseTunerLayer)
        ]

    def delete_adapters(self, adapter_names: list[str] | str) -> None:
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        for component in list(self.get_list_adapters()):
            for name in names:
                _delete_from(getattr(self, component), name)
        active = [n for n in self.get_active_adapters() if n not in names]
        if active:
            self.set_adapters(active, [self._lora_weights[n] for n in active])
        else:
            self.unload_lora_weights()

    def unload_lora_weights(self) -> None:
        """Remove every adapter: the model is its base again (fused adapters are unfused first)."""
        from diffusers.utils.peft_utils import recurse_remove_peft_layers

        if getattr(self, "_lora_fused", None):
            self.unfuse_lora()
        for component in COMPONENTS:
            recurse_remove_peft_layers(getattr(self, component))
        self._lora_active, self._lora_weights = [], {}


def _inject(config, model: torch.nn.Module, name: str) -> None:
    from peft import inject_adapter_in_model

    with warnings.catch_warnings():  # peft warns when a model gets a second adapter: intended here
        warnings.simplefilter("ignore", UserWarning)
        inject_adapter_in_model(config, model, adapter_name=name)


def _delete_from(model: torch.nn.Module, name: str) -> None:
    from diffusers.utils.peft_utils import delete_adapter_layers

    if name in _adapters_of(model):
        delete_adapter_layers(model, name)
    getattr(model, "peft_config", {}).pop(name, None)
