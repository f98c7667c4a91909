"""Reading and preparing the reference image.

Every user image goes through `load_image`: it refuses what cannot be used with a
`UserError` (one clear line) and converts everything it accepts to 8-bit RGB.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import UserError

logger = logging.getLogger(__name__)

MIN_SIDE = 8
# Larger images are refused before decoding (JPEGs are first downscaled while decoding).
MAX_PIXELS = 64_000_000
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")


def _open_checked(path: Path) -> Image.Image:
    if "\x00" in str(path):
        raise UserError(f"image path holds a NUL character: {str(path)[:120]!r}")
    if not path.exists():
        raise UserError(f"image not found: {path}")
    if path.is_dir():
        raise UserError(f"image path is a directory, not a file: {path}")
    if not path.is_file():  # a FIFO under an image's name would block the reader
        raise UserError(f"image is not a regular file (a pipe, socket or device): {path}")
    if path.stat().st_size == 0:
        raise UserError(f"image file is empty (0 bytes): {path}")
    # Only formats we decode ourselves: never hand a file (whatever its name) to an external
    # interpreter such as Ghostscript (EPS). Pillow's global bomb limit is left as it is:
    # threads (the web app's previews) share it.
    try:
        return Image.open(path, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise UserError(f"image is too large to decode safely ({e}); downscale it first: {path}") from e
    except UnidentifiedImageError as e:
        raise UserError(f"not an image file, or not one of {', '.join(ALLOWED_FORMATS)}: {path}") from e
    except OSError as e:
        raise UserError(f"cannot read image {path}: {e}") from e


def load_image(path: str | Path, target_size: tuple[int, int] | None = None) -> Image.Image:
    """Open, validate and convert an image file to 8-bit RGB with EXIF orientation applied.

    `target_size` (width, height), when given, lets JPEG decoding downscale huge images early.
    """
    path = Path(path)
    image = _open_checked(path)
    width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise UserError(
            f"image is {width}x{height}; at least {MIN_SIDE}x{MIN_SIDE} pixels are needed: {path}"
        )
    if width * height > MAX_PIXELS and image.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale: never holds the full-size image in memory.
        want = target_size or (1024, 1024)
        image.draft("RGB", (max(want[0], 1024), max(want[1], 1024)))
        width, height = image.size
    if width * height > MAX_PIXELS:
        raise UserError(
            f"image is {width}x{height} ({width * height / 1e6:.0f} MP), over the {MAX_PIXELS / 1e6:.0f} MP "
            f"limit; downscale it first: {path}"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        logger.warning("%s is animated (%d frames): using its first frame", path, frames)
        image.seek(0)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise UserError(f"image file is truncated or corrupt: {path} ({e})") from e
    return to_rgb(ImageOps.exif_transpose(image))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB; transparency is composited over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        if image.mode == "F":
            peak = max(float(array.max()), 1e-8)
        return Image.fromarray(np.clip(array / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def fit_image(image: Image.Image, width: int, height: int, resize_mode: str = "crop") -> Image.Image:
    """Resize to (width, height): 'crop' keeps the centre, 'pad' letterboxes with black."""
    if resize_mode == "crop":
        return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    if resize_mode == "pad":
        return ImageOps.pad(image, (width, height), method=Image.Resampling.LANCZOS, color=(0, 0, 0))
    raise UserError(f"unknown resize mode {resize_mode!r}: use 'crop' or 'pad'")


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (1, 3, H, W) float tensor in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def frames_to_signed(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) uint8 frames -> (..., 3, H, W) float in [-1, 1] (the models' range)."""
    return _as_torch(frames).movedim(-1, -3).float() / 127.5 - 1.0


def frames_to_unit(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) uint8 frames -> (..., 3, H, W) float in [0, 1] (the metrics' range)."""
    return _as_torch(frames).movedim(-1, -3).float() / 255.0


def unit_to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (the pipeline's 'np' output) -> uint8, rounded."""
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def _as_torch(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    return frames if isinstance(frames, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(frames))


def tensor_to_images(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) tensor in [-1, 1] -> (..., H, W, 3) uint8 array."""
    array = ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return array.movedim(-3, -1).cpu().numpy()
