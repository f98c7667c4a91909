"""Clip sources for training: index -> (frames, caption). Deterministic in the index, so a run
resumes at the exact data position and ranks shard by index."""

from __future__ import annotations

from .clip import Clip, ClipSource
from .synthetic import DEFAULT_MOTION_RANGES, make_clip

__all__ = ["Clip", "ClipSource", "SyntheticSource", "make_source"]


class SyntheticSource:
    """The procedural motion clips of `data.synthetic` (train split)."""

    def __init__(
        self,
        seed: int,
        size: int,
        num_frames: int,
        split: str = "train",
        num_clips: int = 0,
        motion_ranges: str = DEFAULT_MOTION_RANGES,
        train_phrasings: int = 0,
        speed_words: bool = False,
        action_weights: dict[str, float] | None = None,
    ):
        self.seed, self.size, self.num_frames, self.split = seed, size, num_frames, split
        self.num_clips = num_clips
        self.motion_ranges, self.train_phrasings = motion_ranges, train_phrasings
        self.speed_words, self.action_weights = speed_words, action_weights or None

    def clip(self, index: int) -> Clip:
        if self.num_clips:
            index %= self.num_clips
        return make_clip(
            self.seed,
            index,
            self.split,
            self.size,
            self.num_frames,
            motion_ranges=self.motion_ranges,
            train_phrasings=self.train_phrasings,
            speed_words=self.speed_words,
            action_weights=self.action_weights,
        )


def make_source(data) -> ClipSource:
    """A source from a `DataConfig`."""
    if data.kind == "synthetic":
        return SyntheticSource(
            data.seed,
            data.size,
            data.num_frames,
            num_clips=data.num_clips,
            motion_ranges=data.motion_ranges,
            train_phrasings=data.train_phrasings,
            speed_words=data.speed_words,
            action_weights=data.action_weights,
        )
    from .videos import VideoClipSource

    return VideoClipSource.from_config(data)
