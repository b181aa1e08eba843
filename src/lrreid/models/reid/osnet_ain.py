"""OSNet-AIN (Zhou et al., TPAMI 2021): OSNet with instance normalisation placed by architecture search.

Differences from :mod:`lrreid.models.reid.osnet` (torchreid's ``osnet_ain`` layout, so its files
load strictly):

- conv1 normalises with affine InstanceNorm instead of BatchNorm;
- the four streams of a block are ``conv2.<t-1>.layers.*`` (a ModuleList of 1..4 LightConv3x3);
- ``OSBlockINin`` blocks apply InstanceNorm to the expansion's output *inside* the residual (its
  1x1 expansion has no BN); the search placed them at conv2.{0,1}, conv3.1 and conv4.0;
- the stage transitions are modules of their own (``pool2``, ``pool3``).

Example::

    net = build_encoder("osnet_ain_x1_0")
    net(torch.rand(2, 3, 256, 128)).shape      # torch.Size([2, 512])
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lrreid.models.reid.encoder import register_encoder
from lrreid.models.reid.osnet import (
    TORCHREID_SPEC,
    WIDTHS,
    ChannelGate,
    Conv1x1,
    Conv1x1Linear,
    ConvLayer,
    GlobalPoolHead,
    LightConv3x3,
    init_weights,
    transition,
)

# block kinds per stage, found by the paper's search: "in" = OSBlockINin, "plain" = OSBlock
AIN_BLOCKS = (("in", "in"), ("plain", "in"), ("in", "plain"))


class LightConvStream(nn.Module):
    """``depth`` LightConv3x3 in a row."""

    def __init__(self, channels: int, depth: int):
        super().__init__()
        self.layers = nn.Sequential(*(LightConv3x3(channels, channels) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class OSBlockAIN(nn.Module):
    """An OS block with streams in a ModuleList; ``instance_norm`` makes it torchreid's OSBlockINin."""

    def __init__(self, in_channels: int, out_channels: int, instance_norm: bool, reduction: int = 4, streams: int = 4):
        super().__init__()
        mid = out_channels // reduction
        self.conv1 = Conv1x1(in_channels, mid)
        self.conv2 = nn.ModuleList(LightConvStream(mid, t) for t in range(1, streams + 1))
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels, bn=not instance_norm)
        self.downsample = Conv1x1Linear(in_channels, out_channels) if in_channels != out_channels else None
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = sum(self.gate(stream(x1)) for stream in self.conv2)
        x3 = self.conv3(x2)
        if self.IN is not None:
            x3 = self.IN(x3)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(x3 + identity)


class OSNetAIN(GlobalPoolHead, nn.Module):
    """OSNet-AIN: the same interface as :class:`~lrreid.models.reid.osnet.OSNet`."""

    def __init__(self, channels: Sequence[int], *, num_classes: int = 1000, feature_dim: int = 512,
                 blocks: Sequence[Sequence[str]] = AIN_BLOCKS):
        super().__init__()
        c = list(channels)
        self.channels = tuple(c)
        self.embedding_dim = feature_dim
        self.feature_channels = c[3]
        self.input_spec = TORCHREID_SPEC
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3, instance_norm=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._stage(c[0], c[1], blocks[0])
        self.pool2 = transition(c[1])
        self.conv3 = self._stage(c[1], c[2], blocks[1])
        self.pool3 = transition(c[2])
        self.conv4 = self._stage(c[2], c[3], blocks[2])
        self.conv5 = Conv1x1(c[3], c[3])
        self.fc = nn.Sequential(nn.Linear(c[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU())
        self.classifier = nn.Linear(feature_dim, num_classes)
        init_weights(self)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, kinds: Sequence[str]) -> nn.Sequential:
        widths = [in_channels] + [out_channels] * (len(kinds) - 1)
        return nn.Sequential(*(OSBlockAIN(w, out_channels, instance_norm=(k == "in")) for w, k in zip(widths, kinds)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.pool3(self.conv3(self.pool2(self.conv2(x))))
        return self.conv5(self.conv4(x))



def _register(name: str, channels) -> None:
    def build(num_classes: int = 1000, **extra) -> OSNetAIN:
        return OSNetAIN(channels, num_classes=num_classes, **extra)

    build.__name__ = name
    register_encoder(name)(build)


for _width, _channels in WIDTHS.items():
    _register(f"osnet_ain_{_width}", _channels)
