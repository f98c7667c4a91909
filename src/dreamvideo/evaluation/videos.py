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
network, so a re-run (or adding `--i3d` later) recomputes only what is new; what is not
cached comes from one decoding pass per set that feeds every network. A metric whose
network is missing is listed under `skipped` with the reason and has no value.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..data.videos import VIDEO_EXTENSIONS
from ..errors import UserError
from ..io.images import frames_to_unit
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


class _Network(NamedTuple):
    """A feature network as one decoding pass feeds it: `fn` maps a list of videos (each
    prepared by `per_video`) to one feature row per video; `settings` join the cache key."""

    fn: Callable[[list[np.ndarray]], np.ndarray]
    per_video: Callable[[np.ndarray], np.ndarray] = lambda frames: frames
    settings: tuple = ()


def _save_atomic(file: Path, value: np.ndarray) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npy")
    np.save(tmp, value)
    tmp.replace(file)


def _even(frames: np.ndarray, count: int | None) -> np.ndarray:
    if not count or len(frames) <= count:
        return frames
    return frames[np.linspace(0, len(frames) - 1, count).round().astype(int)]


def _set_features(
    videos: VideoSet, cache: Path, networks: dict[str, _Network], first_of: set[str]
) -> tuple[dict[str, np.ndarray], dict[str, MissingNetwork], dict[str, np.ndarray]]:
    """Features of every video of the set for each network, from the cache where present and
    otherwise from ONE decoding pass that feeds all the networks still missing (decoding is
    the slow part). Also returns the networks that refused the set (e.g. videos too short for
    I3D) and the first frames of the videos named in `first_of`."""
    paths = list(videos.paths.values())
    files = {
        name: cache / f"{videos.role}-{name}-{_digest(paths, name, *net.settings)}.npy"
        for name, net in networks.items()
    }
    features = {name: np.load(f) for name, f in files.items() if f.is_file()}
    todo = {name: net for name, net in networks.items() if name not in features}
    failed: dict[str, MissingNetwork] = {}
    first: dict[str, np.ndarray] = {}
    if not todo:
        return features, failed, _first_frames(videos, sorted(first_of))
    parts: dict[str, list[np.ndarray]] = {name: [] for name in todo}
    with tqdm(total=len(paths), desc=f"{'+'.join(todo)} {videos.role}", dynamic_ncols=True) as bar:
        for batch in videos.stream():
            first.update((key, frames[0]) for key, frames in batch if key in first_of)
            for name, net in list(todo.items()) if batch else []:
                try:
                    parts[name].append(net.fn([net.per_video(frames) for _, frames in batch]))
                except MissingNetwork as e:  # this network cannot use the set; the others go on
                    failed[name] = e
                    del todo[name]
            bar.update(len(batch))
    for name in todo:
        if not parts[name]:
            raise UserError(f"no readable videos in the {videos.role} set")
        features[name] = np.concatenate(parts[name])
        _save_atomic(files[name], features[name])
    return features, failed, first


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

    def load(metric: str, make: Callable[[], Callable]) -> Callable | None:
        try:
            return make()
        except MissingNetwork as e:
            skipped[metric] = str(e)
            return None

    both: dict[str, _Network] = {}  # networks fed the real and the generated set
    if not fid:
        skipped["fid"] = "FID switched off (--no-fid)"
    elif net := load("fid", lambda: FrameInception(inception, device)):
        # videos may differ in size, so the frame network sees them one at a time
        both["inception"] = _Network(
            lambda videos, net=net: np.concatenate([net(v) for v in videos]),
            lambda f: _even(f, fid_frames),
            (fid_frames,),
        )
    if net := load("fvd", lambda: VideoI3D(i3d, device)):
        both["i3d"] = _Network(net)
    fake_only = {"c3d": _Network(net)} if (net := load("is", lambda: VideoC3D(c3d, device))) else {}

    pairs = sorted(set(real.paths) & set(fake.paths))
    real_features, real_failed, real_first = _set_features(real, cache, both, set(pairs))
    fake_features, fake_failed, fake_first = _set_features(fake, cache, both | fake_only, set(pairs))
    for name, metric in (("inception", "fid"), ("i3d", "fvd"), ("c3d", "is")):
        if e := real_failed.get(name) or fake_failed.get(name):
            skipped[metric] = str(e)
    if "fid" not in skipped and "inception" in both:
        stats = [GaussianStats.of(f["inception"]) for f in (real_features, fake_features)]
        metrics["fid"] = frechet_distance_of(*stats)
        metrics["fid_frames_real"], metrics["fid_frames_fake"] = stats[0].count, stats[1].count
    if "fvd" not in skipped and "i3d" in both:
        metrics["fvd"] = frechet_distance_of(
            GaussianStats.of(real_features["i3d"]), GaussianStats.of(fake_features["i3d"])
        )
    if "is" not in skipped and fake_only:
        probs = fake_features["c3d"]
        metrics["is_mean"], metrics["is_std"] = inception_score(probs, splits=min(is_splits, len(probs)))

    metrics["num_real"], metrics["num_fake"], metrics["num_pairs"] = (
        len(real.paths),
        len(fake.paths),
        len(pairs),
    )
    keys = [k for k in pairs if k in real_first and k in fake_first]
    if keys:
        a = frames_to_unit(np.stack([fake_first[k] for k in keys]))
        b = frames_to_unit(np.stack([_match_size(real_first[k], fake_first[k]) for k in keys]))
        metrics["fff_ssim"] = float(ssim(a, b))
        metrics["fff_psnr"] = float(psnr(a, b).mean())
        if clip_net := load("fff_clip", lambda: ImageCLIP(clip, device)):
            ea = clip_net(np.stack([fake_first[k] for k in keys]))
            eb = clip_net(np.stack([real_first[k] for k in keys]))
            metrics["fff_clip"] = float((ea * eb).sum(1).mean())
    else:
        why = "no readable paired videos" if pairs else "no paired videos (no file stem in both folders)"
        skipped["fff_ssim"] = skipped["fff_clip"] = why

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
