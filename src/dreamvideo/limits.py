"""What a request may ask for, checked before any model loads (no torch import here).

One home for the ranges the CLI, the web app and the pipeline accept, so a mistake costs no
model loading and every interface refuses the same values with the same one-line message.
"""

from __future__ import annotations

import math
from enum import StrEnum

MAX_FRAMES = 512  # per segment
MAX_TOTAL_FRAMES = 1024  # segments x frames: a chained video's length
MAX_SIDE = 4096
MAX_STEPS = 1000  # the noise schedule's training steps
MAX_GUIDANCE_SCALE = 100.0  # far above any useful scale (defaults 1.5 / 5); larger ones overflow
MAX_FPS = 240
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes [-2**63, 2**64); negatives alias large seeds
MAX_LORA_SCALE = 4.0  # an adapter's weight, either sign (a negative one pushes away from it)


class GuidanceMode(StrEnum):
    """Which conditions guide sampling (docs/method.md; the equation is in `guidance.py`)."""

    IMAGE_TEXT = "image+text"
    IMAGE = "image"
    TEXT = "text"


MODES = tuple(mode.value for mode in GuidanceMode)  # the names the CLI and the web app offer


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value) -> bool:
    """An int or float (not a bool), finite: what a number read from a user's file must be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _error(message: str) -> Exception:
    from .errors import UserError

    return UserError(message)


def check_sampling_values(
    num_frames: int | None = None,
    num_inference_steps: int | None = None,
    image_guidance_scale: float | None = None,
    text_guidance_scale: float | None = None,
    num_segments: int | None = None,
    height: int | None = None,
    width: int | None = None,
) -> None:
    """Model-independent checks of sampling settings (None: not given, not checked)."""
    for name, value in (("height", height), ("width", width)):
        if value is not None and (not _is_int(value) or not 1 <= value <= MAX_SIDE):
            raise _error(f"{name} must be an integer from 1 to {MAX_SIDE}, got {value}")
    if num_frames is not None and (not _is_int(num_frames) or not 1 <= num_frames <= MAX_FRAMES):
        raise _error(f"frames must be an integer from 1 to {MAX_FRAMES}, got {num_frames}")
    if num_segments is not None:
        if not _is_int(num_segments) or num_segments < 1:
            raise _error(f"segments must be a positive integer, got {num_segments}")
        if num_segments > 1 and num_frames is not None and num_frames < 2:
            raise _error("segments after the first need at least 2 frames each")
        if num_segments * (num_frames or 1) > MAX_TOTAL_FRAMES:
            total = f"{num_segments} x {num_frames or 1}"
            raise _error(f"segments x frames must be at most {MAX_TOTAL_FRAMES}, got {total}")
    if num_inference_steps is not None and (
        not _is_int(num_inference_steps) or not 1 <= num_inference_steps <= MAX_STEPS
    ):
        raise _error(f"steps must be an integer from 1 to {MAX_STEPS}, got {num_inference_steps}")
    for name, value in (
        ("image guidance scale", image_guidance_scale),
        ("text guidance scale", text_guidance_scale),
    ):
        if value is not None and (not is_finite_number(value) or not 0 <= value <= MAX_GUIDANCE_SCALE):
            raise _error(f"{name} must be a number from 0 to {MAX_GUIDANCE_SCALE:g}, got {value}")


def check_strength(strength: float | None) -> None:
    """Where sampling starts, as a share of the schedule: above 0, at most 1 (None: not given)."""
    if strength is not None and (
        not isinstance(strength, int | float) or isinstance(strength, bool) or not 0 < strength <= 1
    ):
        raise _error(f"strength must be a number above 0 and at most 1, got {strength}")


def check_seed(seed: int | None) -> None:
    if seed is not None and (not _is_int(seed) or not 0 <= seed <= MAX_SEED):
        raise _error(f"seed must be an integer from 0 to 2**63 - 1, got {seed}")


def check_fps(fps: int | None) -> None:
    if fps is not None and (not _is_int(fps) or not 1 <= fps <= MAX_FPS):
        raise _error(f"fps must be an integer from 1 to {MAX_FPS}, got {fps}")
