"""Networks: super-resolution (``sr/``), re-ID encoders (``reid/``), PRI's scale predictor, and
the plumbing every network shares: timm backbones (``backbones``) and weight files (``weights``).

Every model here is a plain ``nn.Module`` built from constructor arguments.  The entry points::

    from lrreid.models.sr import build_sr_model          # SR networks by name
    from lrreid.models.backbones import create_backbone  # timm CNN -> (module, channels)
    from lrreid.models.weights import load_weights       # any published weight file -> model

This module imports nothing heavy itself, so ``import lrreid.models.reid`` does not pull in timm
or every SR network.
"""
from __future__ import annotations

import importlib

_LAZY = {
    "build_sr_model": "lrreid.models.sr",
    "SR_MODELS": "lrreid.models.sr",
    "create_backbone": "lrreid.models.backbones",
    "load_weights": "lrreid.models.weights",
    "read_state_dict": "lrreid.models.weights",
    "resolve_weights": "lrreid.models.weights",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
