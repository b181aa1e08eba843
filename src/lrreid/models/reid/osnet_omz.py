"""The OSNet variant of Intel's Open Model Zoo person re-ID models (person-reidentification-retail-0277/0286/0287/0288).

Read off their OpenVINO graphs (``lrreid.models.openvino_ir`` imports them)::

    image [B,3,256,128] -> input_norm (affine InstanceNorm on the RGB input)
        -> conv1 7x7/2 + affine InstanceNorm + ReLU -> maxpool 3x3/2
        -> conv2, conv3: 2 OS blocks + transition (1x1 + avgpool/2); conv4: 2 OS blocks
        -> conv5 1x1 -> global_pool: depthwise conv over the whole 16x8 map ("GDC")
        -> fc: Linear(C, 256), per-channel scale and shift, PReLU -> embedding [B, 256] (cosine)

The widths are OSNet's x1.0 (0277), x0.75 (0286), x0.5 (0287) and x0.25 (0288).  Every BatchNorm
was folded into the convolution before it, so the convolutions here carry a bias and there is no
BatchNorm: this is the exact network of the file, and it trains as it is (a fine-tuning without
normalisation statistics to drift).  The head's BatchNorm1d sits after a reshape in the graph and
stays a per-channel affine (``fc.1``).

The first block of each stage gates its streams as OSNet does (pool, fc, ReLU, fc, sigmoid); the
second block's gate has no fc layers: the pooled vector is group-normalised (the graph reshapes
it to ``[B, groups, C/groups]`` and normalises the last axis), scaled and shifted per channel and
passed through a sigmoid (``GroupNormGate``).  Where a group holds one channel the normalised
value is 0 and the gate is the constant ``sigmoid(bias)``; kept as the graph computes it, for
exact parity.

Parameter names follow torchreid's OSNet where the graph kept them (``conv1.conv.weight``,
``conv2.0.conv2b.1.conv1.weight``, ``conv2.0.gate.fc1.weight``, ``fc.0.weight``), and the same
scheme for the folded layers (``conv2.0.conv1.conv.bias``, ``conv2.0.conv2a.conv2.bias``).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lrreid.models.reid.encoder import InputSpec, register_encoder
from lrreid.models.reid.osnet import WIDTHS, ChannelGate, init_weights

# "gn": group count gcd(channels, 16), as all four OMZ files have it (the importer reads each file's own)
OMZ_GATES = (("fc", "gn"), ("fc", "gn"), ("fc", "gn"))
OMZ_SPEC = InputSpec(size=(256, 128), distance="cosine", source="OpenVINO IR: BGR 0-255, mean/std applied inside the graph")


class FoldedConv(nn.Module):
    """A convolution whose BatchNorm was folded into its weight and bias; ReLU when ``relu``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, *, relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return F.relu(x) if self.relu else x


class FoldedLightConv3x3(nn.Module):
    """Pointwise 1x1 (linear), depthwise 3x3 with the folded BN as its bias, ReLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)))


class GroupNormGate(nn.Module):
    """sigmoid(GroupNorm(pooled x)) * x, as the graph computes it (see the module doc).

    The pooled vector ``[B, C]`` is split into ``groups`` groups of ``C / groups`` channels, each
    normalised to zero mean and unit variance, then scaled and shifted per channel.  With one
    channel per group the normalised value is 0 and the gate is the constant ``sigmoid(bias)``.
    """

    def __init__(self, channels: int, groups: int, eps: float = 1e-5):
        super().__init__()
        if channels % groups:
            raise ValueError(f"GroupNormGate: {channels} channels do not split into {groups} groups")
        # a buffer, not a plain int: the group count is part of the file, so weights of another
        # variant loaded into this module bring theirs instead of being run with the wrong one
        self.register_buffer("groups", torch.tensor(groups, dtype=torch.long))
        self.num_groups = groups  # the buffer as a Python int for forward (traceable, no tensor -> int)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        groups = int(self.groups)
        if self.weight.numel() % groups:
            raise ValueError(f"{prefix}groups: {self.weight.numel()} channels do not split into {groups} groups")
        self.num_groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c = x.shape[:2]
        groups = self.num_groups
        v = x.mean(dim=(2, 3)).reshape(b, groups, c // groups)
        # written out (not F.group_norm) so that one channel per group is the graph's exact 0
        centred = v - v.mean(dim=2, keepdim=True)
        v = (centred / torch.sqrt(centred.pow(2).mean(dim=2, keepdim=True) + self.eps)).reshape(b, c, 1, 1)
        g = v * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return x * torch.sigmoid(g)


def _stream(channels: int, depth: int) -> nn.Module:
    if depth == 1:
        return FoldedLightConv3x3(channels)
    return nn.Sequential(*(FoldedLightConv3x3(channels) for _ in range(depth)))


class OMZOSBlock(nn.Module):
    """OS block with folded BatchNorms; ``gate`` is "fc" (OSNet's) or "gn<groups>" (GroupNormGate)."""

    def __init__(self, in_channels: int, out_channels: int, gate: str, reduction: int = 4, gate_reduction: int = 16):
        super().__init__()
        mid = out_channels // reduction
        self.conv1 = FoldedConv(in_channels, mid)
        self.conv2a = _stream(mid, 1)
        self.conv2b = _stream(mid, 2)
        self.conv2c = _stream(mid, 3)
        self.conv2d = _stream(mid, 4)
        if gate == "fc":
            self.gate = ChannelGate(mid, reduction=gate_reduction)
        elif gate == "gn":
            self.gate = GroupNormGate(mid, math.gcd(mid, 16))
        elif gate.startswith("gn") and gate[2:].isdigit():
            self.gate = GroupNormGate(mid, int(gate[2:]))
        else:
            raise ValueError(f"gate must be 'fc' or 'gn<groups>', got {gate!r}")
        self.conv3 = FoldedConv(mid, out_channels, relu=False)
        self.downsample = FoldedConv(in_channels, out_channels, relu=False) if in_channels != out_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.gate(self.conv2a(x1)) + self.gate(self.conv2b(x1)) + self.gate(self.conv2c(x1)) + self.gate(self.conv2d(x1))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.conv3(x2) + identity)


class ChannelAffine(nn.Module):
    """``x * weight + bias`` per channel: an inference-time BatchNorm1d, as the graph stores it."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


class OSNetOMZ(nn.Module):
    """Intel's OMZ OSNet (see the module doc); the interface of the other re-ID encoders.

    ``input_size`` fixes the global depthwise pooling's kernel (input / 16).  ``forward_features``
    works on any size; ``forward`` needs ``input_size``.
    """

    def __init__(self, channels: Sequence[int], *, embedding_dim: int = 256, gates: Sequence[Sequence[str]] = OMZ_GATES,
                 input_size: Sequence[int] = (256, 128), gate_reduction: int = 16, num_classes: int = 0):
        super().__init__()
        c = list(channels)
        self.channels = tuple(c)
        self.embedding_dim = embedding_dim
        self.feature_channels = c[3]
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.pool_size = (self.input_size[0] // 16, self.input_size[1] // 16)
        self.input_spec = OMZ_SPEC if self.input_size == OMZ_SPEC.size else InputSpec(size=self.input_size, distance="cosine")
        self.input_norm = nn.InstanceNorm2d(3, affine=True)
        self.conv1 = _NormConv(3, c[0])
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._stage(c[0], c[1], gates[0], gate_reduction, reduce=True)
        self.conv3 = self._stage(c[1], c[2], gates[1], gate_reduction, reduce=True)
        self.conv4 = self._stage(c[2], c[3], gates[2], gate_reduction, reduce=False)
        self.conv5 = FoldedConv(c[3], c[3])
        self.global_pool = nn.Conv2d(c[3], c[3], self.pool_size, groups=c[3], bias=True)
        self.fc = nn.Sequential(nn.Linear(c[3], embedding_dim), ChannelAffine(embedding_dim), nn.PReLU(1))
        # Intel's files have no identity classifier; a method that trains one adds its own head.
        self.classifier = nn.Linear(embedding_dim, num_classes) if num_classes > 0 else None
        init_weights(self)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, gates: Sequence[str], gate_reduction: int, *, reduce: bool):
        widths = [in_channels] + [out_channels] * (len(gates) - 1)
        layers: list[nn.Module] = [OMZOSBlock(w, out_channels, g, gate_reduction=gate_reduction) for w, g in zip(widths, gates)]
        if reduce:
            layers.append(nn.Sequential(FoldedConv(out_channels, out_channels), nn.AvgPool2d(2, stride=2)))
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(self.input_norm(x)))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))

    def embed_features(self, fmap: torch.Tensor) -> torch.Tensor:
        if tuple(fmap.shape[-2:]) != self.pool_size:
            raise ValueError(
                f"OSNetOMZ pools a {self.pool_size[0]}x{self.pool_size[1]} feature map (input "
                f"{self.input_size[0]}x{self.input_size[1]}), got {fmap.shape[-2]}x{fmap.shape[-1]}: resize inputs to "
                f"{self.input_size[0]}x{self.input_size[1]}")
        return self.fc(self.global_pool(fmap).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.forward_features(x))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        if self.classifier is None:
            raise ValueError("this OSNetOMZ has no identity classifier (num_classes=0)")
        return self.classifier(embedding)


class _NormConv(nn.Module):
    """conv1: 7x7/2 convolution (no bias), affine InstanceNorm, ReLU (torchreid's ConvLayer with IN)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 7, stride=2, padding=3, bias=False)
        self.bn = nn.InstanceNorm2d(out_channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _register(name: str, channels) -> None:
    def build(**kwargs) -> OSNetOMZ:
        return OSNetOMZ(channels, **kwargs)

    build.__name__ = name
    register_encoder(name)(build)


for _width, _channels in WIDTHS.items():
    _register(f"osnet_omz_{_width}", _channels)
