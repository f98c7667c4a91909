"""Evaluation: the synthetic suite, video-set metrics, the UCF101 / MSR-VTT protocols.

The synthetic suite's choices live here, torch-free, so the CLI offers them without loading it.
"""

# The ablations of docs/evaluation.md (what each does: evaluation/synthetic.py).
VARIANTS = ("full", "no-branch", "no-image-guidance", "repeat-reference", "text-only")
# heldout: new clips, photos and phrasings; seen-phrasings: the same clips captioned with training
# phrasings (tells unseen wording from unseen clips); train: what the default recipe trained on.
SPLITS = ("heldout", "seen-phrasings", "train")
