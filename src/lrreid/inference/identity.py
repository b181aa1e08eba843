"""A model's identity: one hash of its weights, its settings and the lrreid version.

A search index stores the identity of the model that embedded its gallery; features of another
model (other weights, input size, normalisation, another lrreid version) live in another space, so
querying with them would give silently wrong rankings.  Identities make that an error instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import torch


def state_dict_digest(module: torch.nn.Module, h=None):
    """Feed every tensor of ``module.state_dict()`` (name, dtype, shape, bytes) into a sha256."""
    h = h or hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()  # channels_last or not: the same weights, the same hash
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h


def model_identity(pipeline) -> str:
    """sha256 (hex) of the pipeline's networks, its settings, its source config and the lrreid version.

    Example::

        >>> model_identity(pipe)[:12]
        '3f9c2a7d10be'
    """
    from lrreid import __version__

    h = hashlib.sha256()
    h.update(f"lrreid {__version__}\n".encode())
    settings = dataclasses.asdict(pipeline.settings)
    settings.pop("fixed_scale")  # a probe-time choice: gallery features do not depend on it
    h.update(json.dumps(settings, sort_keys=True).encode())
    config_text = pipeline.source.get("config_text")
    if config_text:
        h.update(b"config\n" + config_text.encode())
    for role, module in sorted(pipeline.modules().items()):
        h.update(f"\n{role}\n".encode())
        state_dict_digest(module, h)
    return h.hexdigest()
