"""SSIM / PSNR against scikit-image."""

import numpy as np
import pytest
import torch

from dreamvideo.metrics import psnr, ssim

skimage_metrics = pytest.importorskip("skimage.metrics")


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_ssim_and_psnr_match_scikit_image(noise):
    rng = np.random.default_rng(0)
    a = rng.random((40, 48, 3))
    b = np.clip(a + rng.normal(0, noise, a.shape), 0, 1)
    expected = skimage_metrics.structural_similarity(
        a, b, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]  # noqa: E731
    assert ssim(t(a), t(b)).item() == pytest.approx(expected, abs=1e-6)
    assert psnr(t(a), t(b)).item() == pytest.approx(
        skimage_metrics.peak_signal_noise_ratio(a, b, data_range=1.0)
    )
    assert ssim(t(a), t(a)).item() == pytest.approx(1.0)
