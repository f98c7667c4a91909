"""`DreamVideoPipeline`: image + prompt -> video, read top to bottom in `__call__`."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet3DConditionModel
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .errors import UserError
from .guidance import GuidanceMode, combine_predictions, guidance_conditions
from .io.images import fit_image, image_to_tensor, load_image, to_rgb
from .limits import MAX_SIDE, check_sampling_values
from .models import DreamVideoDenoiser, FrameRetentionBranch
from .text import encode_prompts

logger = logging.getLogger(__name__)

ImageInput = PIL.Image.Image | str | Path | torch.Tensor


@dataclass
class DreamVideoPipelineOutput(BaseOutput):
    """`frames`: (B, F, H, W, 3) floats in [0, 1] for 'np', lists of PIL images for 'pil',
    (B, F, 3, H, W) in [0, 1] for 'pt', or the final latents (B, C, F, h, w) for 'latent'."""

    frames: np.ndarray | list[list[PIL.Image.Image]] | torch.Tensor


class DreamVideoPipeline(DiffusionPipeline):
    """Image-to-video with text control: a T2V latent diffusion model plus a frame retention branch.

    Components: `vae`, `text_encoder`, `tokenizer`, `unet` (the base `UNet3DConditionModel`),
    `retention_branch` (`FrameRetentionBranch`) and `scheduler` (any diffusers scheduler;
    DDIM by default). Config values give the model's defaults (frames, fps, guidance scales).
    """

    # The branch runs beside the UNet at every step, so it is left out of the chain (as diffusers
    # does for ControlNet): it gets its own hook and stays on the device instead of swapping
    # places with the UNet twice a step.
    model_cpu_offload_seq = "text_encoder->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        text_encoder: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        unet: UNet3DConditionModel,
        retention_branch: FrameRetentionBranch,
        scheduler: DDIMScheduler,
        default_num_frames: int = 16,
        default_fps: int = 8,
        default_image_guidance_scale: float = 1.5,
        default_text_guidance_scale: float = 7.5,
    ):
        super().__init__()
        self.register_modules(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            retention_branch=retention_branch,
            scheduler=scheduler,
        )
        self.register_to_config(
            default_num_frames=default_num_frames,
            default_fps=default_fps,
            default_image_guidance_scale=default_image_guidance_scale,
            default_text_guidance_scale=default_text_guidance_scale,
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.video_processor = VideoProcessor(do_resize=False, vae_scale_factor=self.vae_scale_factor)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_t2v(
        cls,
        t2v: DiffusionPipeline | str | Path,
        image_embed_channels: int = 4,
        image_encoder_type: str = "strided",
        **pipeline_config,
    ) -> DreamVideoPipeline:
        """Build DreamVideo from a diffusers text-to-video pipeline or folder (TextToVideoSDPipeline
        layout). The branch is copied from the UNet with zero-initialised injections, so the new
        pipeline's noise prediction equals the base model's. `image_encoder_type`: the branch's conv
        encoder of the reference, "strided" (stride-2 convs from pixels, as ControlNet's
        conditioning embedding) or "space_to_depth" (pixel unshuffle, then two convs)."""
        if not isinstance(t2v, DiffusionPipeline):
            from .loading import load_t2v

            t2v = load_t2v(t2v)
        branch = FrameRetentionBranch.from_unet(
            t2v.unet,
            image_embed_channels=image_embed_channels,
            downscale_factor=2 ** (len(t2v.vae.config.block_out_channels) - 1),
            image_encoder_type=image_encoder_type,
        )
        return cls(
            vae=t2v.vae,
            text_encoder=t2v.text_encoder,
            tokenizer=t2v.tokenizer,
            unet=t2v.unet,
            retention_branch=branch,
            scheduler=t2v.scheduler,
            **pipeline_config,
        )

    @property
    def denoiser(self) -> DreamVideoDenoiser:
        return DreamVideoDenoiser(self.unet, self.retention_branch)

    # ----------------------------------------------------------------- sizes and checks
    @property
    def spatial_multiple(self) -> int:
        """Height and width must be multiples of this (VAE factor x UNet down-sampling)."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

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
        prompts: list[str],
    ) -> None:
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
        if GuidanceMode(mode) is GuidanceMode.TEXT and not all(p.strip() for p in prompts):
            raise UserError("text-only mode needs a non-empty prompt")

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

    def enable_vae_slicing(self) -> None:
        """Decode one frame at a time (the VAE's peak memory is per decoded batch)."""
        self._decode_chunk_override = 1

    def disable_vae_slicing(self) -> None:
        self._decode_chunk_override = None

    def encode_text(
        self, prompts: list[str], negative_prompts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt embeddings and the 'null text' embeddings (the negative prompt, empty by default)."""
        embeds = encode_prompts(self.tokenizer, self.text_encoder, prompts + negative_prompts)
        embeds = embeds.to(self.unet.dtype)
        return embeds[: len(prompts)], embeds[len(prompts) :]

    def decode_latents(self, latents: torch.Tensor, decode_chunk_size: int = 16) -> torch.Tensor:
        """(B, C, F, h, w) latents -> (B, 3, F, H, W) frames in [-1, 1], a chunk of frames at a time."""
        decode_chunk_size = getattr(self, "_decode_chunk_override", None) or decode_chunk_size
        batch, channels, frames, h, w = latents.shape
        flat = latents.permute(0, 2, 1, 3, 4).reshape(batch * frames, channels, h, w)
        flat = flat / self.vae.config.scaling_factor
        decoded = [
            self.vae.decode(chunk.to(self.vae.dtype)).sample for chunk in flat.split(decode_chunk_size)
        ]
        video = torch.cat(decoded)
        return video.reshape(batch, frames, *video.shape[1:]).permute(0, 2, 1, 3, 4).float()

    def prepare_extra_step_kwargs(self, generator: torch.Generator | None) -> dict:
        """What `scheduler.step` takes beyond (output, t, x): PNDM and UniPC take no generator
        (as diffusers' pipelines' method of the same name)."""
        accepted = inspect.signature(self.scheduler.step).parameters
        return {"generator": generator} if "generator" in accepted else {}

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | list[ImageInput],
        prompt: str | list[str] = "",
        negative_prompt: str | list[str] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 25,
        image_guidance_scale: float | None = None,
        text_guidance_scale: float | None = None,
        guidance_mode: GuidanceMode | str = GuidanceMode.IMAGE_TEXT,
        num_segments: int = 1,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "np",
        return_dict: bool = True,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        callback_steps: int = 1,
        resize_mode: str = "crop",
        conditioning_scale: float = 1.0,
        decode_chunk_size: int = 16,
    ) -> DreamVideoPipelineOutput | tuple:
        """Generate videos whose first frame keeps `image` and whose motion follows `prompt`.

        Args:
            image: the reference image (path, PIL image, or (3, H, W) / (1, 3, H, W) tensor in
                [-1, 1]); a list gives one video per image.
            prompt: the action; a list gives one video per prompt (broadcast against `image`).
            negative_prompt: replaces the empty prompt as the null text condition.
            num_frames, height, width: video size; defaults are the model's.
            image_guidance_scale, text_guidance_scale: s_img and s_txt of the guidance equation.
            guidance_mode: 'image+text', 'image' (no text guidance) or 'text' (null image).
            num_segments: > 1 makes a longer video, each segment starting from the previous
                segment's last frame; segments join without repeating that frame.
            latents: initial noise (B, C, F, h, w) for the first segment.
            output_type: 'np', 'pil', 'pt' or 'latent' (one segment only).
            callback: called as callback(step, timestep, latents) every `callback_steps` steps.
        """
        cfg = self.config
        mode = GuidanceMode(guidance_mode)
        num_frames = cfg.default_num_frames if num_frames is None else num_frames
        default_h, default_w = self.default_size
        height = default_h if height is None else height
        width = default_w if width is None else width
        s_img = cfg.default_image_guidance_scale if image_guidance_scale is None else image_guidance_scale
        s_txt = cfg.default_text_guidance_scale if text_guidance_scale is None else text_guidance_scale

        images = image if isinstance(image, list) else [image]
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        batch = max(len(images), len(prompts))
        if len(images) not in (1, batch) or len(prompts) not in (1, batch):
            raise UserError(
                f"got {len(images)} images and {len(prompts)} prompts: give one, or the same number"
            )
        images, prompts = images * (batch // len(images)), prompts * (batch // len(prompts))
        if negative_prompt is None:
            negative_prompt = ""
        negatives = [negative_prompt] * batch if isinstance(negative_prompt, str) else list(negative_prompt)
        if len(negatives) != batch:
            raise UserError(f"got {len(negatives)} negative prompts for {batch} videos")
        self.check_inputs(
            height, width, num_frames, num_inference_steps, s_img, s_txt, num_segments, mode, prompts
        )
        if mode is GuidanceMode.IMAGE_TEXT and not any(p.strip() for p in prompts):
            logger.info("empty prompt: generating with image guidance only")
            mode = GuidanceMode.IMAGE
        if output_type == "latent" and num_segments > 1:
            raise UserError("output_type='latent' needs num_segments=1")

        # 1. Conditions that stay fixed for the whole video: computed once, not per step.
        text_embeds, null_text_embeds = self.encode_text(prompts, negatives)
        reference = torch.cat([self.prepare_image(im, height, width, resize_mode) for im in images])
        null_features = self.encode_reference(torch.zeros_like(reference))
        conditions = guidance_conditions(mode)

        denoiser = self.denoiser  # one wrapper for the whole call, not one per step
        step_kwargs = self.prepare_extra_step_kwargs(generator)
        total_steps = num_inference_steps * num_segments
        segments: list[torch.Tensor] = []
        with self.progress_bar(total=total_steps) as progress:
            for segment in range(num_segments):
                features = self.encode_reference(reference)
                # Batch of the conditions in `guidance_conditions` order: one forward per step.
                context = torch.cat([text_embeds if t else null_text_embeds for _, t in conditions])
                feature_batch = torch.cat([features if i else null_features for i, _ in conditions])

                # 2. Denoise.
                self.scheduler.set_timesteps(num_inference_steps, device=self._execution_device)
                shape = (
                    batch,
                    self.unet.config.in_channels,
                    num_frames,
                    height // self.vae_scale_factor,
                    width // self.vae_scale_factor,
                )
                if segment == 0 and latents is not None:
                    x = latents.to(self._execution_device, self.unet.dtype) * self.scheduler.init_noise_sigma
                else:
                    x = randn_tensor(
                        shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype
                    )
                    x = x * self.scheduler.init_noise_sigma
                for i, t in enumerate(self.scheduler.timesteps):
                    model_input = self.scheduler.scale_model_input(torch.cat([x] * len(conditions)), t)
                    noise = denoiser(
                        model_input,
                        t,
                        context,
                        image_features=feature_batch,
                        conditioning_scale=conditioning_scale,
                    )
                    guided = combine_predictions(mode, list(noise.chunk(len(conditions))), s_img, s_txt)
                    x = self.scheduler.step(guided, t, x, **step_kwargs).prev_sample
                    if not torch.isfinite(x).all():  # would decode to a black video
                        raise UserError(
                            f"sampling diverged at step {i + 1} (non-finite latents): "
                            "lower the guidance scales or use another scheduler"
                        )
                    progress.update()
                    if callback is not None and i % callback_steps == 0:
                        callback(segment * num_inference_steps + i, int(t), x)

                if output_type == "latent":
                    segments.append(x)
                    break
                # 3. Decode; the next segment starts from this one's last frame.
                video = self.decode_latents(x, decode_chunk_size)
                segments.append(video if segment == 0 else video[:, :, 1:])
                reference = video[:, :, -1].clamp(-1, 1).to(reference.dtype)

        self.maybe_free_model_hooks()
        if output_type == "latent":
            frames = segments[0]
        else:
            video = torch.cat(segments, dim=2)
            if output_type == "pt":
                frames = ((video + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4)
            else:
                frames = self.video_processor.postprocess_video(video, output_type=output_type)
        if not return_dict:
            return (frames,)
        return DreamVideoPipelineOutput(frames=frames)
