"""Re-ID encoders: whole networks that map a person image to an embedding, and how to feed them.

An encoder (OSNet, OSNet-AIN, Intel's OMZ OSNet, ...) is a plain ``nn.Module`` with

- ``forward(x) -> [B, D]``: the embedding (whatever the module's train/eval mode);
- ``forward_features(x) -> [B, C, h, w]``: the last feature map, so it can also serve as a
  backbone under a new head (PRI's F and P);
- ``embedding_dim`` (D), ``feature_channels`` (C) and ``input_spec`` (:class:`InputSpec`).

The input convention is data that travels with the weights: an importer that reads a file whose
network expects, say, BGR in 0-255 with the mean subtracted inside the graph sets ``input_spec`` to
the equivalent convention for lrreid's images (RGB in [0, 1]), so no caller needs to know it.
Encoders are registered by name in ``REID_ENCODERS`` and built with :func:`build_encoder`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from lrreid.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

REID_ENCODERS: Registry[nn.Module] = Registry("re-ID encoder")


def register_encoder(name: str):
    return REID_ENCODERS.register(name)


@dataclass(frozen=True)
class InputSpec:
    """How to turn lrreid's images (RGB, float in [0, 1]) into an encoder's input.

    ``(x - mean) / std`` at ``size`` (h, w), resized bicubically; embeddings are compared with
    ``distance`` ("cosine" or "euclidean").  ``source`` says, for people, what the original file
    expected (e.g. ``"BGR 0-255, mean/std applied inside the IR"``).
    """

    size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    distance: str = "cosine"
    source: str = field(default="RGB in [0, 1], ImageNet mean/std", compare=False)

    def __post_init__(self):
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        if self.distance not in ("cosine", "euclidean"):
            raise ValueError(f"InputSpec.distance must be 'cosine' or 'euclidean', got {self.distance!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return cls(**{k: d[k] for k in ("size", "mean", "std", "distance", "source") if k in d})


def build_encoder(name: str, **kwargs) -> nn.Module:
    """A registered re-ID encoder with random weights (``num_classes=...`` and the like as kwargs).

    Example::

        net = build_encoder("osnet_x0_25")
        net(torch.rand(2, 3, 256, 128)).shape      # torch.Size([2, 512])
    """
    import lrreid.models.reid  # noqa: F401 - registers the architectures

    return REID_ENCODERS.build(name, **kwargs)


def is_encoder_name(name: str) -> bool:
    import lrreid.models.reid  # noqa: F401 - registers the architectures

    return name in REID_ENCODERS


def encoder_names() -> list[str]:
    import lrreid.models.reid  # noqa: F401 - registers the architectures

    return REID_ENCODERS.names()
