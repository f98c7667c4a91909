"""Documented figures stay true to the shipped model.

Every measurement record that README.md and docs/ quote names the weights it was measured on
(`measured_on`, written by eval and bench). A new release changes the shipped weights, so every
record goes stale at once and this file fails until `bash scripts/remeasure_figures.sh` has
measured them again; each figure quoted below is then formatted from its record and must appear
in its document as written, so a re-measure that moves a figure fails until the docs say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The records the docs quote, each written by scripts/remeasure_figures.sh.
RECORDS = {
    "suite": "docs/model-card/eval/metrics.json",
    "ablation full": "docs/evaluation/ablations/full/metrics.json",
    "ablation no-branch": "docs/evaluation/ablations/no-branch/metrics.json",
    "ablation no-image-guidance": "docs/evaluation/ablations/no-image-guidance/metrics.json",
    "ablation repeat-reference": "docs/evaluation/ablations/repeat-reference/metrics.json",
    "guidance sweep": "docs/evaluation/ablations/full/sweep.json",
    "speed words": "docs/model-card/speed_words.json",
    "lora before": "docs/training/lora-example/before.json",
    "lora after": "docs/training/lora-example/after.json",
    "bench": "docs/performance/bench.json",
}


def _record(name: str) -> dict:
    return json.loads((ROOT / RECORDS[name]).read_text())


def _count(fraction: float, total: int) -> int:
    return round(fraction * total)


def _lora(r: dict) -> str:
    right = r["direction_accuracy"]
    return f"{right:.2f} ({_count(right, r['num_clips'])} of {r['num_clips']})"


def _still(r: dict) -> str:
    return f"still | {_record('lora before')['measured_still']} | {r['measured_still']} |"


def _seconds(r: dict) -> str:
    return f"{r['seconds_per_clip']:.2f} against {r['naive_seconds_per_clip']:.2f} s"


def _ablation_row(label: str):
    keys = ("first_frame_ssim", "first_frame_psnr", "action_accuracy", "opposite_pair_accuracy",
            "temporal_consistency", "first_frame_colourfulness_ratio")  # fmt: skip
    return lambda r: f"| {label} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |"


def _sweep_rows(r: dict) -> str:
    return "\n".join(
        f"| {c['image_guidance_scale']:g} | {c['text_guidance_scale']:g} | {c['first_frame_ssim']:.3f} | "
        f"{c['action_accuracy']:.3f} | {c['temporal_consistency']:.3f} |"
        for c in r["grid"]
    )


def _lora_motion(r: dict) -> str:
    return f"{r['mean_measured_dx']:+.2f}, {r['mean_measured_dy']:+.2f}".replace("-", "−")  # the docs' minus


# (document, record, the figure as the document writes it)
QUOTES = [
    ("README.md", "suite", lambda r: f"first-frame SSIM {r['first_frame_ssim']:.2f} on held-out clips"),
    ("README.md", "suite", lambda r: f"{r['real_photo_first_frame_ssim']:.2f} on photographs"),
    ("README.md", "suite", lambda r: f"motion in {r['action_accuracy'] * 100:.0f} % of held-out clips"),
    ("docs/model-card.md", "suite", lambda r: f"SSIM {r['first_frame_ssim']:.3f}"),
    ("docs/model-card.md", "suite", lambda r: f"in {r['action_accuracy']:.3f} of clips"),
    ("docs/model-card.md", "suite", lambda r: f"opposite pair in {r['opposite_pair_accuracy']:.3f}"),
    ("docs/model-card.md", "speed words", lambda r: f"obeyed in {r['ordered_fraction']:.2f} of clips"),
    ("docs/evaluation.md", "ablation full", _ablation_row("DreamVideo (image 1.5, text 5)")),
    ("docs/evaluation.md", "ablation no-branch", _ablation_row("no retention branch (text only)")),
    ("docs/evaluation.md", "ablation no-image-guidance", _ablation_row("no image guidance (image scale 1)")),
    ("docs/evaluation.md", "ablation repeat-reference", _ablation_row("reference repeated (no model)")),
    ("docs/evaluation.md", "guidance sweep", _sweep_rows),
    ("docs/training.md", "lora before", _lora),
    ("docs/training.md", "lora after", lambda r: f"**{_lora(r)}**"),
    ("docs/training.md", "lora before", _lora_motion),
    ("docs/training.md", "lora after", _lora_motion),
    ("docs/training.md", "lora after", _still),
    ("README.md", "lora before", lambda r: f"{r['direction_accuracy']:.2f} of 24 held-out clips"),
    ("README.md", "lora after", lambda r: f"and {r['direction_accuracy']:.2f} after"),
    ("README.md", "bench", lambda r: f"**{r['speedup_vs_naive']:.2f}× faster**"),
    ("README.md", "bench", _seconds),
    ("README.md", "bench", lambda r: f"the README's command {r['startup_seconds']:.2f} s"),
    ("README.md", "bench", lambda r: f"a peak of {r['peak_rss_mb']:.0f} MB"),
    ("docs/performance.md", "bench", lambda r: f"{r['speedup_vs_naive']:.2f}×"),
]  # fmt: skip


@pytest.fixture(scope="module")
def shipped_fingerprint() -> str:
    from dreamvideo.loading import weights_fingerprint
    from dreamvideo.pipeline import load_pipeline

    return weights_fingerprint(load_pipeline())


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_every_quoted_record_was_measured_on_the_shipped_weights(name, shipped_fingerprint):
    measured = _record(name).get("measured_on") or {}
    assert measured.get("fingerprint") == shipped_fingerprint, (
        f"{RECORDS[name]} was measured on weights {measured.get('fingerprint')}, not the shipped "
        f"{shipped_fingerprint}: run `bash scripts/remeasure_figures.sh` and update the docs"
    )


@pytest.mark.parametrize(("document", "name", "quote"), QUOTES, ids=[f"{d}:{n}" for d, n, _ in QUOTES])
def test_the_docs_quote_each_record_as_measured(document, name, quote):
    expected = quote(_record(name))
    assert expected in (ROOT / document).read_text(), f"{document} should say {expected!r} ({RECORDS[name]})"


def test_the_remeasure_script_writes_every_quoted_record():
    """Each record's file, or the folder an eval writes it into, is named by the script (or by
    scripts/evaluate_default_model.sh, which it runs)."""
    scripts = ROOT / "scripts"
    written = (scripts / "remeasure_figures.sh").read_text() + (
        scripts / "evaluate_default_model.sh"
    ).read_text()
    assert "scripts/evaluate_default_model.sh" in written
    for path in map(Path, RECORDS.values()):
        assert any(str(p) in written for p in (path, path.parent, path.parent.parent)), path
