"""The paper's benchmark protocols on local copies of UCF101 and MSR-VTT.

Both follow the same steps (docs/evaluation.md; the paper does not publish its exact protocol, so every
choice below is an option with the default documented in docs/evaluation.md):

1. Plan: pick clips with a fixed seed. UCF101 (`root/ClassName/*.avi`): `per_class` clips of
   every class, the prompt from `template` with the class name in words ("ApplyEyeMakeup" ->
   "apply eye makeup"). MSR-VTT: the test-split videos of an annotation file, one caption each
   (drawn with the seed), at most `num`.
2. For each clip: decode `frames` frames at `fps` (stride from the file's frame rate), resized
   and centre-cropped to `size`; its first frame is the reference image; generate a video of
   the same length from it and the prompt. Real and generated clips are written as mp4 files
   with the same name to `out/real/` and `out/fake/`.
3. `eval videos` metrics between the two folders (FVD, IS, FID, FFF-SSIM, FFF-CLIP).

Resumable: a clip whose generated file exists is not generated again (files are written
atomically); features are cached by `eval videos`. Generation shards across processes with
accelerate (`accelerate launch -m dreamvideo.cli eval ucf101 ...`): each process takes its share
of the clips still to do; the main process computes the metrics after all have finished.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..data.videos import VIDEO_EXTENSIONS, decode_clip, scan_ucf101
from ..errors import UserError
from ..io.files import read_json, read_text
from ..io.images import unit_to_uint8
from ..io.video import write_video

logger = logging.getLogger(__name__)

UCF101_TEMPLATE = "a person {label}"
MSRVTT_ANNOTATIONS = ("test_videodatainfo.json", "MSRVTT_data.json", "MSRVTT_JSFUSION_test.csv")


@dataclass
class ProtocolItem:
    key: str  # file stem of the real and generated clip
    path: str  # the source video
    prompt: str


@dataclass
class ProtocolSettings:
    frames: int = 16
    size: int = 256
    fps: float = 8.0
    seed: int = 0
    steps: int | None = None  # None: the model's default
    image_scale: float | None = None
    text_scale: float | None = None
    batch_size: int = 1


def ucf101_plan(
    root: str | Path, per_class: int, seed: int, template: str = UCF101_TEMPLATE
) -> list[ProtocolItem]:
    """`per_class` clips of every class folder, chosen with `seed` (all of a class if fewer)."""
    if "{label}" not in template:
        raise UserError("--template must contain {label} (the class name in words)")
    by_class: dict[str, list] = {}
    for entry in scan_ucf101(Path(root)):
        by_class.setdefault(entry.path.parent.name, []).append(entry)
    items = []
    for k, (name, entries) in enumerate(sorted(by_class.items())):
        rng = np.random.default_rng([seed, k])
        picks = sorted(rng.choice(len(entries), size=min(per_class, len(entries)), replace=False))
        for i in picks:
            e = entries[i]
            items.append(
                ProtocolItem(f"{name}__{e.path.stem}", str(e.path), template.format(label=e.caption))
            )
    return items


def _msrvtt_captions(annotations: Path) -> dict[str, list[str]]:
    """{video_id: captions} of the test split, from the official JSON or the 1k-A CSV."""
    captions: dict[str, list[str]] = {}
    if annotations.suffix.lower() == ".csv":
        content = read_text(annotations, "MSR-VTT annotations")
        for row in csv.DictReader(io.StringIO(content, newline="")):
            vid, text = row.get("video_id"), row.get("sentence") or row.get("caption")
            if not vid or text is None:
                raise UserError(f"{annotations}: needs video_id and sentence columns")
            captions.setdefault(vid, []).append(text)
        return captions
    data = read_json(annotations, "MSR-VTT annotations")
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise UserError(f"{annotations}: expected the MSR-VTT JSON with 'videos' and 'sentences'")
    videos, sentences = data.get("videos", []), data["sentences"]
    fields = [(v, ("video_id",)) for v in videos if isinstance(videos, list)]
    fields += [(s, ("video_id", "caption")) for s in sentences]
    if not isinstance(videos, list) or not all(
        isinstance(row, dict) and all(isinstance(row.get(k), str) for k in keys) for row, keys in fields
    ):
        raise UserError(f"{annotations}: each video needs a video_id, each sentence a video_id and a caption")
    test = {v["video_id"] for v in videos if v.get("split", "test") == "test"}
    for s in sentences:
        if not test or s["video_id"] in test:
            captions.setdefault(s["video_id"], []).append(s["caption"])
    return captions


def msrvtt_plan(
    root: str | Path, num: int | None, seed: int, annotations: str | Path | None = None
) -> list[ProtocolItem]:
    """Test videos found under `root` (any depth), one seeded caption each, at most `num`."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"dataset folder not found: {root}")
    if annotations is None:
        found = [p for name in MSRVTT_ANNOTATIONS for p in sorted(root.rglob(name))]
        if not found:
            names = ", ".join(MSRVTT_ANNOTATIONS)
            raise UserError(f"no MSR-VTT annotation file under {root} ({names}); pass --annotations")
        annotations = found[0]
    captions = _msrvtt_captions(Path(annotations))
    videos = {p.stem: p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS}
    ids = sorted(v for v in captions if v in videos)
    if not ids:
        raise UserError(f"none of the {len(captions)} annotated test videos is under {root}")
    rng = np.random.default_rng(seed)
    if num is not None and num < len(ids):
        ids = sorted(rng.choice(ids, size=num, replace=False).tolist())
    return [ProtocolItem(v, str(videos[v]), str(rng.choice(captions[v]))) for v in ids]


def _pipe_frames(pipe, images: list[Image.Image], prompts: list[str], settings: ProtocolSettings, seed: int):
    return pipe(
        images,
        prompts,
        num_frames=settings.frames,
        num_inference_steps=settings.steps,
        image_guidance_scale=settings.image_scale,
        text_guidance_scale=settings.text_scale,
        height=settings.size,
        width=settings.size,
        generator=torch.Generator().manual_seed(seed),
    ).frames


def generate_protocol(
    pipe, items: list[ProtocolItem], out_dir: str | Path, settings: ProtocolSettings
) -> dict:
    """Steps 1-2 on this process's share of the clips still to do; returns counts."""
    from accelerate import PartialState

    state = PartialState()
    if settings.steps is None:  # the plan records the steps actually used
        settings = replace(settings, steps=pipe.default_num_inference_steps)
    out = Path(out_dir)
    real_dir, fake_dir = out / "real", out / "fake"
    if state.is_main_process:
        real_dir.mkdir(parents=True, exist_ok=True)
        fake_dir.mkdir(parents=True, exist_ok=True)
        (out / "plan.json").write_text(
            json.dumps({"settings": asdict(settings), "items": [asdict(i) for i in items]}, indent=2) + "\n"
        )
    state.wait_for_everyone()
    todo = [it for it in items if not (fake_dir / f"{it.key}.mp4").is_file()]
    pipe.set_progress_bar_config(disable=True)
    pipe.to(state.device)
    done, unreadable = 0, []
    position = {it.key: i for i, it in enumerate(items)}
    with state.split_between_processes(todo) as mine:
        batch: list[tuple[ProtocolItem, np.ndarray]] = []

        def flush() -> None:
            nonlocal done
            if not batch:
                return
            images = [Image.fromarray(frames[0]) for _, frames in batch]
            # The seed depends on the clip, not on the process or the batch it landed in.
            seed = settings.seed + position[batch[0][0].key]
            videos = _pipe_frames(pipe, images, [it.prompt for it, _ in batch], settings, seed)
            for (it, _), video in zip(batch, videos, strict=True):
                frames_u8 = unit_to_uint8(video)
                write_video(frames_u8, fake_dir / f"{it.key}.mp4", fps=max(1, round(settings.fps)))
            done += len(batch)
            batch.clear()

        for it in tqdm(mine, desc=f"generate [{state.process_index}]", dynamic_ncols=True):
            frames = decode_clip(Path(it.path), settings.frames, settings.size, fps=settings.fps)
            if frames is None:
                unreadable.append(it.key)
                continue
            real_file = real_dir / f"{it.key}.mp4"
            if not real_file.is_file():
                write_video(frames, real_file, fps=max(1, round(settings.fps)))
            batch.append((it, frames))
            if len(batch) == settings.batch_size:
                flush()
        flush()
    state.wait_for_everyone()
    return {
        "planned": len(items),
        "generated_now": done,
        "already_done": len(items) - len(todo),
        "unreadable": unreadable,
    }
