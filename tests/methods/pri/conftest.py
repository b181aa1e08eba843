"""Tiny PRI parts for fast tests: ResNet-18 at 32x16 input, Meta-RDN with G0=8, D=2, C=2, G=8."""
from __future__ import annotations

import pytest
import torch

from lrreid.methods.base import EpochContext


def make_tiny_pri(*, scales=(1, 2, 3, 4), loss=None, schedule=None, inference=None, num_lr_images=16,
                  sr="metasr_rdn", num_classes=4, train_dataset=None, hr_mean_area=32 * 16):
    from lrreid.methods.pri.model import PRIMethod
    from lrreid.models.predictor import ScalePredictor
    from lrreid.models.reid import ReIDNet
    from lrreid.models.sr import build_sr_model

    torch.manual_seed(0)
    sr_args = {"G0": 8, "D": 2, "C": 2, "G": 8} if sr == "metasr_rdn" else {}
    return PRIMethod(
        sr_net=build_sr_model(sr, **sr_args),
        reid_net=ReIDNet("resnet18", num_classes=num_classes, feat_dim=16),
        scale_predictor=ScalePredictor("resnet18", num_scales=len(scales), feat_dim=8),
        scales=list(scales), input_size=(32, 16), train_dataset=train_dataset, num_lr_images=num_lr_images,
        hr_mean_area=hr_mean_area, loss=loss, schedule=schedule, inference=inference,
        description={"sr": sr, "backbone": "resnet18", "predictor_backbone": "resnet18"},
    )


def make_batch(batch_size=8, num_ids=4, lr_hw=(8, 4), hr_hw=(32, 16), start=0):
    g = torch.Generator().manual_seed(start)
    return {
        "x_l": torch.rand(batch_size, 3, *lr_hw, generator=g),
        "x_h": torch.rand(batch_size, 3, *hr_hw, generator=g),
        "pid": torch.arange(batch_size) % num_ids,
        "lr_index": torch.arange(start, start + batch_size),
    }


def ctx(seed=0):
    import numpy as np

    return EpochContext(device=torch.device("cpu"), rng=np.random.default_rng(seed))


@pytest.fixture
def tiny_pri():
    return make_tiny_pri


@pytest.fixture
def batch():
    return make_batch


@pytest.fixture
def epoch_ctx():
    return ctx


@pytest.fixture(scope="module")
def shared_tiny_pri():
    """One tiny PRI per test module, for tests that do not train it."""
    return make_tiny_pri()
