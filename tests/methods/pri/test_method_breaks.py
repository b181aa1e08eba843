"""Tests that fail when PRI itself breaks (issue 10, point 6), each checked against a mutation:

* the soft label of a training image is highest at the scale whose SR output F puts closest to
  F(x_h) -- measured through the training step with a rigged G and F whose distances are known
  (reversing the labels in ``PRIMethod`` fails it);
* the adaptive row of Table 2 ranks each probe at P's argmax (an argmin fails it);
* a run interrupted in the joint phase and resumed ends with the soft-label table and the weights
  of an uninterrupted run (a no-op ``PRIMethod.load_extra_state`` fails it: that test is in
  ``test_resume.py``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lrreid.methods.pri.config import PRIInferenceConfig, PRILossConfig, PRIScheduleConfig
from lrreid.methods.pri.model import PRIMethod

SCALES = [1, 2, 3, 4]


class ConstantSR(nn.Module):
    """G_s(x) = an image of x's size times s, every pixel s / 10: F can tell the scales apart and nothing else."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, scale):
        h, w = x.shape[-2:]
        return x.new_full((x.shape[0], 3, int(h * scale), int(w * scale)), scale / 10.0) + 0 * self.dummy


class MeanColourReID(nn.Module):
    """F = the image's mean colour (3-d); training mode also gives logits."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.fc = nn.Linear(3, num_classes)

    def forward(self, x):
        f = x.mean(dim=(2, 3))
        return (f, self.fc(f)) if self.training else f


class RiggedPredictor(nn.Module):
    """P's logits: -(mean colour of the input - c_k)^2 per scale k, so its argmax differs per probe."""

    num_scales = len(SCALES)

    def __init__(self):
        super().__init__()
        self.centres = nn.Parameter(torch.tensor([-1.5, -0.5, 0.5, 1.5]))

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))[:, None]
        return -(m - self.centres[None]) ** 2 * 10.0


def rigged_pri(loss=None, num_lr_images=8):
    return PRIMethod(
        sr_net=ConstantSR(), reid_net=MeanColourReID(), scale_predictor=RiggedPredictor(), scales=SCALES,
        input_size=(16, 8), train_dataset=None, num_lr_images=num_lr_images, hr_mean_area=16 * 8,
        loss=loss or PRILossConfig(), schedule=PRIScheduleConfig(pretrain_epochs=0, joint_epochs=1),
        inference=PRIInferenceConfig(),
    )


# x_h of image i is a flat image of value V[i]: G_s(x_l) (value s / 10) is closest to it at CLOSEST[i]
V = torch.tensor([0.10, 0.20, 0.30, 0.40, 0.12, 0.38, 0.21, 0.29])
CLOSEST = [0, 1, 2, 3, 0, 3, 1, 2]


def rigged_batch():
    n = len(V)
    return {"x_l": torch.rand(n, 3, 4, 2, generator=torch.Generator().manual_seed(0)),
            "x_h": V.view(n, 1, 1, 1).expand(n, 3, 16, 8).clone(),
            "pid": torch.arange(n) % 4, "lr_index": torch.arange(n)}


@pytest.mark.parametrize("label_loss", [
    {},  # the default: normalised per image by the spread of the distances
    {"label_norm": "none", "label_temperature": 1.0},  # the paper's Eq. 3 on raw distances
    {"label_norm": "mean", "label_temperature": 0.1},
    {"gamma": 3, "label_norm": "mean", "label_temperature": 0.1},
    {"soft_labels": False},
])
def test_the_scale_closest_to_the_hr_feature_gets_the_highest_label(label_loss, epoch_ctx):
    m = rigged_pri(PRILossConfig(**label_loss))
    joint = m.phases()[0]
    m.train()
    m.apply_phase(joint)
    m.on_epoch_start(joint, 0, epoch_ctx())
    out = m(rigged_batch(), joint, 0)
    labels = m.soft_labels.labels
    assert m.soft_labels.measured.all()
    assert labels.argmax(dim=1).tolist() == CLOSEST
    # and a farther scale never gets a higher label
    for i in range(len(V)):
        d = (torch.tensor(SCALES) / 10.0 - V[i]).abs()
        for j in range(len(SCALES)):
            for k in range(len(SCALES)):
                if d[j] < d[k] - 1e-6:
                    assert labels[i, j] >= labels[i, k], (i, labels[i])
    assert torch.isfinite(out["loss"])


# A batch where the scale closest to the own x_h is not the one that ranks best: image 0 (x_h 0.26)
# is closest to G_3 (0.30), but G_3 is nearer still to person 1's x_h (0.33); G_2 (0.20) keeps it
# nearer its own x_h than to anyone else's by the widest margin.
V_MARGIN = torch.tensor([0.26, 0.33, 0.10, 0.38])


def test_margin_labels_reward_the_scale_that_separates_the_person(epoch_ctx):
    m = rigged_pri(PRILossConfig(label_target="margin"), num_lr_images=len(V_MARGIN))
    joint = m.phases()[0]
    m.train()
    m.apply_phase(joint)
    m.on_epoch_start(joint, 0, epoch_ctx())
    n = len(V_MARGIN)
    batch = {"x_l": torch.rand(n, 3, 4, 2, generator=torch.Generator().manual_seed(0)),
             "x_h": V_MARGIN.view(n, 1, 1, 1).expand(n, 3, 16, 8).clone(),
             "pid": torch.arange(n), "lr_index": torch.arange(n)}
    m(batch, joint, 0)
    # by hand: own distance minus the nearest other person's, per scale value s / 10
    to_each_xh = (torch.tensor(SCALES)[None] / 10.0 - V_MARGIN[:, None]).abs()  # [x_h j, scale]
    own = to_each_xh  # image i's own x_h is x_h i
    nearest_other = torch.stack([to_each_xh[[j for j in range(n) if j != i]].min(dim=0).values for i in range(n)])
    expected = (own - nearest_other).argmin(dim=1)
    assert expected.tolist() == [1, 2, 0, 3] and own.argmin(dim=1).tolist() == [2, 2, 0, 3]
    assert m.soft_labels.labels.argmax(dim=1).tolist() == expected.tolist()


def test_labels_are_sharp_whatever_the_feature_scale(epoch_ctx):
    """The normalised labels do not change when F's features are multiplied by a constant; Eq. 3's do."""
    def labels_with(feature_scale, norm):
        m = rigged_pri(PRILossConfig(label_norm=norm, label_temperature=0.1))
        with torch.no_grad():
            outs = [m.super_resolve(torch.zeros(len(V), 3, 4, 2), s) for s in SCALES]
            orig = m.reid_net.forward
            m.reid_net.forward = lambda x: orig(x) * feature_scale
            return m.measure_soft_labels(outs, rigged_batch()["x_h"])

    torch.testing.assert_close(labels_with(1.0, "mean"), labels_with(100.0, "mean"))
    torch.testing.assert_close(labels_with(1.0, "std"), labels_with(100.0, "std"))
    assert not torch.allclose(labels_with(1.0, "none"), labels_with(100.0, "none"))


def test_adaptive_row_ranks_each_probe_at_p_argmax(tmp_path):
    from PIL import Image

    from lrreid.data.records import ImageRecord
    from lrreid.methods.base import EpochContext
    from lrreid.methods.pri.data import load_image
    from lrreid.methods.pri.evaluate import evaluate_predictors

    from .test_evaluate import Split

    # the real tiny networks for G and F (so the scales rank probes differently), a rigged P
    from .conftest import make_tiny_pri

    m = make_tiny_pri()
    m.scale_predictor = RiggedPredictor()
    m.inference = PRIInferenceConfig()
    rng = np.random.default_rng(0)
    query, gallery = [], []
    for pid in range(12):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        for name, hw, cam, rows in (("g", (32, 16), 0, gallery), ("q", (8, 4), 1, query)):
            path = tmp_path / f"{name}{pid}.png"
            noise = rng.integers(-40, 40, (*hw, 3))
            Image.fromarray(np.clip(np.array(colour)[None, None] + noise, 0, 255).astype(np.uint8)).save(path)
            rows.append(ImageRecord(str(path), pid, cam))
    result = evaluate_predictors(m, [Split("0", [], query, gallery)], EpochContext(device=torch.device("cpu"), batch_size=8))
    detail = result.details[0]
    argmax = detail.probs.argmax(axis=1)
    assert len(set(argmax.tolist())) >= 2  # P's choice differs between probes
    np.testing.assert_array_equal(detail.choices["adaptive (P)"], argmax)
    # the adaptive row is the rank of each probe's true match at P's argmax scale
    ranks = detail.ranks[argmax, np.arange(len(query))]
    assert result.results["adaptive (P)"][0].rank(1) == pytest.approx(float(np.mean(ranks == 1)))
    # and P's probabilities are its softmax, as P's logits say
    with torch.no_grad():
        x = torch.stack([load_image(r.path) for r in query])
        expected = m.scale_predictor(m.net_input(x)).softmax(1).numpy()
    np.testing.assert_allclose(detail.probs, expected, rtol=1e-5, atol=1e-6)
