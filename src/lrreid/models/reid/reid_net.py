"""The re-ID module F of PRI: a CNN backbone, a 1x1 reduction and a BN-neck identity classifier.

::

    image [B,3,H,W] -> backbone -> global average pool -> 1x1 conv (channels -> feat_dim)
        -> feature f (used by the triplet loss)
        -> BatchNorm1d -> feature f_bn (used for retrieval and for PRI's scale-factor metric)
        -> Linear (no bias) -> identity logits (used by the cross-entropy loss)

With a re-ID encoder as backbone (``osnet_*``, see :mod:`lrreid.models.reid.encoder`) and
``head="auto"``, F keeps the encoder's own embedding head (no reduction; no BN-neck unless
``neck="bn"``), so an F built from pretrained re-ID weights is that network before any training.

Why two features: the triplet loss works on Euclidean distances of the raw feature, the softmax
classifier prefers the batch-normalised one (the "BN-neck" of Luo et al., 2019); retrieval uses the
normalised one, which matches the classifier's geometry and ranks better.  The net does not resize:
its caller brings images to the input size (384x128 in the paper).
"""
from __future__ import annotations

import torch
from torch import nn


class ReIDNet(nn.Module):
    """Identity feature extractor and classifier.

    In training mode ``forward`` returns ``(features, logits)`` with ``features`` taken before the
    BN-neck; in eval mode it returns the retrieval features (after the BN-neck).

    Example::

        net = ReIDNet("resnet18", num_classes=25, feat_dim=128)
        feats, logits = net(torch.rand(4, 3, 64, 32))       # training mode
        net.eval(); emb = net(torch.rand(4, 3, 64, 32))     # [4, 128]
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        *,
        num_classes: int,
        feat_dim: int = 512,
        pretrained: str | None = None,
        head: str = "auto",
        neck: str = "auto",
    ):
        super().__init__()
        from lrreid.models.backbones import create_backbone, create_encoder
        from lrreid.models.reid.encoder import is_encoder_name

        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if head not in ("auto", "new", "encoder"):
            raise ValueError(f"head must be 'auto', 'new' or 'encoder', got {head!r}")
        if neck not in ("auto", "bn", "none"):
            raise ValueError(f"neck must be 'auto', 'bn' or 'none', got {neck!r}")
        encoder_head = is_encoder_name(backbone) and head in ("auto", "encoder")
        if head == "encoder" and not encoder_head:
            raise ValueError(f"head 'encoder' needs a re-ID encoder backbone (osnet_*), got {backbone!r}")
        self.backbone_name = backbone
        self.num_classes = num_classes
        self.encoder_head = encoder_head
        if encoder_head:
            # the pretrained network's own embedding is F's feature: with no training F is that network
            self.backbone = create_encoder(backbone, pretrained)
            self.pool, self.reduce = None, None
            feat_dim = int(self.backbone.embedding_dim)
        else:
            self.backbone, channels = create_backbone(backbone, pretrained=pretrained)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.reduce = nn.Conv2d(channels, feat_dim, kernel_size=1, bias=False)
            nn.init.kaiming_normal_(self.reduce.weight, mode="fan_out")
        self.feat_dim = feat_dim
        use_bn = neck == "bn" or (neck == "auto" and not encoder_head)
        self.bn_neck = nn.BatchNorm1d(feat_dim) if use_bn else nn.Identity()
        self.classifier = nn.Linear(feat_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the (usually ImageNet-pretrained) backbone: the paper's low-lr group."""
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters of the layers added on top of the backbone: the paper's high-lr group."""
        ids = {id(p) for p in self.backbone.parameters()}
        return [p for p in self.parameters() if id(p) not in ids]

    @property
    def input_spec(self):
        """The encoder's input convention (None for a timm backbone: ImageNet RGB at the run's size)."""
        return getattr(self.backbone, "input_spec", None) if self.encoder_head else None

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f, f_bn)``: the feature before and after the BN-neck, in the current mode."""
        if self.encoder_head:
            f = self.backbone(x)
        else:
            f = self.reduce(self.pool(self.backbone(x))).flatten(1)
        return f, self.bn_neck(f)

    def forward(self, x: torch.Tensor):
        f, f_bn = self.features(x)
        if self.training:
            return f, self.classifier(f_bn)
        return f_bn
