"""ScalePredictor (PRI's P): logits over the scale classes, softmax outside."""
from __future__ import annotations

import pytest
import torch

from lrreid.models.predictor import ScalePredictor


def test_logits_shape_and_probabilities():
    torch.manual_seed(0)
    p = ScalePredictor("resnet18", num_scales=4, feat_dim=16).eval()
    with torch.no_grad():
        logits = p(torch.rand(5, 3, 64, 32))
    assert logits.shape == (5, 4)
    probs = logits.softmax(1)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))
    # a fresh predictor is close to uniform but not constant across images (content-dependent)
    assert (probs - 0.25).abs().max() < 0.2


def test_gradient_reaches_backbone():
    p = ScalePredictor("resnet18", num_scales=3, feat_dim=8)
    p(torch.rand(4, 3, 64, 32)).logsumexp(1).sum().backward()
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in p.backbone_parameters())


def test_needs_two_scales():
    with pytest.raises(ValueError, match="num_scales"):
        ScalePredictor("resnet18", num_scales=1)
