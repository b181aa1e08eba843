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
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lrreid.data.imageio import image_to_tensor
from lrreid.errors import DatasetLayoutError

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
    """The normalised 1-D Gaussian (float64); SSIM's ``size x size`` window is its outer product."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """2-D Gaussian filtering, 'valid' region only, done as two 1-D passes (same result, 5x faster)."""
    k = g.numel()
    return F.conv2d(F.conv2d(img, g.view(1, 1, k, 1)), g.view(1, 1, 1, k))


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
    g = gaussian_window(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = _filter_valid(x, g), _filter_valid(y, g)
    var_x = _filter_valid(x * x, g) - mu_x**2
    var_y = _filter_valid(y * y, g) - mu_y**2
    cov = _filter_valid(x * y, g) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _per_image(ssim_map.flatten(1).mean(1), batched)


# --------------------------------------------------------------------------- benchmarks


@dataclass
class SRScore:
    """Mean PSNR/SSIM of one SR model at one scale over a set of images."""

    scale: float
    psnr: float
    ssim: float
    images: int
    skipped: int = 0
    per_image: dict[str, tuple[float, float]] = field(default_factory=dict)


to_tensor = image_to_tensor  # PIL RGB image -> float tensor [3, H, W] in [0, 1] (lrreid.data.imageio)


def mod_crop(img: Image.Image, scale: float) -> Image.Image:
    """Crop the bottom/right so both sides are multiples of the scale's numerator (x3: of 3;
    x2.5 = 5/2: of 5), so that down-sampling and SR land exactly on the HR size again.  SR test
    sets are prepared this way before their LR copies are made.

    >>> mod_crop(Image.new("RGB", (229, 344)), 3).size
    (228, 342)
    """
    m = Fraction(scale).limit_denominator(100).numerator
    w, h = img.size
    return img.crop((0, 0, w - w % m, h - h % m))


IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")


def find_sr_pairs(root: str | os.PathLike, scale: int) -> list[tuple[str, Path, Path]]:
    """``(name, hr_path, lr_path)`` of an SR test set laid out as ``HR/<name>.<ext>`` and
    ``LR_bicubic/X<s>/<name>x<s>.<ext>`` (Set5, Set14, B100, Urban100 as BasicSR ships them).

    Raises :class:`DatasetLayoutError` when the folder or a counterpart is missing.
    """
    base = Path(root)
    hr_dir, lr_dir = base / "HR", base / "LR_bicubic" / f"X{scale}"
    for d in (hr_dir, lr_dir):
        if not d.is_dir():
            raise DatasetLayoutError(
                f"{d}: folder not found (expected HR/<name>.png|bmp and LR_bicubic/X{scale}/<name>x{scale}.png|bmp)"
            )
    hrs = sorted(p for p in hr_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not hrs:
        raise DatasetLayoutError(f"{hr_dir}: no images")
    pairs = []
    for hr in hrs:
        candidates = [lr_dir / f"{hr.stem}x{scale}{ext}" for ext in (hr.suffix, *IMAGE_SUFFIXES)]
        lr = next((c for c in candidates if c.is_file()), None)
        if lr is None:
            raise DatasetLayoutError(f"{lr_dir}: no {hr.stem}x{scale}{hr.suffix} for {hr}")
        pairs.append((hr.stem, hr, lr))
    return pairs


@torch.no_grad()
def score_sr(model: torch.nn.Module, pairs, scale: float, device: torch.device | str = "cpu") -> SRScore:
    """Run ``model`` on each ``(name, lr, hr)`` (tensors ``[3, h, w]``, ``[3, H, W]`` in [0, 1]) and
    average PSNR/SSIM on Y.  The SR output must have the HR's size.  Images too small to score
    (a side below :func:`min_scoreable_side`) are skipped and counted.
    """
    model.eval()
    per_image: dict[str, tuple[float, float]] = {}
    skipped = 0
    for name, lr, hr in pairs:
        if min(hr.shape[-2:]) < min_scoreable_side(scale):
            skipped += 1
            continue
        sr = model(lr.unsqueeze(0).to(device), scale)[0].cpu()
        if sr.shape != hr.shape:
            raise ValueError(f"{name}: SR output {list(sr.shape)} but HR is {list(hr.shape)} at x{scale:g}")
        per_image[name] = (psnr_y(sr, hr, scale), ssim_y(sr, hr, scale))
    if not per_image:
        raise DatasetLayoutError(f"no images large enough to score at x{scale:g} ({skipped} too small)")
    psnrs, ssims = zip(*per_image.values())
    return SRScore(scale, float(np.mean(psnrs)), float(np.mean(ssims)), len(per_image), skipped, per_image)


def benchmark_pairs(root: str | os.PathLike, scale: int):
    """``(name, lr, hr)`` tensors of an SR test set, the HR mod-cropped to the scale (checked to
    be exactly ``scale`` times the LR)."""
    from lrreid.data.imageio import read_image

    for name, hr_path, lr_path in find_sr_pairs(root, scale):
        hr_img = mod_crop(read_image(hr_path), scale)
        lr_img = read_image(lr_path)
        if (lr_img.width * scale, lr_img.height * scale) != hr_img.size:
            raise DatasetLayoutError(
                f"{lr_path}: {lr_img.width}x{lr_img.height} px, but x{scale} of {hr_path.name} mod-cropped "
                f"to {hr_img.width}x{hr_img.height} needs {hr_img.width // scale}x{hr_img.height // scale}"
            )
        yield name, to_tensor(lr_img), to_tensor(hr_img)


def person_crop_pairs(paths, scale: float):
    """``(name, lr, hr)`` from HR person crops: the HR mod-cropped to the scale, the LR made with
    the antialiased bicubic down-sampling of :mod:`lrreid.data.degradations` (MATLAB-like)."""
    from lrreid.data.degradations import bicubic_downsample
    from lrreid.data.imageio import read_image

    for path in paths:
        hr_img = mod_crop(read_image(path), scale)
        lr_img = bicubic_downsample(hr_img, scale)
        yield str(path), to_tensor(lr_img), to_tensor(hr_img)


def min_scoreable_side(scale: float) -> int:
    """Smallest image side that still has an 11x11 SSIM window after cropping the border."""
    return 11 + 2 * math.ceil(scale)
