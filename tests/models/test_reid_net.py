"""ReIDNet (PRI's re-ID module F): shapes, train/eval outputs, the BN-neck, parameter groups."""
from __future__ import annotations

import pytest
import torch

from lrreid.models.reid import ReIDNet


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return ReIDNet("resnet18", num_classes=7, feat_dim=24)


def test_training_mode_returns_raw_features_and_logits(net):
    net.train()
    feats, logits = net(torch.rand(4, 3, 64, 32))
    assert feats.shape == (4, 24) and logits.shape == (4, 7)
    # logits are computed from the BN-neck feature, not the raw one
    f, f_bn = net.features(torch.rand(4, 3, 64, 32))
    assert not torch.allclose(f, f_bn)


def test_eval_mode_returns_bn_neck_features(net):
    net.eval()
    x = torch.rand(3, 3, 64, 32)
    with torch.no_grad():
        emb = net(x)
        _, f_bn = net.features(x)
    assert emb.shape == (3, 24)
    torch.testing.assert_close(emb, f_bn)


def test_parameter_groups_partition_all_parameters(net):
    backbone, head = net.backbone_parameters(), net.head_parameters()
    ids = [id(p) for p in backbone + head]
    assert len(ids) == len(set(ids)) == len(list(net.parameters()))
    assert {id(p) for p in net.classifier.parameters()} <= {id(p) for p in head}


def test_bad_num_classes_is_refused():
    with pytest.raises(ValueError, match="num_classes"):
        ReIDNet("resnet18", num_classes=0)
