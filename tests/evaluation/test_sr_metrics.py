"""PSNR/SSIM on Y as SR papers compute them: known values by hand, and the test-set plumbing."""
import math

import pytest
import torch
from PIL import Image

from lrreid.errors import DatasetLayoutError
from lrreid.evaluation.sr_metrics import (
    benchmark_pairs,
    find_sr_pairs,
    mod_crop,
    psnr_y,
    rgb_to_y,
    score_sr,
    ssim_y,
)
from lrreid.models.sr import build_sr_model

Y_PER_LEVEL = (65.481 + 128.553 + 24.966) / 255  # Y change when R, G and B all rise by one grey level


def levels(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.uint8)


def test_y_channel_spans_16_to_235():
    assert rgb_to_y(torch.zeros(3, 1, 1)).item() == pytest.approx(16.0)
    assert rgb_to_y(torch.ones(3, 1, 1)).item() == pytest.approx(235.0)
    red = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    assert rgb_to_y(red).item() == pytest.approx(16 + 65.481)


def test_identical_images_give_infinite_psnr_and_ssim_one():
    img = torch.rand(3, 40, 30)
    assert psnr_y(img, img, 2) == math.inf
    assert ssim_y(img, img, 2) == pytest.approx(1.0)


@pytest.mark.parametrize("k", [1, 3, 8])
def test_psnr_of_a_known_error_level(k):
    torch.manual_seed(k)
    hr = torch.randint(40, 200, (3, 36, 28))
    sign = torch.where(torch.rand(1, 36, 28) < 0.5, -1, 1)  # +-k grey levels, same on R, G, B
    sr = hr + k * sign
    expected = 20 * math.log10(255 / (k * Y_PER_LEVEL))
    assert psnr_y(levels(sr), levels(hr), 3) == pytest.approx(expected, abs=0.01)
    # float inputs in [0, 1] are quantised to the same levels
    assert psnr_y(sr / 255.0, hr / 255.0, 3) == pytest.approx(expected, abs=0.01)


def test_errors_inside_the_cropped_border_do_not_count():
    hr = torch.rand(3, 20, 20)
    sr = hr.clone()
    sr[:, :3, :] = 1 - sr[:, :3, :]
    assert psnr_y(sr, hr, 3) == math.inf
    assert psnr_y(sr, hr, 2) < 30


def test_ssim_of_flat_images_with_a_known_offset():
    # flat images: variances are zero, so SSIM reduces to its luminance term
    hr = torch.full((3, 30, 30), 100, dtype=torch.uint8)
    sr = torch.full((3, 30, 30), 110, dtype=torch.uint8)
    mx, my = 16 + 100 * Y_PER_LEVEL, 16 + 110 * Y_PER_LEVEL
    c1 = (0.01 * 255) ** 2
    expected = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    assert ssim_y(sr, hr, 2) == pytest.approx(expected, abs=1e-9)


def test_ssim_falls_with_noise_and_batches_give_one_value_per_image():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 32, 32).repeat(3, 1, 1, 1)
    noise = torch.randn(1, 3, 32, 32)
    sr = (hr + torch.tensor([0.0, 0.02, 0.1]).view(3, 1, 1, 1) * noise).clamp(0, 1)
    values = ssim_y(sr, hr, 2)
    assert values.shape == (3,) and values[0] == pytest.approx(1.0) and values[0] > values[1] > values[2]
    assert psnr_y(sr, hr, 2).shape == (3,)


def test_mismatched_or_tiny_images_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_y(torch.rand(3, 10, 10), torch.rand(3, 10, 12), 2)
    with pytest.raises(ValueError, match="11x11"):
        ssim_y(torch.rand(3, 14, 14), torch.rand(3, 14, 14), 2)


def test_mod_crop_trims_to_a_multiple_of_the_scale():
    assert mod_crop(Image.new("RGB", (229, 344)), 3).size == (228, 342)
    assert mod_crop(Image.new("RGB", (229, 344)), 2.5).size == (225, 340)  # x5/2: multiples of 5


def make_test_set(root, scales=(2, 3), names=("a", "b")):
    torch.manual_seed(0)
    (root / "HR").mkdir(parents=True)
    for name in names:
        small = torch.rand(3, 8, 7)
        hr = torch.nn.functional.interpolate(small[None], size=(49, 44), mode="bilinear")[0]
        img = Image.fromarray((hr.permute(1, 2, 0).numpy() * 255).round().astype("uint8"))
        img.save(root / "HR" / f"{name}.png")
        for s in scales:
            (root / "LR_bicubic" / f"X{s}").mkdir(parents=True, exist_ok=True)
            cropped = mod_crop(img, s)
            cropped.resize((cropped.width // s, cropped.height // s), Image.BICUBIC).save(
                root / "LR_bicubic" / f"X{s}" / f"{name}x{s}.png"
            )
    return root


def test_test_set_pairs_and_scores(tmp_path):
    root = make_test_set(tmp_path / "Tiny")
    assert [n for n, _, _ in find_sr_pairs(root, 3)] == ["a", "b"]
    pairs = list(benchmark_pairs(root, 3))
    assert pairs[0][2].shape == (3, 48, 42) and pairs[0][1].shape == (3, 16, 14)  # HR mod-cropped
    score = score_sr(build_sr_model("bicubic"), pairs, 3)
    assert score.images == 2 and 20 < score.psnr < 60 and 0 < score.ssim <= 1


def test_a_missing_lr_image_or_folder_names_what_is_missing(tmp_path):
    root = make_test_set(tmp_path / "Tiny")
    (root / "LR_bicubic" / "X2" / "bx2.png").unlink()
    with pytest.raises(DatasetLayoutError, match="no bx2.png"):
        find_sr_pairs(root, 2)
    with pytest.raises(DatasetLayoutError, match="X4: folder not found"):
        find_sr_pairs(root, 4)
