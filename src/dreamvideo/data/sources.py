"""Clip sources for training: index -> (frames, caption). Deterministic in the index, so a run
resumes at the exact data position and ranks shard by index."""

from __future__ import annotations

from .clip import Clip, ClipSource
from .synthetic import make_clip

__all__ = ["Clip", "ClipSource", "SyntheticSource", "make_source"]


class SyntheticSource:
    """The procedural motion clips of `data.synthetic` (train split)."""

    def __init__(self, seed: int, size: int, num_frames: int, split: str = "train", num_clips: int = 0):
        self.seed, self.size, self.num_frames, self.split = seed, size, num_frames, split
        self.num_clips = num_clips

    def clip(self, index: int) -> Clip:
        if self.num_clips:
            index %= self.num_clips
        frames, spec = make_clip(self.seed, index, self.split, self.size, self.num_frames)
        return Clip(frames, spec.caption, spec)


def make_source(data) -> ClipSource:
    """A source from a `DataConfig`."""
    if data.kind == "synthetic":
        return SyntheticSource(data.seed, data.size, data.num_frames, num_clips=data.num_clips)
    from .videos import VideoClipSource

    return VideoClipSource.from_config(data)
