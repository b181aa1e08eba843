"""Any per-image re-ID encoder as a video (tracklet) encoder: embed every frame, pool over time.

S3-CLIP's encoder I is a CLIP ViT with temporal adapters (``clip_reid.ClipVideoEncoder``); this
module lets any re-ID encoder of :mod:`lrreid.models.reid.encoder` (OSNet, Intel's OMZ networks)
take that place.  It has the same interface: ``forward(frames [B, T, 3, H, W] in [0, 1])`` returns
:class:`~lrreid.models.reid.clip_reid.VideoFeatures` (``feature`` = ``projected`` = the pooled
embedding), ``width``/``embed_dim``, and ``adapter_parameters()`` (here the whole encoder: there is
no frozen tower, fine-tuning I means fine-tuning the network).  Frames are normalised with the
encoder's own ``input_spec``.

Example::

    video = FrameEncoderVideo(load_encoder("person-reidentification-retail-0277.xml"))
    video(torch.rand(2, 4, 3, 256, 128)).feature.shape      # [2, 256]
"""
from __future__ import annotations

import torch
from torch import nn

from lrreid.models.reid.clip_reid import TemporalPooling, VideoFeatures


class FrameEncoderVideo(nn.Module):
    def __init__(self, encoder: nn.Module, pooling: str = "mean", image_size: tuple[int, int] | None = None):
        super().__init__()
        self.encoder = encoder
        spec = encoder.input_spec
        self.image_size = tuple(image_size or spec.size)  # the frame size the method feeds (default: the file's)
        self.width = self.embed_dim = int(encoder.embedding_dim)
        self.pooling = TemporalPooling(self.width, pooling)
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame embeddings ``[B, T, D]`` of ``frames [B, T, 3, H, W]`` in [0, 1] at the encoder's size."""
        if frames.dim() != 5:
            raise ValueError(f"expected frames [B, T, 3, H, W], got shape {tuple(frames.shape)}")
        if tuple(frames.shape[-2:]) != self.image_size:
            raise ValueError(f"frames are {tuple(frames.shape[-2:])}, the encoder expects {self.image_size}")
        b, t = frames.shape[:2]
        images = (frames.flatten(0, 1) - self.mean.to(frames.dtype)) / self.std.to(frames.dtype)
        return self.encoder(images).reshape(b, t, -1)

    def forward(self, frames: torch.Tensor) -> VideoFeatures:
        feature = self.pooling(self.encode_frames(frames))
        return VideoFeatures(feature, feature)

    def adapter_parameters(self) -> list[nn.Parameter]:
        """What I's fine-tuning trains: the whole encoder and the pooling."""
        return list(self.parameters())
