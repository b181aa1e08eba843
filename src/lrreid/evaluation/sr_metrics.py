"""Super-resolution quality, measured the way SR papers report it.

``psnr_y`` and ``ssim_y`` follow the MATLAB evaluation code of the SR literature (and BasicSR's
``calculate_psnr/ssim(test_y_channel=True)``):

1. both images are quantised to 8 bits (the SR output rounded, as if saved as PNG);
2. converted to the Y channel of ITU-R BT.601 YCbCr in the 16..235 range:
   ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for R, G, B in [0, 1];
3. a border of ``ceil(scale)`` pixels is cropped on every side (SR networks are not judged on
   the border they cannot reconstruct);
4. PSNR = 10 log10(255^2 / MSE); SSIM (Wang et al. 2004) with an 11x11 Gaussian window,
   sigma 1.5, K1 = 0.01, K2 = 0.03, L = 255, on the valid part of the filtered image.

Inputs are ``[3, H, W]`` or ``[B, 3, H, W]`` tensors, float in [0, 1] or uint8.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BT601_Y = (65.481, 128.553, 24.966)


def _as_levels(img: torch.Tensor) -> torch.Tensor:
    """8-bit grey levels 0..255 as float64 (float inputs in [0, 1] are clamped and rounded)."""
    if img.dtype == torch.uint8:
        return img.to(torch.float64)
    return (img.detach().to(torch.float64).clamp(0, 1) * 255.0).round()


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """Y of BT.601 YCbCr in [16, 235] (float64) from RGB ``[..., 3, H, W]`` (uint8 or [0,1] float).

    >>> rgb_to_y(torch.ones(3, 1, 1)).item()
    235.0
    """
    if img.shape[-3] != 3:
        raise ValueError(f"expected RGB [..., 3, H, W], got shape {list(img.shape)}")
    levels = _as_levels(img) / 255.0
    r, g, b = levels.unbind(-3)
    return 16.0 + BT601_Y[0] * r + BT601_Y[1] * g + BT601_Y[2] * b


def _prepare(sr: torch.Tensor, hr: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR differ in shape: {list(sr.shape)} vs {list(hr.shape)}")
    y_sr, y_hr = rgb_to_y(sr), rgb_to_y(hr)
    border = math.ceil(scale) if scale and scale > 0 else 0
    if border:
        if y_sr.shape[-1] <= 2 * border or y_sr.shape[-2] <= 2 * border:
            raise ValueError(f"image {list(y_sr.shape[-2:])} is too small to crop a {border}-px border")
        y_sr = y_sr[..., border:-border, border:-border]
        y_hr = y_hr[..., border:-border, border:-border]
    return y_sr, y_hr


def _per_image(values: torch.Tensor, batched: bool):
    return values if batched else float(values.reshape(()))


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, scale: float):
    """PSNR in dB on the Y channel after cropping ``ceil(scale)`` border pixels.

    Returns a float for one image ``[3, H, W]``, a float64 tensor ``[B]`` for a batch; identical
    images give ``inf``.

    Example::

        psnr_y(sr, hr, scale=2)      # 37.5
    """
    y_sr, y_hr = _prepare(sr, hr, scale)
    mse = ((y_sr - y_hr) ** 2).flatten(-2).mean(-1)
    psnr = 10.0 * torch.log10(255.0**2 / mse)  # mse == 0 -> inf
    return _per_image(psnr, sr.dim() == 4)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """The normalised ``size x size`` Gaussian (float64) used by SSIM."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, scale: float):
    """SSIM on the Y channel (0..255) after cropping ``ceil(scale)`` border pixels.

    Gaussian window 11x11, sigma 1.5; C1 = (0.01*255)^2, C2 = (0.03*255)^2; the SSIM map is
    averaged over the valid region (no padding), as MATLAB's reference code does.  Returns a float
    for one image, a tensor ``[B]`` for a batch; identical images give 1.0.
    """
    y_sr, y_hr = _prepare(sr, hr, scale)
    batched = sr.dim() == 4
    x = y_sr.reshape(-1, 1, *y_sr.shape[-2:])
    y = y_hr.reshape(-1, 1, *y_hr.shape[-2:])
    if x.shape[-1] < 11 or x.shape[-2] < 11:
        raise ValueError(f"image {list(x.shape[-2:])} is smaller than the 11x11 SSIM window after cropping")
    window = gaussian_window().view(1, 1, 11, 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, window), F.conv2d(y, window)
    var_x = F.conv2d(x * x, window) - mu_x**2
    var_y = F.conv2d(y * y, window) - mu_y**2
    cov = F.conv2d(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _per_image(ssim_map.flatten(1).mean(1), batched)
