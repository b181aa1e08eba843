"""Degradations: bicubic sizes and antialiasing, seeded random steps, value ranges, compose order, config errors."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from lrreid.data.degradations import (
    Compose, Downsample, GaussianBlur, JpegCompression, MotionBlur, SensorNoise, bicubic_downsample,
    bicubic_resize, build_degradation, downsampled_size,
)
from lrreid.errors import ConfigError


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


def textured(h=128, w=64, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 0.5 + 0.3 * np.sin(xx / 3.0)[..., None] * np.cos(yy / 5.0)[..., None]
    noise = rng.uniform(-0.1, 0.1, size=(h, w, 3))
    return Image.fromarray((np.clip(base + noise, 0, 1) * 255).astype(np.uint8), "RGB")


def stripes(h=128, w=128, period=3) -> Image.Image:
    """Vertical black/white stripes, ``period`` px: far above the Nyquist limit of a x4 reduction."""
    col = ((np.arange(w) % period) < period / 2).astype(np.uint8) * 255
    return Image.fromarray(np.repeat(np.tile(col, (h, 1))[..., None], 3, axis=2), "RGB")


# ------------------------------------------------------------------ bicubic

@pytest.mark.parametrize("size,factor,expected", [((128, 64), 2, (64, 32)), ((128, 64), 3, (43, 21)),
                                                  ((128, 64), 4, (32, 16)), ((3, 3), 10, (1, 1)), ((37, 92), 2.5, (15, 37))])
def test_downsampled_size_rounds_and_keeps_one_pixel(size, factor, expected):
    assert downsampled_size(size, factor) == expected
    img = Image.new("RGB", (size[1], size[0]))
    assert bicubic_downsample(img, factor).size == (expected[1], expected[0])
    assert tuple(bicubic_downsample(torch.rand(3, *size), factor).shape[-2:]) == expected


def test_bicubic_pil_and_tensor_agree_and_tensor_stays_in_range():
    img = textured()
    pil = arr(bicubic_downsample(img, 3))
    x = torch.from_numpy(arr(img)).permute(2, 0, 1).float()
    t = bicubic_downsample(x, 3)
    assert t.dtype == torch.float32 and 0.0 <= t.min() and t.max() <= 1.0
    assert psnr(pil, t.permute(1, 2, 0).numpy()) > 40  # both antialiased bicubic; only rounding differs
    batch = bicubic_resize(x.unsqueeze(0).repeat(2, 1, 1, 1), (20, 10))
    assert batch.shape == (2, 3, 20, 10)


def test_bicubic_is_antialiased():
    img = stripes(period=3)
    small = arr(bicubic_downsample(img, 4))[..., 0]
    naive = arr(img)[::4, ::4, 0]  # plain subsampling aliases the stripes into a coarse pattern
    assert naive.std() > 0.4
    assert small.std() < 0.1 and abs(small.mean() - arr(img)[..., 0].mean()) < 0.05  # the mean grey survives
    t = bicubic_downsample(torch.from_numpy(arr(img)).permute(2, 0, 1).float(), 4)
    assert t[0].std() < 0.1


def test_bicubic_errors():
    with pytest.raises(ConfigError, match="factor must be > 0"):
        bicubic_downsample(Image.new("RGB", (8, 8)), 0)
    with pytest.raises(ConfigError, match="at least 1x1"):
        bicubic_resize(Image.new("RGB", (8, 8)), (0, 4))
    with pytest.raises(TypeError, match="float tensor"):
        bicubic_resize(torch.zeros(3, 8, 8, dtype=torch.uint8), (4, 4))


def test_bicubic_matches_matlab_on_set5(shared):
    root = shared("data", "Set5")
    for scale in (2, 3, 4):
        for name in ("baby", "bird", "butterfly"):
            hr = Image.open(root / "HR" / f"{name}.bmp").convert("RGB")
            hr = hr.crop((0, 0, hr.width - hr.width % scale, hr.height - hr.height % scale))
            ref = Image.open(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.bmp").convert("RGB")
            ours = bicubic_downsample(hr, scale)
            assert ours.size == ref.size
            assert psnr(arr(ours), arr(ref)) > 45, (name, scale)


# ------------------------------------------------------------------ random steps

STEPS = [GaussianBlur((0.5, 2.0)), MotionBlur((3, 7)), SensorNoise((0.01, 0.05)), JpegCompression((20, 60)),
         Downsample((2, 3, 4))]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: type(s).__name__)
def test_steps_are_seeded_and_return_8bit_rgb(step):
    img = textured()
    a = step(img, np.random.default_rng(4))
    b = step(img, np.random.default_rng(4))
    assert a.mode == "RGB" and np.array_equal(arr(a), arr(b))
    outs = {arr(step(img, np.random.default_rng(s))).tobytes() for s in range(6)}
    assert len(outs) > 1  # parameters are drawn from the generator


def test_blur_and_noise_change_what_they_should():
    img = stripes(64, 64, period=4)
    blurred = arr(GaussianBlur(2.0)(img, np.random.default_rng(0)))
    assert blurred.std() < 0.5 * arr(img).std() and blurred.shape == arr(img).shape
    motion = arr(MotionBlur(9, 0)(img, np.random.default_rng(0)))  # horizontal: smears vertical stripes
    assert motion.std() < 0.5 * arr(img).std()
    vertical = arr(MotionBlur(9, 90)(img, np.random.default_rng(0)))  # along the stripes: almost no change
    assert np.abs(vertical - arr(img)).mean() < 0.05
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    noisy = arr(SensorNoise(0.05)(grey, np.random.default_rng(0)))
    assert 0.04 < noisy.std() < 0.06 and 0 <= noisy.min() and noisy.max() <= 1
    assert np.array_equal(arr(GaussianBlur(0)(img, np.random.default_rng(0))), arr(img))


def test_jpeg_lowers_quality():
    img = textured()
    errors = [np.abs(arr(JpegCompression(q)(img, np.random.default_rng(0))) - arr(img)).mean() for q in (95, 50, 10)]
    assert errors[0] < errors[1] < errors[2]

    def encoded_size(quality: int) -> int:
        buf = io.BytesIO()
        JpegCompression(quality)(img, np.random.default_rng(0)).save(buf, "PNG")
        return len(buf.getvalue())

    assert encoded_size(10) < encoded_size(95)  # blocky images have less detail left to store


def test_downsample_options():
    img = Image.new("RGB", (64, 128))
    sizes = {Downsample((2, 4))(img, np.random.default_rng(s)).size for s in range(20)}
    assert sizes == {(32, 64), (16, 32)}
    cont = Downsample(factor_range=(2.0, 4.0))
    assert 16 <= cont(img, np.random.default_rng(1)).width <= 32
    assert Downsample(4, restore_size=True)(img, np.random.default_rng(0)).size == (64, 128)


# ------------------------------------------------------------------ compose and config

def test_compose_applies_steps_in_order():
    img = stripes(128, 128, period=4)
    rng = lambda: np.random.default_rng(0)
    blur_then_down = Compose([GaussianBlur(1.5), Downsample(4)])(img, rng())
    down_then_blur = Compose([Downsample(4), GaussianBlur(1.5)])(img, rng())
    assert blur_then_down.size == down_then_blur.size == (32, 32)
    assert not np.array_equal(arr(blur_then_down), arr(down_then_blur))
    manual = GaussianBlur(1.5)(Downsample(4)(img, rng()), rng())
    assert np.array_equal(arr(manual), arr(down_then_blur))
    assert np.array_equal(arr(Compose(STEPS)(img, 3)), arr(Compose(STEPS)(img, np.random.default_rng(3))))


def test_build_degradation_specs():
    chain = build_degradation("blur+downsample+noise+jpeg")
    assert [type(s) for s in chain.steps] == [GaussianBlur, Downsample, SensorNoise, JpegCompression]
    chain = build_degradation([{"name": "blur", "sigma": [0.5, 1.5]}, "motion_blur", {"name": "downsample", "factors": [2]}])
    assert chain.steps[0].sigma == (0.5, 1.5) and chain.steps[2].factors == (2.0,)
    assert build_degradation({"steps": ["jpeg"]}).steps[0].quality == (30.0, 95.0)
    assert build_degradation({"name": "noise", "sigma": 0.1}).steps[0].sigma == 0.1


@pytest.mark.parametrize("spec,pattern", [
    ("blur+sharpen", "unknown degradation 'sharpen' \\(known: "),
    ([{"sigma": 1}], "has no 'name'"),
    ([{"name": "blur", "radius": 1}], "degradation 'blur': bad parameters \\['radius'\\]"),
    ([{"name": "blur", "sigma": [2, 1]}], "low 2.0 is above high 1.0"),
    ([{"name": "jpeg", "quality": 0}], "outside \\[1, 100\\]"),
    ("", "empty degradation spec"),
    (3, "must be a string, list or mapping"),
])
def test_build_degradation_errors(spec, pattern):
    with pytest.raises(ConfigError, match=pattern) as info:
        build_degradation(spec)
    assert "\n" not in str(info.value)
