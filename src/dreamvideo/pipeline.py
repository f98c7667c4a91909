"""`DreamVideoPipeline`: image + prompt -> video, read top to bottom in `__call__`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet3DConditionModel
from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0
from diffusers.pipelines.pipeline_utils import StableDiffusionMixin
from diffusers.utils import BaseOutput, deprecate
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .errors import UserError
from .guidance import GuidanceMode, combine_predictions, guidance_conditions, prediction_for_sample
from .io.images import fit_image, image_to_tensor, load_image, to_rgb
from .limits import MAX_SIDE, check_sampling_values, check_strength
from .loading import (
    T2V_PIPELINE_CLASSES,
    check_components,
    check_model_defaults,
    default_model_dir,
    load_folder,
    load_t2v,
    read_model_index,
)
from .lora import DreamVideoLoraLoaderMixin
from .models import DreamVideoDenoiser, FrameRetentionBranch, PatchAutoencoder, ReferenceAwareDecoder
from .sizes import unet_downscale, vae_scale_factor
from .text import encode_prompts

logger = logging.getLogger(__name__)

ImageInput = PIL.Image.Image | str | Path | torch.Tensor
OUTPUT_TYPES = ("np", "pil", "pt", "latent")


@dataclass
class DreamVideoPipelineOutput(BaseOutput):
    """`frames`: (B, F, H, W, 3) floats in [0, 1] for 'np', lists of PIL images for 'pil',
    (B, F, 3, H, W) in [0, 1] for 'pt', or the final latents (B, C, F, h, w) for 'latent'."""

    frames: np.ndarray | list[list[PIL.Image.Image]] | torch.Tensor


class DreamVideoPipeline(DiffusionPipeline, StableDiffusionMixin, DreamVideoLoraLoaderMixin):
    """Image-to-video with text control: a T2V latent diffusion model plus a frame retention branch.

    Components: `vae` (diffusers' `AutoencoderKL`, or a `PatchAutoencoder`), `text_encoder`,
    `tokenizer`, `unet` (the base `UNet3DConditionModel`),
    `retention_branch` (`FrameRetentionBranch`), `scheduler` (any diffusers scheduler; DDIM by
    default) and, optionally, `reference_decoder` (`ReferenceAwareDecoder`: decodes the latents
    seeing the reference image; without it the VAE decodes). Config values give the model's
    defaults (frames, fps, guidance scales, denoising steps). LoRA adapters load with diffusers'
    names (`load_lora_weights`, `set_adapters`, `fuse_lora`, ...: `dreamvideo.lora`).
    """

    # The branch runs beside the UNet at every step, so it is left out of the chain (as diffusers
    # does for ControlNet): it gets its own hook and stays on the device instead of swapping
    # places with the UNet twice a step.
    model_cpu_offload_seq = "text_encoder->unet->vae->reference_decoder"
    _optional_components: ClassVar[list[str]] = ["reference_decoder"]  # diffusers concatenates lists
    _callback_tensor_inputs = ("latents", "prompt_embeds", "negative_prompt_embeds")

    def __init__(
        self,
        vae: AutoencoderKL | PatchAutoencoder,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        unet: UNet3DConditionModel,
        retention_branch: FrameRetentionBranch,
        scheduler: DDIMScheduler,
        default_num_frames: int = 16,
        default_fps: int = 8,
        default_image_guidance_scale: float = 1.5,
        default_text_guidance_scale: float = 7.5,
        default_num_inference_steps: int = 25,
        default_strength: float = 1.0,
        reference_decoder: ReferenceAwareDecoder | None = None,
        default_pin_first_frame: bool = False,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            retention_branch=retention_branch,
            scheduler=scheduler,
            reference_decoder=reference_decoder,
        )
        self.register_to_config(
            default_num_frames=default_num_frames,
            default_fps=default_fps,
            default_image_guidance_scale=default_image_guidance_scale,
            default_text_guidance_scale=default_text_guidance_scale,
            default_num_inference_steps=default_num_inference_steps,
            default_strength=default_strength,
            default_pin_first_frame=default_pin_first_frame,
        )
        # Any component may be None (as diffusers allows, e.g. the text parts alone for
        # `encode_prompt`); the VAE factor then takes the usual 8.
        self.vae_scale_factor = vae_scale_factor(self.vae.config) if self.vae is not None else 8
        self.video_processor = VideoProcessor(do_resize=False, vae_scale_factor=self.vae_scale_factor)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_t2v(
        cls,
        t2v: DiffusionPipeline | str | Path,
        image_embed_channels: int = 4,
        **pipeline_config,
    ) -> DreamVideoPipeline:
        """Build DreamVideo from a diffusers text-to-video pipeline or folder (TextToVideoSDPipeline
        layout). The branch is copied from the UNet with zero-initialised injections, so the new
        pipeline's noise prediction equals the base model's."""
        if not isinstance(t2v, DiffusionPipeline):
            t2v = load_t2v(t2v)
        branch = FrameRetentionBranch.from_unet(
            t2v.unet,
            image_embed_channels=image_embed_channels,
            downscale_factor=vae_scale_factor(t2v.vae.config),
        )
        pipe = cls(
            vae=t2v.vae,
            text_encoder=t2v.text_encoder,
            tokenizer=t2v.tokenizer,
            unet=t2v.unet,
            retention_branch=branch,
            scheduler=t2v.scheduler,
            **pipeline_config,
        )
        if t2v.name_or_path:  # the folder it came from, as a loaded pipeline records it
            pipe.register_to_config(_name_or_path=t2v.name_or_path)
        return pipe

    @property
    def denoiser(self) -> DreamVideoDenoiser:
        return DreamVideoDenoiser(self.unet, self.retention_branch)

    # ----------------------------------------------------------------- sizes and checks
    @property
    def default_num_inference_steps(self) -> int:
        """The model's own number of denoising steps (folders saved before it existed: 25)."""
        return int(self.config.get("default_num_inference_steps", 25))

    @property
    def default_strength(self) -> float:
        """The model's own sampling start (folders saved before it existed: 1, pure noise)."""
        return float(self.config.get("default_strength", 1.0))

    @property
    def default_pin_first_frame(self) -> bool:
        """Whether the model pins its first frame's latents by default (folders saved before it: no)."""
        return bool(self.config.get("default_pin_first_frame", False))

    @property
    def spatial_multiple(self) -> int:
        """Height and width must be multiples of this (VAE factor x UNet down-sampling)."""
        return self.vae_scale_factor * unet_downscale(self.unet.config)

    @property
    def default_size(self) -> tuple[int, int]:
        """(height, width) the model was trained at."""
        sample_size = self.unet.config.sample_size or 32
        if isinstance(sample_size, int):
            sample_size = (sample_size, sample_size)
        return sample_size[0] * self.vae_scale_factor, sample_size[1] * self.vae_scale_factor

    def check_inputs(
        self,
        height: int,
        width: int,
        num_frames: int,
        num_inference_steps: int,
        image_guidance_scale: float,
        text_guidance_scale: float,
        num_segments: int,
        mode: GuidanceMode,
        prompts: list[str] | None,
        num_videos_per_prompt: int = 1,
        output_type: str = "np",
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        strength: float = 1.0,
    ) -> None:
        """Every request value, before any work. `prompts` is None when embeddings are given."""
        check_strength(strength)
        check_sampling_values(
            num_frames,
            num_inference_steps,
            image_guidance_scale,
            text_guidance_scale,
            num_segments,
            height,
            width,
        )
        m = self.spatial_multiple
        for name, value in (("height", height), ("width", width)):
            if value % m:
                nearest = min(MAX_SIDE // m * m, max(m, round(value / m) * m))
                raise UserError(
                    f"{name} must be a multiple of {m} for this model, got {value} (nearest: {nearest})"
                )
        max_steps = self.scheduler.config.num_train_timesteps
        if num_inference_steps > max_steps:
            raise UserError(
                f"steps must be at most {max_steps} for this scheduler, got {num_inference_steps}"
            )
        if (
            prompts is not None
            and GuidanceMode(mode) is GuidanceMode.TEXT
            and not all(p.strip() for p in prompts)
        ):
            raise UserError("text-only mode needs a non-empty prompt")
        if not isinstance(num_videos_per_prompt, int) or num_videos_per_prompt < 1:
            raise UserError(
                f"num_videos_per_prompt must be a positive integer, got {num_videos_per_prompt!r}"
            )
        if output_type not in OUTPUT_TYPES:
            raise UserError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if output_type == "latent" and num_segments > 1:
            raise UserError("output_type='latent' needs num_segments=1")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise UserError(
                f"callback_on_step_end_tensor_inputs may name {', '.join(self._callback_tensor_inputs)}, "
                f"got {', '.join(sorted(unknown))}"
            )

    # ----------------------------------------------------------------- conditioning
    def prepare_image(
        self, image: ImageInput, height: int, width: int, resize_mode: str = "crop"
    ) -> torch.Tensor:
        """A path, PIL image or tensor -> (1, 3, H, W) in [-1, 1] at the requested size."""
        if isinstance(image, torch.Tensor):
            tensor = image if image.ndim == 4 else image.unsqueeze(0)
            if tensor.shape[-2:] != (height, width):
                tensor = torch.nn.functional.interpolate(
                    tensor.float(), size=(height, width), mode="bilinear"
                )
            return tensor.to(self._execution_device, self.retention_branch.dtype)
        pil = (
            load_image(image, target_size=(width, height)) if isinstance(image, str | Path) else to_rgb(image)
        )
        return image_to_tensor(fit_image(pil, width, height, resize_mode)).to(
            self._execution_device, self.retention_branch.dtype
        )

    def encode_reference(self, reference: torch.Tensor) -> torch.Tensor:
        """The branch's image features of a prepared reference (B, 3, H, W)."""
        hook = getattr(self.retention_branch, "_hf_hook", None)
        if hook is not None:  # model CPU offload: `encode_image` is not `forward`, so move it here
            hook.pre_forward(self.retention_branch)
        return self.retention_branch.encode_image(reference)

    def fuse_qkv_projections(self, unet: bool = True, vae: bool = True) -> None:
        """StableDiffusionMixin's switch, for the UNet and the branch (`unet`) and the VAE. diffusers
        0.42's version fuses only its newer attention class, not the `Attention` layers of
        UNet3D, so each layer is fused here and its processor kept for `unfuse_qkv_projections`."""
        names = (["unet", "retention_branch"] if unet else []) + (["vae"] if vae else [])
        self._unfused_processors = getattr(self, "_unfused_processors", {})
        for name in names:
            model = getattr(self, name)
            layers = [m for m in model.modules() if isinstance(m, Attention)]
            if not layers or name in self._unfused_processors:
                continue
            self._unfused_processors[name] = model.attn_processors
            for layer in layers:
                layer.fuse_projections()
            model.set_attn_processor(FusedAttnProcessor2_0())
        self.fusing_unet = "unet" in self._unfused_processors
        self.fusing_vae = "vae" in self._unfused_processors

    def unfuse_qkv_projections(self, unet: bool = True, vae: bool = True) -> None:
        """Back to the processors from before `fuse_qkv_projections` (the separate projections
        were never removed)."""
        names = (["unet", "retention_branch"] if unet else []) + (["vae"] if vae else [])
        saved = getattr(self, "_unfused_processors", {})
        for name in names:
            if name in saved:
                getattr(self, name).set_attn_processor(saved.pop(name))
        self.fusing_unet = "unet" in saved
        self.fusing_vae = "vae" in saved

    def enable_vae_slicing(self) -> None:
        """Decode one frame at a time (the VAE's peak memory is per decoded batch)."""
        self._decode_chunk_override = 1

    def disable_vae_slicing(self) -> None:
        self._decode_chunk_override = None

    @property
    def _embedding_dtype(self) -> torch.dtype:
        """Text embeddings are cast to the UNet's dtype (the text encoder's, built without one)."""
        return (self.unet if self.unet is not None else self.text_encoder).dtype

    def encode_text(
        self, prompts: list[str], negative_prompts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt embeddings and the 'null text' embeddings (the negative prompt, empty by default),
        encoded in one batch."""
        embeds = encode_prompts(self.tokenizer, self.text_encoder, prompts + negative_prompts)
        embeds = embeds.to(self._embedding_dtype)
        return embeds[: len(prompts)], embeds[len(prompts) :]

    def encode_prompt(
        self,
        prompt: str | list[str] | None,
        device: torch.device | None = None,
        num_videos_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(prompt_embeds, negative_prompt_embeds) with diffusers' signature: embeddings given are
        used as they are, the others encoded; each repeated `num_videos_per_prompt` times.
        The negative embeddings are the null text condition of the guidance."""
        if prompt_embeds is None:
            prompts = _text_list(prompt)
            negatives = _negatives(negative_prompt, len(prompts))
            if do_classifier_free_guidance and negative_prompt_embeds is None:
                prompt_embeds, negative_prompt_embeds = self.encode_text(prompts, negatives)
            else:
                prompt_embeds = self.encode_text(prompts, [])[0]
        elif do_classifier_free_guidance and negative_prompt_embeds is None:
            negatives = _negatives(negative_prompt, prompt_embeds.shape[0])
            negative_prompt_embeds = self.encode_text([], negatives)[1]
        device = device or self._execution_device
        prompt_embeds = prompt_embeds.to(device, self._embedding_dtype).repeat_interleave(
            num_videos_per_prompt, 0
        )
        if not do_classifier_free_guidance:
            return prompt_embeds, None
        expected = (prompt_embeds.shape[0] // num_videos_per_prompt, *prompt_embeds.shape[1:])
        if tuple(negative_prompt_embeds.shape) != expected:
            raise UserError(
                f"negative_prompt_embeds have shape {tuple(negative_prompt_embeds.shape)}, "
                f"expected {expected}"
            )
        negative_prompt_embeds = negative_prompt_embeds.to(device, self._embedding_dtype)
        return prompt_embeds, negative_prompt_embeds.repeat_interleave(num_videos_per_prompt, 0)

    def prepare_latents(
        self,
        batch_size: int,
        num_frames: int,
        height: int,
        width: int,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Initial noise (B, C, F, h, w), scaled by the scheduler's initial sigma."""
        shape = (
            batch_size,
            self.unet.config.in_channels,
            num_frames,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        if isinstance(generator, list) and len(generator) != batch_size:
            raise UserError(f"got {len(generator)} generators for {batch_size} videos: give one per video")
        if latents is None:
            latents = randn_tensor(
                shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype
            )
        elif tuple(latents.shape) != shape:
            raise UserError(f"latents have shape {tuple(latents.shape)}, expected {shape}")
        else:
            latents = latents.to(self._execution_device, self.unet.dtype)
        return latents * self.scheduler.init_noise_sigma

    def prepare_start(
        self,
        reference: torch.Tensor,
        num_frames: int,
        num_inference_steps: int,
        strength: float,
        generator: torch.Generator | list[torch.Generator] | None,
        latents: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(timesteps, initial latents) of one segment. Strength 1: pure noise at the last
        timestep. Below 1, as diffusers' img2img `get_timesteps`: the schedule's first steps are
        skipped and the reference, repeated as a still video (the VAE's latent mean), is noised
        to the first remaining timestep (Zhao et al.'s analytic initialisation)."""
        self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
        height, width = reference.shape[-2:]
        noise = self.prepare_latents(len(reference), num_frames, height, width, generator, latents)
        if strength >= 1:
            return self.scheduler.timesteps, noise
        # Adapted from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img.
        # StableDiffusionImg2ImgPipeline.get_timesteps (here at least one step always runs)
        skip = (num_inference_steps - _steps_from(num_inference_steps, strength)) * self.scheduler.order
        timesteps = self.scheduler.timesteps[skip:]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(skip)
        still = self.first_frame_latents(reference).expand(-1, -1, num_frames, -1, -1).to(noise.dtype)
        noise = noise / self.scheduler.init_noise_sigma
        return timesteps, self.scheduler.add_noise(still, noise, timesteps[:1].repeat(len(still)))

    def first_frame_latents(self, reference: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) reference images -> their scaled latents (the VAE's posterior mean) as
        one-frame videos (B, C, 1, h, w): the latents a faithful first frame has."""
        latents = self.vae.encode(reference.to(self.vae.dtype)).latent_dist.mean
        return (latents * self.vae.config.scaling_factor).unsqueeze(2)

    def decode_latents(
        self, latents: torch.Tensor, decode_chunk_size: int = 16, reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, C, F, h, w) latents -> (B, 3, F, H, W) frames in [-1, 1]. The VAE decodes a chunk of
        frames at a time; a `reference_decoder`, given the videos' `reference` (B, 3, H, W),
        decodes a chunk of whole videos at a time (its layers look across a video's frames)."""
        decode_chunk_size = getattr(self, "_decode_chunk_override", None) or decode_chunk_size
        batch, channels, frames, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, h, w)
        flat = flat / self.vae.config.scaling_factor
        if self.reference_decoder is not None and reference is not None:
            dtype = self.reference_decoder.dtype
            per_chunk = max(1, decode_chunk_size // frames)
            decoded = [
                self.reference_decoder(chunk.to(dtype), refs.to(dtype), frames)
                for chunk, refs in zip(
                    flat.split(per_chunk * frames), reference.split(per_chunk), strict=True
                )
            ]
        else:
            decoded = [
                self.vae.decode(chunk.to(self.vae.dtype)).sample for chunk in flat.split(decode_chunk_size)
            ]
        video = torch.cat(decoded)
        return video.reshape(batch, frames, *video.shape[1:]).permute(0, 2, 1, 3, 4).float()

    def postprocess(self, video: torch.Tensor, output_type: str) -> np.ndarray | list | torch.Tensor:
        """(B, 3, F, H, W) in [-1, 1] -> the requested output type (not 'latent')."""
        if output_type == "pt":
            return ((video + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4)
        return self.video_processor.postprocess_video(video, output_type=output_type)

    # Adapted from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion.
    # StableDiffusionPipeline.prepare_extra_step_kwargs
    def prepare_extra_step_kwargs(self, generator: torch.Generator | None, eta: float = 0.0) -> dict:
        """What `scheduler.step` takes beyond (output, t, x): only the arguments its signature
        accepts (PNDM and UniPC take no generator, only DDIM takes eta), as diffusers' pipelines'
        method of the same name."""
        accepted = inspect.signature(self.scheduler.step).parameters
        extra = {}
        if "eta" in accepted:
            extra["eta"] = eta
        if "generator" in accepted:
            extra["generator"] = generator
        return extra

    def fill_defaults(
        self,
        num_frames: int | None,
        height: int | None,
        width: int | None,
        num_inference_steps: int | None,
        image_guidance_scale: float | None,
        text_guidance_scale: float | None,
        guidance_scale: float | None,
    ) -> tuple[int, int, int, int, float, float]:
        """The model's defaults (its config: model_index.json, the one home of a model's defaults)
        for every size, step count and scale left None; every interface resolves them here."""
        cfg = self.config
        if guidance_scale is not None:
            if text_guidance_scale is not None and text_guidance_scale != guidance_scale:
                raise UserError("guidance_scale is text_guidance_scale's other name: give one of them")
            text_guidance_scale = guidance_scale
        default_h, default_w = self.default_size
        return (
            cfg.default_num_frames if num_frames is None else num_frames,
            default_h if height is None else height,
            default_w if width is None else width,
            self.default_num_inference_steps if num_inference_steps is None else num_inference_steps,
            cfg.default_image_guidance_scale if image_guidance_scale is None else image_guidance_scale,
            cfg.default_text_guidance_scale if text_guidance_scale is None else text_guidance_scale,
        )

    # ----------------------------------------------------------------- sampling state (diffusers names)
    @property
    def num_timesteps(self) -> int:
        """Denoising steps of the last (or running) call, all segments together."""
        return self._num_timesteps

    @property
    def guidance_scale(self) -> float:
        """The text guidance scale of the running (or last) call; a step-end callback may set
        `pipe._guidance_scale` to change it from the next step on (diffusers' convention)."""
        return self._guidance_scale

    @property
    def image_guidance_scale(self) -> float:
        """The image guidance scale, changeable the same way (`pipe._image_guidance_scale`)."""
        return self._image_guidance_scale

    @property
    def interrupt(self) -> bool:
        """Set `pipe._interrupt = True` from a step-end callback to skip the remaining steps."""
        return self._interrupt

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | list[ImageInput] | None = None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        image_guidance_scale: float | None = None,
        text_guidance_scale: float | None = None,
        guidance_mode: GuidanceMode | str = GuidanceMode.IMAGE_TEXT,
        num_segments: int = 1,
        num_videos_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        cross_attention_kwargs: dict[str, Any] | None = None,
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        resize_mode: str = "crop",
        conditioning_scale: float = 1.0,
        decode_chunk_size: int = 16,
        guidance_scale: float | None = None,
        strength: float | None = None,
        pin_first_frame: bool | None = None,
        **kwargs: Any,
    ) -> DreamVideoPipelineOutput | tuple:
        """Generate videos whose first frame keeps `image` and whose motion follows `prompt`.

        Args:
            image: the reference image (path, PIL image, or (3, H, W) / (1, 3, H, W) tensor in
                [-1, 1]); a list gives one video per image.
            prompt: the action; a list gives one video per prompt (broadcast against `image`).
            negative_prompt: replaces the empty prompt as the null text condition.
            num_frames, height, width: video size; defaults are the model's.
            num_inference_steps: denoising steps (default: the model's `default_num_inference_steps`).
            image_guidance_scale, text_guidance_scale: s_img and s_txt of the guidance equation;
                `guidance_scale` is the text scale's other name (as InstructPix2Pix names it).
            guidance_mode: 'image+text', 'image' (no text guidance) or 'text' (null image).
            num_segments: > 1 makes a longer video, each segment starting from the previous
                segment's last frame; segments join without repeating that frame.
            num_videos_per_prompt: videos per (image, prompt) pair, each from its own noise.
            eta: DDIM's η (ignored by schedulers that take none).
            generator: one, or a list with one per video.
            latents: initial noise (B, C, F, h, w) for the first segment.
            prompt_embeds, negative_prompt_embeds: precomputed text embeddings (see `encode_prompt`).
            output_type: 'np', 'pil', 'pt' or 'latent' (one segment only).
            cross_attention_kwargs: passed to the attention processors of the UNet and the branch.
            callback_on_step_end: called as f(pipe, step, timestep, tensors) after every step with
                the tensors named in `callback_on_step_end_tensor_inputs`; may return replacements
                (e.g. {"latents": ...}); setting `pipe._interrupt` skips the remaining steps.
            strength: where sampling starts, as a share of the schedule (diffusers' img2img name;
                default: the model's `default_strength`, 1 for folders saved before it): 1 starts
                from pure noise at the last timestep; below 1 starts later, from the reference as
                a still video noised to that level, and runs that share of the steps (Zhao et al.
                2024's remedy for conditional image leakage; docs/method.md).
            pin_first_frame: replace the first frame's prediction at every step by the one that
                leads to the reference's own latents, so the first frame is the reference's
                encoding and the other frames are denoised beside it (default: the model's
                `default_pin_first_frame`; never in 'text' mode, which has no image).
            The deprecated `callback(step, timestep, latents)` / `callback_steps` still work.
        """
        legacy = _legacy_callback(kwargs)  # the deprecated callback / callback_steps pair
        # 0. Defaults: the model's own.
        num_frames, height, width, num_inference_steps, s_img, s_txt = self.fill_defaults(
            num_frames, height, width, num_inference_steps,
            image_guidance_scale, text_guidance_scale, guidance_scale,
        )  # fmt: skip
        mode = GuidanceMode(guidance_mode)
        strength = self.default_strength if strength is None else strength
        pin = self.default_pin_first_frame if pin_first_frame is None else pin_first_frame
        self._interrupt = False

        # 1. Check inputs; broadcast images against prompts.
        prompts = None if prompt_embeds is not None else _text_list(prompt)
        self.check_inputs(height, width, num_frames, num_inference_steps, s_img, s_txt, num_segments, mode,
                          prompts, num_videos_per_prompt, output_type,
                          callback_on_step_end_tensor_inputs, strength)  # fmt: skip
        self._num_timesteps = _steps_from(num_inference_steps, strength) * num_segments
        images, prompts, prompt_embeds, negative_prompt_embeds, mode = _broadcast(
            image, prompts, prompt_embeds, negative_prompt_embeds, mode
        )

        # 2. Encode the text: fixed for the whole video, so once per call, not per step.
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompts,
            num_videos_per_prompt=num_videos_per_prompt,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
        )

        # 3. Prepare the reference image (and the null image's features, shared by every segment).
        reference = torch.cat([self.prepare_image(im, height, width, resize_mode) for im in images])
        reference = reference.repeat_interleave(num_videos_per_prompt, 0)
        null_features = self.encode_reference(torch.zeros_like(reference))

        # Sampling state under diffusers' names: a step-end callback may change the scales.
        self._guidance_scale, self._image_guidance_scale = s_txt, s_img
        step_kwargs = self.prepare_extra_step_kwargs(generator, eta)
        callbacks = (callback_on_step_end, tuple(callback_on_step_end_tensor_inputs), legacy)
        segments: list[torch.Tensor] = []
        with self.progress_bar(total=self._num_timesteps) as progress:
            for segment in range(num_segments):
                # 4. Timesteps and latents; a later segment starts from the previous one's last frame.
                initial = latents if segment == 0 else None
                timesteps, x = self.prepare_start(reference, num_frames, num_inference_steps, strength,
                                                  generator, initial)  # fmt: skip
                # 5. Denoise: every guidance condition in one batched forward a step.
                features = self.encode_reference(reference)
                anchor = self.first_frame_latents(reference) if pin and mode != GuidanceMode.TEXT else None
                model = self.guided_model(mode, features, null_features, conditioning_scale,
                                          cross_attention_kwargs, anchor)  # fmt: skip
                for i, t in enumerate(timesteps):
                    if self.interrupt:
                        continue
                    prediction = model(x, t, prompt_embeds, negative_prompt_embeds)
                    x = self.scheduler.step(prediction, t, x, **step_kwargs).prev_sample
                    tensors = {"latents": x, "prompt_embeds": prompt_embeds,
                               "negative_prompt_embeds": negative_prompt_embeds}  # fmt: skip
                    tensors = self._step_end(segment * len(timesteps) + i, i, t, tensors, callbacks)
                    x, prompt_embeds = tensors["latents"], tensors["prompt_embeds"]
                    negative_prompt_embeds = tensors["negative_prompt_embeds"]
                    progress.update()
                if output_type == "latent":
                    segments = [x]
                    break
                # A reference decoder sees this segment's reference (no image in text mode).
                video = self.decode_latents(x, decode_chunk_size, None if mode == "text" else reference)
                segments.append(video if segment == 0 else video[:, :, 1:])
                reference = video[:, :, -1].clamp(-1, 1).to(reference.dtype)

        # 6. Post-process.
        self.maybe_free_model_hooks()
        frames = (
            segments[0] if output_type == "latent" else self.postprocess(torch.cat(segments, 2), output_type)
        )
        if not return_dict:
            return (frames,)
        return DreamVideoPipelineOutput(frames=frames)

    def _step_end(self, step: int, index: int, t: torch.Tensor, tensors: dict, callbacks: tuple) -> dict:
        """After a denoising step: refuse diverged latents, then the step-end callback (which may
        replace the tensors it asked for) and the deprecated `callback` every `callback_steps`
        steps of a segment (`index`)."""
        if not torch.isfinite(tensors["latents"]).all():  # would decode to a black video
            raise UserError(
                f"sampling diverged at step {step + 1} (non-finite latents): "
                "lower the guidance scales or use another scheduler"
            )
        on_step_end, tensor_inputs, legacy = callbacks
        if on_step_end is not None:
            tensors = tensors | (on_step_end(self, step, t, {k: tensors[k] for k in tensor_inputs}) or {})
        if legacy["callback"] is not None and index % legacy["callback_steps"] == 0:
            legacy["callback"](step, int(t), tensors["latents"])
        return tensors

    def guided_model(
        self,
        mode: GuidanceMode,
        features: torch.Tensor,
        null_features: torch.Tensor,
        conditioning_scale: float = 1.0,
        cross_attention_kwargs: dict[str, Any] | None = None,
        first_frame: torch.Tensor | None = None,
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
        """The guided prediction as a function of (latents, timestep, prompt_embeds,
        negative_prompt_embeds): the guidance conditions of `mode` batched into one forward of
        the denoiser, combined with the scales read at every call (`guidance_scale`,
        `image_guidance_scale`), as k-diffusion wraps a model for its samplers. Given
        `first_frame` latents (B, C, 1, h, w), frame 0's prediction is the one that leads to them
        (`prediction_for_sample`)."""
        denoiser = self.denoiser
        conditions = guidance_conditions(mode)
        n = len(conditions)
        # The batch of the conditions in `guidance_conditions` order.
        feature_batch = torch.cat([features if use_image else null_features for use_image, _ in conditions])

        def model(x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, null_text: torch.Tensor | None):
            context = torch.cat([text if use_text else null_text for _, use_text in conditions])
            x_in = self.scheduler.scale_model_input(x, t)  # the VP x_t (Euler keeps σ-scaled latents)
            noise = denoiser(
                torch.cat([x_in] * n),
                t,
                context,
                image_features=feature_batch,
                conditioning_scale=conditioning_scale,
                cross_attention_kwargs=cross_attention_kwargs,
            )
            chunks = list(noise.chunk(n))
            guided = combine_predictions(mode, chunks, self.image_guidance_scale, self.guidance_scale)
            if first_frame is None:
                return guided
            scheduler = self.scheduler
            pinned = prediction_for_sample(scheduler.config.prediction_type, scheduler.alphas_cumprod,
                                           x_in[:, :, :1], t, first_frame)  # fmt: skip
            return torch.cat([pinned.to(guided.dtype), guided[:, :, 1:]], 2)

        return model


def _steps_from(num_inference_steps: int, strength: float) -> int:
    """How many of the schedule's steps a `strength` runs (at least one)."""
    return max(1, min(num_inference_steps, round(num_inference_steps * strength)))


def _text_list(text: str | list[str] | None) -> list[str]:
    """None -> [""], a string -> [string], a list as it is."""
    return [text or ""] if text is None or isinstance(text, str) else list(text)


def _negatives(negative_prompt: str | list[str] | None, count: int) -> list[str]:
    """One negative prompt per prompt (a single one, or none, is repeated)."""
    if negative_prompt is None or isinstance(negative_prompt, str):
        return [negative_prompt or ""] * count
    negatives = list(negative_prompt)
    if len(negatives) != count:
        raise UserError(f"got {len(negatives)} negative prompts for {count} prompts")
    return negatives


def _broadcast(
    image: ImageInput | list[ImageInput],
    prompts: list[str] | None,
    prompt_embeds: torch.Tensor | None,
    negative_prompt_embeds: torch.Tensor | None,
    mode: GuidanceMode,
) -> tuple[list[ImageInput], list[str] | None, torch.Tensor | None, torch.Tensor | None, GuidanceMode]:
    """One image or prompt (or embedding) repeated against several of the other; an all-empty
    prompt turns image+text guidance into image guidance."""
    if image is None:
        raise UserError("an image is required")
    images = image if isinstance(image, list) else [image]
    num_prompts = len(prompts) if prompts is not None else prompt_embeds.shape[0]
    batch = max(len(images), num_prompts)
    if len(images) not in (1, batch) or num_prompts not in (1, batch):
        raise UserError(f"got {len(images)} images and {num_prompts} prompts: give one, or the same number")
    if prompts is not None:
        prompts = prompts * (batch // len(prompts))
        if mode is GuidanceMode.IMAGE_TEXT and not any(p.strip() for p in prompts):
            logger.info("empty prompt: generating with image guidance only")
            mode = GuidanceMode.IMAGE
    elif num_prompts != batch:
        prompt_embeds = prompt_embeds.repeat(batch, 1, 1)
        if negative_prompt_embeds is not None:
            negative_prompt_embeds = negative_prompt_embeds.repeat(batch, 1, 1)
    return images * (batch // len(images)), prompts, prompt_embeds, negative_prompt_embeds, mode


def _legacy_callback(kwargs: dict) -> dict:
    """The old `callback` / `callback_steps` pair, with diffusers' deprecation warning."""
    callback = kwargs.pop("callback", None)
    callback_steps = kwargs.pop("callback_steps", 1)
    if kwargs:
        raise TypeError(f"unexpected keyword arguments: {', '.join(sorted(kwargs))}")
    if callback is not None:
        deprecate(
            "callback", "1.0.0", "Pass `callback_on_step_end` instead of `callback` and `callback_steps`."
        )
    return {"callback": callback, "callback_steps": callback_steps}


def load_pipeline(path: str | Path | None = None, **kwargs):
    """Load a `DreamVideoPipeline` folder (the shipped default when `path` is None)."""
    if path is None:
        path = default_model_dir()
        if not (path / "model_index.json").is_file():
            raise UserError(
                f"the default model is not installed at {path}; pass --model DIR with a DreamVideo model "
                "folder (or reinstall the package)"
            )
    path = Path(path)
    index = read_model_index(path)
    cls_name = index["_class_name"]
    if cls_name in T2V_PIPELINE_CLASSES:
        raise UserError(
            f"{path} is a text-to-video model ({cls_name}), not DreamVideo: build one from it with "
            "DreamVideoPipeline.from_t2v"
        )
    if cls_name != DreamVideoPipeline.__name__:
        raise UserError(f"{path} holds a {cls_name}, not a DreamVideoPipeline")
    check_model_defaults(path, index)
    check_components(path, index)
    return load_folder(DreamVideoPipeline, path, "the DreamVideo model", **kwargs)
