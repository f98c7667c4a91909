"""Motion measured from frames: dense optical flow (OpenCV Farneback) between consecutive
frames, and a similarity motion (translation, rotation, scale) fitted by least squares to the
pixels that move. The dominant component names the motion class.

Motion classes describe what the *content* does, so the camera and the object are scored by
the same measure: 'the camera pans left' means the content moves right, 'zoom in' that it
grows. Camera-vs-object is not told apart (over a flat background they look the same).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

MOTION_CLASSES = [
    "left",
    "right",
    "up",
    "down",
    "clockwise",
    "counterclockwise",
    "bigger",
    "smaller",
    "still",
]
ACTION_TO_MOTION = {
    "move_left": "left",
    "move_right": "right",
    "move_up": "up",
    "move_down": "down",
    "rotate_cw": "clockwise",
    "rotate_ccw": "counterclockwise",
    "grow": "bigger",
    "shrink": "smaller",
    "pan_left": "right",
    "pan_right": "left",
    "zoom_in": "bigger",
    "zoom_out": "smaller",
    "still": "still",
}


@dataclass
class Motion:
    dx: float  # px / frame, + right
    dy: float  # px / frame, + down
    rotation: float  # rad / frame, + clockwise on screen
    scale: float  # relative size change / frame, + bigger
    radius: float  # px, size of the moving region
    moving_fraction: float
    offset_x: float = 0.0  # moving region's centroid relative to the frame centre, px
    offset_y: float = 0.0

    def components(self) -> dict[str, float]:
        """Each component as the displacement (px / frame) it causes at the region's edge.

        A zoom about the frame centre also shifts an off-centre region: translation that the
        scale explains (scale x centroid offset) is not counted as translation."""
        explained = np.hypot(self.dx - self.scale * self.offset_x, self.dy - self.scale * self.offset_y)
        translation = min(float(np.hypot(self.dx, self.dy)), float(explained))
        return {
            "translation": translation,
            "rotation": abs(self.rotation) * self.radius,
            "scale": abs(self.scale) * self.radius,
        }

    def label(self, threshold: float = 0.3) -> str:
        parts = self.components()
        kind = max(parts, key=parts.get)
        if parts[kind] < threshold:
            return "still"
        if kind == "translation":
            if abs(self.dx) >= abs(self.dy):
                return "right" if self.dx > 0 else "left"
            return "down" if self.dy > 0 else "up"
        if kind == "rotation":
            return "clockwise" if self.rotation > 0 else "counterclockwise"
        return "bigger" if self.scale > 0 else "smaller"


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def estimate_motion(frames: np.ndarray, flow_threshold: float = 0.2) -> Motion:
    """Average similarity motion of the moving pixels over consecutive (F, H, W, 3) uint8 frames."""
    h, w = frames.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    params, radii, fractions, offsets = [], [], [], []
    for a, b in itertools.pairwise(frames):
        flow = cv2.calcOpticalFlowFarneback(_gray(a), _gray(b), None, 0.5, 3, 9, 3, 5, 1.1, 0).astype(
            np.float64
        )
        u, v = flow[..., 0], flow[..., 1]
        moving = np.hypot(u, v) > flow_threshold
        fractions.append(moving.mean())
        if moving.sum() < 6:
            params.append(np.zeros(4))
            radii.append(0.0)
            continue
        x, y = xs[moving], ys[moving]
        cx, cy = x.mean(), y.mean()
        x, y = x - cx, y - cy
        # u = s*x - r*y + tx ; v = r*x + s*y + ty   (s: scale rate, r: rotation, y down)
        A = np.zeros((2 * len(x), 4))
        A[0::2] = np.stack([x, -y, np.ones_like(x), np.zeros_like(x)], 1)
        A[1::2] = np.stack([y, x, np.zeros_like(x), np.ones_like(x)], 1)
        rhs = np.empty(2 * len(x))
        rhs[0::2], rhs[1::2] = u[moving], v[moving]
        params.append(np.linalg.lstsq(A, rhs, rcond=None)[0])
        radii.append(float(np.sqrt(np.mean(x**2 + y**2))))
        offsets.append((cx - (w - 1) / 2, cy - (h - 1) / 2))
    s, r, tx, ty = np.mean(params, axis=0) if params else np.zeros(4)
    ox, oy = np.mean(offsets, axis=0) if offsets else (0.0, 0.0)
    return Motion(
        float(tx),
        float(ty),
        float(r),
        float(s),
        float(np.mean(radii) if radii else 0.0),
        float(np.mean(fractions) if fractions else 0.0),
        float(ox),
        float(oy),
    )


def temporal_consistency(frames: np.ndarray) -> float:
    """Mean absolute error (0-1 scale) between each frame and its predecessor warped forward by the
    optical flow between them: low when consecutive frames agree up to smooth motion (no flicker)."""
    errors = []
    h, w = frames.shape[1:3]
    grid = np.stack(np.meshgrid(np.arange(w), np.arange(h)), -1).astype(np.float32)
    for a, b in itertools.pairwise(frames):
        # Backward flow b -> a tells, for each pixel of b, where it came from in a.
        flow = cv2.calcOpticalFlowFarneback(_gray(b), _gray(a), None, 0.5, 3, 9, 3, 5, 1.1, 0)
        warped = cv2.remap(a, grid + flow, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        errors.append(np.abs(warped.astype(np.float32) - b.astype(np.float32)).mean() / 255.0)
    return float(np.mean(errors)) if errors else 0.0


def moved_as(video: np.ndarray, action: str) -> bool:
    """Did this video move as `action` asks: the estimator's class of it is the action's?"""
    return estimate_motion(video).label() == ACTION_TO_MOTION[action]


def action_accuracy(videos: list[np.ndarray], actions: list[str]) -> tuple[float, dict[str, float]]:
    """The fraction of videos that moved as their action asks, overall and per action (the one
    action accuracy the suite, the benchmark and the probes report)."""
    return label_accuracy([estimate_motion(v).label() for v in videos], actions)


def label_accuracy(labels: list[str], actions: list[str]) -> tuple[float, dict[str, float]]:
    """`action_accuracy` from motion classes already measured (`Motion.label()`)."""
    right = [label == ACTION_TO_MOTION[a] for label, a in zip(labels, actions, strict=True)]
    per_action: dict[str, list[bool]] = {}
    for ok, action in zip(right, actions, strict=True):
        per_action.setdefault(action, []).append(ok)
    return float(np.mean(right)), {a: float(np.mean(v)) for a, v in sorted(per_action.items())}
