"""PRI's adaptive scale-factor predictor P (Han et al., ECCV 2020, Sec. 3.2).

::

    LR image [B,3,H,W] -> backbone -> global average pool -> 1x1 conv (channels -> feat_dim)
        -> BatchNorm -> ReLU -> Linear -> N logits, one per alternative scale factor

The caller applies the softmax (``logits.softmax(1)`` are the probabilities ``p_r1..p_rN`` of
Eq. 1) and resizes the LR image to the backbone's input size beforehand.
"""
from __future__ import annotations

import torch
from torch import nn


class ScalePredictor(nn.Module):
    """Classifies an LR image into one of ``num_scales`` scale-factor classes.

    Example::

        p = ScalePredictor("resnet18", num_scales=4, feat_dim=64)
        probs = p(torch.rand(2, 3, 64, 32)).softmax(1)   # [2, 4], rows sum to 1
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        num_scales: int = 4,
        feat_dim: int = 512,
        pretrained: str | None = None,
    ):
        super().__init__()
        from lrreid.models.backbones import create_backbone

        if num_scales < 2:
            raise ValueError(f"num_scales must be >= 2 to have a choice, got {num_scales}")
        self.backbone_name = backbone
        self.num_scales = num_scales
        self.backbone, channels = create_backbone(backbone, pretrained=pretrained)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, feat_dim, kernel_size=1, bias=False),
            nn.BatchNorm2d(feat_dim),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(feat_dim, num_scales)
        # Start close to uniform (no scale preferred before the soft labels say so), but not exactly:
        # all-equal logits would make argmax pick the first scale for every image.
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.reduce(self.pool(self.backbone(x))).flatten(1))
