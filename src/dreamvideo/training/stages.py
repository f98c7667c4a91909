"""The training stages of DreamVideo (docs/training.md), one class each.

- `vae`: a small `AutoencoderKL` on video frames (L1 + SSIM + KL).
- `t2v`: the text-to-video base (`UNet3DConditionModel`) on VAE latents, text dropout for CFG.
- `i2v`: DreamVideo built from the t2v model; the retention branch and the main UNet's
  temporal layers train, with independent image / text / both dropout for double-condition CFG.
- `decoder`: a pipeline's reference-aware decoder (frozen encoder's latents, the clip's first
  frame as the reference; L1 + SSIM).

A stage owns its networks, builds batches from clip indices, computes the loss, and exports a
diffusers-format folder at the end. The generic loop lives in `trainer.py`.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
from torch import nn

from ..data.latent_cache import LatentCache, build_latent_cache
from ..data.parallel import ParallelSource, render_clips
from ..data.sources import ClipSource, make_source
from ..data.synthetic import DECODER_PHOTOS, load_photo, random_crop
from ..errors import UserError
from ..io.images import frames_to_signed
from ..loading import MODEL_DEFAULTS, load_vae
from ..lora import adapter_state_dict, add_adapter, base_fingerprint, save_adapter
from ..metrics import ssim
from ..models import DreamVideoDenoiser, ReferenceAwareDecoder, checkpoint_unet_blocks, mark_trainable
from ..models.modelscope import NOISE_SCHEDULE
from ..sizes import vae_scale_factor
from ..text import encode_prompts, load_minilm
from .config import TrainConfig

# What the UNet predicts. "v_prediction" (Salimans & Ho 2022) keeps the clean-latent estimate
# bounded at high noise levels, where a small undertrained ε-model's errors are amplified ~15x.
PREDICTION_TYPES = ("epsilon", "v_prediction")
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")


def noised_target(
    scheduler: DDPMScheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The latents noised to `timesteps` and what the denoiser regresses there: the noise (ε) or
    the velocity (v), by the scheduler's prediction type."""
    noisy = scheduler.add_noise(latents, noise, timesteps)
    if scheduler.config.prediction_type == "v_prediction":
        return noisy, scheduler.get_velocity(latents, noise, timesteps)
    return noisy, noise


def motion_weighted_mse(
    prediction: torch.Tensor, target: torch.Tensor, latents: torch.Tensor, strength: float, cap: float = 4.0
) -> torch.Tensor:
    """MSE with each latent pixel weighted 1 + strength * min(m / mean m, cap), m its clean latents'
    change from frame 0 (mean over channels; the mean over the clip's pixels): a rotating or
    shrinking object covers a few latent pixels of a still background, so a plain mean barely
    rewards its motion. Still clips weigh 1 everywhere; the weighted mean keeps the loss's scale.
    Latents are (B, C, F, h, w)."""
    change = (latents - latents[:, :, :1]).abs().mean(dim=1, keepdim=True)
    relative = change / (change.mean(dim=(2, 3, 4), keepdim=True) + 1e-2)
    weights = 1 + strength * relative.clamp(max=cap)
    squared = (prediction.float() - target.float()).pow(2)
    return (weights * squared).sum() / (weights.sum() * squared.shape[1])


def on_generator(generator: torch.Generator) -> dict[str, Any]:
    """Keyword arguments that draw from `generator` on its own device (the training device)."""
    return {"generator": generator, "device": generator.device}


class Stage:
    """One way to be data-parallel safe: `module` is the one nn.Module the trainer wraps (DDP
    synchronises gradients only through its `forward`), and its forward is the loss's whole
    differentiable pass (VAE: `VAERoundTrip`; t2v: the UNet; i2v: `DreamVideoDenoiser`; decoder:
    `ReferenceAwareDecoder`). `loss` calls `module(...)` once and never reaches past it."""

    name = ""
    module: nn.Module

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config = config
        self.device = device
        self.options = config.options()  # this stage's typed [stage_options]
        self.source: ClipSource = make_source(config.data)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def render_in_workers(self, workers: int, stride: int) -> None:
        """Render clips in `workers` processes, `stride` indices (the next micro-batch) ahead."""
        if workers > 0:
            self.source = ParallelSource(self.source, workers, stride)

    def close(self) -> None:
        if isinstance(self.source, ParallelSource):
            self.source.close()

    def make_batch(self, indices: list[int]) -> dict[str, Any]:
        clips = render_clips(self.source, indices)
        frames = torch.stack([frames_to_signed(c.frames) for c in clips])  # (B, F, 3, H, W)
        return {"frames": frames.to(self.device), "captions": [c.caption for c in clips]}

    def loss(self, module: nn.Module, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def export(self, output_dir: Path) -> Path:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {
            "stage": self.name,
            "parameters": sum(p.numel() for p in self.module.parameters()),
            "trainable": sum(p.numel() for p in self.trainable_parameters()),
        }


class VAERoundTrip(nn.Module):
    """The VAE stage's module: encode, take the posterior's mean (or a sample), decode."""

    def __init__(self, vae: AutoencoderKL, sample_posterior: bool = False, encoder_frozen: bool = False):
        super().__init__()
        self.vae, self.sample_posterior, self.encoder_frozen = vae, sample_posterior, encoder_frozen
        # Checkpoints written when the stage's module was the VAE itself have unprefixed keys.
        self.register_load_state_dict_pre_hook(self._prefix_bare_keys)

    @staticmethod
    def _prefix_bare_keys(module, state_dict, prefix, *args) -> None:
        parts = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
        for key in [k for k in state_dict if k.startswith(tuple(prefix + p for p in parts))]:
            state_dict[f"{prefix}vae.{key[len(prefix) :]}"] = state_dict.pop(key)

    def forward(self, images: torch.Tensor, generator: torch.Generator):
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            posterior = self.vae.encode(images).latent_dist
        if self.sample_posterior:
            noise = torch.randn(posterior.mean.shape, **on_generator(generator))
            latents = posterior.mean + posterior.std * noise
        else:
            # The diffusion stages use the posterior mean; training on it avoids the unit-variance
            # sampling noise of a fresh encoder, which drowns colour early in training.
            latents = posterior.mean
        return self.vae.decode(latents).sample, posterior


class VAEStage(Stage):
    name = "vae"

    def __init__(self, config: TrainConfig, device: torch.device):
        super().__init__(config, device)
        # [init] dreamvideo: refine a pipeline's VAE (its architecture and latent scale kept);
        # [init] vae: continue a VAE folder; neither: a new VAE shaped by [model].
        self.init_pipeline = config.init.get("dreamvideo")
        if self.init_pipeline:
            vae = _load_vae(str(Path(self.init_pipeline) / "vae"))
        else:
            model = config.model_table()
            levels = len(model.block_out_channels)
            vae = AutoencoderKL(
                in_channels=3,
                out_channels=3,
                down_block_types=("DownEncoderBlock2D",) * levels,
                up_block_types=("UpDecoderBlock2D",) * levels,
                block_out_channels=tuple(model.block_out_channels),
                layers_per_block=model.layers_per_block,
                latent_channels=model.latent_channels,
                norm_num_groups=model.norm_num_groups,
                sample_size=config.data.size,
            )
            if "vae" in config.init:  # warm start: continue training an existing VAE
                vae.load_state_dict(_load_vae(config.init["vae"]).state_dict())
        self.vae = vae.to(device)
        self.anchor_weight = float(self.options.anchor_weight)
        self.anchor = None
        if self.anchor_weight:  # a frozen copy of the init's encoder, the latents to stay near
            self.anchor = copy.deepcopy(self.vae).requires_grad_(False).eval()
            del self.anchor.decoder, self.anchor.post_quant_conv
            self.anchor_scale = float(self.vae.config.scaling_factor)
        self.frames_per_clip = int(self.options.frames_per_clip)
        self.ssim_weight = float(self.options.ssim_weight)
        self.kl_weight = float(self.options.kl_weight)
        self.decoder_only = bool(self.options.train_decoder_only)
        if self.decoder_only:
            if not config.init:
                raise UserError(f"{config.config_path}: train_decoder_only needs [init] vae or dreamvideo")
            self.vae.encoder.requires_grad_(False)
            self.vae.quant_conv.requires_grad_(False)
        self.module = VAERoundTrip(self.vae, bool(self.options.sample_posterior), self.decoder_only)
        self.photo_crops = int(self.options.photo_crops_per_batch)
        if self.photo_crops < 0:
            raise UserError(f"{config.config_path}: photo_crops_per_batch must be 0 or more")
        if self.anchor_weight < 0:
            raise UserError(f"{config.config_path}: anchor_weight must be 0 or more")
        if self.anchor_weight and (self.decoder_only or not config.init):
            raise UserError(f"{config.config_path}: anchor_weight needs [init] and a trained encoder")

    def make_batch(self, indices: list[int]) -> dict[str, Any]:
        frames = []
        for i, clip in zip(indices, render_clips(self.source, indices), strict=True):
            rng = np.random.default_rng([self.config.seed, i])
            picks = rng.choice(
                len(clip.frames), size=min(self.frames_per_clip, len(clip.frames)), replace=False
            )
            frames.append(frames_to_signed(clip.frames[picks]))
        if self.photo_crops:
            frames.append(frames_to_signed(self._photo_crops(indices[0])))
        return {"images": torch.cat(frames).to(self.device)}

    def _photo_crops(self, index: int) -> np.ndarray:
        """`photo_crops_per_batch` crops (N, H, W, 3) of the decoder photos, from 1/8 of a photo's
        side (fine detail) to all of it, flipped at random; fixed by the seed and batch index."""
        rng = np.random.default_rng([self.config.seed, index, 11])
        crops = []
        for _ in range(self.photo_crops):
            photo = load_photo(str(rng.choice(DECODER_PHOTOS)))
            crop = np.asarray(random_crop(rng, photo, self.config.data.size, smallest=0.125))
            crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
        return np.ascontiguousarray(np.stack(crops))

    def loss(self, module, batch, generator):
        images = batch["images"]
        recon, posterior = module(images, generator)
        l1 = (recon - images).abs().mean()
        structural = 1 - ssim((recon.clamp(-1, 1) + 1) / 2, (images + 1) / 2)
        kl = posterior.kl().mean() / images[0].numel()
        loss = l1 + self.ssim_weight * structural + self.kl_weight * kl
        if self.anchor is not None:
            with torch.no_grad():
                old = self.anchor.encode(images).latent_dist.mean
            drift = (posterior.mean - old) * self.anchor_scale
            loss = loss + self.anchor_weight * drift.pow(2).mean()
        return loss

    @torch.no_grad()
    def export(self, output_dir: Path) -> Path:
        vae = self.vae.eval()
        if not self.decoder_only:  # a frozen encoder keeps its latent space, and so its scale
            # Scale latents to unit variance for the diffusion stages (as Stable Diffusion's 0.18215).
            batch = self.make_batch(list(range(10_000_000, 10_000_000 + 64)))["images"]
            std = torch.cat([vae.encode(chunk).latent_dist.mean for chunk in batch.split(16)]).std().item()
            vae.register_to_config(scaling_factor=round(1.0 / std, 5))
        path = output_dir / "vae"
        vae.save_pretrained(path)
        if self.init_pipeline:  # the pipeline it came from, with this VAE in place of its own
            pipeline = output_dir / "pipeline"
            shutil.rmtree(pipeline, ignore_errors=True)
            shutil.copytree(self.init_pipeline, pipeline, ignore=shutil.ignore_patterns("vae"))
            vae.save_pretrained(pipeline / "vae")
            return pipeline
        return path


class _LatentVideoStage(Stage):
    """Shared by t2v and i2v: frozen VAE and text encoder, noise schedule, latents (encoded on
    the fly, or read from a latent cache built once)."""

    def __init__(self, config: TrainConfig, device: torch.device, prediction_type: str = "epsilon"):
        super().__init__(config, device)
        if prediction_type not in PREDICTION_TYPES:
            raise UserError(
                f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}"
            )
        self.noise_scheduler = DDPMScheduler(**NOISE_SCHEDULE, prediction_type=prediction_type)
        self.null_prompt = ""
        self.cache: LatentCache | None = None
        # Which noise levels training visits. "uniform" (DDPM). "logit_normal" (as SD3): t/T is
        # sigmoid(N(mean, std)), mixed with a `timestep_uniform_share` of uniform draws; a
        # positive mean favours high noise, where the layout and motion of a clip are decided.
        self.timestep_sampling = str(self.options.timestep_sampling)
        if self.timestep_sampling not in TIMESTEP_SAMPLINGS:
            raise UserError(
                f"timestep_sampling must be one of {', '.join(TIMESTEP_SAMPLINGS)}, "
                f"got {self.timestep_sampling!r}"
            )
        self.logit_mean = float(self.options.timestep_logit_mean)
        self.logit_std = float(self.options.timestep_logit_std)
        self.uniform_share = float(self.options.timestep_uniform_share)
        if self.logit_std <= 0 or not 0 <= self.uniform_share <= 1:
            raise UserError("timestep_logit_std must be > 0 and timestep_uniform_share in [0, 1]")

    @property
    def prediction_type(self) -> str:
        return self.noise_scheduler.config.prediction_type

    def open_cache(self) -> None:
        """Call after `self.vae` is set; builds the cache file first if it is missing."""
        data = self.config.data
        if not data.latent_cache:
            return
        path = Path(data.latent_cache)
        if not path.is_file():
            if data.cache_clips < 1:
                raise UserError(f"latent cache {path} is missing and data.cache_clips is not set")
            build_latent_cache(self.vae.to(self.device), self.source, data.cache_clips, path)
        self.cache = LatentCache(
            path,
            seed=self.config.seed,
            train_phrasings=data.train_phrasings,
            action_weights=data.action_weights,
        )

    def make_batch(self, indices: list[int]) -> dict[str, Any]:
        if self.cache is None:
            batch = super().make_batch(indices)
            batch["reference"] = batch["frames"][:, 0]  # the first frame is the reference image
            return batch
        items = [self.cache.item(i) for i in indices]
        return {
            "latents": torch.stack([it.latents for it in items]).to(self.device),
            "reference": torch.stack([it.reference for it in items]).to(self.device),
            "captions": [it.caption for it in items],
        }

    def batch_latents(self, batch: dict[str, Any], generator: torch.Generator) -> torch.Tensor:
        if "latents" in batch:
            return batch["latents"] * self.vae.config.scaling_factor
        return self.encode_video(batch["frames"], generator)

    def _freeze(self, *modules: nn.Module) -> None:
        for m in modules:
            m.requires_grad_(False).eval().to(self.device)

    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """(B, F, 3, H, W) -> scaled latents (B, C, F, h, w)."""
        b, f = frames.shape[:2]
        dist = self.vae.encode(frames.flatten(0, 1)).latent_dist
        noise = torch.randn(dist.mean.shape, **on_generator(generator))
        latents = dist.mean + dist.std * noise
        latents = latents * self.vae.config.scaling_factor
        # contiguous: a permuted view reaching the UNet's conv3d backward crashes PyTorch's CPU kernels
        return latents.reshape(b, f, *latents.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()

    def noisy_latents(self, latents: torch.Tensor, generator: torch.Generator):
        """Noised latents, the regression target (noise or velocity), and the timesteps."""
        noise = torch.randn(latents.shape, **on_generator(generator))
        timesteps = self.sample_timesteps(latents.shape[0], generator).to(latents.device)
        return *noised_target(self.noise_scheduler, latents, noise, timesteps), timesteps

    def sample_timesteps(self, n: int, generator: torch.Generator) -> torch.Tensor:
        total = self.noise_scheduler.config.num_train_timesteps
        draw = on_generator(generator)
        timesteps = torch.randint(0, total, (n,), **draw)
        if self.timestep_sampling == "logit_normal":
            u = torch.sigmoid(self.logit_mean + self.logit_std * torch.randn(n, **draw))
            biased = (u * total).long().clamp(0, total - 1)
            keep_uniform = torch.rand(n, **draw) < self.uniform_share
            timesteps = torch.where(keep_uniform, timesteps, biased)
        return timesteps

    @torch.no_grad()
    def text_embeddings(self, captions: list[str], drop_text: torch.Tensor) -> torch.Tensor:
        prompts = [
            self.null_prompt if drop else c for c, drop in zip(captions, drop_text.tolist(), strict=True)
        ]
        return encode_prompts(self.tokenizer, self.text_encoder, prompts)


def _load_vae(path: str):
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise UserError(f"VAE folder not found (train the vae stage first): {folder}")
    return load_vae(folder)


class T2VStage(_LatentVideoStage):
    name = "t2v"

    def __init__(self, config: TrainConfig, device: torch.device):
        super().__init__(config, device, str(config.options().prediction_type or "epsilon"))
        model = config.model_table()
        if "vae" not in config.init:
            raise UserError("the t2v stage needs [init] vae = 'path/to/vae'")
        self.vae = _load_vae(config.init["vae"])
        self.tokenizer, self.text_encoder = load_minilm(int(self.options.max_tokens))
        self._freeze(self.vae, self.text_encoder)
        factor = vae_scale_factor(self.vae.config)
        self.module = UNet3DConditionModel(
            sample_size=config.data.size // factor,
            in_channels=self.vae.config.latent_channels,
            out_channels=self.vae.config.latent_channels,
            down_block_types=tuple(model.down_block_types),
            up_block_types=tuple(model.up_block_types),
            block_out_channels=tuple(model.block_out_channels),
            layers_per_block=model.layers_per_block,
            norm_num_groups=model.norm_num_groups,
            cross_attention_dim=self.text_encoder.config.hidden_size,
            attention_head_dim=model.attention_head_dim,
        ).to(device)
        if "unet" in config.init:  # warm start: continue training an existing base UNet
            warm = UNet3DConditionModel.from_pretrained(
                config.init["unet"], use_safetensors=True, local_files_only=True
            )
            self.module.load_state_dict(warm.state_dict())
        if config.optim.gradient_checkpointing:
            checkpoint_unet_blocks(self.module)
        self.text_dropout = float(self.options.text_dropout)
        self.open_cache()

    def loss(self, module, batch, generator):
        latents = self.batch_latents(batch, generator)
        noisy, target, timesteps = self.noisy_latents(latents, generator)
        drop = torch.rand(latents.shape[0], **on_generator(generator)) < self.text_dropout
        context = self.text_embeddings(batch["captions"], drop)
        prediction = module(noisy, timesteps, encoder_hidden_states=context).sample
        return F.mse_loss(prediction, target)  # to the noise or the velocity, every timestep alike

    def export(self, output_dir: Path) -> Path:
        pipe = TextToVideoSDPipeline(
            vae=self.vae,
            text_encoder=self.text_encoder,
            tokenizer=self.tokenizer,
            unet=self.module.eval(),
            scheduler=DDIMScheduler(
                **NOISE_SCHEDULE,
                prediction_type=self.prediction_type,
                clip_sample=False,
                set_alpha_to_one=False,
            ),
        )
        path = output_dir / "pipeline"
        pipe.save_pretrained(path)
        return path


class I2VStage(_LatentVideoStage):
    name = "i2v"

    def __init__(self, config: TrainConfig, device: torch.device):
        super().__init__(config, device)
        self.pipe = pipe = self._load_pipeline(config)
        self.noise_scheduler = DDPMScheduler(**NOISE_SCHEDULE, prediction_type=self._prediction_type(pipe))
        self.vae, self.text_encoder, self.tokenizer = pipe.vae, pipe.text_encoder, pipe.tokenizer
        self._freeze(self.vae, self.text_encoder)
        self.module = DreamVideoDenoiser(pipe.unet, pipe.retention_branch).to(device)
        self._choose_trainable(config, pipe)
        if config.optim.gradient_checkpointing:  # recompute block activations in backward
            pipe.retention_branch.gradient_checkpointing = True
            checkpoint_unet_blocks(pipe.unet)
        # Independent condition dropout (InstructPix2Pix): image only, text only, both.
        self.p_drop = float(self.options.condition_dropout)
        for name in ("reference_noise", "motion_loss_weight"):
            value = float(getattr(self.options, name))
            if not 0 <= value < float("inf"):
                raise UserError(f"{config.config_path}: {name} must be 0 or more")
            setattr(self, name, value)
        self.open_cache()

    def _load_pipeline(self, config: TrainConfig):
        """The model to train: a DreamVideo folder continued, or one built from a t2v base (its
        branch zero-initialised); with the exported defaults the config names, and the branch
        grown by the additions it asks for."""
        from ..pipeline import DreamVideoPipeline, load_pipeline

        if "t2v" not in config.init and "dreamvideo" not in config.init:
            raise UserError(
                "the i2v stage needs [init] t2v = 'path/to/t2v/pipeline' (or dreamvideo = 'folder')"
            )
        chosen = {k: getattr(self.options, k) for k in MODEL_DEFAULTS}
        defaults = {k: v for k, v in chosen.items() if v is not None}
        if "dreamvideo" in config.init:  # warm start: continue training a DreamVideo model
            # fp32 master weights, also from an fp16 export (a release stored in half precision)
            pipe = load_pipeline(config.init["dreamvideo"], torch_dtype=torch.float32)
            pipe.register_to_config(**defaults)
            if "vae" in config.init:  # continue the model on another latent space of the same shape
                self._move_to_latent_space(pipe, _load_vae(config.init["vae"]))
        else:
            model = config.model_table()
            pipe = DreamVideoPipeline.from_t2v(
                config.init["t2v"], image_embed_channels=int(model.image_embed_channels), **defaults
            )
        additions = {
            name: True
            for name in ("frame_position_embedding", "caption_time_embedding", "reference_first_frame")
            if getattr(config.model_table(), name) and not pipe.retention_branch.config.get(name)
        }
        if additions:
            pipe.retention_branch = pipe.retention_branch.with_config(**additions)
        return pipe

    @staticmethod
    def _move_to_latent_space(pipe, vae) -> None:
        """Swap the pipeline's VAE for `vae`. The UNet keeps its shape only if the latents do; the
        reference-aware decoder decodes the old latents, so it is dropped (retrain it after)."""
        shape = {name: (v.config.latent_channels, vae_scale_factor(v.config)) for name, v in
                 (("[init] vae", vae), ("the model's VAE", pipe.vae))}  # fmt: skip
        if len(set(shape.values())) > 1:
            described = "; ".join(f"{k}: {c} latent channels at 1/{f} scale" for k, (c, f) in shape.items())
            raise UserError(f"the latent spaces differ in shape ({described})")
        pipe.register_modules(vae=vae.to(torch.float32), reference_decoder=None)

    def _prediction_type(self, pipe) -> str:
        """The base's parametrisation: the branch learns on top of the base UNet, so it predicts
        what the base predicts."""
        base_prediction = pipe.scheduler.config.get("prediction_type", "epsilon")
        if base_prediction not in PREDICTION_TYPES:
            raise UserError(
                f"the base model predicts {base_prediction!r}: training supports {PREDICTION_TYPES}"
            )
        asked = self.options.prediction_type or base_prediction
        if asked != base_prediction:
            raise UserError(
                f"prediction_type {asked!r} differs from the base model's {base_prediction!r} "
                "(the i2v stage keeps the base's parametrisation)"
            )
        return base_prediction

    def _choose_trainable(self, config: TrainConfig, pipe) -> None:
        """DreamVideo's set (the branch and the main UNet's temporal layers), or, with [lora], an
        adapter alone on top of a trained model."""
        self.lora = config.lora_settings()
        if self.lora is None:
            mark_trainable(pipe.unet, pipe.retention_branch, train_all=bool(self.options.train_all))
            return
        if "dreamvideo" not in config.init:
            raise UserError("a [lora] run adapts a trained model: it needs [init] dreamvideo = 'folder'")
        self.base_fingerprint = base_fingerprint(pipe)
        add_adapter(pipe, self.lora)

    def loss(self, module, batch, generator):
        latents = self.batch_latents(batch, generator)
        noisy, target, timesteps = self.noisy_latents(latents, generator)
        r = torch.rand(latents.shape[0], **on_generator(generator))
        p = self.p_drop  # [0, p): text dropped; [p, 2p): image dropped; [2p, 3p): both
        drop_text = (r < p) | ((r >= 2 * p) & (r < 3 * p))
        drop_image = (r >= p) & (r < 3 * p)
        # The null image is all zeros in [-1, 1], as at sampling time.
        reference = batch["reference"]
        if self.reference_noise > 0:  # more noise at higher t, where leakage makes clips still
            level = timesteps.float() / self.noise_scheduler.config.num_train_timesteps
            std = self.reference_noise * level * torch.rand(level.shape, **on_generator(generator))
            reference = reference + std.view(-1, 1, 1, 1) * torch.randn(
                reference.shape, **on_generator(generator)
            )
        reference = reference * (~drop_image).to(self.device).view(-1, 1, 1, 1)
        context = self.text_embeddings(batch["captions"], drop_text)
        prediction = module(noisy, timesteps, encoder_hidden_states=context, image=reference)
        if self.motion_loss_weight > 0:
            return motion_weighted_mse(prediction, target, latents, self.motion_loss_weight)
        return F.mse_loss(prediction, target)  # to the noise or the velocity, every timestep alike

    def export(self, output_dir: Path) -> Path:
        if self.lora is not None:
            return self._export_adapter(output_dir / "lora")
        path = output_dir / "pipeline"
        self.pipe.unet.eval()
        self.pipe.retention_branch.eval()
        self.pipe.save_pretrained(path)
        # A warm start's config has no [model] keys of its own: record the branch's width
        # and where the weights came from, so the file describes the model it sits beside.
        branch = self.pipe.retention_branch.config
        keys = (
            "image_embed_channels",
            "frame_position_embedding",
            "caption_time_embedding",
            "reference_first_frame",
        )
        record = {"init": self.config.init} | {k: branch.get(k, False) for k in keys}
        (path / "training.json").write_text(
            json.dumps(record | self.config.model | self.config.stage_options, indent=2) + "\n"
        )
        return path

    def _export_adapter(self, folder: Path) -> Path:
        """The adapter alone (`pytorch_lora_weights.safetensors`), with the base it adapts."""
        info = {
            "name": Path(self.config.output_dir).name,
            "base_model": self.config.init["dreamvideo"],
            "base_fingerprint": self.base_fingerprint,
            "steps": self.config.optim.steps,
            "data": self.config.data.kind,
        }
        save_adapter(folder, adapter_state_dict(self.pipe), self.lora, info)
        return folder


class DecoderStage(Stage):
    """The reference-aware decoder (models.ReferenceAwareDecoder) of a DreamVideo pipeline, trained
    on its frozen encoder's latents of whole clips, each clip's first frame as the reference."""

    name = "decoder"

    def __init__(self, config: TrainConfig, device: torch.device):
        super().__init__(config, device)
        from ..pipeline import load_pipeline

        if "dreamvideo" not in config.init:
            raise UserError(f"{config.config_path}: the decoder stage needs [init] dreamvideo = 'folder'")
        self.init_pipeline = config.init["dreamvideo"]
        model = config.model_table()
        options = {
            "reference_features": str(model.reference_features),
            "residual_levels": tuple(int(v) for v in model.residual_levels),
            "cross_attention_levels": tuple(int(v) for v in model.cross_attention_levels),
            "attention_heads": int(model.attention_heads),
            "temporal_layers": bool(model.temporal_layers),
        }
        pipe = load_pipeline(self.init_pipeline, torch_dtype=torch.float32)
        self.vae = pipe.vae
        self._freeze_vae()
        try:  # a pipeline that has one continues it (its decoder and additions carry over)
            existing = pipe.reference_decoder
            self.module = (
                existing.with_options(**options)
                if existing is not None
                else ReferenceAwareDecoder.from_vae(self.vae, **options)
            ).to(device)
        except ValueError as e:
            raise UserError(f"{config.config_path} [model]: {e}") from e
        if not self.options.train_decoder:
            for p in self.module.decoder_parameters():
                p.requires_grad_(False)
        self.latent_noise = float(self.options.latent_noise)
        if not 0 <= self.latent_noise < float("inf"):
            raise UserError(f"{config.config_path}: latent_noise must be 0 or more")
        self.ssim_weight = float(self.options.ssim_weight)
        self.first_frame_weight = float(self.options.first_frame_weight)
        if not 0 < self.first_frame_weight < float("inf"):
            raise UserError(f"{config.config_path}: first_frame_weight must be above 0")

    def _freeze_vae(self) -> None:
        self.vae.requires_grad_(False).eval().to(self.device)

    def loss(self, module, batch, generator):
        frames = batch["frames"]  # (B, F, 3, H, W) in [-1, 1]
        b, f = frames.shape[:2]
        flat = frames.flatten(0, 1)
        with torch.no_grad():
            latents = torch.cat([self.vae.encode(chunk).latent_dist.mean for chunk in flat.split(32)])
        if self.latent_noise > 0:
            scale = self.latent_noise * latents.std() * torch.rand(b, **on_generator(generator))
            noise = torch.randn(latents.shape, **on_generator(generator))
            latents = latents + scale.repeat_interleave(f).view(-1, 1, 1, 1) * noise
        recon = module(latents, frames[:, 0], f)
        l1 = (recon - flat).abs().mean(dim=(1, 2, 3))
        structural = 1 - ssim((recon.clamp(-1, 1) + 1) / 2, (flat + 1) / 2, reduction="none")
        weights = torch.ones(f, device=flat.device)
        weights[0] = self.first_frame_weight
        weights = (weights / weights.mean()).repeat(b)  # frame weights, mean 1
        return (weights * (l1 + self.ssim_weight * structural)).mean()

    @torch.no_grad()
    def export(self, output_dir: Path) -> Path:
        """The pipeline it came from, with this reference-aware decoder added (or replaced)."""
        from ..pipeline import load_pipeline

        path = output_dir / "pipeline"
        shutil.rmtree(path, ignore_errors=True)
        pipe = load_pipeline(self.init_pipeline, torch_dtype=torch.float32)
        pipe.register_modules(reference_decoder=self.module.eval())
        pipe.save_pretrained(path)
        return path


STAGES: dict[str, type[Stage]] = {
    "vae": VAEStage,
    "t2v": T2VStage,
    "i2v": I2VStage,
    "decoder": DecoderStage,
}
