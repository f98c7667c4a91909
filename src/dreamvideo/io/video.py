"""Writing and reading videos: mp4 (H.264 through PyAV), gif, or a folder of PNG frames.

The kind is chosen by the output path. Files are written to a temporary name beside the
target and renamed into place, so a failure never leaves a half-written output.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image

from ..errors import UserError
from .files import check_regular_file

VIDEO_SUFFIXES = {".mp4": "mp4", ".gif": "gif"}


def _umask_mode(base: int) -> int:
    """What `open`/`mkdir` would give: temp files are created private, outputs should not be."""
    umask = os.umask(0)
    os.umask(umask)
    return base & ~umask


def output_kind(path: str | Path) -> str:
    """'mp4', 'gif' or 'frames' (a folder of PNGs: a path without extension or ending in '/')."""
    text = str(path)
    path = Path(path)
    kind = VIDEO_SUFFIXES.get(path.suffix.lower())
    if kind is not None and not text.endswith(("/", os.sep)):
        return kind
    if text.endswith(("/", os.sep)) or path.is_dir() or path.suffix == "":
        return "frames"
    raise UserError(
        f"unknown output extension {path.suffix!r}: use .mp4, .gif, or a folder path without "
        "extension for PNG frames"
    )


def check_output_path(path: str | Path) -> str:
    """Validate an output path before any work is done; returns its kind."""
    kind = output_kind(path)
    path = Path(path)
    parent = path.resolve().parent
    if not parent.exists():
        raise UserError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise UserError(f"output directory is not a directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"output directory is not writable: {parent}")
    if kind == "frames":
        if path.exists() and not path.is_dir():
            raise UserError(f"output path exists and is not a directory: {path}")
        if path.is_dir() and any(path.iterdir()):
            raise UserError(f"output folder is not empty: {path}")
    elif path.is_dir():
        raise UserError(f"output path is a directory: {path}")
    return kind


def _same_file(a: Path, b: Path) -> bool:
    """`a` and `b` name one file: the same path once `..` and symlinks are resolved, or the same
    inode (a hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def check_not_an_input(
    path: str | Path, files: Sequence[str | Path], folders: Sequence[str | Path] = ()
) -> None:
    """Refuse an output that would overwrite one of the input `files` (through `..`, a symlink or
    a hard link), or land inside one of the input `folders` (a model folder, an adapter's folder;
    a file given there is checked as a file)."""
    path = Path(path)
    target = path.resolve()
    for item in map(Path, [*files, *folders]):
        inside = item in map(Path, folders) and item.is_dir() and target.is_relative_to(item.resolve())
        if inside or _same_file(path, item):
            raise UserError(f"output {path} would overwrite an input ({item}); choose another output path")


def write_video(frames: np.ndarray, path: str | Path, fps: int = 8) -> Path:
    """Write (F, H, W, 3) uint8 frames to `path` atomically; returns the path."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    if fps <= 0:
        raise UserError(f"fps must be positive, got {fps}")
    kind = check_output_path(path)
    path = Path(path)
    # Through a symlink, the file it points to is replaced (as a shell's `>` writes through it):
    # the temporary file is made beside that target, in the folder checked writable, so the final
    # rename never crosses filesystems nor needs the link's own folder.
    target = path.resolve()
    parent = target.parent
    if kind == "frames":
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
        try:
            for i, frame in enumerate(frames):
                Image.fromarray(frame).save(tmp_dir / f"frame_{i:04d}.png")
            tmp_dir.chmod(_umask_mode(0o777))
            if target.is_dir():
                target.rmdir()  # empty, checked above
            tmp_dir.rename(target)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise
        return path

    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}", dir=parent)
    os.close(fd)
    try:
        if kind == "mp4":
            _write_mp4(frames, tmp_name, fps)
        else:
            images = [Image.fromarray(f) for f in frames]
            images[0].save(
                tmp_name,
                format="GIF",
                save_all=True,
                append_images=images[1:],
                duration=max(1, round(1000 / fps)),
                loop=0,
            )
        os.chmod(tmp_name, _umask_mode(0o666))
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _write_mp4(frames: np.ndarray, filename: str, fps: int) -> None:
    # yuv420p (what every player decodes) needs even sides: pad by edge replication.
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    # Reproducible bytes (tests/test_cli.py): one encoder thread (threaded output depends on the
    # core count), no macroblock tree (it made P/B frames differ between runs of the same
    # frames), bit-exact muxing (no library version stamps).
    with av.open(filename, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {
            "crf": "17",
            "preset": "medium",
            "threads": "1",
            "flags": "+bitexact",
            "x264-params": "mbtree=0",
        }
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path: str | Path) -> np.ndarray:
    """Decode every frame of a video file (or a folder of PNG frames) to (F, H, W, 3) uint8."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.png"))
        return np.stack([np.asarray(Image.open(f, formats=["PNG"]).convert("RGB")) for f in files])
    check_regular_file(path, "video")
    if path.suffix.lower() == ".gif":
        with Image.open(path, formats=["GIF"]) as gif:
            frames = []
            for i in range(gif.n_frames):
                gif.seek(i)
                frames.append(np.asarray(gif.convert("RGB")))
        return np.stack(frames)
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
