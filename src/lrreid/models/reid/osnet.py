"""OSNet, the omni-scale network (Zhou et al., ICCV 2019), as torchreid defines it.

::

    image [B,3,256,128] -> conv1 7x7/2 -> maxpool -> conv2 (2 OS blocks, 1x1 + avgpool/2)
        -> conv3 (2 OS blocks, 1x1 + avgpool/2) -> conv4 (2 OS blocks) -> conv5 1x1
        -> global average pool -> fc (Linear, BN, ReLU) -> embedding [B, 512]
        -> classifier (Linear) -> identity logits

An OS block runs four streams of 1, 2, 3 and 4 lightweight 3x3 convolutions (receptive fields of
3, 5, 7 and 9 pixels) on a bottleneck, weights each stream by a channel gate shared by the four
streams ("aggregation gate"), sums them and adds the residual.  Widths x1.0 / x0.75 / x0.5 /
x0.25 scale the channels; ``osnet_ibn_x1_0`` adds instance normalisation to conv1 and the first
stage.  Parameter names are torchreid's, so its model-zoo files load strictly.

Unlike torchreid's module, ``forward`` always returns the embedding (the retrieval feature) and
never switches on ``self.training``; ``logits(embedding)`` is the classifier.  The input is RGB in
[0, 1] normalised with ImageNet mean/std (``input_spec``), 256x128 as the model zoo was trained.

Example::

    net = build_encoder("osnet_x0_25", num_classes=751)
    load_weights(net, "../shared/weights/torchreid/osnet_x0_25_market1501.pth")   # strict
    emb = net(torch.rand(2, 3, 256, 128))          # [2, 512]
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lrreid.models.reid.encoder import InputSpec, register_encoder

TORCHREID_SPEC = InputSpec(size=(256, 128), distance="euclidean")  # torchreid tests with euclidean distance

WIDTHS = {
    "x1_0": (64, 256, 384, 512),
    "x0_75": (48, 192, 288, 384),
    "x0_5": (32, 128, 192, 256),
    "x0_25": (16, 64, 96, 128),
}


# --------------------------------------------------------------------------- layers
class ConvLayer(nn.Module):
    """Convolution, then BatchNorm (or affine InstanceNorm with ``instance_norm``), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, instance_norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False,
                              groups=groups)
        # torchreid names the norm "bn" whichever kind it is
        self.bn = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class Conv1x1(ConvLayer):
    """1x1 convolution + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(in_channels, out_channels, 1)


class Conv1x1Linear(nn.Module):
    """1x1 convolution + BN (optional), no non-linearity: the projection before a residual sum."""

    def __init__(self, in_channels: int, out_channels: int, bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x if self.bn is None else self.bn(x)


class LightConv3x3(nn.Module):
    """The lightweight 3x3 convolution: pointwise 1x1 (linear), depthwise 3x3, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False, groups=out_channels)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv2(self.conv1(x))))


class ChannelGate(nn.Module):
    """Aggregation gate: per-channel weights in (0, 1) from the globally pooled input (an SE unit)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc2(F.relu(self.fc1(x.mean(dim=(2, 3), keepdim=True))))
        return x * torch.sigmoid(w)


def light_stream(channels: int, depth: int) -> nn.Module:
    """``depth`` LightConv3x3 in a row (one stream of an OS block); depth 1 is the bare layer."""
    if depth == 1:
        return LightConv3x3(channels, channels)
    return nn.Sequential(*(LightConv3x3(channels, channels) for _ in range(depth)))


class OSBlock(nn.Module):
    """Omni-scale residual block: 1x1 bottleneck, four gated streams, 1x1 expansion, residual."""

    def __init__(self, in_channels: int, out_channels: int, instance_norm: bool = False, bottleneck_reduction: int = 4):
        super().__init__()
        mid = out_channels // bottleneck_reduction
        self.conv1 = Conv1x1(in_channels, mid)
        self.conv2a = light_stream(mid, 1)
        self.conv2b = light_stream(mid, 2)
        self.conv2c = light_stream(mid, 3)
        self.conv2d = light_stream(mid, 4)
        self.gate = ChannelGate(mid)
        self.conv3 = Conv1x1Linear(mid, out_channels)
        self.downsample = Conv1x1Linear(in_channels, out_channels) if in_channels != out_channels else None
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.gate(self.conv2a(x1)) + self.gate(self.conv2b(x1)) + self.gate(self.conv2c(x1)) + self.gate(self.conv2d(x1))
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv3(x2) + identity
        if self.IN is not None:
            out = self.IN(out)
        return F.relu(out)


def transition(channels: int) -> nn.Sequential:
    """Between stages: 1x1 conv + BN + ReLU, then 2x2 average pooling."""
    return nn.Sequential(Conv1x1(channels, channels), nn.AvgPool2d(2, stride=2))


# --------------------------------------------------------------------------- network
def init_weights(net: nn.Module) -> None:
    """torchreid's initialisation: He (fan-out) convolutions, unit norms, N(0, 0.01) linear layers."""
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class GlobalPoolHead:
    """The embedding head torchreid's OSNets share: global average pool, ``fc``; ``classifier`` for logits."""

    def embed_features(self, fmap: torch.Tensor) -> torch.Tensor:
        return self.fc(fmap.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_features(self.forward_features(x))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.classifier(embedding)


class OSNet(GlobalPoolHead, nn.Module):
    """torchreid's OSNet: feature maps, a 512-d embedding and an identity classifier.

    ``forward_features(x)`` is the last feature map ``[B, C, 16, 8]`` (for a 256x128 input; any size
    works), ``forward(x)`` the embedding, ``logits(embedding)`` the classifier's output.
    """

    def __init__(self, channels: Sequence[int], *, num_classes: int = 1000, layers: Sequence[int] = (2, 2, 2),
                 feature_dim: int = 512, instance_norm: bool = False):
        super().__init__()
        c = list(channels)
        self.channels = tuple(c)
        self.embedding_dim = feature_dim
        self.feature_channels = c[3]
        self.input_spec = TORCHREID_SPEC
        self.conv1 = ConvLayer(3, c[0], 7, stride=2, padding=3, instance_norm=instance_norm)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = self._stage(c[0], c[1], layers[0], reduce=True, instance_norm=instance_norm)
        self.conv3 = self._stage(c[1], c[2], layers[1], reduce=True)
        self.conv4 = self._stage(c[2], c[3], layers[2], reduce=False)
        self.conv5 = Conv1x1(c[3], c[3])
        self.fc = nn.Sequential(nn.Linear(c[3], feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(feature_dim, num_classes)
        init_weights(self)

    @staticmethod
    def _stage(in_channels: int, out_channels: int, blocks: int, *, reduce: bool, instance_norm: bool = False):
        layers = [OSBlock(in_channels, out_channels, instance_norm=instance_norm)]
        layers += [OSBlock(out_channels, out_channels, instance_norm=instance_norm) for _ in range(blocks - 1)]
        if reduce:
            layers.append(transition(out_channels))
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))



def _register(name: str, channels, **kwargs) -> None:
    def build(num_classes: int = 1000, **extra) -> OSNet:
        return OSNet(channels, num_classes=num_classes, **kwargs, **extra)

    build.__name__ = name
    build.__doc__ = f"OSNet {name} (torchreid layout), channels {channels}."
    register_encoder(name)(build)


for _width, _channels in WIDTHS.items():
    _register(f"osnet_{_width}", _channels)
_register("osnet_ibn_x1_0", WIDTHS["x1_0"], instance_norm=True)
