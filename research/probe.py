"""Which change to the default model helps, one factor at a time? (Issue 27's probes; the table
is written to docs/model-card/probes.md and read in docs/research-log.md.)

A probe continues the shipped release for the same number of i2v steps, with the same seeds and
data, under one variant: a config in research/configs/probes/ that extends `baseline.toml` (nothing
changed) and changes one thing. Each probe's export is then measured as the quality bars are:
the held-out suite of `dreamvideo eval synthetic` (action accuracy overall and per class,
opposite pairs, first-frame SSIM, warp error, camera motion on unseen photographs) and the
direction gap of research/text_motion_sensitivity.py.

    python research/probe.py run baseline frame_position [--steps 1500] [--threads 1]
    python research/probe.py measure --model src/dreamvideo/weights/dreamvideo-tiny --name shipped \
        [--pin-first-frame]
    python research/probe.py keep shipped baseline frame_position      # -> docs/model-card/probes/
    python research/probe.py table shipped baseline frame_position [--results docs/model-card/probes]
    python research/probe.py speed eighth_baseline      # add the speed-word measure to a probe.json
    python research/probe.py release d836328 runs/probes/seventh_release   # a release from the history

Round 1 (baseline.toml and the configs extending it) starts from the seventh release, which main
no longer ships: `release` writes it from the commit that did. Round 2 (eighth_*.toml) starts from
the shipped eighth release.

`run` resumes a probe from its checkpoints and skips one already measured; several variants run
one after another (on a GPU, minutes each). Results: runs/probes/NAME/probe.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from text_motion_sensitivity import direction_gaps

from dreamvideo.evaluation.speed_words import evaluate_speed_words
from dreamvideo.evaluation.synthetic import evaluate_synthetic
from dreamvideo.pipeline import load_pipeline
from dreamvideo.training.config import load_config
from dreamvideo.training.trainer import train

PROBE_CONFIGS = Path("research/configs/probes")
RESULTS = Path("runs/probes")
KEPT = Path("docs/model-card/probes")  # the measured records the model card's table is made from
GAP_TIMESTEPS = (950, 800, 600, 400, 200)


SPEED_CLIPS = 48  # held-out moving clips of the speed-word measure, 4 an action


def measure_speed_words(name: str, pipe=None, clips: int = SPEED_CLIPS) -> dict:
    """Add the speed-word measure to RESULTS/name/probe.json (of `pipe`, or of the model it names)."""
    path = RESULTS / name / "probe.json"
    record = json.loads(path.read_text())
    pipe = pipe or load_pipeline(record["model"])
    record["speed_words"] = evaluate_speed_words(pipe, clips, RESULTS / name / "speed_words.json")
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def measure(
    model: Path, name: str, num: int, photos: int, threads: int, extra: dict | None = None, pin: bool = False
) -> dict:
    """The held-out suite, the direction gap and the speed words of one DreamVideo folder ->
    RESULTS/name/probe.json; `pin` samples with first-frame pinning (a sampling probe: the
    weights are unchanged)."""
    torch.set_num_threads(threads)
    out = RESULTS / name
    pipe = load_pipeline(model)
    if pin:
        pipe.register_to_config(default_pin_first_frame=True)
        extra = {**(extra or {}), "pin_first_frame": True}
    started = time.perf_counter()
    gaps = direction_gaps(pipe, clips=48, timesteps=GAP_TIMESTEPS)
    suite = evaluate_synthetic(pipe, num, out / "suite", num_photos=photos)
    confusion = suite["confusion_matrix"]
    record = {
        "name": name,
        "model": str(model),
        **(extra or {}),
        "action_accuracy": suite["action_accuracy"],
        "action_accuracy_per_action": suite["action_accuracy_per_action"],
        "opposite_pair_accuracy": suite["opposite_pair_accuracy"],
        "first_frame_ssim": suite["first_frame_ssim"],
        "vae_reconstruction_ssim": suite["vae_reconstruction_ssim"],
        "temporal_consistency": suite["temporal_consistency"],
        "ground_truth_temporal_consistency": suite["ground_truth_temporal_consistency"],
        "real_photo_camera_accuracy": suite["real_photo_camera_accuracy"],
        "real_photo_first_frame_ssim": suite["real_photo_first_frame_ssim"],
        # clips the estimator calls still, and how many of the suite's clips truly are
        "measured_still": sum(row["still"] for row in confusion.values()),
        "truly_still": sum(confusion["still"].values()),
        "direction_gap": {str(r["timestep"]): r["direction_gap"] for r in gaps},
        "num_clips": num,
        "measure_seconds": round(time.perf_counter() - started, 1),
    }
    (out / "probe.json").write_text(json.dumps(record, indent=2) + "\n")
    return measure_speed_words(name, pipe)


def run(variant: str, steps: int | None, num: int, photos: int, threads: int) -> dict:
    path = PROBE_CONFIGS / f"{variant}.toml"
    result = RESULTS / variant / "probe.json"
    if result.is_file():
        print(f"== {variant}: already measured ({result})")
        return json.loads(result.read_text())
    overrides = {"threads": threads} | ({"optim.steps": steps} if steps else {})
    config = load_config(path, overrides)
    if Path(config.output_dir) != RESULTS / variant:
        raise SystemExit(f"error: {path} writes to {config.output_dir}, not {RESULTS / variant}")
    export = Path(config.output_dir) / "pipeline"
    if not (export / "model_index.json").is_file():
        started = time.perf_counter()
        resume = (Path(config.output_dir) / "checkpoints" / "latest").is_file()
        train(config, resume=resume)
        print(f"== {variant}: trained in {time.perf_counter() - started:.0f} s (this call)")
    extra = {"variant": variant, "config": str(path), "steps": config.optim.steps, "seed": config.seed}
    return measure(export, variant, num, photos, threads, extra)


def release(commit: str, out: Path, folder: str = "src/dreamvideo/weights/dreamvideo-tiny") -> None:
    """The default model as commit `commit` shipped it -> `out` (written whole, then renamed)."""
    if out.exists():
        raise SystemExit(f"error: {out} exists")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        archive = Path(tmp) / "release.tar"
        subprocess.run(["git", "archive", "-o", str(archive), commit, folder], check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (Path(tmp) / folder).rename(out)


def _cell(record: dict, key: str) -> str:
    value = record.get(key)
    if key == "direction_gap":
        return f"{100 * record[key]['950']:+.1f} %"
    if key == "speed_words":
        speed = record.get(key)
        if speed is None:
            return "not measured"
        slow, none, quick = speed["speed_per_word"].values()
        return f"{speed['ordered_fraction']:.2f} ({slow:.2f} / {none:.2f} / {quick:.2f})"
    if key == "measured_still":
        return f"{value} ({record['truly_still']} truly)"
    return f"{value:.3f}"


ROWS = [
    ("action accuracy", "action_accuracy"),
    ("opposite pairs", "opposite_pair_accuracy"),
    ("first-frame SSIM", "first_frame_ssim"),
    ("warp error", "temporal_consistency"),
    ("clips measured still", "measured_still"),
    ("direction gap at t = 950", "direction_gap"),
    ("camera on unseen photos", "real_photo_camera_accuracy"),
    ("first-frame SSIM, unseen photos", "real_photo_first_frame_ssim"),
    ("speed words ordered (px/frame: slowly / none / quickly)", "speed_words"),
]


def table(names: list[str], results: Path = RESULTS) -> str:
    """Markdown: one column a probe, from `results/NAME/probe.json` (or `results/NAME.json`, the
    copies kept in docs/model-card/probes/)."""

    def read(name: str) -> dict:
        path = results / name / "probe.json"
        return json.loads((path if path.is_file() else results / f"{name}.json").read_text())

    records = [read(n) for n in names]
    lines = ["| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(_cell(r, key) for r in records) + " |" for label, key in ROWS]
    actions = sorted({a for r in records for a in r["action_accuracy_per_action"]})
    for action in actions:
        cells = [f"{r['action_accuracy_per_action'].get(action, float('nan')):.2f}" for r in records]
        lines.append(f"| {action} | " + " | ".join(cells) + " |")
    steps = {r.get("steps") for r in records if "steps" in r}
    pinned = [n for n, r in zip(names, records, strict=True) if r.get("pin_first_frame")]
    trained = f"; probes continue the shipped release for {', '.join(map(str, sorted(steps)))} i2v steps"
    sampled = f"; first-frame pinning in {', '.join(pinned)}" if pinned else ""
    lines.append("")
    lines.append(
        f"Held-out suite, {records[0]['num_clips']} clips, the model's default sampling"
        f"{trained if steps else ''}{sampled} (`python research/probe.py table " + " ".join(names) + "`)."
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p_run = commands.add_parser("run", help="train and measure probes, one after another")
    p_run.add_argument("variants", nargs="+", help="names of configs in research/configs/probes/")
    p_run.add_argument("--steps", type=int, default=None, help="override the configs' step count")
    p_measure = commands.add_parser("measure", help="measure a DreamVideo folder as a probe")
    p_measure.add_argument("--model", type=Path, required=True)
    p_measure.add_argument("--name", required=True)
    p_measure.add_argument("--pin-first-frame", action="store_true", help="sample with first-frame pinning")
    for p in (p_run, p_measure):
        p.add_argument("--num", type=int, default=104, help="held-out clips")
        p.add_argument("--photos", type=int, default=4, help="unseen photographs")
        p.add_argument("--threads", type=int, default=1)
    p_table = commands.add_parser("table", help="a markdown table of measured probes")
    p_table.add_argument("names", nargs="+")
    p_table.add_argument("--out", type=Path, default=None)
    p_table.add_argument("--results", type=Path, default=RESULTS, help="where the probe.json files are")
    p_speed = commands.add_parser("speed", help="add the speed-word measure to measured probes")
    p_speed.add_argument("names", nargs="+")
    p_release = commands.add_parser("release", help="write the default model of a past commit")
    p_release.add_argument("commit")
    p_release.add_argument("out", type=Path)
    p_keep = commands.add_parser("keep", help="copy measured probes' probe.json to docs/model-card/probes/")
    p_keep.add_argument("names", nargs="+")
    args = parser.parse_args()
    if args.command == "run":
        for variant in args.variants:
            run(variant, args.steps, args.num, args.photos, args.threads)
    elif args.command == "measure":
        measure(args.model, args.name, args.num, args.photos, args.threads, pin=args.pin_first_frame)
    elif args.command == "speed":
        torch.set_num_threads(1)
        for name in args.names:
            measure_speed_words(name)
    elif args.command == "release":
        release(args.commit, args.out)
    elif args.command == "keep":
        KEPT.mkdir(parents=True, exist_ok=True)
        for name in args.names:
            (KEPT / f"{name}.json").write_text((RESULTS / name / "probe.json").read_text())
    else:
        text = table(args.names, args.results)
        if args.out:
            args.out.write_text(text)
        print(text, end="")


if __name__ == "__main__":
    main()
