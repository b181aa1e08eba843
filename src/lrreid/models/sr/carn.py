"""CARN-M: Ahn, Kang and Sohn, "Fast, Accurate, and Lightweight Super-Resolution with Cascading
Residual Network", ECCV 2018 (the mobile variant, Fig. 2 and 3 of the paper).

::

    LR [0,1] -> sub_mean -> entry conv 3x3 (3 -> 64)
      -> cascading block b1 -> concat with everything before -> 1x1 conv c1
      -> cascading block b2 -> concat ...                   -> 1x1 conv c2
      -> cascading block b3 -> concat ...                   -> 1x1 conv c3
      -> upsample (x2 / x3 / x4 branch: group conv + pixel shuffle) -> exit conv 3x3 (64 -> 3)
      -> add_mean -> SR [0,1]

A cascading block repeats the same pattern locally with one efficient residual block ``b1``
whose weights are shared by its three applications (CARN-M's recursive variant, which is why the
release stores one ``b1`` per block).  The efficient residual block is group conv 3x3 -> ReLU ->
group conv 3x3 -> ReLU -> conv 1x1, added to its input, then ReLU.

Parameter names follow the authors' release (nmhkahn/CARN-pytorch, ``carn_m.pth``: one
multi-scale network, ``group=4``, 414,811 parameters incl. the two frozen mean-shift convs), so
that file loads strictly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lrreid.models.sr.base import SRModel

# DIV2K RGB mean the release subtracts (inputs in [0, 1]).
DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class MeanShift(nn.Module):
    """Adds (or subtracts) the dataset mean with a frozen 1x1 conv, as the release stores it."""

    def __init__(self, mean_rgb=DIV2K_MEAN, subtract: bool = True):
        super().__init__()
        sign = -1.0 if subtract else 1.0
        self.shifter = nn.Conv2d(3, 3, 1, 1, 0)
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * torch.tensor(mean_rgb))
        self.shifter.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class ConvReLU(nn.Module):
    """Conv + ReLU (the release's ``BasicBlock``; used as the 1x1 cascading fusions)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, 1, kernel_size // 2), nn.ReLU(inplace=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class EfficientResidualBlock(nn.Module):
    """Residual-E block (paper Fig. 3c): group conv 3x3, ReLU, group conv 3x3, ReLU, conv 1x1, +x, ReLU."""

    def __init__(self, channels: int, group: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class CascadingBlock(nn.Module):
    """Local cascade: one shared residual-E block applied three times, each output concatenated
    with everything before it and fused by a 1x1 conv (c1, c2, c3)."""

    def __init__(self, channels: int, group: int):
        super().__init__()
        self.b1 = EfficientResidualBlock(channels, group)
        self.c1 = ConvReLU(channels * 2, channels)
        self.c2 = ConvReLU(channels * 3, channels)
        self.c3 = ConvReLU(channels * 4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = torch.cat([x, self.b1(x)], dim=1)
        o1 = self.c1(c1)
        c2 = torch.cat([c1, self.b1(o1)], dim=1)
        o2 = self.c2(c2)
        c3 = torch.cat([c2, self.b1(o2)], dim=1)
        return self.c3(c3)


class PixelShuffleUpsample(nn.Module):
    """x2/x4: one or two (group conv 3x3 to 4C, ReLU, pixel shuffle 2); x3: group conv to 9C, ReLU, shuffle 3."""

    def __init__(self, channels: int, scale: int, group: int):
        super().__init__()
        steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
        layers: list[nn.Module] = []
        for r in steps:
            layers += [nn.Conv2d(channels, r * r * channels, 3, 1, 1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(r)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class MultiScaleUpsample(nn.Module):
    """One up-sampling branch per scale (``up2``, ``up3``, ``up4``) on a shared body."""

    def __init__(self, channels: int, group: int):
        super().__init__()
        self.up2 = PixelShuffleUpsample(channels, 2, group)
        self.up3 = PixelShuffleUpsample(channels, 3, group)
        self.up4 = PixelShuffleUpsample(channels, 4, group)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return {2: self.up2, 3: self.up3, 4: self.up4}[scale](x)


class CARNM(SRModel):
    """CARN-M, one network for x2, x3 and x4 (``supported_scales = (2, 3, 4)``).

    Example::

        net = CARNM().eval()
        load_weights(net, "../shared/weights/carn_m.pth", key_map="carn_release")
        sr = net(torch.rand(1, 3, 32, 16), 3)     # [1, 3, 96, 48]
    """

    supported_scales = (2.0, 3.0, 4.0)
    importer = "carn_release"
    name = "carn_m"

    def __init__(self, channels: int = 64, group: int = 4):
        super().__init__()
        self.sub_mean = MeanShift(subtract=True)
        self.add_mean = MeanShift(subtract=False)
        self.entry = nn.Conv2d(3, channels, 3, 1, 1)
        self.b1 = CascadingBlock(channels, group)
        self.b2 = CascadingBlock(channels, group)
        self.b3 = CascadingBlock(channels, group)
        self.c1 = ConvReLU(channels * 2, channels)
        self.c2 = ConvReLU(channels * 3, channels)
        self.c3 = ConvReLU(channels * 4, channels)
        self.upsample = MultiScaleUpsample(channels, group)
        self.exit = nn.Conv2d(channels, 3, 3, 1, 1)

    def forward(self, x: torch.Tensor, scale: float) -> torch.Tensor:
        self.check_input(x)
        s = int(round(self.check_scale(scale)))
        x = self.entry(self.sub_mean(x))
        c1 = torch.cat([x, self.b1(x)], dim=1)
        o1 = self.c1(c1)
        c2 = torch.cat([c1, self.b2(o1)], dim=1)
        o2 = self.c2(c2)
        c3 = torch.cat([c2, self.b3(o2)], dim=1)
        o3 = self.c3(c3)
        out = self.add_mean(self.exit(self.upsample(o3, s)))
        return self.finish(out)
