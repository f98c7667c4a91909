"""Image metrics in torch (differentiable where training uses them): SSIM and PSNR.

SSIM follows Wang et al. 2004 with a Gaussian window (sigma 1.5, 11 taps), the constants
K1 = 0.01, K2 = 0.03 and data range 1, averaged over channels, as scikit-image's
`structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(
    channels: int, size: int = 11, sigma: float = 1.5, device=None, dtype=None
) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = (g[:, None] * g[None, :]).to(dtype=dtype or torch.float32)
    return window.expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, reduction: str = "mean") -> torch.Tensor:
    """SSIM of (N, C, H, W) images in [0, data_range]; 'none' gives one value per image."""
    channels = x.shape[1]
    window = _gaussian_window(channels, device=x.device, dtype=x.dtype)
    pad = window.shape[-1] // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(t, (pad,) * 4, mode="reflect"), window, groups=channels)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    # Exclude the border the window cannot cover (as scikit-image crops it).
    s = s[..., pad:-pad, pad:-pad] if s.shape[-1] > 2 * pad and s.shape[-2] > 2 * pad else s
    per_image = s.flatten(1).mean(1)
    return per_image.mean() if reduction == "mean" else per_image


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image of (N, ...) tensors in [0, data_range]."""
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return 10 * torch.log10(data_range**2 / mse)
