"""Shared losses against values worked out by hand on tiny inputs."""
import math

import pytest
import torch

from lrreid import losses

# 1-D points 0, 1, 3, 7; persons {0,1} and {2,3}: d01=1 d02=3 d03=7 d12=2 d13=6 d23=4
POINTS = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
PIDS = torch.tensor([0, 0, 1, 1])


def test_cross_entropy_plain_and_label_smoothing():
    logits = torch.log(torch.tensor([[1.0, 2.0, 1.0]]))  # p = (.25, .5, .25)
    target = torch.tensor([1])
    assert losses.cross_entropy(logits, target).item() == pytest.approx(math.log(2))
    # smoothed target (.1, .8, .1): -(.1 ln .25 + .8 ln .5 + .1 ln .25) = 1.2 ln 2
    assert losses.cross_entropy(logits, target, label_smoothing=0.3).item() == pytest.approx(1.2 * math.log(2))


def test_soft_cross_entropy_is_minus_sum_l_log_p():
    logits = torch.log(torch.tensor([[1.0, 3.0], [1.0, 1.0]]))  # p = (.25,.75), (.5,.5)
    soft = torch.tensor([[0.5, 0.5], [1.0, 0.0]])
    expected = (-(0.5 * math.log(0.25) + 0.5 * math.log(0.75)) + math.log(2)) / 2
    assert losses.soft_cross_entropy(logits, soft).item() == pytest.approx(expected)


def test_soft_cross_entropy_with_one_hot_equals_cross_entropy():
    logits = torch.randn(5, 4)
    targets = torch.tensor([0, 3, 2, 1, 1])
    one_hot = torch.nn.functional.one_hot(targets, 4).float()
    assert losses.soft_cross_entropy(logits, one_hot).item() == pytest.approx(losses.cross_entropy(logits, targets).item(), abs=1e-6)


def test_soft_cross_entropy_gives_no_gradient_to_labels_and_checks_shapes():
    logits = torch.zeros(2, 3, requires_grad=True)
    soft = torch.full((2, 3), 1 / 3, requires_grad=True)
    losses.soft_cross_entropy(logits, soft).backward()
    assert soft.grad is None and logits.grad is not None
    with pytest.raises(ValueError, match="differ in shape"):
        losses.soft_cross_entropy(torch.zeros(2, 3), torch.zeros(2, 4))


def test_l1_loss():
    assert losses.l1_loss(torch.tensor([[1.0, -2.0], [3.0, 4.0]]), torch.zeros(2, 2)).item() == pytest.approx(2.5)


def test_triplet_batch_hard_by_hand():
    # only anchor 2 violates: farthest positive 4 (pt 7), nearest negative 2 (pt 1): 4 - 2 + .3
    assert losses.triplet_loss(POINTS, PIDS, margin=0.3).item() == pytest.approx(2.3 / 4)


def test_triplet_all_triplets_by_hand():
    # 8 triplets; violating: (2,3,0): 4-3+.3 and (2,3,1): 4-2+.3
    loss = losses.triplet_loss(POINTS, PIDS, margin=0.3, hard_mining=False)
    assert loss.item() == pytest.approx((1.3 + 2.3) / 8)


def test_triplet_soft_margin_when_margin_is_zero():
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    expected = (sp(1 - 3) + sp(1 - 2) + sp(4 - 2) + sp(4 - 6)) / 4
    assert losses.triplet_loss(POINTS, PIDS, margin=0.0).item() == pytest.approx(expected)


def test_triplet_normalize_uses_unit_vectors():
    feats = torch.tensor([[3.0, 4.0], [6.0, 8.0], [0.0, 1.0], [1.0, 0.0]])  # first two identical after normalising
    s2, s4, s8 = math.sqrt(2), math.sqrt(0.4), math.sqrt(0.8)
    expected = ((s2 - s4 + 0.3) + (s2 - s8 + 0.3)) / 4
    assert losses.triplet_loss(feats, PIDS, normalize=True).item() == pytest.approx(expected, abs=1e-6)
    assert losses.triplet_loss(feats, PIDS, normalize=False).item() != pytest.approx(expected, abs=1e-3)


def test_triplet_gradient_finite_with_identical_features_and_zero_without_triplets():
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    losses.triplet_loss(feats, PIDS).backward()
    assert torch.isfinite(feats.grad).all()
    single = torch.randn(3, 2, requires_grad=True)
    loss = losses.triplet_loss(single, torch.tensor([5, 6, 7]))  # no positives at all
    assert loss.item() == 0.0
    loss.backward()
    assert single.grad is not None
