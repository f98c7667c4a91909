"""Real-video datasets: a folder of videos with a CSV/JSONL of (path, caption) as WebVid is
distributed, or the UCF101 layout (one folder per class, the class name as the caption).

Videos are decoded with PyAV; `num_frames` frames are taken every `frame_stride` decoded
frames (or at a target fps), resized and centre-cropped to `size`. A file that cannot be read,
or is too short, is skipped with a logged warning and never stops a run.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from ..errors import UserError
from ..io.files import read_json_lines, read_text
from .clip import Clip

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


@dataclass
class VideoEntry:
    path: Path
    caption: str


def ucf_class_caption(name: str) -> str:
    """'ApplyEyeMakeup' -> 'apply eye makeup'."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])|_", " ", name).lower().strip()


def read_captions(captions: Path, root: Path | None = None) -> list[VideoEntry]:
    """Entries from a CSV (columns path/video/videoid/file + caption/name/text) or a JSONL file."""
    base = root or captions.parent
    path_keys, caption_keys = ("path", "video", "file", "videoid"), ("caption", "name", "text")
    if captions.suffix.lower() == ".jsonl":
        rows = read_json_lines(captions, "captions file")
    else:
        try:
            rows = list(csv.DictReader(io.StringIO(read_text(captions, "captions file"), newline="")))
        except csv.Error as e:
            raise UserError(f"captions file {captions} is not valid CSV: {e}") from None
    entries = []
    for number, row in enumerate(rows, 1):
        p = next((row[k] for k in path_keys if row.get(k)), None)
        c = next((row[k] for k in caption_keys if row.get(k) is not None), None)
        if p is None or c is None:
            raise UserError(f"{captions}: every row needs a path and a caption column, got {sorted(row)[:8]}")
        if not isinstance(p, str | int) or not isinstance(c, str) or "\x00" in str(p):
            raise UserError(f"{captions} row {number}: the path and caption must be text (no NUL)")
        path = Path(str(p))
        if not path.suffix:
            path = path.with_suffix(".mp4")  # WebVid's videoid column
        entries.append(VideoEntry(path if path.is_absolute() else base / path, str(c)))
    return entries


def scan_ucf101(root: Path) -> list[VideoEntry]:
    """UCF101 layout: root/ClassName/*.avi."""
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}")
    entries = [
        VideoEntry(f, ucf_class_caption(d.name))
        for d in sorted(p for p in root.iterdir() if p.is_dir())
        for f in sorted(d.iterdir())
        if f.suffix.lower() in VIDEO_EXTENSIONS
    ]
    if not entries:
        raise UserError(f"no videos found in class folders under {root}")
    return entries


def decode_clip(
    path: Path, num_frames: int, size: int, stride: int = 1, fps: float | None = None, start: int = 0
) -> np.ndarray | None:
    """(num_frames, size, size, 3) uint8 frames, or None if the file is unreadable or too short."""
    if not path.is_file():  # a FIFO named .mp4 would block the data loader until signalled
        logger.warning("skipping %s: not a regular file", path)
        return None
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if fps:
                rate = float(stream.average_rate or fps)
                stride = max(1, round(rate / fps))
            wanted = start + (num_frames - 1) * stride + 1
            frames = []
            for i, frame in enumerate(container.decode(stream)):
                if i >= wanted:
                    break
                if i >= start and (i - start) % stride == 0:
                    image = ImageOps.fit(frame.to_image(), (size, size), method=Image.Resampling.BICUBIC)
                    frames.append(np.asarray(image.convert("RGB")))
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as e:
        logger.warning("skipping unreadable video %s: %s", path, e)
        return None
    if len(frames) < num_frames:
        logger.warning("skipping %s: %d usable frames, %d needed", path, len(frames), num_frames)
        return None
    return np.stack(frames)


class VideoClipSource:
    """Clips from real videos; index i -> entry i mod N (an unreadable one: the next that works)."""

    def __init__(
        self, entries: list[VideoEntry], size: int, num_frames: int, stride: int = 1, fps: float | None = None
    ):
        if not entries:
            raise UserError("the video dataset is empty")
        self.entries, self.size, self.num_frames, self.stride, self.fps = (
            entries,
            size,
            num_frames,
            stride,
            fps,
        )
        self.bad: set[int] = set()

    @classmethod
    def from_config(cls, data) -> VideoClipSource:
        if data.kind == "ucf101":
            entries = scan_ucf101(Path(data.root or ""))
        elif data.kind == "videos":
            if not data.captions:
                raise UserError("data.kind = 'videos' needs data.captions (a CSV or JSONL file)")
            entries = read_captions(Path(data.captions), Path(data.root) if data.root else None)
        else:
            raise UserError(f"unknown data kind {data.kind!r}: use synthetic, videos or ucf101")
        return cls(entries, data.size, data.num_frames, data.frame_stride)

    def __len__(self) -> int:
        return len(self.entries)

    def clip(self, index: int) -> Clip:
        n = len(self.entries)
        for offset in range(n):
            k = (index + offset) % n
            if k in self.bad:
                continue
            frames = decode_clip(self.entries[k].path, self.num_frames, self.size, self.stride, self.fps)
            if frames is not None:
                return Clip(frames, self.entries[k].caption)
            self.bad.add(k)
        raise UserError("no readable video with enough frames in the dataset")
