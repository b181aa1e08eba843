"""A trained run (or one of its checkpoints) -> an :class:`LRReIDPipeline`.

A run folder holds ``config.yaml`` and checkpoints (``.safetensors`` + ``.json``); the engine's
:func:`lrreid.build.load_run` rebuilds the method from them.  The pipeline takes the method's
networks (re-ID, SR, scale predictor) and the settings that decide its features (input size,
scale set, normalisation) and records where it came from, for the model identity of an index.
"""
from __future__ import annotations

import os
from pathlib import Path

from lrreid.errors import CheckpointError
from lrreid.inference.pipeline import IMAGENET_MEAN, IMAGENET_STD, LRReIDPipeline
from lrreid.utils.device import Precision


def load_pipeline(
    path: str | os.PathLike,
    *,
    fast: bool = True,
    device: str = "auto",
    fixed_scale: int | None = None,
    batch_size: int = 32,
) -> LRReIDPipeline:
    """Build the inference pipeline of a trained run folder or checkpoint file.

    Example::

        >>> pipe = load_pipeline("runs/demo")                  # the run's newest checkpoint
        >>> pipe = load_pipeline("runs/demo/epoch_003.safetensors", fast=False)
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such run folder or checkpoint (expected a folder with config.yaml)")
    try:
        from lrreid.build import load_run
    except ImportError as exc:  # pragma: no cover - the engine is part of lrreid
        raise CheckpointError(f"{path}: cannot load runs ({exc})") from None
    method = load_run(path)
    return pipeline_from_method(method, path, fast=fast, device=device, fixed_scale=fixed_scale, batch_size=batch_size)


def pipeline_from_method(
    method,
    source: str | os.PathLike | None = None,
    *,
    fast: bool = True,
    device: str = "auto",
    fixed_scale: int | None = None,
    batch_size: int = 32,
) -> LRReIDPipeline:
    """Wrap a method's networks (``reid_net``, ``sr_net``, ``predictor`` attributes) in a pipeline."""
    reid_net = getattr(method, "reid_net", None)
    if reid_net is None:
        raise CheckpointError(f"{source}: method {getattr(method, 'name', '?')!r} has no re-ID network to embed with")
    sr_net = getattr(method, "sr_net", None)
    predictor = getattr(method, "predictor", None)
    scales = tuple(getattr(method, "scales", None) or getattr(sr_net, "supported_scales", None) or (1,))
    input_size = tuple(getattr(method, "input_size", (384, 128)))
    precision = Precision.for_inference(device, fast=fast)
    pipe = LRReIDPipeline(
        reid_net, sr_net, predictor, scales=scales, fixed_scale=fixed_scale, input_size=input_size,
        precision=precision, sr_precision=sr_precision_for(precision),
        lr_size=getattr(method, "lr_size", None),
        mean=getattr(method, "mean", IMAGENET_MEAN), std=getattr(method, "std", IMAGENET_STD),
        batch_size=batch_size,
    )
    if source is not None:
        pipe.source = _source_info(Path(source))
    return pipe


def sr_precision_for(precision: Precision) -> Precision:
    """The SR network's precision on the fast path (see docs/search.md for the measurement)."""
    return precision


def _source_info(path: Path) -> dict:
    run_dir = path if path.is_dir() else path.parent
    config = run_dir / "config.yaml"
    return {"path": str(path.resolve()), "config_text": config.read_text() if config.is_file() else ""}
