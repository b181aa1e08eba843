"""PRI's evaluation: the scale-factor predictors of PRI.md Table 2, side by side, for one model.

For every probe (an LR query image, at its own size) and every alternative scale ``r``, the probe
is super-resolved by ``G_r``, resized to F's input and embedded once; gallery images are embedded
directly.  Each predictor then only chooses, per probe, which of those features to rank with:

* ``fixed xr``: the same scale for every probe;
* ``size-based``: the scale nearest to ``sqrt(R / r)`` where ``R`` is the mean area (h*w) of the
  HR training images and ``r`` the probe's area (``inference.size_rule: ratio`` uses the literal
  ``R / r`` of the paper's wording; the square root turns an area ratio into a side ratio, which is
  what a scale factor is);
* ``ideal``: per probe, the scale that ranks its first true match highest (ties: the higher AP,
  then the larger margin between the true match and the nearest wrong identity, then the smaller
  scale) -- the upper bound for G and F as trained;
* ``adaptive (P)``: ``argmax P(x_l)``, PRI's predictor;
* ``mirror oracle`` (``inference.predictors`` with ``mirror``; lrreid's): per probe, the better of
  the best fixed scale and the same probe mirrored at that scale -- an oracle over a choice that
  carries no scale information, so it measures how much of the ideal row's lead is choice noise.
* ``fused, mean of scales`` and ``fused, P-weighted`` (``inference.predictors`` with ``fused``;
  lrreid's): no choice, the probe's features at all scales averaged (each L2-normalised first when
  F ranks by cosine), with equal weights or with P's probabilities.  They cost N SR + F passes a
  probe against PRI's one; the P-weighted row above the plain mean is what P's probabilities add.

Beside them, the baselines that answer "does SR help at all?" (docs/pri.md, "Baselines"):

* ``no SR``: the same F on the probe resized bicubically to F's input (as gallery images are), no G;
* ``no SR, F's resize`` (``nosr_net``, lrreid): no G either, but the probe at its own size enlarged
  by F's input resize (bilinear: the resize F is trained with, and the one search runs).  Which of
  the two resizes suits F depends on the data; with an SR network that has no x1 (CARN-M) this row
  equals ``fixed x1``;
* ``fine-tuned, no SR`` (and ``fine-tuned, no SR, F's resize``): the model of ``schedule.mode:
  finetune`` (F alone, fine-tuned as a plain re-ID model on the same training persons) evaluated
  the same ways; such a model has only these rows.

Rank-1/5/10 and mAP per split, then mean and std over the splits (lrreid.evaluation.summarize).
Splits whose test images were used for training (a model trained on split 0, evaluated on split 3
of a random-split protocol) are skipped and counted by default (``inference.overlapping_splits``).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from lrreid.errors import ImageReadError, ProtocolError
from lrreid.evaluation import RankResult, evaluate_rank, summarize, true_match_ranks
from lrreid.evaluation.distance import pairwise_distance, smallest_k
from lrreid.inference.pipeline import probe_side_limit, probe_too_small
from lrreid.methods.base import EpochContext, EvalReport
from lrreid.methods.pri.data import load_image
from lrreid.utils.logging import get_logger
from lrreid.utils.modules import eval_mode

log = get_logger("methods.pri")

METRICS = ("Rank-1", "Rank-5", "Rank-10", "mAP")
TOPK = 10  # gallery neighbours kept per probe and scale, for the pictures


def size_based_choice(probe_areas: np.ndarray, hr_mean_area: float, scales: Sequence[int], rule: str = "sqrt") -> np.ndarray:
    """Index into ``scales`` of the size-based predictor for each probe area.

    >>> size_based_choice(np.array([100.0, 25.0]), 400.0, [1, 2, 3, 4])     # sqrt(4)=2, sqrt(16)=4
    array([1, 3])
    >>> size_based_choice(np.array([100.0]), 400.0, [1, 2, 3, 4], rule="ratio")  # 400/100 = 4
    array([3])
    """
    ratio = hr_mean_area / np.maximum(np.asarray(probe_areas, dtype=np.float64), 1.0)
    target = np.sqrt(ratio) if rule == "sqrt" else ratio
    scales_arr = np.asarray(scales, dtype=np.float64)
    # argmin picks the smaller scale when the target sits exactly between two.
    return np.abs(target[:, None] - scales_arr[None, :]).argmin(axis=1)


def first_match_rank_and_ap(dist: np.ndarray, q_pids, g_pids, q_camids, g_camids,
                            with_margin: bool = False):
    """Per query: 1-based rank of its first true match and its AP, under the usual protocol.

    Gallery entries of the query's identity AND camera are removed first (as in
    lrreid.evaluation.evaluate_rank); a query without a true match gets rank ``inf`` and AP 0.
    The ranks are evaluate_rank's own (lrreid.evaluation.true_match_ranks; ties in gallery
    order).  With ``with_margin`` also the margin: distance of the nearest wrong identity minus
    that of the nearest true match (larger = the true match stands out more; ``-inf`` without a
    true match).
    """
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    ranks = np.full(len(dist), np.inf)
    aps = np.zeros(len(dist))
    margins = np.full(len(dist), -np.inf)
    for i, hits in enumerate(true_match_ranks(dist, q_pids, g_pids, q_camids, g_camids)):
        if not len(hits):
            continue
        ranks[i] = hits[0]
        aps[i] = float(np.mean((np.arange(len(hits)) + 1) / hits))
        if with_margin:
            # nearest other identity (never removed) minus nearest true match
            wrong = dist[i][g_pids != q_pids[i]]
            true = dist[i][(g_pids == q_pids[i]) & (g_camids != q_camids[i])]
            margins[i] = (wrong.min() if len(wrong) else np.inf) - true.min()
    if with_margin:
        return ranks, aps, margins
    return ranks, aps


def ideal_choice(ranks: np.ndarray, aps: np.ndarray, margins: np.ndarray | None = None) -> np.ndarray:
    """Per probe, the scale index with the best first-match rank; ties: higher AP, then larger margin, then smaller scale.

    ``ranks``, ``aps`` (and ``margins``, see :func:`first_match_rank_and_ap`) are ``[num_scales, num_probes]``.

    >>> ideal_choice(np.array([[2., 1.], [1., 1.]]), np.array([[.5, .4], [.9, .6]]))
    array([1, 1])
    """
    num_scales, num_probes = ranks.shape
    margins = np.zeros_like(aps) if margins is None else margins
    out = np.zeros(num_probes, dtype=np.int64)
    for i in range(num_probes):
        # lexicographic: rank ascending, AP descending, margin descending, scale index ascending
        out[i] = min(range(num_scales), key=lambda k: (ranks[k, i], -aps[k, i], -margins[k, i], k))
    return out


@dataclass
class SplitDetail:
    """What one split's evaluation saw, kept for pictures and inspection."""

    name: str
    query: list
    gallery: list
    probs: np.ndarray  # [Q, N] P's probabilities
    choices: dict[str, np.ndarray]  # predictor -> [Q] scale index
    topk: np.ndarray  # [N, Q, TOPK] gallery indices nearest to each probe at each scale
    ranks: np.ndarray  # [N, Q] rank of each probe's first true match at each scale (inf: none)
    skipped_probes: int = 0


@dataclass
class PRIEvaluation:
    """Table 2 over several splits: per predictor, one RankResult per split."""

    scales: list[int]
    results: dict[str, list[RankResult]] = field(default_factory=lambda: defaultdict(list))
    details: list[SplitDetail] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mirror_scales: list[int] = field(default_factory=list)  # per split, the fixed scale the mirror oracle mirrored

    def summary(self) -> dict[str, dict[str, tuple[float, float]]]:
        """predictor -> metric -> (mean, std) in percent (ranks beyond the gallery size left out)."""
        out = {}
        for name, res in self.results.items():
            longest = min(len(r.cmc) for r in res)
            out[name] = summarize(res, ranks=tuple(k for k in (1, 5, 10) if k <= longest))
        return out

    def report(self) -> EvalReport:
        n = len(self.details)
        report = EvalReport(f"PRI scale-factor predictors (Table 2), {n} split{'s' if n != 1 else ''}")
        for name, summary in self.summary().items():
            shown = [m for m in METRICS if m in summary]
            report.add(name, {m: summary[m][0] / 100.0 for m in shown}, std={m: summary[m][1] / 100.0 for m in shown})
        hist = self.predicted_scale_histogram()
        if hist:
            report.counts["probes per scale picked by adaptive (P)"] = {f"x{s}": c for s, c in hist.items()}
        agreement = self.ideal_agreement()
        if "adaptive (P)" in agreement:
            fixed = {k: v for k, v in agreement.items() if k.startswith("fixed")}
            best = max(fixed, key=fixed.get) if fixed else None
            report.notes.append(
                f"adaptive (P)'s scale ranks the true match as well as the ideal scale for {100 * agreement['adaptive (P)']:.1f}% "
                f"of probes" + (f" ({best}: {100 * fixed[best]:.1f}%)" if best else ""))
        if self.mirror_scales:
            shown = ", ".join(f"x{s}" for s in self.mirror_scales)
            report.notes.append(
                f"mirror oracle: per probe, the better of the best fixed scale ({shown}) and the same probe mirrored at "
                "that scale; mirroring carries no scale information, so the part of the ideal row's lead over the fixed "
                "scales that this row also reaches is choice noise, not a signal P could learn")
        if FUSED_P in self.results:
            report.notes.append(
                f"fused rows: each probe's features at all {len(self.scales)} scales averaged, with equal weights or with "
                f"P's probabilities; each probe costs {len(self.scales)} SR + F passes (one per scale), where a predictor's "
                "row costs one")
        report.notes.extend(self.notes)
        return report

    def ideal_agreement(self) -> dict[str, float]:
        """predictor -> share of probes (with a true match) whose chosen scale ranks the first true
        match as high as the best scale does: how often a predictor is as good as the ideal one.

        Ties count as agreement, so several scales can be ideal for one probe (often all four, for a
        probe whose true match is first at every scale).
        """
        hits: dict[str, int] = defaultdict(int)
        total = 0
        for d in self.details:
            best = d.ranks.min(axis=0)
            valid = np.isfinite(best)
            total += int(valid.sum())
            rows = np.arange(d.ranks.shape[1])
            for name, choice in d.choices.items():
                hits[name] += int((d.ranks[choice, rows] == best)[valid].sum())
        return {name: count / total for name, count in hits.items()} if total else {}

    def scale_counts(self) -> dict[str, dict[int, int]]:
        """predictor -> scale -> number of probes, for the predictors that choose per probe."""
        out = {}
        for name in ("adaptive (P)", "ideal", "size-based"):
            counts = self.predicted_scale_histogram(name)
            if counts:
                out[name] = counts
        return out

    def predicted_scale_histogram(self, predictor: str = "adaptive (P)") -> dict[int, int]:
        counts = {s: 0 for s in self.scales}
        for d in self.details:
            if predictor in d.choices:
                for k in d.choices[predictor]:
                    counts[self.scales[int(k)]] += 1
        return counts if any(counts.values()) else {}


def _bucket_by_size(images: list[torch.Tensor]) -> dict[tuple[int, int], list[int]]:
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, img in enumerate(images):
        buckets[tuple(img.shape[-2:])].append(i)
    return buckets


def _batches(indices: list[int], size: int):
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def embed_gallery(method, records, ctx: EpochContext, batch_size: int) -> torch.Tensor:
    """F's features of gallery images (each resized straight to F's input)."""
    feats = []
    paths = [r.path for r in records]
    progress = ctx.progress(range(0, len(paths), batch_size), total=(len(paths) + batch_size - 1) // batch_size, desc="gallery")
    for start in progress:
        batch = torch.stack([load_image(p, method.input_size) for p in paths[start:start + batch_size]])
        feats.append(method.embed(batch.to(ctx.device)).cpu())
    return torch.cat(feats)


def _probe_too_small(method, h: int, w: int) -> str | None:
    return probe_too_small(h, w, probe_side_limit(method.inference.min_probe_side, method.sr_net))


def load_probes(method, records) -> tuple[list, list[torch.Tensor], int]:
    """Probe images at their own size; too-small ones raise or are skipped (``inference.small_probes``)."""
    kept, images, skipped = [], [], 0
    for r in records:
        img = load_image(r.path)
        problem = _probe_too_small(method, img.shape[-2], img.shape[-1])
        if problem is not None:
            if method.inference.small_probes == "error":
                raise ImageReadError(f"{r.path}: probe is {problem}; set inference.small_probes=skip to skip such probes")
            skipped += 1
            continue
        kept.append(r)
        images.append(img)
    if skipped:
        log.warning("PRI: skipped %d probe(s) smaller than the minimum side", skipped)
    return kept, images, skipped


@torch.no_grad()
def embed_probes_at_scales(method, images: list[torch.Tensor], ctx: EpochContext, batch_size: int,
                           scales: Sequence[int] | None = None, with_probs: bool = True):
    """``(feats [N, Q, D], probs [Q, N])``: every probe embedded once per scale (``scales``, default
    the method's; ``None`` in it: no G, the probe through F's input resize only), plus P's
    probabilities (None with ``with_probs=False``: P is not run)."""
    scales = list(method.scales if scales is None else scales)
    num_scales = len(scales)
    feats: list[list[torch.Tensor | None]] = [[None] * len(images) for _ in range(num_scales)]
    probs: list[torch.Tensor | None] = [None] * len(images)
    groups = [chunk for idx in _bucket_by_size(images).values() for chunk in _batches(idx, batch_size)]
    for chunk in ctx.progress(groups, total=len(groups), desc="probes x scales"):
        x = torch.stack([images[i] for i in chunk]).to(ctx.device)
        if with_probs:
            p = method.predict_scales(x).cpu()
            for j, i in enumerate(chunk):
                probs[i] = p[j]
        for k, s in enumerate(scales):
            f = method.embed(x if s is None else method.super_resolve(x, s)).cpu()
            for j, i in enumerate(chunk):
                feats[k][i] = f[j]
    return torch.stack([torch.stack(per_scale) for per_scale in feats]), torch.stack(probs) if with_probs else None


def _overlaps_training(method, split) -> bool:
    if not method.train_paths:
        return False
    return any(r.path in method.train_paths for r in list(split.query) + list(split.gallery))


@torch.no_grad()
def evaluate_predictors(method, splits: Sequence, ctx: EpochContext) -> PRIEvaluation:
    """Run Table 2 on ``splits`` (each with ``name``, ``query`` and ``gallery`` records)."""
    cfg = method.inference
    scales = list(method.scales)
    result = PRIEvaluation(scales)
    with eval_mode(method):
        overlapping = []
        for split in splits:
            if _overlaps_training(method, split):
                if cfg.overlapping_splits == "error":
                    raise ProtocolError(
                        f"split {split.name!r}: its test images were training images of this model "
                        "(evaluate the split it was trained on, or set inference.overlapping_splits)"
                    )
                if cfg.overlapping_splits == "skip":
                    overlapping.append(split.name)
                    continue
            _evaluate_split(method, split, ctx, result)
        if overlapping:
            result.notes.append(
                f"skipped {len(overlapping)} split(s) whose test identities were training identities of this model "
                f"({', '.join(str(n) for n in overlapping[:5])}{'...' if len(overlapping) > 5 else ''}); "
                "see docs/pri.md for the 10-split protocol"
            )
            log.warning("PRI: %s", result.notes[-1])
        if not result.details:
            raise ProtocolError("PRI evaluation: no split left to evaluate (all overlap the training data?)")
    skipped = sum(d.skipped_probes for d in result.details)
    if skipped:
        result.notes.append(f"skipped {skipped} probe(s) smaller than {cfg.min_probe_side} px on a side")
    return result


NO_SR, FINETUNED_NO_SR = "no SR", "fine-tuned, no SR"
NET_RESIZE = ", F's resize"  # suffix of the nosr_net rows


def retrieval_metric(method) -> str:
    """The distance F's features are compared with: its weights' own (cosine for Intel's re-ID
    networks, see lrreid.models.reid.encoder.InputSpec), Euclidean for F with a new head."""
    spec = getattr(getattr(method, "reid_net", None), "input_spec", None)
    return spec.distance if spec is not None else "euclidean"


def no_sr_row_name(method) -> str:
    """``fine-tuned, no SR`` for the baseline model of ``schedule.mode: finetune``, else ``no SR``."""
    return FINETUNED_NO_SR if getattr(method, "finetune_only", False) else NO_SR


def _evaluate_split(method, split, ctx: EpochContext, result: PRIEvaluation) -> None:
    cfg = method.inference
    batch_size = max(1, int(getattr(ctx, "batch_size", 0) or cfg.batch_size))
    gallery = list(split.gallery)
    query, images, skipped = load_probes(method, list(split.query))
    if not query:
        raise ProtocolError(f"split {split.name!r}: no probe left to evaluate")
    g_feats = embed_gallery(method, gallery, ctx, batch_size)
    q_pids = np.array([r.pid for r in query]); q_cams = np.array([r.camid for r in query])
    g_pids = np.array([r.pid for r in gallery]); g_cams = np.array([r.camid for r in gallery])
    max_rank = min(50, len(gallery))
    metric = retrieval_metric(method)
    finetune_only = getattr(method, "finetune_only", False)
    if "nosr" in cfg.predictors or finetune_only:
        # the probe resized bicubically straight to F's input, as the gallery: no G
        nosr = embed_gallery(method, query, ctx, batch_size)
        dist = pairwise_distance(nosr, g_feats, metric).numpy()
        result.results[no_sr_row_name(method)].append(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank))
    if "nosr_net" in cfg.predictors:
        # no G; the probe at its own size through F's input resize, as in training and search
        native = embed_probes_at_scales(method, images, ctx, batch_size, scales=[None], with_probs=False)[0][0]
        dist = pairwise_distance(native, g_feats, metric).numpy()
        result.results[no_sr_row_name(method) + NET_RESIZE].append(
            evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank))
    if finetune_only or not set(cfg.predictors) - {"nosr", "nosr_net"}:  # finetune: G and P were never trained
        num = len(method.scales)
        result.details.append(SplitDetail(str(split.name), query, gallery, np.full((len(query), num), 1.0 / num), {},
                                          np.zeros((num, len(query), 0), dtype=np.int64), np.full((num, len(query)), np.inf), skipped))
        return
    q_feats, probs = embed_probes_at_scales(method, images, ctx, batch_size)

    dists = torch.stack([pairwise_distance(q_feats[k], g_feats, metric) for k in range(len(method.scales))]).numpy()  # [N, Q, G]
    per_scale = [first_match_rank_and_ap(d, q_pids, g_pids, q_cams, g_cams, with_margin=True) for d in dists]
    ranks, aps, margins = (np.stack([item[j] for item in per_scale]) for j in range(3))
    areas = np.array([img.shape[-2] * img.shape[-1] for img in images], dtype=np.float64)

    choices: dict[str, np.ndarray] = {}
    wanted = set(cfg.predictors)
    if "fixed" in wanted:
        for k, s in enumerate(method.scales):
            choices[f"fixed x{s}"] = np.full(len(query), k)
    if "size" in wanted:
        choices["size-based"] = size_based_choice(areas, float(method.hr_mean_area), method.scales, cfg.size_rule)
    if "ideal" in wanted:
        choices["ideal"] = ideal_choice(ranks, aps, margins)
    if "adaptive" in wanted:
        choices["adaptive (P)"] = probs.argmax(dim=1).numpy()

    rows = np.arange(len(query))
    for name, choice in choices.items():
        dist = dists[choice, rows]
        result.results[name].append(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank))
    if "mirror" in wanted:
        dist, scale = _mirror_oracle(method, images, g_feats, ranks, aps, margins, dists, ctx, batch_size,
                                     q_pids, g_pids, q_cams, g_cams)
        result.results[MIRROR_ORACLE].append(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank))
        result.mirror_scales.append(scale)
    if "fused" in wanted:
        for name, weights in ((FUSED_MEAN, None), (FUSED_P, probs)):
            dist = pairwise_distance(fuse_scales(q_feats, weights, metric), g_feats, metric).numpy()
            result.results[name].append(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=max_rank))
    k = min(TOPK, len(gallery))
    topk = smallest_k(dists, k)[1]  # [N, Q, k], ties in gallery order
    result.details.append(SplitDetail(str(split.name), query, gallery, probs.numpy(), choices, topk, ranks, skipped))


MIRROR_ORACLE = "mirror oracle"
FUSED_MEAN, FUSED_P = "fused, mean of scales", "fused, P-weighted"


def fuse_scales(feats: torch.Tensor, weights: torch.Tensor | None = None, metric: str = "euclidean") -> torch.Tensor:
    """One feature per probe ``[Q, D]`` from its features at every scale ``feats [N, Q, D]``: their
    average, weighted per probe by ``weights [Q, N]`` (rows summing to 1; None: equal weights).

    For a cosine F each scale's feature is L2-normalised first, so that no scale weighs more for
    having a longer feature (cosine ignores the length of the result).

    >>> f = torch.tensor([[[2., 0.]], [[0., 1.]]])                 # one probe, two scales
    >>> fuse_scales(f).tolist(), fuse_scales(f, metric="cosine").tolist()
    ([[1.0, 0.5]], [[0.5, 0.5]])
    >>> fuse_scales(f, torch.tensor([[0.25, 0.75]])).tolist()
    [[0.5, 0.75]]
    """
    if metric == "cosine":
        feats = torch.nn.functional.normalize(feats, dim=-1)
    if weights is None:
        return feats.mean(dim=0)
    return torch.einsum("nqd,qn->qd", feats, weights.to(feats.dtype))


def best_fixed_index(ranks: np.ndarray) -> int:
    """Index of the scale whose fixed row has the highest Rank-1 (``ranks`` ``[N, Q]``: first-match
    ranks); the smaller scale on a tie.

    >>> best_fixed_index(np.array([[1, 2, 1], [1, 1, 1], [2, 1, 1]]))
    1
    """
    return int(np.argmax((np.asarray(ranks) == 1).mean(axis=1)))  # first maximum


def _mirror_oracle(method, images, g_feats, ranks, aps, margins, dists, ctx, batch_size, q_pids, g_pids, q_cams, g_cams):
    """``(dist [Q, G], scale)`` of the mirror oracle: per probe, the better (by the ideal row's rule) of
    the best fixed scale of this split and the same probe mirrored at that scale.

    Mirroring changes nothing a scale predictor could see (size, blur, SR scale), so what this oracle
    gains over the fixed scale is what any per-probe choice between two near-equal features gains by
    looking at the answer: the noise floor of the ``ideal`` row.
    """
    best = best_fixed_index(ranks)
    scale = int(method.scales[best])
    mirrored, _ = embed_probes_at_scales(method, [img.flip(-1) for img in images], ctx, batch_size, scales=[scale],
                                         with_probs=False)
    d_mirror = pairwise_distance(mirrored[0], g_feats, retrieval_metric(method)).numpy()
    r_m, ap_m, mg_m = first_match_rank_and_ap(d_mirror, q_pids, g_pids, q_cams, g_cams, with_margin=True)
    pick = ideal_choice(np.stack([ranks[best], r_m]), np.stack([aps[best], ap_m]), np.stack([margins[best], mg_m]))
    return np.where(pick[:, None] == 0, dists[best], d_mirror), scale


ROW_LEGEND = (
    "Rows: no SR = F on the probe resized bicubically to F's input, no SR network; fixed xr = every probe "
    "super-resolved by G at scale r; size-based = the scale nearest to sqrt(mean HR training area / probe area); "
    "ideal = per probe, the scale that ranks its true match best (it looks at the answer: an upper bound, "
    "not a predictor); adaptive (P) = the scale PRI's predictor P picks (argmax of its probabilities)."
)


def verdict(report: EvalReport, metric: str = "Rank-1") -> str | None:
    """One plain sentence: did P (adaptive) beat the best fixed scale and the no-SR row in this report?

    >>> r = EvalReport("t")
    >>> for name, v in (("no SR", .5), ("fixed x1", .4), ("fixed x2", .6), ("adaptive (P)", .55)):
    ...     _ = r.add(name, {"Rank-1": v})
    >>> verdict(r)
    'In this run P (adaptive, Rank-1 55.0) did not beat the best fixed scale (x2, 60.0) and beat the no-SR row (50.0).'
    """
    rows = {row.name: row.metrics.get(metric) for row in report.rows}
    p = rows.get("adaptive (P)")
    fixed = {name: v for name, v in rows.items() if name.startswith("fixed x") and v is not None}
    if p is None or not fixed:
        return None
    best_name = max(fixed, key=fixed.get)

    def against(other: float) -> str:  # Rank-1 is a share of probes: equal numbers are a tie
        return "beat" if p > other + 1e-9 else "tied" if abs(p - other) <= 1e-9 else "did not beat"

    text = (f"In this run P (adaptive, {metric} {100 * p:.1f}) {against(fixed[best_name])} the best fixed scale "
            f"({best_name.removeprefix('fixed ')}, {100 * fixed[best_name]:.1f})")
    nosr = rows.get(NO_SR)
    if nosr is not None:
        text += f" and {against(nosr)} the no-SR row ({100 * nosr:.1f})"
    return text + "."
