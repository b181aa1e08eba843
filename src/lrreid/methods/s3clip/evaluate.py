"""S3-CLIP's cross-view evaluation on tracklets.

For every evaluation split the test tracklets (query + gallery of the split) are regrouped into the
configured directions, ``(query view, gallery view)`` pairs such as aerial->ground, ground->aerial
and aerial->aerial (any view or camera group the dataset has).  Each tracklet is embedded once per
way of handling it:

* ``S3-CLIP``: low-resolution tracklets (views in ``sampling.lr_views``) go through S before the
  encoder (query side with ``crossview.sr_query``, gallery side with ``crossview.sr_gallery``);
* ``bilinear``: the same LR frames bilinearly up-sampled instead of S (the paper's baseline row,
  with the same encoder);
* ``+ <spec> query``: robustness rows, the query frames degraded first (``crossview.robustness``,
  e.g. blur + JPEG, the paper's "next checks").

Ranking uses cosine distance and the usual rule (same identity *and* same camera is not a match).
A direction whose query and gallery are the same view of a single camera would lose every match to
that rule, so there each tracklet counts as its own camera (different shots of one camera still
match).  Queries without a match in the gallery are skipped and counted in the report's notes.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch

from lrreid.data.records import TrackletRecord
from lrreid.errors import ProtocolError
from lrreid.evaluation import evaluate_features
from lrreid.evaluation.summary import mean_std_per_key
from lrreid.methods.base import EpochContext, EvalReport
from lrreid.methods.s3clip.data import TrackletFrames, is_lr, pseudo_tracklets, usable_tracklets

if TYPE_CHECKING:  # pragma: no cover
    from lrreid.methods.s3clip.model import S3ClipMethod

log = logging.getLogger("lrreid.methods.s3clip")

METRICS = ("R1", "R5", "R10", "mAP")


def short_view(view: str) -> str:
    return {"aerial": "A", "ground": "G"}.get(view, view)


def direction_name(query_view: str, gallery_view: str) -> str:
    return f"{short_view(query_view)}->{short_view(gallery_view)}"


def test_tracklets(split, pseudo: bool, view_map: dict[str, str], max_frames: int | None = None) -> list[TrackletRecord]:
    """The split's query + gallery records (each once) as tracklets (pseudo-tracklets of at most
    ``max_frames`` images)."""
    seen, records = set(), []
    for r in list(split.query) + list(split.gallery):
        key = (r.frames if isinstance(r, TrackletRecord) else r.path, r.pid, r.camid)
        if key not in seen:
            seen.add(key)
            records.append(r)
    if pseudo or any(not isinstance(r, TrackletRecord) for r in records):
        records = pseudo_tracklets(records, view_map, max_frames=max_frames)
    kept, empty = usable_tracklets(records)
    if empty:
        log.warning("evaluation: skipped %d empty tracklet(s)", empty)
    return kept


FLICKER_NOISE = 2.0 / 255  # sensor-noise std of the static-scene flicker test (LR pixel values in [0, 1])


@torch.no_grad()
def flicker_numbers(method: "S3ClipMethod", records: Sequence[TrackletRecord], lr_views: Sequence[str],
                    device: torch.device, max_tracklets: int = 25, frames: int = 8) -> dict[str, float]:
    """How much S's output flickers, against bilinear up-sampling, on the HR test tracklets.

    * ``vs HR``: L_temporal of the output of the tracklet's bicubic LR copy, mean over frames and
      pixels of ``|(out_t+1 - out_t) - (hr_t+1 - hr_t)|``: change that HR does not have.
    * ``static``: where HR does not change at all: ``frames`` copies of one HR frame, each down-
      sampled and given its own sensor noise (std ``FLICKER_NOISE``), as a camera filming a still
      person; mean ``|out_t+1 - out_t|``.  Bilinear passes the noise on as it is; an SR network
      that amplifies it flickers more.
    The first ``max_tracklets`` HR tracklets (whole; frames evenly spaced), fixed noise seed.
    """
    from lrreid.methods.s3clip.data import hr_frames_and_bicubic_copy
    from lrreid.methods.s3clip.losses import temporal_consistency_loss
    from lrreid.utils.modules import eval_mode

    hr_tracklets = [r for r in records if not is_lr(r, lr_views) and len(r.frames) >= 2][:max_tracklets]
    if not hr_tracklets:
        return {}
    gen = torch.Generator().manual_seed(0)
    sums: dict[str, list[float]] = defaultdict(list)
    down = lambda x: torch.nn.functional.interpolate(  # noqa: E731
        x, size=method.lr_size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    with eval_mode(method):
        for record in hr_tracklets:
            hr, lr = hr_frames_and_bicubic_copy(record, min(frames, len(record.frames)), method.input_size,
                                                method.lr_size)
            still = down(hr[:, :1].expand(1, frames, *hr.shape[2:]).flatten(0, 1))
            still = (still + FLICKER_NOISE * torch.randn(still.shape, generator=gen)).clamp(0, 1)
            still = still.reshape(1, frames, 3, *method.lr_size)
            for name, fn in (("S", lambda x: method.super_resolve(x.to(device)).float().clamp(0, 1).cpu()),
                             ("bilinear", method.upsample_bilinear)):
                sums[f"{name} vs HR"].append(float(temporal_consistency_loss(fn(lr), hr)))
                out = fn(still)
                sums[f"{name} static"].append(float((out[:, 1:] - out[:, :-1]).abs().mean()))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def direction_sets(records: Sequence[TrackletRecord], query_view: str, gallery_view: str
                   ) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """Indices of query and gallery tracklets of a direction, and the camera ids to rank with.

    Different views: every query-view tracklet against every gallery-view tracklet.  Same view:
    per identity, its first tracklet is the query and the others are gallery (so each query has a
    chance of a match); tracklets of a one-camera view get their own camera id each.  Distractors
    (person 0) are never queries.
    """
    if query_view != gallery_view:
        q = [i for i, r in enumerate(records) if r.view == query_view and r.pid != 0]  # 0: distractor
        g = [i for i, r in enumerate(records) if r.view == gallery_view]
        camids = np.array([r.camid for r in records])
        return q, g, camids[q], camids[g]
    members = [i for i, r in enumerate(records) if r.view == query_view]
    first: dict[int, int] = {}
    for i in members:
        if records[i].pid != 0:  # distractors stay in the gallery
            first.setdefault(records[i].pid, i)
    q = sorted(first.values())
    g = [i for i in members if i not in set(q)]
    camids = np.array([records[i].camid for i in range(len(records))])
    if len({records[i].camid for i in members}) <= 1:
        camids = np.arange(len(records)) + 10_000  # one camera: each tracklet its own "camera"
    return q, g, camids[q], camids[g]


@torch.no_grad()
def extract_features(method: "S3ClipMethod", records: Sequence[TrackletRecord], ctx: EpochContext, *,
                     super_resolve: Sequence[bool], upsampler: str = "sr", degradation=None,
                     output: str = "embedding", desc: str = "features") -> torch.Tensor:
    """Retrieval features ``[N, D]`` of tracklets; ``super_resolve[i]`` sends tracklet i through S (or bilinear)."""
    cfg = method.cfg
    native = cfg.sr.pre_interpolation == "none" and upsampler == "sr"
    one_by_one = native or cfg.sampling.eval_sampling == "all"
    out: list[torch.Tensor | None] = [None] * len(records)
    for low_res in (True, False):
        idx = [i for i, flag in enumerate(super_resolve) if flag == low_res]
        if not idx:
            continue
        if low_res:
            size_of = (lambda r: None) if native else (lambda r: method.lr_size)
        else:
            size_of = lambda r: method.input_size  # noqa: E731
        frames = TrackletFrames([records[i] for i in idx], size_of, num_frames=cfg.sampling.eval_frames,
                                sampling=cfg.sampling.eval_sampling, degradation=degradation, seed=0)
        batch = 1 if one_by_one else max(1, ctx.batch_size)
        loader = torch.utils.data.DataLoader(frames, batch_size=batch, num_workers=ctx.num_workers)
        for item in ctx.progress(loader, total=len(loader), desc=desc):
            clip = item["frames"].to(ctx.device)
            with _autocast(ctx):
                feats = method.embed_tracklets(clip, low_resolution=low_res, upsampler=upsampler,
                                               output=output).float().cpu()
            for j, k in enumerate(item["index"].tolist()):
                out[idx[k]] = feats[j]
    return torch.stack(out)  # type: ignore[arg-type]


def _autocast(ctx: EpochContext):
    import contextlib

    return ctx.precision.autocast() if ctx.precision is not None else contextlib.nullcontext()


def _metrics(result) -> dict[str, float]:
    return {"R1": result.rank(1), "R5": result.rank(min(5, len(result.cmc))),
            "R10": result.rank(min(10, len(result.cmc))), "mAP": float(result.mAP)}


def evaluate_cross_view(method: "S3ClipMethod", splits: Sequence, ctx: EpochContext) -> EvalReport:
    """Rank-1/5/10 and mAP per direction and way of up-sampling, mean (± std) over the splits."""
    cv, s = method.cfg.crossview, method.cfg.sampling
    variants: list[tuple[str, str, object]] = [("S3-CLIP", "sr", None)]
    if method.adaptive_scales:
        variants.append(("S3-CLIP adaptive scale", "adaptive", None))
    method.chosen_scales = []
    if cv.baseline:
        variants.append(("bilinear", "bilinear", None))
    if cv.robustness:
        label = cv.robustness if isinstance(cv.robustness, str) else "degraded"
        variants.append((f"S3-CLIP, {label} query", "sr", cv.robustness))
        if cv.baseline:
            variants.append((f"bilinear, {label} query", "bilinear", cv.robustness))

    results: dict[str, list[dict[str, float]]] = defaultdict(list)
    notes: list[str] = []
    for split_no, split in enumerate(splits):
        records = test_tracklets(split, s.pseudo_tracklets, s.view_map, s.eval_tracklet_frames)
        low = np.array([is_lr(r, s.lr_views) for r in records])
        cache: dict[tuple, torch.Tensor] = {}

        def features(role_sr: bool, upsampler: str, degradation, subset: list[int]) -> torch.Tensor:
            key = (role_sr, upsampler, repr(degradation))
            if key not in cache:
                flags = list(low & role_sr)
                tag = "degraded " if degradation is not None else ""
                cache[key] = extract_features(method, records, ctx, super_resolve=flags, upsampler=upsampler,
                                              degradation=degradation, desc=f"split {split_no} {tag}{upsampler}")
            return cache[key][subset]

        for query_view, gallery_view in cv.directions:
            name = direction_name(query_view, gallery_view)
            q, g, q_cam, g_cam = direction_sets(records, query_view, gallery_view)
            if cv.max_queries is not None:
                q, q_cam = q[: cv.max_queries], q_cam[: cv.max_queries]
            if not q or not g:
                notes.append(f"split {split_no} {name}: no {query_view if not q else gallery_view} tracklets, skipped")
                continue
            q_pids = np.array([records[i].pid for i in q])
            g_pids = np.array([records[i].pid for i in g])
            for label, upsampler, degradation in variants:
                qf = features(cv.sr_query, upsampler, degradation, q)
                gf = features(cv.sr_gallery, upsampler, None, g)
                try:
                    res = evaluate_features(qf, gf, q_pids, g_pids, q_cam, g_cam, metric="cosine",
                                            max_rank=min(50, len(g)))
                except ProtocolError as exc:
                    notes.append(f"split {split_no} {name} {label}: no query has a match in the gallery ({exc})")
                    continue
                results[f"{name} {label}"].append(_metrics(res))
                if res.num_skipped_queries and label == "S3-CLIP":
                    notes.append(f"split {split_no} {name}: {res.num_skipped_queries} of {len(q)} queries have "
                                 f"no match in the gallery and were skipped")
        if split_no == 0 and cv.flicker:
            whole = test_tracklets(split, s.pseudo_tracklets, s.view_map) if s.eval_tracklet_frames else records
            numbers = flicker_numbers(method, whole, s.lr_views, ctx.device)
            if numbers:
                notes.append(f"flicker on split {getattr(split, 'name', split_no)}'s HR test tracklets (bicubic LR copy; x1000, lower is steadier): "
                             f"vs HR (L_temporal) S {1000 * numbers['S vs HR']:.2f}, bilinear "
                             f"{1000 * numbers['bilinear vs HR']:.2f}; static scene (one HR frame, per-frame LR "
                             f"noise std 2/255) S {1000 * numbers['S static']:.2f}, bilinear "
                             f"{1000 * numbers['bilinear static']:.2f}")
        if split_no == 0 and cv.figure_tracklets > 0 and ctx.run_dir is not None and ctx.is_main:
            try:
                from lrreid.methods.s3clip.figures import save_sr_examples

                path = save_sr_examples(method, records, Path(ctx.run_dir) / "sr_examples.png",
                                        num_tracklets=cv.figure_tracklets, device=ctx.device)
                if path is not None:
                    notes.append(f"SR examples: {path}")
            except ImportError as exc:  # matplotlib missing: the numbers matter more than the picture
                notes.append(f"no SR picture ({exc})")

    if method.chosen_scales:
        counts = {s_: method.chosen_scales.count(s_) for s_ in method.adaptive_scales}
        notes.append("adaptive scale: tracklets per chosen factor " +
                     ", ".join(f"x{s_:g}: {n}" for s_, n in counts.items()))
    report = EvalReport(f"S3-CLIP cross-view ({len(splits)} split{'s' if len(splits) != 1 else ''})")
    for row_name, per_split in results.items():
        stats = mean_std_per_key(per_split, METRICS)
        # one split: no "± 0.0" in the table (the std is 0 by definition)
        std = {m: sd for m, (_, sd) in stats.items()} if len(per_split) > 1 else None
        report.add(row_name, {m: mean for m, (mean, _) in stats.items()}, std)
    report.notes.extend(notes)
    return report

