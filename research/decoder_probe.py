"""Which reference-aware decoder keeps the first frame without losing motion? (Issue 37's probes;
the table is read in docs/research-log.md.)

Each probe trains a decoder (research/configs/decoder/NAME.toml: `baseline.toml`, the shipped
decoder trained with no reference path, and one change each) with the same seed, steps and
clips. Every probe then decodes the same latents: the shipped model's *own samples* of the
held-out suite (its defaults, the suite's seeds), of unseen photographs (the suite's crops, the
four camera prompts), of the README's cat and of flat colour cards; and the encoder latents of
the held-out clips' ground truth (the round trip).

    python research/decoder_probe.py sample --model runs/tiny/vae_decoder/pipeline   # once
    python research/decoder_probe.py measure NAME --model runs/probes/decoder/NAME/pipeline
    python research/decoder_probe.py measure shipped --model runs/tiny/vae_decoder/pipeline
    # a release on its own samples:
    python research/decoder_probe.py sample --model NEW --samples runs/probes/decoder/NEW.pt
    python research/decoder_probe.py measure ninth --model NEW --samples runs/probes/decoder/NEW.pt
    python research/decoder_probe.py table shipped baseline frame0 both ... [--results DIR]
    python research/decoder_probe.py segments --model DIR [--num 24]   # which reference later segments see
    python research/decoder_probe.py decode-time --model DIR   # VAE against reference-aware decoder

Measures: first-frame SSIM (clips, photos, the cat), all-frames SSIM of the ground truth's round
trip, action accuracy overall and per class (the suite's estimator on the decoded samples), the
motion class the round trip keeps per class, warp error, colour cards (mean error of the first
and last frame in grey levels per channel) and decode time per video (in the record only: the
probes ran while other runs shared the cores; `decode-time` compares the two decoders fairly).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dreamvideo.data.synthetic import HELDOUT_PHOTOS, load_photo, random_crop
from dreamvideo.evaluation.motion import action_accuracy, moved_as, temporal_consistency
from dreamvideo.evaluation.synthetic import CAMERA_PROMPTS, EVAL_SEED, heldout_clips
from dreamvideo.io.images import fit_image, frames_to_signed, frames_to_unit, load_image, tensor_to_images
from dreamvideo.metrics import ssim
from dreamvideo.pipeline import load_pipeline

SAMPLES = Path("runs/probes/decoder/samples.pt")
KEPT = Path("docs/model-card/decoder-probes")
NUM_CLIPS, NUM_PHOTOS, SIZE, FRAMES, BATCH = 104, 4, 64, 8, 8
CARDS = {"green": (30, 170, 60), "yellow": (230, 210, 40), "teal": (20, 150, 150)}


def _photo_refs() -> list[np.ndarray]:
    """The suite's unseen-photo crops (evaluation.synthetic._Suite.build draws them the same way)."""
    refs = []
    for k in range(NUM_PHOTOS):
        rng = np.random.default_rng([EVAL_SEED, k, 99])
        refs.append(np.asarray(random_crop(rng, load_photo(HELDOUT_PHOTOS[k % len(HELDOUT_PHOTOS)]), SIZE)))
    return refs


@torch.no_grad()
def sample(model: str, path: Path = SAMPLES) -> None:
    """The model's sampled latents of every probe input, batched with the suite's seeds."""
    pipe = load_pipeline(model)
    clips = heldout_clips(NUM_CLIPS, SIZE, FRAMES)
    sets: dict[str, tuple[list[np.ndarray], list[str]]] = {
        "clips": ([c.frames[0] for c in clips], [c.caption for c in clips]),
        "photos": (
            [r for r in _photo_refs() for _ in CAMERA_PROMPTS],
            list(CAMERA_PROMPTS.values()) * NUM_PHOTOS,
        ),
        "cat": (
            [np.asarray(fit_image(load_image("examples/cat.png", (SIZE, SIZE)), SIZE, SIZE))],
            ["the camera zooms in"],
        ),
        "cards": (
            [np.full((SIZE, SIZE, 3), c, np.uint8) for c in CARDS.values()],
            ["the camera zooms in"] * len(CARDS),
        ),
    }
    out = {}
    for name, (refs, prompts) in sets.items():
        latents = []
        for i, start in enumerate(range(0, len(refs), BATCH)):
            images = [Image.fromarray(r) for r in refs[start : start + BATCH]]
            latents.append(
                pipe(
                    images, prompts[start : start + BATCH], num_frames=FRAMES, height=SIZE, width=SIZE,
                    output_type="latent", generator=torch.Generator().manual_seed(EVAL_SEED + i),
                ).frames
            )  # fmt: skip
        out[name] = {"latents": torch.cat(latents), "references": torch.from_numpy(np.stack(refs))}
    out["truth"] = {"frames": torch.from_numpy(np.stack([c.frames for c in clips]))}
    out["actions"] = [c.spec.action for c in clips]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, path)


def _decode(pipe, latents: torch.Tensor, references: torch.Tensor) -> np.ndarray:
    """(B, C, F, h, w) latents -> uint8 videos (B, F, H, W, 3), through the pipeline's decoder."""
    signed = frames_to_signed(references.numpy())  # (B, 3, H, W)
    video = pipe.decode_latents(latents, decode_chunk_size=BATCH * FRAMES, reference=signed)
    return np.stack([tensor_to_images(v.permute(1, 0, 2, 3)) for v in video])


def _first_ssim(videos: np.ndarray, references: torch.Tensor) -> float:
    return float(
        ssim(frames_to_unit(videos[:, 0]), frames_to_unit(references.numpy()), reduction="none").mean()
    )


def _classes(videos: np.ndarray, actions: list[str]) -> tuple[float, dict[str, float]]:
    return action_accuracy(list(videos), actions)


@torch.no_grad()
def measure(name: str, model: str, samples: Path = SAMPLES) -> dict:
    pipe = load_pipeline(model, torch_dtype=torch.float32)
    data = torch.load(samples)
    actions = data["actions"]
    clips = _decode(pipe, data["clips"]["latents"], data["clips"]["references"])
    accuracy, per_action = _classes(clips, actions)
    truth = data["truth"]["frames"].numpy()  # (B, F, H, W, 3)
    encoded = torch.cat([
        pipe.vae.encode(frames_to_signed(v)).latent_dist.mean.unsqueeze(0) for v in truth
    ]) * pipe.vae.config.scaling_factor  # fmt: skip
    round_trip = _decode(pipe, encoded.permute(0, 2, 1, 3, 4), torch.from_numpy(truth[:, 0]))
    kept, kept_per_action = _classes(round_trip, actions)
    cards = _decode(pipe, data["cards"]["latents"], data["cards"]["references"])
    colour = {
        card: {
            "first": float(np.abs(cards[k, 0].astype(float) - rgb).mean(axis=(0, 1)).max()),
            "last": float(np.abs(cards[k, -1].astype(float) - rgb).mean(axis=(0, 1)).max()),
        }
        for k, (card, rgb) in enumerate(CARDS.items())
    }
    one = data["clips"]["latents"][:1]
    times = []
    for _ in range(5):
        start = time.perf_counter()
        _decode(pipe, one, data["clips"]["references"][:1])
        times.append(time.perf_counter() - start)
    record = {
        "name": name,
        "model": model,
        "first_frame_ssim": _first_ssim(clips, data["clips"]["references"]),
        "photo_first_frame_ssim": _first_ssim(
            _decode(pipe, data["photos"]["latents"], data["photos"]["references"]),
            data["photos"]["references"],
        ),
        "cat_first_frame_ssim": _first_ssim(
            _decode(pipe, data["cat"]["latents"], data["cat"]["references"]), data["cat"]["references"]
        ),
        "action_accuracy": accuracy,
        "action_accuracy_per_action": per_action,
        "warp_error": float(np.mean([temporal_consistency(v) for v in clips])),
        "round_trip_ssim": float(
            ssim(
                frames_to_unit(round_trip.reshape(-1, SIZE, SIZE, 3)),
                frames_to_unit(truth.reshape(-1, SIZE, SIZE, 3)),
            )
        ),
        "round_trip_motion_kept": kept,
        "round_trip_motion_kept_per_action": kept_per_action,
        "colour_card_error_grey_levels": colour,
        "decode_seconds_per_video": float(np.median(times)),
        "num_clips": len(actions),
        "samples": str(samples),
    }
    out = KEPT / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    return record


@torch.no_grad()
def segments(model: str, num: int) -> dict:
    """Two-segment videos of held-out clips: the second segment's latents decoded with the
    reference the pipeline gives it (its own first frame, the first segment's last) or with the
    user's image. Measures the joint (SSIM of the second segment's first frame to the first's
    last, which it should equal), warp error and action accuracy of the joined video."""
    pipe = load_pipeline(model)
    clips = heldout_clips(num, SIZE, FRAMES)
    results: dict[str, dict[str, list]] = {"segment": defaultdict(list), "image": defaultdict(list)}
    for i, clip in enumerate(clips):
        image = Image.fromarray(clip.frames[0])
        first = pipe(
            image,
            clip.caption,
            num_frames=FRAMES,
            output_type="pt",
            generator=torch.Generator().manual_seed(i),
        )
        first = first.frames[0]  # (F, 3, H, W) in [0, 1]
        last = first[-1] * 2 - 1
        latents = pipe(
            last.unsqueeze(0), clip.caption, num_frames=FRAMES, output_type="latent",
            generator=torch.Generator().manual_seed(10_000 + i),
        ).frames  # fmt: skip
        first_u8 = tensor_to_images(first * 2 - 1)
        for name, reference in (("segment", last), ("image", frames_to_signed(clip.frames[0]))):
            second = tensor_to_images(
                pipe.decode_latents(latents, reference=reference.unsqueeze(0))[0].permute(1, 0, 2, 3)
            )
            joined = np.concatenate([first_u8, second[1:]])
            r = results[name]
            r["joint_ssim"].append(float(ssim(frames_to_unit(second[:1]), frames_to_unit(first_u8[-1:]))))
            r["warp_error"].append(temporal_consistency(joined))
            r["right"].append(moved_as(joined, clip.spec.action))
    record = {
        name: {"joint_ssim": float(np.mean(r["joint_ssim"])), "warp_error": float(np.mean(r["warp_error"])),
               "action_accuracy": float(np.mean(r["right"]))}
        for name, r in results.items()
    }  # fmt: skip
    record |= {"model": model, "num_clips": num}
    KEPT.mkdir(parents=True, exist_ok=True)
    (KEPT / "segments.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


@torch.no_grad()
def decode_time(model: str, repeats: int = 20) -> dict:
    """Median seconds to decode one 8-frame video with the VAE and with the model's
    reference-aware decoder, interleaved so that whatever else runs slows both alike."""
    pipe = load_pipeline(model)
    latents = torch.randn(1, pipe.vae.config.latent_channels, FRAMES, SIZE // 8, SIZE // 8)
    reference = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    times: dict[str, list[float]] = {"vae": [], "reference_decoder": []}
    for i in range(repeats + 3):  # the first three warm up
        for name, kwargs in (("vae", {}), ("reference_decoder", {"reference": reference})):
            start = time.perf_counter()
            pipe.decode_latents(latents, **kwargs)
            if i >= 3:
                times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()} | {"threads": torch.get_num_threads()}


ROWS = [
    ("first-frame SSIM, clips", lambda r: f"{r['first_frame_ssim']:.3f}"),
    ("first-frame SSIM, unseen photos", lambda r: f"{r['photo_first_frame_ssim']:.3f}"),
    ("first-frame SSIM, the cat", lambda r: f"{r['cat_first_frame_ssim']:.3f}"),
    ("action accuracy", lambda r: f"{r['action_accuracy']:.3f}"),
    ("warp error", lambda r: f"{r['warp_error']:.4f}"),
    ("round trip: all-frames SSIM", lambda r: f"{r['round_trip_ssim']:.3f}"),
    ("round trip: motion class kept", lambda r: f"{r['round_trip_motion_kept']:.3f}"),
    (
        "round trip: rotation kept (ccw / cw)",
        lambda r: "{:.2f} / {:.2f}".format(
            r["round_trip_motion_kept_per_action"]["rotate_ccw"],
            r["round_trip_motion_kept_per_action"]["rotate_cw"],
        ),
    ),
    (
        "green card error, first / last frame",
        lambda r: "{:.0f} / {:.0f}".format(*r["colour_card_error_grey_levels"]["green"].values()),
    ),
    (
        "yellow card error, first / last frame",
        lambda r: "{:.0f} / {:.0f}".format(*r["colour_card_error_grey_levels"]["yellow"].values()),
    ),
]


def table(names: list[str], results: Path) -> str:
    records = [json.loads((results / f"{n}.json").read_text()) for n in names]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(cell(r) for r in records) + " |" for label, cell in ROWS]
    actions = sorted(records[0]["action_accuracy_per_action"])
    lines += ["", "Action accuracy per class (decoded samples):", ""]
    lines += ["| action | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [
        f"| {a} | " + " | ".join(f"{r['action_accuracy_per_action'][a]:.2f}" for r in records) + " |"
        for a in actions
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--model", required=True)
    s.add_argument("--samples", type=Path, default=SAMPLES)
    m = sub.add_parser("measure")
    m.add_argument("name")
    m.add_argument("--model", required=True)
    m.add_argument(
        "--samples", type=Path, default=SAMPLES, help="whose sampled latents (default: the eighth release's)"
    )
    g = sub.add_parser("segments")
    g.add_argument("--model", required=True)
    g.add_argument("--num", type=int, default=24)
    d = sub.add_parser("decode-time")
    d.add_argument("--model", required=True)
    t = sub.add_parser("table")
    t.add_argument("names", nargs="+")
    t.add_argument("--results", type=Path, default=KEPT)
    args = parser.parse_args()
    if args.command == "sample":
        sample(args.model, args.samples)
    elif args.command == "decode-time":
        print(json.dumps(decode_time(args.model), indent=2))
    elif args.command == "segments":
        print(json.dumps(segments(args.model, args.num), indent=2))
    elif args.command == "measure":
        print(json.dumps(measure(args.name, args.model, args.samples), indent=2))
    else:
        print(table(args.names, args.results))


if __name__ == "__main__":
    main()
