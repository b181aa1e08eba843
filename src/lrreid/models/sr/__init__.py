"""Super-resolution networks, registered by name.

==============  ===========================================  ==================  =============
name            network                                      scales              parameters
==============  ===========================================  ==================  =============
``bicubic``     bicubic interpolation (baseline)             any >= 1            0
``metasr_rdn``  Meta-SR with an RDN body (PRI's SR module)   any >= 1            22.4M
``carn_m``      CARN-M, multi-scale                          x2, x3, x4          0.41M
``swinir_s``    lightweight SwinIR (S3-CLIP's SR module)     x2                  0.91M
==============  ===========================================  ==================  =============

All share one interface (see :mod:`lrreid.models.sr.base`)::

    model = build_sr_model("carn_m", weights="../shared/weights/carn_m.pth").eval()
    sr = model(lr, 2.0)        # lr [B,3,h,w] in [0,1] -> [B,3,2h,2w] in [0,1]
"""
from __future__ import annotations

import os

from lrreid.models.sr.base import SRModel, output_size
from lrreid.models.sr.bicubic import Bicubic
from lrreid.models.sr.carn import CARNM
from lrreid.models.sr.rdn_metasr import MetaRDN
from lrreid.models.sr.swinir import SwinIR
from lrreid.registry import Registry

SR_MODELS: Registry[SRModel] = Registry("SR model")
SR_MODELS.register("bicubic")(Bicubic)
SR_MODELS.register("metasr_rdn")(MetaRDN)
SR_MODELS.register("carn_m")(CARNM)
SR_MODELS.register("swinir_s")(SwinIR)


def build_sr_model(name: str, weights: str | os.PathLike | None = None, *, strict: bool = True, **kwargs) -> SRModel:
    """Build the SR network ``name`` with constructor ``kwargs``; optionally load ``weights``.

    ``weights`` is anything :func:`lrreid.models.weights.resolve_weights` accepts (a local file,
    or a hub name); it is read with the network's own importer (its published layout), strictly
    unless ``strict=False``.

    Example::

        net = build_sr_model("metasr_rdn", G0=32, D=4, C=4, G=16)
        net = build_sr_model("carn_m", weights="../shared/weights/carn_m.pth")
    """
    model = SR_MODELS.build(name, **kwargs)
    if weights is not None:
        from lrreid.models.weights import load_weights

        load_weights(model, weights, strict=strict, key_map=model.importer)
    return model


__all__ = ["SR_MODELS", "build_sr_model", "SRModel", "output_size", "Bicubic", "CARNM", "MetaRDN", "SwinIR"]
