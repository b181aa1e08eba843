"""A trained run (or one of its checkpoints) -> an :class:`LRReIDPipeline`.

A run folder holds ``config.yaml`` and checkpoints (``.safetensors`` + ``.json``);
:func:`lrreid.build.load_trained` rebuilds the method from them alone (no dataset, no pretrained
weight files: a run folder copied to another machine serves search).  The pipeline takes the method's
networks (re-ID, SR, scale predictor) and the settings that decide its features (input size,
scale set, normalisation) and records where it came from, for the model identity of an index.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from lrreid.errors import CheckpointError
from lrreid.models.reid.load import is_openvino_ir
from lrreid.inference.pipeline import LRReIDPipeline
from lrreid.methods.base import InferenceParts
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
    if is_encoder_file(path):
        from lrreid.engine.checkpoint import not_a_checkpoint
        from lrreid.models.reid.load import load_encoder

        try:
            encoder = load_encoder(path)
        except CheckpointError as exc:
            if is_openvino_ir(path):  # an IR is only ever a weight file: its own error says what is wrong
                raise
            raise CheckpointError(f"{not_a_checkpoint(path)}; read as weights: {str(exc).removeprefix(f'{path}: ')}") from None
        return pipeline_from_encoder(encoder, path, fast=fast, device=device, batch_size=batch_size)
    from lrreid.build import load_trained
    from lrreid.config import config_to_yaml

    cfg, method, ckpt = load_trained(path)
    pipe = pipeline_from_method(method.eval(), path, fast=fast, device=device, fixed_scale=fixed_scale,
                                batch_size=batch_size)
    # The config the weights were trained with (from the checkpoint), part of the model identity.
    pipe.source.update(checkpoint=str(ckpt.path), config_text=config_to_yaml(cfg))
    return pipe


def pipeline_from_method(
    method,
    source: str | os.PathLike | None = None,
    *,
    fast: bool = True,
    device: str = "auto",
    fixed_scale: int | None = None,
    batch_size: int = 32,
) -> LRReIDPipeline:
    """A pipeline that runs a method's inference protocol (``method.inference_parts()``)."""
    try:
        parts = method.inference_parts()
    except NotImplementedError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    pipe = pipeline_from_parts(parts, fast=fast, device=device, fixed_scale=fixed_scale, batch_size=batch_size)
    if source is not None:
        pipe.source = _source_info(Path(source))
    return pipe


def pipeline_from_parts(parts: InferenceParts, *, fast: bool = True, device: str = "auto",
                        fixed_scale: int | None = None, batch_size: int = 32) -> LRReIDPipeline:
    """:class:`LRReIDPipeline` over an :class:`InferenceParts`: it adds batching and precision."""
    precision = Precision.for_inference(device, fast=fast)
    return LRReIDPipeline(
        parts.embedder, parts.sr, parts.predictor, scales=parts.scales,
        fixed_scale=parts.fixed_scale if fixed_scale is None else fixed_scale, input_size=parts.input_size,
        precision=precision, sr_precision=sr_precision_for(precision), lr_size=parts.lr_size, mean=parts.mean,
        std=parts.std, normalize_features=parts.normalize_features, batch_size=batch_size,
        min_probe_side=parts.min_probe_side, video=parts.video,
    )


ENCODER_SUFFIXES = (".xml", ".pth", ".pt", ".tar")


def is_encoder_file(path: Path) -> bool:
    """A bare re-ID weight file (an OpenVINO IR, a torchreid state dict), as opposed to a run or its checkpoint.

    A run's checkpoint is a ``.safetensors`` + ``.json`` pair; anything else lrreid can read as a
    network is taken as a re-ID encoder.
    """
    return path.is_file() and path.suffix.lower() in ENCODER_SUFFIXES


def pipeline_from_encoder(
    encoder: torch.nn.Module,
    source: str | os.PathLike | None = None,
    *,
    fast: bool = False,
    device: str = "auto",
    batch_size: int = 32,
) -> LRReIDPipeline:
    """A pipeline around a bare re-ID encoder (no SR, no predictor): images resized to its input size.

    The encoder's ``input_spec`` decides the size, the normalisation and the distance (cosine:
    features are L2-normalised, so the index's Euclidean distance ranks as cosine does).
    """
    spec = encoder.input_spec
    parts = InferenceParts(embedder=encoder, input_size=spec.size, fixed_scale=1, mean=spec.mean, std=spec.std,
                           normalize_features=spec.distance == "cosine")
    pipe = pipeline_from_parts(parts, fast=fast, device=device, batch_size=batch_size)
    if source is not None:
        pipe.source = _source_info(Path(source))
        pipe.source["config_text"] = f"re-ID encoder {type(encoder).__name__} from {Path(source).name}; input {spec.to_dict()}\n"
    return pipe


def sr_precision_for(precision: Precision) -> Precision:
    """The SR network's precision on the fast path: the same as the other networks.

    Measured on the trained `lrreid demo` run (docs/search.md): bf16 SR outputs are 56-58 dB PSNR
    from fp32 ones at x2-x4 and Rank-1/mAP move by at most 0.04 points; bf16 SR is 1.6x faster
    for the paper-sized Meta-RDN and as fast as fp32 for the demo's small one.
    """
    return precision


def _source_info(path: Path) -> dict:
    return {"path": str(path.resolve())}
