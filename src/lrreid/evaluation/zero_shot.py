"""A re-ID network with no training, on a prepared dataset's own splits: the bar every method must clear.

Every image (probe or gallery) is resized bicubically (PIL, on the uint8 image) to the network's
input size and embedded once; each split then ranks its gallery for its probes with the network's
distance (cosine for Intel's files, Euclidean for torchreid's, from the weights' ``input_spec``).
The report has one row per network: Rank-1/5/10, mAP and mINP as mean ± std over the splits, and
images per second of the embedding (wall clock, this process, fp32 unless ``fast``).

Example::

    splits = load_prepared_splits("out/caviar")
    report = evaluate_encoders(["../shared/weights/omz/.../person-reidentification-retail-0277.xml"], splits)
    report.print()
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

from lrreid.errors import ProtocolError
from lrreid.evaluation.metrics import evaluate_features
from lrreid.evaluation.summary import summarize
from lrreid.methods.base import EvalReport


def evaluate_encoders(models: Sequence[str | os.PathLike], splits: Sequence, *, fast: bool = False, device: str = "auto",
                      batch_size: int = 32, title: str = "no training",
                      on_model: Callable[[str], None] | None = None) -> EvalReport:
    """One row per weight file (or encoder name): the zero-shot table over ``splits``."""
    from lrreid.inference.loading import pipeline_from_encoder
    from lrreid.models.reid.load import load_encoder

    if not splits:
        raise ProtocolError("no evaluation splits to evaluate on")
    report = EvalReport(f"{title}, {len(splits)} split{'s' if len(splits) != 1 else ''}", percent=False)
    for model in models:
        encoder = load_encoder(model)
        if on_model is not None:
            on_model(str(model))
        pipe = pipeline_from_encoder(encoder, model, fast=fast, device=device, batch_size=batch_size)
        paths = sorted({r.path for s in splits for r in (*s.query, *s.gallery)})
        start = time.perf_counter()
        feats = pipe.embed_gallery(paths)
        seconds = time.perf_counter() - start
        row = {p: i for i, p in enumerate(paths)}
        metric = encoder.input_spec.distance
        results = []
        for split in splits:
            q = feats[[row[r.path] for r in split.query]]
            g = feats[[row[r.path] for r in split.gallery]]
            results.append(evaluate_features(
                q, g, [r.pid for r in split.query], [r.pid for r in split.gallery],
                [r.camid for r in split.query], [r.camid for r in split.gallery], metric=metric,
                max_rank=min(50, len(split.gallery))))
        # a gallery smaller than k has no Rank-k: that column is left out
        ranks = tuple(k for k in (1, 5, 10) if k <= min(len(r.cmc) for r in results))
        summary = {k: v for k, v in summarize(results, ranks).items() if k != "mINP"}
        report.add(Path(str(model)).stem if os.path.exists(str(model)) else str(model),
                   {**{k: mean for k, (mean, _) in summary.items()}, "img/s": len(paths) / max(seconds, 1e-9)},
                   std={k: std for k, (_, std) in summary.items()})
        report.notes.append(f"{Path(str(model)).name}: {type(encoder).__name__}, {metric} distance, "
                            f"input {encoder.input_spec.size[0]}x{encoder.input_spec.size[1]} ({encoder.input_spec.source}), "
                            f"{pipe.precision.mode}, {len(paths)} images in {seconds:.1f} s")
    return report
