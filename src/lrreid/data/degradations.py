"""Image degradations: how a high-resolution image is turned into a realistic low-resolution one.

Two kinds of tools live here:

* ``bicubic_downsample`` / ``bicubic_resize``: the deterministic, antialiased bicubic resize used
  by SR benchmarks and by the MLR datasets (Jiao et al., AAAI 2018; PRI, ECCV 2020).
* Random degradation steps (``GaussianBlur``, ``MotionBlur``, ``SensorNoise``, ``JpegCompression``,
  ``Downsample``) chained by ``Compose`` and built from config by ``build_degradation``.  Every step is
  ``step(img: PIL.Image, rng: np.random.Generator) -> PIL.Image``; a parameter given as a
  ``(low, high)`` pair is drawn uniformly from ``rng`` per call, a single number is used as is, so
  the same seed always gives the same output.

About the bicubic kernel: PIL's ``Image.BICUBIC`` (Keys kernel, a = -0.5, support widened by the
reduction factor when shrinking) and ``torch.nn.functional.interpolate(mode="bicubic",
antialias=True)`` both implement what MATLAB's ``imresize`` does.  Measured on Set5 against the
MATLAB-made ``LR_bicubic`` copies (HR cropped to a multiple of the scale, as those were made):
PIL gives 50-56 dB PSNR and torch 50-57 dB at x2/x3/x4, i.e. they differ by at most a few grey
levels of rounding (see tests/data/test_degradations.py).
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from lrreid.errors import ConfigError

Range = float | tuple[float, float]


# --------------------------------------------------------------------------- bicubic resize


def downsampled_size(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """``(h, w)`` after down-sampling by ``factor``: each side rounded half up, at least 1 px.

    >>> downsampled_size((128, 64), 3)
    (43, 21)
    """
    if not factor > 0:
        raise ConfigError(f"down-sampling factor must be > 0, got {factor!r}")
    h, w = size
    return max(1, math.floor(h / factor + 0.5)), max(1, math.floor(w / factor + 0.5))


def _image_hw(img: Image.Image | torch.Tensor) -> tuple[int, int]:
    if isinstance(img, Image.Image):
        return img.height, img.width
    return int(img.shape[-2]), int(img.shape[-1])


def bicubic_resize(img: Image.Image | torch.Tensor, size: tuple[int, int]):
    """Antialiased bicubic resize to ``size = (h, w)``; returns the same type it was given.

    Works on a PIL image or a float tensor ``(3, H, W)`` / ``(B, 3, H, W)`` in [0, 1] (the result
    is clamped to [0, 1] because bicubic overshoots at edges).

    >>> bicubic_resize(Image.new("RGB", (64, 128)), (32, 16)).size
    (16, 32)
    """
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ConfigError(f"resize target must be at least 1x1 px, got {size!r}")
    if isinstance(img, Image.Image):
        if (img.height, img.width) == (h, w):
            return img.copy()
        return img.resize((w, h), Image.BICUBIC)
    if not isinstance(img, torch.Tensor):
        raise TypeError(f"expected a PIL image or a tensor, got {type(img).__name__}")
    if not img.is_floating_point():
        raise TypeError(f"expected a float tensor in [0, 1], got dtype {img.dtype}")
    squeeze = img.dim() == 3
    x = img.unsqueeze(0) if squeeze else img
    if x.dim() != 4:
        raise TypeError(f"expected a (3,H,W) or (B,3,H,W) tensor, got shape {tuple(img.shape)}")
    if tuple(x.shape[-2:]) != (h, w):
        x = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)
    return x.squeeze(0) if squeeze else x


def bicubic_downsample(img: Image.Image | torch.Tensor, factor: float):
    """Shrink by ``factor`` with antialiased bicubic (MATLAB ``imresize``-like); same type out.

    The output size is ``round(size / factor)`` per side (half rounds up), at least 1 px.

    >>> bicubic_downsample(Image.new("RGB", (64, 128)), 4).size
    (16, 32)
    """
    return bicubic_resize(img, downsampled_size(_image_hw(img), factor))


# --------------------------------------------------------------------------- random steps


def _check_range(name: str, value: Any, low: float = -math.inf, high: float = math.inf) -> Range:
    """Accept a number or a (low, high) pair inside [low, high]; anything else is a ConfigError."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
            raise ConfigError(f"{name}: expected a number or a [low, high] pair, got {value!r}")
        lo, hi = float(value[0]), float(value[1])
        if lo > hi:
            raise ConfigError(f"{name}: low {lo} is above high {hi}")
        checked: Range = (lo, hi)
        values = (lo, hi)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        checked = float(value)
        values = (checked,)
    else:
        raise ConfigError(f"{name}: expected a number or a [low, high] pair, got {value!r}")
    for v in values:
        if not low <= v <= high:
            raise ConfigError(f"{name}: {v} is outside [{low}, {high}]")
    return checked


def _draw(rng: np.random.Generator, value: Range) -> float:
    return float(rng.uniform(value[0], value[1])) if isinstance(value, tuple) else float(value)


def _to_array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def _to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


@dataclass
class GaussianBlur:
    """Optical (defocus) blur: a Gaussian of standard deviation ``sigma`` pixels (0 = no blur)."""

    sigma: Range = (0.2, 2.0)

    def __post_init__(self):
        self.sigma = _check_range("GaussianBlur.sigma", self.sigma, 0.0, 50.0)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        from scipy.ndimage import gaussian_filter

        sigma = _draw(rng, self.sigma)
        if sigma <= 0:
            return img.convert("RGB")
        return _to_image(gaussian_filter(_to_array(img), sigma=(sigma, sigma, 0), mode="reflect", truncate=3.0))


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel ``length`` px long at ``angle_deg`` (0 = horizontal), sub-pixel exact."""
    size = int(math.ceil(length)) | 1  # odd, so the kernel is centred
    kernel = np.zeros((size, size), dtype=np.float64)
    c = size // 2
    dx, dy = math.cos(math.radians(angle_deg)), -math.sin(math.radians(angle_deg))
    # Splat many points along the segment bilinearly so fractional lengths and angles are smooth.
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, int(length * 8))):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        for yy, xx, wgt in ((y0, x0, (1 - fx) * (1 - fy)), (y0, x0 + 1, fx * (1 - fy)),
                            (y0 + 1, x0, (1 - fx) * fy), (y0 + 1, x0 + 1, fx * fy)):
            if 0 <= yy < size and 0 <= xx < size:
                kernel[yy, xx] += wgt
    return (kernel / kernel.sum()).astype(np.float32)


@dataclass
class MotionBlur:
    """Linear motion blur: a line kernel ``length`` px long at ``angle`` degrees."""

    length: Range = (3.0, 9.0)
    angle: Range = (0.0, 180.0)

    def __post_init__(self):
        self.length = _check_range("MotionBlur.length", self.length, 1.0, 100.0)
        self.angle = _check_range("MotionBlur.angle", self.angle)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        from scipy.ndimage import convolve

        length, angle = _draw(rng, self.length), _draw(rng, self.angle)
        if length <= 1:
            return img.convert("RGB")
        kernel = motion_kernel(length, angle)
        arr = _to_array(img)
        out = np.stack([convolve(arr[..., ch], kernel, mode="reflect") for ch in range(3)], axis=-1)
        return _to_image(out)


@dataclass
class SensorNoise:
    """Additive Gaussian sensor noise of standard deviation ``sigma`` (image scale [0, 1]), per pixel and channel."""

    sigma: Range = (0.0, 0.05)

    def __post_init__(self):
        self.sigma = _check_range("SensorNoise.sigma", self.sigma, 0.0, 1.0)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        sigma = _draw(rng, self.sigma)
        arr = _to_array(img)
        if sigma <= 0:
            return img.convert("RGB")
        return _to_image(arr + rng.normal(0.0, sigma, size=arr.shape).astype(np.float32))


@dataclass
class JpegCompression:
    """Round trip through JPEG at ``quality`` (1-100, drawn as an integer) to add blocking and ringing."""

    quality: Range = (30, 95)

    def __post_init__(self):
        self.quality = _check_range("JpegCompression.quality", self.quality, 1, 100)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if isinstance(self.quality, tuple):
            quality = int(rng.integers(int(self.quality[0]), int(self.quality[1]) + 1))
        else:
            quality = int(self.quality)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            return decoded.convert("RGB")


@dataclass
class Downsample:
    """Bicubic down-sampling by a factor drawn from ``factors`` (a set of choices, or one number).

    ``factor_range=(low, high)`` draws a continuous factor instead (genuine LR is not an integer
    multiple).  ``restore_size=True`` up-samples the result back to the input size, for models that
    expect a fixed input size (the LR detail is still lost).
    """

    factors: float | Sequence[float] = (2, 3, 4)
    factor_range: tuple[float, float] | None = None
    restore_size: bool = False

    def __post_init__(self):
        if self.factor_range is not None:
            rng_ = _check_range("Downsample.factor_range", tuple(self.factor_range), 1.0, 64.0)
            if not isinstance(rng_, tuple):
                raise ConfigError(f"Downsample.factor_range: expected [low, high], got {self.factor_range!r}")
            self.factor_range = rng_
        else:
            choices = self.factors if isinstance(self.factors, (list, tuple)) else (self.factors,)
            if not choices:
                raise ConfigError("Downsample.factors: expected at least one factor")
            for f in choices:
                _check_range("Downsample.factors", f, 1.0, 64.0)
            self.factors = tuple(float(f) for f in choices)

    def sample_factor(self, rng: np.random.Generator) -> float:
        if self.factor_range is not None:
            return float(rng.uniform(*self.factor_range))
        return float(self.factors[int(rng.integers(len(self.factors)))])

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        img = img.convert("RGB")
        small = bicubic_downsample(img, self.sample_factor(rng))
        return bicubic_resize(small, (img.height, img.width)) if self.restore_size else small


Step = Callable[[Image.Image, np.random.Generator], Image.Image]


class Compose:
    """Apply degradation steps in order, all drawing from one generator.

    >>> degrade = Compose([GaussianBlur(1.0), Downsample(4), SensorNoise(0.01)])
    >>> degrade(Image.new("RGB", (64, 128)), np.random.default_rng(0)).size
    (16, 32)
    """

    def __init__(self, steps: Sequence[Step]):
        self.steps = list(steps)

    def __call__(self, img: Image.Image, rng: np.random.Generator | int | None = None) -> Image.Image:
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        img = img.convert("RGB")
        for step in self.steps:
            img = step(img, rng)
        return img

    def __repr__(self) -> str:
        return f"Compose({self.steps!r})"

    def __len__(self) -> int:
        return len(self.steps)


DEGRADATIONS: dict[str, type] = {
    "blur": GaussianBlur,
    "gaussian_blur": GaussianBlur,
    "motion_blur": MotionBlur,
    "noise": SensorNoise,
    "sensor_noise": SensorNoise,
    "jpeg": JpegCompression,
    "downsample": Downsample,
}


def _build_step(spec: str | dict) -> Step:
    if isinstance(spec, str):
        name, params = spec.strip(), {}
    elif isinstance(spec, dict):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f"degradation step {spec!r} has no 'name'")
    else:
        raise ConfigError(f"degradation step must be a name or a mapping with 'name', got {spec!r}")
    key = name.lower().replace("-", "_")
    if key not in DEGRADATIONS:
        raise ConfigError(f"unknown degradation {name!r} (known: {', '.join(sorted(DEGRADATIONS))})")
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}  # YAML lists
    try:
        return DEGRADATIONS[key](**params)
    except TypeError as exc:
        raise ConfigError(f"degradation {name!r}: bad parameters {sorted(params)} ({exc})") from None


def build_degradation(spec: str | list | dict | Compose) -> Compose:
    """Build a ``Compose`` from config.

    ``spec`` is ``"blur+downsample+noise+jpeg"`` (default parameters), a list of names and/or
    ``{"name": ..., **params}`` mappings, one such mapping, or ``{"steps": [...]}``.

    >>> build_degradation([{"name": "blur", "sigma": [0.5, 1.5]}, "downsample", "jpeg"])
    Compose([GaussianBlur(sigma=(0.5, 1.5)), Downsample(factors=(2.0, 3.0, 4.0), factor_range=None, restore_size=False), JpegCompression(quality=(30.0, 95.0))])
    """
    if isinstance(spec, Compose):
        return spec
    if isinstance(spec, str):
        items: list = [s for s in spec.split("+") if s.strip()]
        if not items:
            raise ConfigError(f"empty degradation spec {spec!r}")
    elif isinstance(spec, dict):
        items = list(spec["steps"]) if "steps" in spec and "name" not in spec else [spec]
    elif isinstance(spec, (list, tuple)):
        items = list(spec)
    else:
        raise ConfigError(f"degradation spec must be a string, list or mapping, got {type(spec).__name__}")
    return Compose([_build_step(item) for item in items])
