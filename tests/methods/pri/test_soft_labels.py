"""PRI's scale-factor metric (Eq. 3), the soft-label table and the omega refresh schedule."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lrreid.errors import CheckpointError, ConfigError
from lrreid.methods.pri.soft_labels import (
    SoftLabelTable,
    check_gamma,
    one_hot_labels,
    scale_factor_metric,
    should_refresh,
)


def _softmax(values):
    e = [math.exp(v) for v in values]
    return [v / sum(e) for v in e]


def test_eq3_gamma_1_by_hand():
    # d = (1, 2, 6): mean 3, mean - d = (2, 1, -3)
    labels = scale_factor_metric(torch.tensor([[1.0, 2.0, 6.0]]), gamma=1)
    torch.testing.assert_close(labels[0], torch.tensor(_softmax([2.0, 1.0, -3.0])))


def test_eq3_gamma_3_keeps_the_sign():
    # (2, 1, -3) ** 3 = (8, 1, -27): the farther-than-average scale gets a negative score
    labels = scale_factor_metric(torch.tensor([[1.0, 2.0, 6.0]]), gamma=3)
    torch.testing.assert_close(labels[0], torch.tensor(_softmax([8.0, 1.0, -27.0])))
    assert labels[0, 2] < 1e-10  # an even power would have made it the most probable


def test_closest_scale_gets_the_highest_probability():
    d = torch.tensor([[3.0, 0.5, 2.0, 4.0], [1.0, 1.1, 1.2, 0.9]])
    for gamma in (1, 3):
        labels = scale_factor_metric(d, gamma)
        assert labels.argmax(1).tolist() == [1, 3]
        torch.testing.assert_close(labels.sum(1), torch.ones(2))


def test_gamma_zero_is_uniform_and_even_gamma_is_refused():
    torch.testing.assert_close(scale_factor_metric(torch.tensor([[1.0, 5.0]]), 0), torch.tensor([[0.5, 0.5]]))
    for bad in (2, -1, 1.5, True):
        with pytest.raises(ConfigError, match="gamma"):
            check_gamma(bad)


def test_one_hot_labels():
    assert one_hot_labels(torch.tensor([[0.1, 0.6, 0.3]])).tolist() == [[0.0, 1.0, 0.0]]


def test_refresh_every_omega_epochs():
    rng = np.random.default_rng(0)
    assert [should_refresh(e, 1, rng) for e in range(4)] == [True] * 4
    assert [should_refresh(e, 3, rng) for e in range(7)] == [True, False, False, True, False, False, True]


def test_omega_zero_is_a_seeded_coin_per_epoch():
    draws = [should_refresh(e, 0, np.random.default_rng(seed)) for seed in range(40) for e in (0,)]
    assert 5 < sum(draws) < 35  # both outcomes happen
    again = [should_refresh(0, 0, np.random.default_rng(seed)) for seed in range(40)]
    assert draws == again  # reproducible from the engine's seeded rng
    with pytest.raises(ConfigError, match="omega"):
        should_refresh(0, -1, np.random.default_rng(0))


def test_table_update_lookup_and_checkpoint_round_trip():
    table = SoftLabelTable(num_images=5, num_scales=4)
    labels, known = table.lookup(torch.tensor([0, 3]))
    assert not known.any() and torch.allclose(labels, torch.full((2, 4), 0.25))
    table.update(torch.tensor([3]), torch.tensor([[0.1, 0.6, 0.2, 0.1]]))
    labels, known = table.lookup(torch.tensor([3, 4]))
    assert known.tolist() == [True, False] and labels[0].tolist() == pytest.approx([0.1, 0.6, 0.2, 0.1])

    other = SoftLabelTable(5, 4)
    other.load_state(table.state())
    assert torch.equal(other.labels, table.labels) and torch.equal(other.measured, table.measured)

    with pytest.raises(CheckpointError, match="scale set"):
        SoftLabelTable(5, 3).load_state(table.state())
    with pytest.raises(CheckpointError, match="not a PRI checkpoint"):
        SoftLabelTable(5, 4).load_state({})


def test_best_ranking_scale_by_hand():
    from lrreid.methods.pri.soft_labels import best_ranking_scale

    anchors = torch.tensor([[0.0], [1.0], [2.0]])  # persons 0, 1, 2
    pids = torch.tensor([0, 1, 2])
    # image 0 (person 0) at 2 scales: 0.9 (person 1 nearer: rank 2) or 0.2 (rank 1)
    # image 1 (person 1): 1.0 and 1.1 both rank 1, the margin decides (1.0: 1.0 - 0 vs 1.1: 0.9 - 0.1)
    # image 2 (person 2): 1.6 and 1.9 both rank 1 -> the larger margin, 1.9
    feats = torch.tensor([[[0.9], [1.0], [1.6]], [[0.2], [1.1], [1.9]]])
    assert best_ranking_scale(feats, anchors, pids, pids).tolist() == [1, 0, 1]
    # an image whose person has no anchor: -1
    assert best_ranking_scale(feats[:, :1], anchors[1:], pids[:1], pids[1:]).tolist() == [-1]


def test_label_statistics_of_uniform_and_one_hot_labels():
    import math

    from lrreid.methods.pri.soft_labels import label_statistics

    uniform = label_statistics(torch.full((3, 4), 0.25))
    assert uniform["entropy"] == pytest.approx(math.log(4)) and uniform["max_prob"] == pytest.approx(0.25)
    sharp = label_statistics(torch.eye(4))
    assert sharp["entropy"] == pytest.approx(0.0, abs=1e-6) and sharp["max_prob"] == pytest.approx(1.0)


def test_normalised_labels_do_not_depend_on_the_feature_scale_and_keep_gamma_odd():
    d = torch.tensor([[0.010, 0.012, 0.015, 0.011]])
    for norm in ("mean", "std"):
        torch.testing.assert_close(scale_factor_metric(d, 1, norm, 0.1), scale_factor_metric(d * 1000, 1, norm, 0.1))
        assert scale_factor_metric(d, 3, norm, 0.1).argmax().item() == 0
    with pytest.raises(ConfigError):
        scale_factor_metric(d, 1, "max", 1.0)
    with pytest.raises(ConfigError):
        scale_factor_metric(d, 1, "mean", 0.0)


def test_margin_distances_by_hand():
    from lrreid.methods.pri.soft_labels import margin_distances

    anchors = torch.tensor([[0.0], [1.0], [3.0]])  # the batch's x_h: persons 0, 1, 0
    pids = torch.tensor([0, 1, 0])
    # image 0 at scale 0 is 0.4 (own anchor 0.4 away, person 1's 0.6): -0.2; at scale 1 it is 0.8 (0.8 - 0.2)
    # image 1 at scale 0 is 1.0 (0 - 1.0, its nearest other person is at 0.0): -1.0; at scale 1 it is 2.0 (1.0 - 1.0)
    # image 2's own anchor is at 3.0: 2.9 -> 0.1 - 1.9; 0.5 -> 2.5 - 0.5 (the other image of person 0 is not "other")
    feats = torch.tensor([[[0.4], [1.0], [2.9]], [[0.8], [2.0], [0.5]]])
    torch.testing.assert_close(margin_distances(feats, anchors, pids),
                               torch.tensor([[-0.2, 0.6], [-1.0, 0.0], [-1.8, 2.0]]))
    # a batch of one person has no other: the plain distance to the own x_h
    torch.testing.assert_close(margin_distances(feats[:, [0, 2]], anchors[[0, 2]], pids[[0, 2]]),
                               torch.tensor([[0.4, 0.8], [0.1, 2.5]]))


def test_margin_target_refuses_the_mean_norm():
    from lrreid.methods.pri.config import PRILossConfig

    PRILossConfig(label_target="margin", label_norm="std")
    with pytest.raises(ValueError, match="label_norm: mean"):
        PRILossConfig(label_target="margin", label_norm="mean")
