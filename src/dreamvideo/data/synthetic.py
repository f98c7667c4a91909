"""Procedural, text-controlled motion clips: the training data of the embedded default model.

Every clip is a pure function of (seed, split, index): a background (flat, gradient, texture
or a real-photo crop), an object (a coloured shape, a textured sprite or a real-photo patch)
and one of 13 actions (object moves / rotates / grows / shrinks, camera pans / zooms, or
nothing moves), described by one of several phrasings. The held-out split uses other seeds,
held-out photographs and, for every action, a phrasing never used in training.

Frames are rendered by composing affine maps (camera ∘ object) with Pillow, so motion is
sub-pixel smooth. Each clip records its ground-truth motion for evaluation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .clip import Clip

# action -> (kind, phrasings). The last phrasing of each action is held out of training; its words
# (drifts, floats, sinks, revolves, swells, dwindles, sweeps, pushes in, pulls away, remains
# motionless) are in no training phrasing. Training captions use the other 15
# (`data.train_phrasings` picks fewer, the first ones).
ACTIONS: dict[str, tuple[str, list[str]]] = {
    "move_left": (
        "object",
        [
            "the {obj} moves to the left",
            "a {obj} slides left",
            "{obj} moving left",
            "the {obj} travels leftward",
            "move the {obj} to the left",
            "the {obj} glides to the left",
            "the {obj} shifts left",
            "{obj} going left",
            "the {obj} heads left",
            "a {obj} moving toward the left",
            "the {obj} runs to the left",
            "the {obj} slides over to the left",
            "the {obj} goes left across the frame",
            "{obj} travelling to the left",
            "a {obj} heads leftward",
            "the {obj} drifts toward the left side",
        ],
    ),
    "move_right": (
        "object",
        [
            "the {obj} moves to the right",
            "a {obj} slides right",
            "{obj} moving right",
            "the {obj} travels rightward",
            "move the {obj} to the right",
            "the {obj} glides to the right",
            "the {obj} shifts right",
            "{obj} going right",
            "the {obj} heads right",
            "a {obj} moving toward the right",
            "the {obj} runs to the right",
            "the {obj} slides over to the right",
            "the {obj} goes right across the frame",
            "{obj} travelling to the right",
            "a {obj} heads rightward",
            "the {obj} drifts toward the right side",
        ],
    ),
    "move_up": (
        "object",
        [
            "the {obj} moves up",
            "a {obj} rises",
            "{obj} moving upward",
            "the {obj} travels to the top",
            "move the {obj} up",
            "the {obj} goes up",
            "a {obj} climbs",
            "the {obj} lifts upward",
            "{obj} going up",
            "the {obj} ascends",
            "the {obj} heads to the top",
            "a {obj} moving toward the top",
            "the {obj} rises up the frame",
            "the {obj} shifts upward",
            "{obj} climbing up",
            "the {obj} floats upward",
        ],
    ),
    "move_down": (
        "object",
        [
            "the {obj} moves down",
            "a {obj} falls",
            "{obj} moving downward",
            "the {obj} travels to the bottom",
            "move the {obj} down",
            "the {obj} goes down",
            "a {obj} drops",
            "the {obj} descends",
            "{obj} going down",
            "the {obj} heads to the bottom",
            "a {obj} moving toward the bottom",
            "the {obj} falls down the frame",
            "the {obj} shifts downward",
            "{obj} dropping down",
            "the {obj} comes down",
            "the {obj} sinks downward",
        ],
    ),
    "rotate_cw": (
        "object",
        [
            "the {obj} rotates clockwise",
            "a {obj} spins clockwise",
            "{obj} turning clockwise",
            "rotate the {obj} clockwise",
            "the {obj} twists to the right",
            "the {obj} turns clockwise",
            "a {obj} rotating clockwise",
            "{obj} spinning clockwise",
            "the {obj} spins to the right",
            "the {obj} turns to the right",
            "a {obj} twirls clockwise",
            "the {obj} rotates in a clockwise direction",
            "{obj} turning right",
            "clockwise spin of the {obj}",
            "the {obj} keeps turning clockwise",
            "the {obj} revolves clockwise",
        ],
    ),
    "rotate_ccw": (
        "object",
        [
            "the {obj} rotates counterclockwise",
            "a {obj} spins counterclockwise",
            "{obj} turning anticlockwise",
            "rotate the {obj} counterclockwise",
            "the {obj} twists to the left",
            "the {obj} turns counterclockwise",
            "a {obj} rotating anticlockwise",
            "{obj} spinning counterclockwise",
            "the {obj} spins to the left",
            "the {obj} turns to the left",
            "a {obj} twirls counterclockwise",
            "the {obj} rotates in a counterclockwise direction",
            "{obj} turning left",
            "counterclockwise spin of the {obj}",
            "the {obj} keeps turning anticlockwise",
            "the {obj} revolves anticlockwise",
        ],
    ),
    "grow": (
        "object",
        [
            "the {obj} grows",
            "a {obj} gets bigger",
            "{obj} expanding",
            "the {obj} becomes larger",
            "make the {obj} grow",
            "the {obj} gets larger",
            "a {obj} enlarging",
            "{obj} growing bigger",
            "the {obj} increases in size",
            "the {obj} expands",
            "a {obj} getting bigger and bigger",
            "the {obj} scales up",
            "{obj} becoming bigger",
            "the {obj} grows larger",
            "a {obj} inflates",
            "the {obj} swells in size",
        ],
    ),
    "shrink": (
        "object",
        [
            "the {obj} shrinks",
            "a {obj} gets smaller",
            "{obj} contracting",
            "the {obj} becomes smaller",
            "make the {obj} shrink",
            "the {obj} gets tinier",
            "a {obj} reducing in size",
            "{obj} shrinking smaller",
            "the {obj} decreases in size",
            "the {obj} contracts",
            "a {obj} getting smaller and smaller",
            "the {obj} scales down",
            "{obj} becoming smaller",
            "the {obj} shrinks down",
            "a {obj} deflates",
            "the {obj} dwindles in size",
        ],
    ),
    "pan_left": (
        "camera",
        [
            "the camera pans left",
            "camera panning to the left",
            "pan left across the scene",
            "the view moves left",
            "a slow pan to the left",
            "the camera moves left",
            "camera pans to the left",
            "panning left",
            "the camera turns to the left",
            "a pan toward the left",
            "the shot pans left",
            "camera panning leftward",
            "the camera glides left",
            "pan the camera to the left",
            "the view pans left",
            "the camera sweeps leftward",
        ],
    ),
    "pan_right": (
        "camera",
        [
            "the camera pans right",
            "camera panning to the right",
            "pan right across the scene",
            "the view moves right",
            "a slow pan to the right",
            "the camera moves right",
            "camera pans to the right",
            "panning right",
            "the camera turns to the right",
            "a pan toward the right",
            "the shot pans right",
            "camera panning rightward",
            "the camera glides right",
            "pan the camera to the right",
            "the view pans right",
            "the camera sweeps rightward",
        ],
    ),
    "zoom_in": (
        "camera",
        [
            "the camera zooms in",
            "zoom in on the {obj}",
            "camera zooming in",
            "the view closes in",
            "a slow zoom in",
            "camera zooms in on the {obj}",
            "zooming in",
            "the shot zooms in",
            "a zoom in on the {obj}",
            "the camera moves in",
            "zoom in closer",
            "the view zooms in",
            "the camera gets closer to the {obj}",
            "zooming in on the scene",
            "the lens zooms in",
            "the camera pushes in closer",
        ],
    ),
    "zoom_out": (
        "camera",
        [
            "the camera zooms out",
            "zoom out from the {obj}",
            "camera zooming out",
            "the view pulls back",
            "a slow zoom out",
            "camera zooms out from the {obj}",
            "zooming out",
            "the shot zooms out",
            "a zoom out from the {obj}",
            "the camera moves back",
            "zoom out wider",
            "the view zooms out",
            "the camera backs away from the {obj}",
            "zooming out of the scene",
            "the lens zooms out",
            "the camera pulls away",
        ],
    ),
    "still": (
        "none",
        [
            "the {obj} stays still",
            "a still {obj}",
            "nothing moves",
            "a static shot of the {obj}",
            "the {obj} does not move",
            "the {obj} stays put",
            "a {obj} not moving",
            "nothing happens to the {obj}",
            "the {obj} is still",
            "a shot where nothing moves",
            "the {obj} holds still",
            "everything stays still",
            "a {obj} at rest",
            "the scene stays still",
            "the {obj} keeps still",
            "the {obj} remains motionless",
        ],
    ),
}
ACTION_NAMES = list(ACTIONS)


def action_probabilities(weights: dict[str, float]) -> np.ndarray:
    """`data.action_weights` as the probability of each of `ACTION_NAMES` (an action left out weighs
    1): more of the motions a model learns last, without changing any clip."""
    unknown = sorted(set(weights) - set(ACTION_NAMES))
    if unknown:
        raise ValueError(f"unknown action(s) {', '.join(map(repr, unknown))}: use {', '.join(ACTION_NAMES)}")
    values = np.array([float(weights.get(a, 1.0)) for a in ACTION_NAMES])
    if not (np.isfinite(values).all() and (values >= 0).all() and values.sum() > 0):
        raise ValueError("action weights must be finite, non-negative and not all zero")
    return values / values.sum()


# Motions the default model never trained on: the clips of a fine-tuning example (a LoRA adapter
# teaches one; docs/training.md). `make_clip(action=...)` renders them; the default data never
# draws them. The last phrasing is held out, as above.
NEW_ACTIONS: dict[str, tuple[str, list[str]]] = {
    "move_up_right": (
        "object",
        [
            "the {obj} moves diagonally up and to the right",
            "a {obj} slides up and to the right",
            "{obj} moving diagonally toward the top right",
            "the {obj} travels up and right",
            "the {obj} heads to the top right corner",
            "the {obj} climbs diagonally to the right",
        ],
    ),
}
DIAGONALS = {"move_up_right": (1.0, -1.0)}  # (x, y) direction, y down
OPPOSITES = [
    ("move_left", "move_right"),
    ("move_up", "move_down"),
    ("rotate_cw", "rotate_ccw"),
    ("grow", "shrink"),
    ("pan_left", "pan_right"),
    ("zoom_in", "zoom_out"),
]

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "pink": (240, 120, 180),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
    "cyan": (40, 200, 210),
    "brown": (130, 80, 40),
    "gray": (128, 128, 128),
}
SHAPES = ["circle", "square", "triangle", "star", "diamond", "cross", "hexagon"]
# skimage.data photographs: crops of the first group are training data; the second group
# (and the repo's examples/, cut from them) is never seen in training. skimage.data.cat is chelsea.
TRAIN_PHOTOS = [
    "astronaut",
    "immunohistochemistry",
    "hubble_deep_field",
    "colorwheel",
    "retina",
    "camera",
    "coins",
]
HELDOUT_PHOTOS = ["coffee", "rocket", "chelsea"]
# Photographs for fine-tuning the VAE's decoder on natural detail (`vae` stage,
# `photo_crops_per_batch`): the training photos and others the installed packages ship
# (skimage.data, matplotlib's sample data); never HELDOUT_PHOTOS.
DECODER_PHOTOS = [*TRAIN_PHOTOS, "stereo_motorcycle", "grace_hopper", "moon", "clock", "cell"]
TEXTURE_PHOTOS = ["brick", "grass", "gravel"]
SPLIT_SEED_OFFSET = {"train": 0, "heldout": 1_000_003}
# How much rotations and size changes move the content over a clip (`data.motion_ranges`).
# "large" (the default, and the evaluation suite's) moves an object's edge about as far per frame
# as the translations do (1.5–3 px/frame at 64×64 × 8 frames); "small" moves it 0.2–0.9 px/frame,
# near the motion estimator's 0.3 px "still" threshold (research/motion_magnitudes.py): the recipe's
# stages up to i2v_motion3 trained on it.
MOTION_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "large": {
        "rotation_deg": (12.0, 24.0),  # per frame
        "object_scale_total": (2.0, 2.8),  # size ratio of the last frame to the first
        "zoom_total": (1.8, 2.4),
        "grow_start_size": (0.7, 0.7),  # a growing object starts at this times its base size
    },
    "small": {
        "rotation_deg": (6.0, 14.0),
        "object_scale_total": (1.6, 2.2),
        "zoom_total": (1.5, 1.9),
        "grow_start_size": (0.8, 0.8),
    },
}
DEFAULT_MOTION_RANGES = "large"
# Speed words (`data.speed_words`, ours): a word after the caption, and the clip's motion scaled to
# match it: translations' and pans' speed and rotations' rate times the factor, size and zoom
# ratios to the power of the factor (""; no word: the clip as drawn). The caps keep the fastest
# clips inside the canvas and below the rates where a shape's symmetry makes rotation ambiguous.
SPEED_WORDS = {"slowly": 0.45, "": 1.0, "quickly": 1.6}
SPEED_CAPS = {"speed": 4.5, "rotation_deg": 32.0, "total": 3.6}  # px / frame at 64 px, °/frame, ratio
# Training phrasings per action (`data.train_phrasings`): 0 takes all 15.
MAX_TRAIN_PHRASINGS = 15


@dataclass
class ClipSpec:
    action: str
    caption: str
    object_name: str
    num_frames: int
    size: int
    # Ground truth, in output pixels per frame (camera motion as the content's motion).
    dx: float = 0.0
    dy: float = 0.0
    rotation_deg: float = 0.0  # per frame, positive = clockwise on screen
    scale_rate: float = 1.0  # per-frame multiplicative size change of the content
    meta: dict = field(default_factory=dict)


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """A photograph shipped by an installed package, by name, as (H, W, 3) uint8."""
    import skimage.data

    if name == "grace_hopper":  # matplotlib's sample portrait
        import matplotlib.cbook

        image = np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")).convert("RGB"))
    elif name == "stereo_motorcycle":
        image = skimage.data.stereo_motorcycle()[0]  # the left view of the pair
    else:
        image = getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, -1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def random_crop(
    rng: np.random.Generator, photo: np.ndarray, size: int, smallest: float = 0.25
) -> Image.Image:
    """A random square crop of `photo`, its side at least `smallest` of the photo's, as size×size."""
    h, w = photo.shape[:2]
    side = int(rng.integers(int(min(h, w) * smallest), min(h, w) + 1))
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size), Image.Resampling.BICUBIC)


def _background(rng: np.random.Generator, size: int, photos: list[str]) -> Image.Image:
    kind = rng.choice(["flat", "gradient", "texture", "photo"], p=[0.25, 0.25, 0.2, 0.3])
    if kind == "flat":
        return Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
    if kind == "gradient":
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:size, 0:size] / size
        t = np.clip((np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2, 0, 1)[..., None]
        return Image.fromarray((a * (1 - t) + b * t).astype(np.uint8))
    if kind == "texture":
        if rng.random() < 0.5:
            tile = random_crop(rng, load_photo(str(rng.choice(TEXTURE_PHOTOS))), size)
            tint = rng.uniform(0.5, 1.2, 3)
            return Image.fromarray(np.clip(np.asarray(tile) * tint, 0, 255).astype(np.uint8))
        period = int(rng.integers(6, 20))
        yy, xx = np.mgrid[0:size, 0:size]
        pattern = ((xx // period + yy // period) % 2) if rng.random() < 0.5 else ((xx + yy) // period % 2)
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        return Image.fromarray(np.where(pattern[..., None] == 1, a, b).astype(np.uint8))
    return random_crop(rng, load_photo(str(rng.choice(photos))), size)


def _shape_mask(shape: str, res: int) -> Image.Image:
    mask = Image.new("L", (res, res), 0)
    draw = ImageDraw.Draw(mask)
    c, r = res / 2, res * 0.46
    if shape == "circle":
        draw.ellipse([c - r, c - r, c + r, c + r], fill=255)
    elif shape == "square":
        draw.rectangle([c - r * 0.85, c - r * 0.85, c + r * 0.85, c + r * 0.85], fill=255)
    elif shape == "cross":
        w = r * 0.35
        draw.rectangle([c - r, c - w, c + r, c + w], fill=255)
        draw.rectangle([c - w, c - r, c + w, c + r], fill=255)
    else:
        n, inner = {"triangle": (3, None), "star": (5, 0.45), "diamond": (4, None), "hexagon": (6, None)}[
            shape
        ]
        count = 2 * n if inner else n
        points = []
        for i in range(count):
            radius = r * (inner if inner and i % 2 else 1)
            a = -math.pi / 2 + 2 * math.pi * i / count
            points.append((c + radius * math.cos(a), c + radius * math.sin(a)))
        draw.polygon(points, fill=255)
    return mask


def _sprite(
    rng: np.random.Generator, res: int, photos: list[str], rotating: bool = False
) -> tuple[Image.Image, str]:
    """An RGBA sprite (res x res) and its name for captions. A rotating circle (or hexagon) would
    look still, so rotations use other shapes."""
    kind = rng.choice(["shape", "textured", "photo"], p=[0.6, 0.2, 0.2])
    shape = str(rng.choice([s for s in SHAPES if not (rotating and s in ("circle", "hexagon"))]))
    color_name = str(rng.choice(list(COLORS)))
    mask = _shape_mask(shape, res)
    if kind == "shape":
        fill = Image.new("RGB", (res, res), COLORS[color_name])
        name = f"{color_name} {shape}"
    elif kind == "textured":
        base = np.asarray(Image.new("RGB", (res, res), COLORS[color_name]), dtype=np.float32)
        period = int(rng.integers(res // 8, res // 3))
        yy, xx = np.mgrid[0:res, 0:res]
        stripes = ((xx + (yy if rng.random() < 0.5 else 0)) // period % 2)[..., None]
        fill = Image.fromarray(np.clip(base * (0.55 + 0.45 * stripes), 0, 255).astype(np.uint8))
        name = f"striped {color_name} {shape}"
    else:
        fill = random_crop(rng, load_photo(str(rng.choice(photos))), res)
        mask = _shape_mask(
            str(rng.choice(["square", "diamond"] + ([] if rotating else ["circle", "hexagon"]))), res
        )
        name = "picture"
    # A thin dark outline keeps the object visible on any background.
    outline = mask.filter(ImageFilter.MaxFilter(max(3, res // 32 * 2 + 1)))
    sprite = Image.new("RGBA", (res, res), (15, 15, 15, 0))
    sprite.putalpha(outline)
    sprite.paste(fill, (0, 0), mask)
    return sprite, name


def _affine(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    """Map from source coords to destination coords: rotate (clockwise on screen), scale, translate."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a) * scale, math.sin(a) * scale
    return np.array([[cos, -sin, tx], [sin, cos, ty], [0, 0, 1]])


def _warp(image: Image.Image, forward: np.ndarray, size: int) -> Image.Image:
    inverse = np.linalg.inv(forward)
    return image.transform(
        (size, size), Image.Transform.AFFINE, tuple(inverse[:2].ravel()), resample=Image.Resampling.BICUBIC
    )


def make_clip(
    seed: int,
    index: int,
    split: str = "train",
    size: int = 64,
    num_frames: int = 16,
    action: str | None = None,
    heldout_phrasing: bool | None = None,
    motion_ranges: str = DEFAULT_MOTION_RANGES,
    train_phrasings: int = 0,
    speed_words: bool = False,
    speed_word: str | None = None,
    action_weights: dict[str, float] | None = None,
) -> Clip:
    """Render clip `index` of a split: its (F, size, size, 3) uint8 frames, caption and spec. Every
    random draw comes from one stream seeded by (seed, split, index), in a fixed order.
    `motion_ranges` names a `MOTION_RANGES` entry; `train_phrasings` (0: all) is how many of each
    action's training phrasings captions are drawn from. `speed_words` draws a `SPEED_WORDS`
    entry for a moving clip (from a stream of its own, so the clip's other draws stay as they
    were); `speed_word` gives one. `action_weights` (`action_probabilities`) weighs the action's
    draw; without it every action is equally likely."""
    if speed_word is not None and speed_word not in SPEED_WORDS:
        raise ValueError(f"unknown speed word {speed_word!r}: use one of {', '.join(map(repr, SPEED_WORDS))}")
    if split not in SPLIT_SEED_OFFSET:
        raise ValueError(f"unknown split {split!r}: use 'train' or 'heldout'")
    if motion_ranges not in MOTION_RANGES:
        raise ValueError(f"unknown motion ranges {motion_ranges!r}: use one of {', '.join(MOTION_RANGES)}")
    rng = np.random.default_rng([seed + SPLIT_SEED_OFFSET[split], index])
    photos = TRAIN_PHOTOS if split == "train" else HELDOUT_PHOTOS
    if action is None:
        p = action_probabilities(action_weights) if action_weights else None
        action = str(rng.choice(ACTION_NAMES, p=p))
    if heldout_phrasing is None:
        heldout_phrasing = split == "heldout"
    canvas_size = int(size * 2)  # room for pans and zoom-outs
    background = _background(rng, canvas_size, photos)
    sprite, object_name = _sprite(rng, 128, photos, rotating=action in ROTATIONS)
    caption = _caption(rng, seed, index, action, split, heldout_phrasing, train_phrasings)
    if speed_word is None and speed_words:
        speed_word = str(np.random.default_rng([seed, index, 11]).choice(list(SPEED_WORDS)))
    if action == "still":  # nothing moves: no speed to name
        speed_word = None
    caption = with_speed_word(caption.format(obj=object_name), speed_word or "")
    factor = SPEED_WORDS[speed_word or ""]
    path, truth = _trajectory(rng, action, size, num_frames, MOTION_RANGES[motion_ranges], factor)
    if speed_word is not None:
        truth["meta"]["speed_word"] = speed_word
    spec = ClipSpec(action, caption, object_name, num_frames, size, **truth)
    return Clip(_render(background, sprite, path, size, canvas_size), caption, spec)


def with_speed_word(caption: str, word: str) -> str:
    """The caption with a speed word after it ("" adds none); a phrasing's own "slow" (no speed
    of its own in the data) goes, so that no caption says both."""
    return f"{caption.replace('a slow ', 'a ')} {word}" if word else caption


ROTATIONS = ("rotate_cw", "rotate_ccw")
TRANSLATIONS = ("move_left", "move_right", "move_up", "move_down")


def training_phrasings(action: str, count: int = 0) -> list[str]:
    """The phrasings an action's captions are drawn from in training: the first `count` (0: all)
    of all but the last."""
    if not 0 <= count <= MAX_TRAIN_PHRASINGS:
        raise ValueError(f"train_phrasings must be from 0 to {MAX_TRAIN_PHRASINGS}, got {count}")
    return _phrasings(action)[:-1][: count or None]


def heldout_phrasing_of(action: str) -> str:
    """The one phrasing of an action that training never sees (the evaluation's)."""
    return _phrasings(action)[-1]


def _phrasings(action: str) -> list[str]:
    if action in ACTIONS:
        return ACTIONS[action][1]
    if action in NEW_ACTIONS:
        return NEW_ACTIONS[action][1]
    raise ValueError(f"unknown action {action!r}")


def _caption(
    rng: np.random.Generator, seed: int, index: int, action: str, split: str, heldout: bool, count: int
) -> str:
    """Drawn from the split's own pool first, so that asking for the other pool changes the
    caption only, never the clip (its random stream stays the split's)."""
    own = [heldout_phrasing_of(action)] if split == "heldout" else training_phrasings(action, count)
    caption = str(rng.choice(own))
    if heldout != (split == "heldout"):
        pool = [heldout_phrasing_of(action)] if heldout else training_phrasings(action, count)
        caption = str(np.random.default_rng([seed, index, 7]).choice(pool))
    return caption


@dataclass
class _Path:
    """Per-frame object placement (output-frame coordinates at zoom 1) and camera."""

    obj_x: np.ndarray
    obj_y: np.ndarray
    obj_scale: np.ndarray
    obj_rot: np.ndarray
    cam_dx: np.ndarray
    cam_zoom: np.ndarray
    base_size: float  # object side in output pixels


def _trajectory(
    rng: np.random.Generator,
    action: str,
    size: int,
    num_frames: int,
    ranges: dict,
    factor: float = 1.0,
) -> tuple[_Path, dict]:
    """The action's object and camera motion, its amount scaled by a speed word's `factor`, and
    its ground truth (`ClipSpec`'s dx, dy, rotation_deg, scale_rate and meta)."""
    last, t = num_frames - 1, np.arange(num_frames)
    speed = rng.uniform(1.5, 3.0) * size / 64  # output pixels per frame
    speed = min(speed * factor, SPEED_CAPS["speed"] * size / 64)
    base_size = rng.uniform(0.28, 0.42) * size
    rotation0 = rng.uniform(-20, 20) if action not in ROTATIONS else rng.uniform(0, 360)
    centre = np.full(num_frames, size / 2.0)
    truth: dict = {}
    path = _Path(
        centre,
        centre.copy(),
        np.ones(num_frames),
        np.full(num_frames, rotation0),
        np.zeros(num_frames),
        np.ones(num_frames),
        base_size,
    )
    margin = base_size / 2 + 2
    if action in TRANSLATIONS:
        speed = min(speed, (size - 2 * margin) / last)  # stay inside the frame
        travel, sign = speed * last, -1 if action in ("move_left", "move_up") else 1
        start = margin + rng.uniform(0, max(size - 2 * margin - travel, 0)) + (travel if sign < 0 else 0)
        track = float(np.clip(start, margin, size - margin)) + sign * speed * t
        other = np.full(num_frames, rng.uniform(margin, size - margin))
        if action in ("move_left", "move_right"):
            path.obj_x, path.obj_y, truth["dx"] = track, other, sign * speed
        else:
            path.obj_x, path.obj_y, truth["dy"] = other, track, sign * speed
    else:
        path.obj_x += rng.uniform(-0.15, 0.15) * size
        path.obj_y += rng.uniform(-0.15, 0.15) * size
    if action in DIAGONALS:
        (sx, sy), step = DIAGONALS[action], speed / math.sqrt(2)  # per axis
        step = min(step, (size - 2 * margin) / last)
        travel = step * last
        x0 = margin + rng.uniform(0, max(size - 2 * margin - travel, 0)) + (travel if sx < 0 else 0)
        y0 = margin + rng.uniform(0, max(size - 2 * margin - travel, 0)) + (travel if sy < 0 else 0)
        path.obj_x, path.obj_y = x0 + sx * step * t, y0 + sy * step * t
        truth["dx"], truth["dy"] = sx * step, sy * step
    if action in ROTATIONS:
        rate = min(rng.uniform(*ranges["rotation_deg"]) * factor, SPEED_CAPS["rotation_deg"])
        rate *= 1 if action == "rotate_cw" else -1
        path.obj_rot, truth["rotation_deg"] = rotation0 + rate * t, rate
    if action in ("grow", "shrink"):
        total = min(rng.uniform(*ranges["object_scale_total"]) ** factor, SPEED_CAPS["total"])
        rate = total ** (1 / last) if action == "grow" else total ** (-1 / last)
        path.obj_scale, truth["scale_rate"] = rate**t, rate
        path.base_size = base_size * (ranges["grow_start_size"][0] if action == "grow" else 1.3)
    if action in ("pan_left", "pan_right"):
        direction = 1 if action == "pan_left" else -1  # the camera pans left: content moves right
        path.cam_dx, truth["dx"] = -direction * speed * t, direction * speed
    if action in ("zoom_in", "zoom_out"):
        total = min(rng.uniform(*ranges["zoom_total"]) ** factor, SPEED_CAPS["total"])
        rate = total ** (1 / last) if action == "zoom_in" else total ** (-1 / last)
        path.cam_zoom = (1.0 if action == "zoom_in" else total**0.5) * rate**t
        truth["scale_rate"] = rate
    truth["meta"] = {"speed": float(speed), "object_size": float(path.base_size)}
    return path, truth


def _render(
    background: Image.Image, sprite: Image.Image, path: _Path, size: int, canvas_size: int
) -> np.ndarray:
    centre = size / 2
    frames = np.empty((len(path.obj_x), size, size, 3), dtype=np.uint8)
    world_from_canvas = _affine(1, 0, -(canvas_size - size) / 2, -(canvas_size - size) / 2)
    for i in range(len(frames)):
        # Camera: output = zoom * (world - centre - pan) + centre; the world canvas is
        # centred on the output frame.
        camera = _affine(path.cam_zoom[i], 0, centre, centre) @ _affine(
            1, 0, -centre - path.cam_dx[i], -centre
        )
        frame = _warp(background, camera @ world_from_canvas, size).convert("RGBA")
        scale = path.base_size * path.obj_scale[i] / sprite.width
        obj = _affine(scale, path.obj_rot[i], path.obj_x[i], path.obj_y[i]) @ _affine(
            1, 0, -sprite.width / 2, -sprite.height / 2
        )
        frame.alpha_composite(_warp(sprite, camera @ obj, size))
        frames[i] = np.asarray(frame.convert("RGB"))
    return frames


def spec_dict(spec: ClipSpec) -> dict:
    return asdict(spec)


def write_dataset(
    out_dir,
    num: int,
    seed: int,
    split: str = "train",
    size: int = 64,
    num_frames: int = 16,
    fps: int = 8,
    action: str | None = None,
) -> Path:
    """Write `num` clips as mp4 files plus `captions.csv` (path,caption: the layout real video data
    uses) and `motion.jsonl` (each clip's ground-truth motion). Built in a temporary folder and
    renamed into place, so an interrupted run leaves nothing. `action` (one of ACTIONS or
    NEW_ACTIONS) makes every clip that action."""
    import csv
    import json
    import shutil
    import tempfile

    from ..errors import UserError
    from ..io.video import write_video

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"output folder exists and is not empty: {out}")
    if not out.resolve().parent.is_dir():
        raise UserError(f"parent folder does not exist: {out.resolve().parent}")
    if num < 1:
        raise UserError(f"--num must be positive, got {num}")
    if action is not None and action not in ACTIONS and action not in NEW_ACTIONS:
        raise UserError(f"unknown action {action!r}: use one of {', '.join([*ACTIONS, *NEW_ACTIONS])}")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.resolve().parent))
    try:
        (tmp / "clips").mkdir()
        with (
            open(tmp / "captions.csv", "w", newline="") as captions,
            open(tmp / "motion.jsonl", "w") as motion,
        ):
            writer = csv.writer(captions)
            writer.writerow(["path", "caption"])
            for i in range(num):
                clip = make_clip(seed, i, split, size, num_frames, action=action)
                spec = clip.spec
                name = f"clips/{i:06d}.mp4"
                write_video(clip.frames, tmp / name, fps=fps)
                writer.writerow([name, spec.caption])
                motion.write(
                    json.dumps({"path": name, "split": split, "seed": seed, "index": i, **spec_dict(spec)})
                    + "\n"
                )
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
