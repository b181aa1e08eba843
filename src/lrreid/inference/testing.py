"""Tiny random-weight pipelines for tests, examples and benchmarks without a trained run.

They use lrreid's own model classes (``ReIDNet``, ``ScalePredictor``, ``build_sr_model``) at small
sizes, with seeded random weights, so the search, export and benchmark code is exercised on the
same module types a trained run loads.

Example::

    >>> pipe = tiny_pipeline(seed=0)                   # resnet18 re-ID + predictor, bicubic SR
    >>> pipe.embed_gallery([np.zeros((64, 32, 3), np.uint8)]).shape
    torch.Size([1, 32])
"""
from __future__ import annotations

import torch
from torch import nn

from lrreid.inference.pipeline import LRReIDPipeline
from lrreid.utils.device import Precision


def tiny_networks(
    seed: int = 0,
    backbone: str = "resnet18",
    sr: str = "bicubic",
    scales: tuple[int, ...] = (1, 2, 3, 4),
    feat_dim: int = 32,
    sr_kwargs: dict | None = None,
) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(reid_net, sr_net, predictor) with seeded random weights, in eval mode.

    The predictor's last layer is randomised too (lrreid initialises it to zeros, which would
    choose the first scale for every image and hide bugs in per-scale batching).
    """
    from lrreid.models.predictor import ScalePredictor
    from lrreid.models.reid.reid_net import ReIDNet
    from lrreid.models.sr import build_sr_model

    torch.manual_seed(seed)
    reid = ReIDNet(backbone, num_classes=8, feat_dim=feat_dim)
    predictor = ScalePredictor(backbone, num_scales=len(scales), feat_dim=feat_dim)
    nn.init.normal_(predictor.fc.weight, std=1.0)
    nn.init.normal_(predictor.fc.bias, std=1.0)
    sr_net = build_sr_model(sr, **(sr_kwargs or {}))
    _randomise_batchnorm(reid)
    _randomise_batchnorm(predictor)
    return reid.eval(), sr_net.eval(), predictor.eval()


def _randomise_batchnorm(module: nn.Module) -> None:
    """Non-trivial running statistics, so eval-mode BN is not the identity (as after training)."""
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def tiny_pipeline(
    seed: int = 0,
    backbone: str = "resnet18",
    sr: str = "bicubic",
    scales: tuple[int, ...] = (1, 2, 3, 4),
    input_size: tuple[int, int] = (64, 32),
    fast: bool = False,
    **kwargs,
) -> LRReIDPipeline:
    """A small random-weight :class:`LRReIDPipeline` (fp32 unless ``fast``)."""
    reid, sr_net, predictor = tiny_networks(seed, backbone, sr, scales)
    return LRReIDPipeline(
        reid, sr_net, predictor, scales=scales, input_size=input_size,
        precision=Precision.for_inference("cpu", fast=fast), **kwargs,
    )
