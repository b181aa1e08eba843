"""Random erasing on F's training inputs (lrreid.data.augment)."""
import pytest
import torch

from lrreid.data.augment import random_erasing


def test_every_image_gets_one_rectangle_of_the_asked_area_at_probability_one():
    x = torch.zeros(64, 3, 40, 20)
    out = random_erasing(x + 5.0, probability=1.0, area=(0.1, 0.2), generator=torch.Generator().manual_seed(0))
    changed = (out != 5.0).any(dim=1)  # [B, H, W] erased pixels
    fractions = changed.flatten(1).float().mean(1)
    assert (fractions > 0).all()
    # rounding of the rectangle's sides moves the area a little around the drawn fraction
    assert fractions.min() > 0.05 and fractions.max() < 0.3
    for mask in changed:  # one axis-aligned rectangle: its bounding box is fully erased
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_probability_sets_the_share_of_erased_images_and_the_input_is_untouched():
    x = torch.rand(400, 3, 16, 8)
    before = x.clone()
    out = random_erasing(x, probability=0.5, generator=torch.Generator().manual_seed(1))
    share = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.4 < share < 0.6
    assert torch.equal(x, before)
    assert torch.equal(random_erasing(x, probability=0.0), x)


def test_same_generator_seed_same_result():
    x = torch.rand(8, 3, 16, 8)
    a = random_erasing(x, 0.5, generator=torch.Generator().manual_seed(3))
    b = random_erasing(x, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_pri_setting_is_a_probability():
    from lrreid.methods.pri.config import PRILossConfig

    assert PRILossConfig(random_erasing=0.5).random_erasing == 0.5
    with pytest.raises(ValueError, match="random_erasing"):
        PRILossConfig(random_erasing=1.5)
