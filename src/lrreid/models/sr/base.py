"""What every SR network in lrreid promises, and the two helpers they share.

Interface (all SR models are plain ``nn.Module``s)::

    sr = model(lr, scale)   # lr [B,3,h,w] in [0,1]  ->  sr [B,3,round(h*scale),round(w*scale)]

- ``scale`` is a float >= 1 (``round`` is half-up: 37 px at x1.5 gives 56 px);
- ``supported_scales`` is the tuple of scales the network can do, or ``None`` for any scale >= 1;
  asking for another raises :class:`~lrreid.errors.ConfigError` in one line;
- in eval mode the output is clamped to [0, 1]; in training mode it is not, so the SR loss sees
  (and corrects) overshoots and gradients are not cut at the bounds;
- ``importer`` names the weight importer for the network's published checkpoint (see
  :mod:`lrreid.models.weights`).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from lrreid.errors import ConfigError


def output_size(h: int, w: int, scale: float) -> tuple[int, int]:
    """``(round(h*scale), round(w*scale))``, rounding halves up.

    >>> output_size(37, 92, 1.5)
    (56, 138)
    """
    return math.floor(h * scale + 0.5), math.floor(w * scale + 0.5)


def _scale_text(s: float) -> str:
    return f"x{s:g}"


class SRModel(nn.Module):
    """Base class: ``supported_scales``, the scale check and the eval-mode clamp."""

    supported_scales: tuple[float, ...] | None = None
    importer: str = "identity"
    name: str = "sr"

    def check_scale(self, scale: float) -> float:
        """``scale`` as a float, or a ConfigError if this network cannot do it."""
        try:
            s = float(scale)
        except (TypeError, ValueError):
            raise ConfigError(f"{self.name}: scale must be a number, got {scale!r}") from None
        if not math.isfinite(s) or s < 1:
            raise ConfigError(f"{self.name}: scale must be >= 1, got {scale!r}")
        allowed = self.supported_scales
        if allowed is not None and not any(abs(s - a) < 1e-9 for a in allowed):
            if len(allowed) == 1:
                raise ConfigError(f"{self.name} does {_scale_text(allowed[0])} only; asked for {_scale_text(s)}")
            shown = ", ".join(_scale_text(a) for a in allowed)
            raise ConfigError(f"{self.name} does {shown} only; asked for {_scale_text(s)}")
        return s

    def finish(self, out: torch.Tensor) -> torch.Tensor:
        """The output as returned to the caller: clamped to [0, 1] outside training."""
        return out if self.training else out.clamp(0.0, 1.0)

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected an RGB batch [B,3,h,w], got shape {list(x.shape)}")
