"""How an image in [0, 1] of any size becomes a network's input: the one resize and normalisation.

PRI's training and evaluation, the inference pipeline (search, index) and the ONNX graphs all call
:func:`net_input` (or :class:`NetInput`, the same as a module), so the three paths cannot drift
apart again (a resize mismatch between two copies once moved Rank-1 by 1.2 points).

Example::

    x = net_input(images, (256, 128), IMAGENET_MEAN, IMAGENET_STD)     # [B, 3, 256, 128]
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _exporting() -> bool:
    """True while a graph is traced for export (a Python branch on a shape would freeze its size)."""
    return bool(torch.compiler.is_exporting() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def resize_for_net(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a batch ``[B, 3, h, w]`` to ``size`` (h, w) for a network: bilinear, antialiased when shrinking.

    In an exported graph every input size takes one antialiased resize, which equals the plain one
    when enlarging (within float rounding, 1.2e-7) and the same size (the identity).
    """
    size = (int(size[0]), int(size[1]))
    if _exporting():
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    if tuple(x.shape[-2:]) == size:
        return x
    shrink = x.shape[-2] > size[0] or x.shape[-1] > size[1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def normalize_pixels(x: torch.Tensor, mean: torch.Tensor | Sequence[float], std: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of ``[B, 3, H, W]`` images in [0, 1] (mean/std: 3 numbers or ``[1, 3, 1, 1]``)."""
    mean = torch.as_tensor(mean, device=x.device).to(x.dtype).view(1, -1, 1, 1)
    std = torch.as_tensor(std, device=x.device).to(x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def net_input(x: torch.Tensor, size: Sequence[int], mean, std) -> torch.Tensor:
    """Images in [0, 1] of any size -> a network's input: :func:`resize_for_net` to ``size``, then
    :func:`normalize_pixels`."""
    return normalize_pixels(resize_for_net(x, size), mean, std)


class NetInput(nn.Module):
    """:func:`net_input` as a module (its mean and std as buffers): what an ONNX graph traces."""

    def __init__(self, size: Sequence[int], mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return net_input(x, self.size, self.mean, self.std)
