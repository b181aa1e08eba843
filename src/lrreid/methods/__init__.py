"""Training methods (PRI, S3-CLIP): each adds its modules, losses and step to the engine's loop.

``METHODS`` maps a config's ``method:`` name to a :class:`MethodSpec`; importing this package
registers every method sub-package that exists.
"""
from __future__ import annotations

import importlib

from lrreid.methods.base import (  # noqa: F401
    METHODS,
    EpochContext,
    EvalReport,
    EvalRow,
    Method,
    MethodSpec,
    Phase,
)

# One sub-package per method; importing it registers its MethodSpec in METHODS.
_METHOD_PACKAGES = ("pri", "s3clip")

for _name in _METHOD_PACKAGES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # a method not written yet adds nothing
        if _exc.name != f"{__name__}.{_name}":
            raise
