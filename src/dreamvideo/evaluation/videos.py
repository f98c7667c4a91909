"""`dreamvideo eval videos`: metrics between a set of real and a set of generated videos.

A set is a folder of videos (mp4/avi/mov/mkv/webm/gif, or sub-folders of PNG frames), read
in file-name order. Videos with the same file stem in both folders are *paired* (generated
from that real video's first frame) and give the first-frame-fidelity metrics.

- fid: frame FID, TF-Inception pool features of every frame (or `fid_frames` evenly spaced
  frames per video), Fréchet distance in float64;
- fvd: I3D features of the first 16 frames at 224 x 224 (needs `i3d`);
- is_mean / is_std: Inception Score of the generated set from C3D UCF101 probabilities of the
  first 16 frames at 112 x 112, 10 splits (needs `c3d`);
- fff_ssim / fff_psnr: first generated frame vs first real frame (the real one resized to
  the generated size when they differ), SSIM as scikit-image's Gaussian SSIM;
- fff_clip: cosine similarity of CLIP image embeddings of the two first frames (needs `clip`).

Features are cached under `out/cache/`, keyed by the files (name, size, mtime) and the
network, so a re-run (or adding `--i3d` later) recomputes only what is new. A metric whose
network is missing is listed under `skipped` with the reason and has no value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.videos import VIDEO_EXTENSIONS
from ..errors import UserError
from ..io.video import read_video
from ..metrics import psnr, ssim
from .features import FrameInception, ImageCLIP, MissingNetwork, VideoC3D, VideoI3D
from .statistics import GaussianStats, frechet_distance_of, inception_score

logger = logging.getLogger(__name__)
SET_EXTENSIONS = VIDEO_EXTENSIONS | {".gif"}


def list_videos(folder: str | Path, role: str = "videos") -> dict[str, Path]:
    """{stem: path} of the videos in `folder` (files, or sub-folders of PNG frames)."""
    root = Path(folder)
    if not root.is_dir():
        raise UserError(f"{role} folder not found: {root}")
    found = {}
    for p in sorted(root.iterdir()):
        if (p.is_file() and p.suffix.lower() in SET_EXTENSIONS) or (p.is_dir() and any(p.glob("*.png"))):
            found[p.stem if p.is_file() else p.name] = p
    if not found:
        raise UserError(f"no videos in the {role} folder {root} (mp4/avi/mov/mkv/webm/gif or PNG folders)")
    return found


def _load(path: Path) -> np.ndarray | None:
    try:
        frames = read_video(path)
    except Exception as e:  # any decoder failure: skip the file, keep the run going
        logger.warning("skipping unreadable video %s: %s", path, e)
        return None
    if frames.ndim != 4 or len(frames) == 0:
        logger.warning("skipping %s: no frames", path)
        return None
    return frames


def _digest(paths: list[Path], *settings) -> str:
    h = hashlib.sha1(repr(settings).encode())
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


class VideoSet:
    """The videos of one folder, decoded lazily, a few at a time."""

    def __init__(self, folder: str | Path, role: str):
        self.role = role
        self.paths = list_videos(folder, role)
        self.unreadable: list[str] = []

    def stream(self, keys: list[str] | None = None, chunk: int = 8):
        """Yield lists of (key, frames); unreadable files are skipped and remembered."""
        keys = list(self.paths) if keys is None else keys
        for start in range(0, len(keys), chunk):
            batch = []
            for key in keys[start : start + chunk]:
                frames = _load(self.paths[key])
                if frames is None:
                    if key not in self.unreadable:
                        self.unreadable.append(key)
                else:
                    batch.append((key, frames))
            yield batch


def _cached(cache: Path, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    file = cache / f"{name}.npy"
    if file.is_file():
        return np.load(file)
    value = compute()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npy")
    np.save(tmp, value)
    tmp.replace(file)
    return value


def _even(frames: np.ndarray, count: int | None) -> np.ndarray:
    if not count or len(frames) <= count:
        return frames
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


def _features(
    videos: VideoSet, cache: Path, net_name: str, fn: Callable, per_video: Callable, settings=()
) -> np.ndarray:
    key = f"{videos.role}-{net_name}-{_digest(list(videos.paths.values()), net_name, *settings)}"

    def compute() -> np.ndarray:
        out = []
        with tqdm(total=len(videos.paths), desc=f"{net_name} {videos.role}", dynamic_ncols=True) as bar:
            for batch in videos.stream():
                if batch:
                    out.append(fn([per_video(frames) for _, frames in batch]))
                bar.update(len(batch))
        if not out:
            raise UserError(f"no readable videos in the {videos.role} set")
        return np.concatenate(out)

    return _cached(cache, key, compute)


def _first_frames(videos: VideoSet, keys: list[str]) -> dict[str, np.ndarray]:
    return {k: frames[0] for batch in videos.stream(keys) for k, frames in batch}


def _match_size(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    if image.shape == like.shape:
        return image
    size = (like.shape[1], like.shape[0])
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC))


def evaluate_videos(
    real_dir: str | Path,
    fake_dir: str | Path,
    out_dir: str | Path,
    i3d: str | Path | None = None,
    c3d: str | Path | None = None,
    clip: str | Path | None = None,
    inception: str | Path | None = None,
    fid: bool = True,
    fid_frames: int | None = None,
    is_splits: int = 10,
    device: str = "cpu",
) -> dict:
    """Compute every metric whose inputs and network are available; write out_dir/metrics.json."""
    started = time.perf_counter()
    out = Path(out_dir)
    cache = out / "cache"
    real, fake = VideoSet(real_dir, "real"), VideoSet(fake_dir, "fake")
    metrics: dict = {"real": str(real_dir), "fake": str(fake_dir)}
    skipped: dict[str, str] = {}

    def attempt(names: tuple[str, ...], compute: Callable[[], dict]) -> None:
        try:
            metrics.update(compute())
        except MissingNetwork as e:
            for n in names:
                skipped[n] = str(e)

    def frame_fid() -> dict:
        if not fid:
            raise MissingNetwork("FID switched off (--no-fid)")
        net = FrameInception(inception, device)

        def frames_of(videos: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([net(v) for v in videos])  # videos may differ in size

        stats = [
            GaussianStats.of(
                _features(s, cache, "inception", frames_of, lambda f: _even(f, fid_frames), (fid_frames,))
            )
            for s in (real, fake)
        ]
        return {
            "fid": frechet_distance_of(*stats),
            "fid_frames_real": stats[0].count,
            "fid_frames_fake": stats[1].count,
        }

    def fvd() -> dict:
        net = VideoI3D(i3d, device)
        stats = [GaussianStats.of(_features(s, cache, "i3d", net, lambda f: f)) for s in (real, fake)]
        return {"fvd": frechet_distance_of(*stats)}

    def inception_score_() -> dict:
        net = VideoC3D(c3d, device)
        probs = _features(fake, cache, "c3d", net, lambda f: f)
        mean, std = inception_score(probs, splits=min(is_splits, len(probs)))
        return {"is_mean": mean, "is_std": std}

    attempt(("fid",), frame_fid)
    attempt(("fvd",), fvd)
    attempt(("is",), inception_score_)

    pairs = sorted(set(real.paths) & set(fake.paths))
    metrics["num_real"], metrics["num_fake"], metrics["num_pairs"] = (
        len(real.paths),
        len(fake.paths),
        len(pairs),
    )
    if pairs:
        real_first, fake_first = _first_frames(real, pairs), _first_frames(fake, pairs)
        keys = [k for k in pairs if k in real_first and k in fake_first]
        a = torch.from_numpy(np.stack([fake_first[k] for k in keys])).permute(0, 3, 1, 2).float() / 255
        b = np.stack([_match_size(real_first[k], fake_first[k]) for k in keys])
        b = torch.from_numpy(b).permute(0, 3, 1, 2).float() / 255
        metrics["fff_ssim"] = float(ssim(a, b))
        metrics["fff_psnr"] = float(psnr(a, b).mean())

        def fff_clip() -> dict:
            net = ImageCLIP(clip, device)
            ea = net(np.stack([fake_first[k] for k in keys]))
            eb = net(np.stack([real_first[k] for k in keys]))
            return {"fff_clip": float((ea * eb).sum(1).mean())}

        attempt(("fff_clip",), fff_clip)
    else:
        skipped["fff_ssim"] = skipped["fff_clip"] = "no paired videos (no file stem in both folders)"

    unreadable = {"real": real.unreadable, "fake": fake.unreadable}
    metrics["unreadable"] = {k: v for k, v in unreadable.items() if v}
    metrics["skipped"] = skipped
    metrics["networks"] = {
        "i3d": str(i3d) if i3d else None,
        "c3d": str(c3d) if c3d else None,
        "clip": str(clip) if clip else None,
    }
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
