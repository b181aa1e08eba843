"""S3-CLIP's losses on hand-made tensors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lrreid.methods.s3clip import losses as L
from lrreid.methods.s3clip.model import frozen_call


def test_temporal_loss_is_zero_when_sr_equals_hr_and_positive_for_flicker():
    torch.manual_seed(0)
    hr = torch.rand(2, 5, 3, 8, 4)
    assert float(L.temporal_consistency_loss(hr.clone(), hr)) == 0.0
    # A constant error in every frame is not flicker: L_pixel sees it, L_temporal does not.
    biased = hr + 0.1
    assert float(L.temporal_consistency_loss(biased, hr)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.pixel_loss(biased, hr)) == pytest.approx(0.1, abs=1e-6)
    # The same error magnitude alternating in sign from frame to frame is flicker.
    signs = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0]).view(1, 5, 1, 1, 1)
    flicker = hr + 0.1 * signs
    assert float(L.temporal_consistency_loss(flicker, hr)) == pytest.approx(0.2, abs=1e-5)
    assert float(L.pixel_loss(flicker, hr)) == pytest.approx(0.1, abs=1e-6)


def test_temporal_loss_of_one_frame_tracklets_is_zero_and_shapes_are_checked():
    x = torch.rand(3, 1, 3, 4, 4, requires_grad=True)
    loss = L.temporal_consistency_loss(x, torch.rand(3, 1, 3, 4, 4))
    assert loss.item() == 0.0
    loss.backward()  # still part of the graph
    with pytest.raises(ValueError, match="differ in shape"):
        L.temporal_consistency_loss(torch.rand(1, 2, 3, 4, 4), torch.rand(1, 3, 3, 4, 4))


def test_tdp_gradient_reaches_sr_output_but_not_the_encoder_weights():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))  # I, deliberately with requires_grad=True
    sr = nn.Conv2d(3, 3, 1)  # S
    lr, hr = torch.rand(2, 3, 2, 2), torch.rand(2, 3, 2, 2)
    with torch.no_grad():
        target = encoder(hr)
    loss = L.task_driven_perceptual_loss(target, frozen_call(encoder, sr(lr)))
    loss.backward()
    assert sr.weight.grad is not None and sr.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_image_to_text_and_text_to_image_match_hand_computed_values():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    pids = torch.tensor([0, 1, 0])  # rows 0 and 2 share an identity: two positives each
    scale = 2.0
    cos = F.normalize(img, dim=1) @ F.normalize(txt, dim=1).t() * scale

    def supcon(logits):
        logp = logits.log_softmax(1)
        pos = (pids[:, None] == pids[None, :]).float()
        return float((-(logp * pos).sum(1) / pos.sum(1)).mean())

    assert float(L.image_to_text_loss(img, txt, pids, scale)) == pytest.approx(supcon(cos), rel=1e-5)
    assert float(L.text_to_image_loss(img, txt, pids, scale)) == pytest.approx(supcon(cos.t()), rel=1e-5)


def test_contrastive_losses_prefer_aligned_features():
    torch.manual_seed(0)
    feats = torch.randn(6, 16)
    pids = torch.arange(6)
    aligned = L.image_to_text_loss(feats, feats, pids, 100.0)
    shuffled = L.image_to_text_loss(feats, feats[torch.tensor([1, 2, 3, 4, 5, 0])], pids, 100.0)
    assert float(aligned) < 0.01 < float(shuffled)


def test_video_to_text_ce_is_cross_entropy_over_all_identities():
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 3 identities
    pids = torch.tensor([0, 2])
    logits = 10.0 * F.normalize(video, dim=1) @ F.normalize(text, dim=1).t()
    expected = F.cross_entropy(logits, pids)
    assert float(L.video_to_text_ce(video, text, pids, 10.0)) == pytest.approx(float(expected), rel=1e-5)
    # Label smoothing is passed on.
    smoothed = F.cross_entropy(logits, pids, label_smoothing=0.1)
    assert float(L.video_to_text_ce(video, text, pids, 10.0, 0.1)) == pytest.approx(float(smoothed), rel=1e-5)
    assert math.isfinite(float(L.video_to_text_ce(torch.zeros(1, 2), text, torch.tensor([1]), 10.0)))
