"""Re-ID ranking metrics (CMC, mAP, mINP), exact and fast on large galleries.

Protocol (the one torchreid and fast-reid share):

* For each query, gallery entries with the query's identity AND camera are removed: finding the
  same person in the same camera is not re-identification.  The remaining entries are "kept".
* A query with no true match among its kept entries is skipped and counted
  (``RankResult.num_skipped_queries``, logged once); if no query is left, ``ProtocolError``.
* CMC: ``cmc[k-1]`` = fraction of valid queries whose first true match is within the top k.
  AP: mean over the query's true matches of the precision at each match.  mINP (Ye et al.,
  AGW): number of true matches / rank of the hardest one.  All three averaged over valid queries.
* Single-gallery-shot (CUHK03 and single-shot protocols): per query and repeat, one random kept
  gallery image per gallery identity; CMC is averaged over repeats, AP and mINP use the full kept
  gallery.  Seeded: the same ``seed`` gives the same numbers.
* Ties: entries with equal distance are ranked in gallery order (what a stable sort gives).
  torchreid's ``np.argsort`` (quicksort) orders ties arbitrarily, so results agree exactly with
  torchreid only when there are no ties between a true match and another kept entry.

How it is fast (a full sort of every row is what makes the reference code slow): the metrics only
need the rank of each true match among the kept entries, not the whole order.  Rows are processed
in blocks; in each row the few true-match distances are placed into value bins that cover the
range of the true matches, every entry of the row is counted into those bins (one pass, a
histogram), and the rank of a true match is the count in lower bins plus an exact comparison
against the few entries that share its bin.  Rows where that would not pay (many true matches,
infinite distances, values piled into one bin) are ranked by a stable sort instead.  Both ways
give identical ranks; see docs/evaluation.md for the measured speed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from lrreid.errors import ProtocolError
from lrreid.evaluation.distance import (PreparedGallery, check_chunk_rows, check_feature_pair, default_chunk_rows,
                                       map_blocks)
from lrreid.utils.logging import get_logger

log = get_logger("evaluation")

# Rows of the distance matrix ranked per block: about 2M distances, a few tens of MB of temporaries.
_BLOCK_ELEMENTS = 1 << 21
# A row whose query identity has more gallery images than this is ranked by sorting.
_MAX_SAME_IDENTITY = 512
# Exact comparisons allowed per row (candidates sharing a bin x true matches), in units of gallery
# size, before sorting the row is cheaper.
_REFINE_BUDGET_PER_GALLERY = 4


@dataclass
class RankResult:
    """CMC curve, mAP and mINP of one evaluation (fractions in [0, 1]).

    Example::

        res = evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids)
        res.rank(1)      # 0.87  (fraction of queries with a true match at rank 1)
        res.as_dict()    # {"Rank-1": 87.0, "Rank-5": 94.1, "Rank-10": 96.0, "mAP": 71.2, "mINP": 40.3}
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int

    def rank(self, k: int) -> float:
        """Fraction of valid queries whose first true match is within the top ``k``."""
        if not 1 <= k <= len(self.cmc):
            raise ProtocolError(f"rank-{k} requested but the CMC curve was computed up to rank {len(self.cmc)}")
        return float(self.cmc[k - 1])

    def as_dict(self, ranks=(1, 5, 10)) -> dict[str, float]:
        """``{"Rank-1": .., "Rank-5": .., "Rank-10": .., "mAP": .., "mINP": ..}`` in percent."""
        out = {f"Rank-{k}": 100.0 * self.rank(k) for k in ranks}
        out["mAP"] = 100.0 * self.mAP
        out["mINP"] = 100.0 * self.mINP
        return out


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, *, max_rank: int = 50,
                  single_gallery_shot: bool = False, num_repeats: int = 10, seed: int = 0) -> RankResult:
    """CMC, mAP and mINP of a (Q, G) distance matrix (numpy array or torch tensor; smaller = closer).

    ``q_pids``/``q_camids`` (length Q) and ``g_pids``/``g_camids`` (length G) are integer arrays.
    If the gallery has fewer than ``max_rank`` entries, ``max_rank`` is lowered to G (with a logged
    warning, as torchreid does).  See the module docstring for the protocol and tie rule.

    Example::

        >>> d = np.array([[0.1, 0.5, 0.3]])
        >>> res = evaluate_rank(d, [1], [1, 1, 2], [0], [1, 2, 1], max_rank=3)
        >>> res.cmc.tolist(), res.mAP        # matches at ranks 1 and 3
        ([1.0, 1.0, 1.0], 0.8333333333333333)
    """
    dist = _check_distance_matrix(distmat)
    num_q, num_g = dist.shape
    ranker = _TrueMatchRanker(q_pids, g_pids, q_camids, g_camids, num_q=num_q, num_g=num_g,
                              max_rank=max_rank, single_gallery_shot=single_gallery_shot,
                              num_repeats=num_repeats, seed=seed)
    rows = default_chunk_rows(num_g, _BLOCK_ELEMENTS)

    def rank(start: int) -> _Tally:
        return ranker.rank_block(start, _float_block(dist[start:start + rows]))

    return ranker.result(map_blocks(rank, range(0, num_q, rows)))


def evaluate_features(qf, gf, q_pids, g_pids, q_camids, g_camids, *, metric: str = "euclidean",
                      max_rank: int = 50, chunk_size: int | None = None, single_gallery_shot: bool = False,
                      num_repeats: int = 10, seed: int = 0) -> RankResult:
    """Like :func:`evaluate_rank`, from features: distances are computed ``chunk_size`` query rows
    at a time (default: about 4M distances per block), so the (Q, G) matrix is never held whole.

    ``metric`` is ``"euclidean"`` (L2) or ``"cosine"`` (1 - cos), see :mod:`lrreid.evaluation.distance`.

    Example::

        res = evaluate_features(query_feats, gallery_feats, q_pids, g_pids, q_cams, g_cams, metric="cosine")
    """
    q, g = check_feature_pair(qf, gf)
    if q.shape[0] == 0 or g.shape[0] == 0:
        raise ProtocolError(f"need at least one query and one gallery feature, got {q.shape[0]} and {g.shape[0]}")
    ranker = _TrueMatchRanker(q_pids, g_pids, q_camids, g_camids, num_q=q.shape[0], num_g=g.shape[0],
                              max_rank=max_rank, single_gallery_shot=single_gallery_shot,
                              num_repeats=num_repeats, seed=seed)
    gallery = PreparedGallery(g, metric)
    rows = check_chunk_rows(chunk_size, g.shape[0])

    def rank(start: int) -> _Tally:
        return ranker.rank_block(start, _float_block(gallery.distances(q[start:start + rows])))

    return ranker.result(map_blocks(rank, range(0, q.shape[0], rows)))


def true_match_ranks(distmat, q_pids, g_pids, q_camids, g_camids) -> list[np.ndarray]:
    """Per query, the 1-based ranks of its true matches among its kept gallery entries, ascending
    (an empty array for a query without a true match).

    The ranking :func:`evaluate_rank` computes its metrics from (same protocol, same tie rule:
    gallery order), for callers that need per-query numbers, such as PRI's ideal scale.  Unlike
    :func:`evaluate_rank` it does not raise or log when queries have no true match.

    Example::

        >>> d = np.array([[0.1, 0.5, 0.3], [0.2, 0.1, 0.4]])
        >>> [r.tolist() for r in true_match_ranks(d, [1, 3], [1, 1, 2], [0, 0], [1, 2, 1])]
        [[1, 3], []]
    """
    dist = _check_distance_matrix(distmat)
    num_q, num_g = dist.shape
    ranker = _TrueMatchRanker(q_pids, g_pids, q_camids, g_camids, num_q=num_q, num_g=num_g, max_rank=1,
                              single_gallery_shot=False, num_repeats=1, seed=0, keep_ranks=True)
    rows = default_chunk_rows(num_g, _BLOCK_ELEMENTS)

    def rank(start: int) -> _Tally:
        return ranker.rank_block(start, _float_block(dist[start:start + rows]))

    out = [np.zeros(0, dtype=np.int64)] * num_q
    for tally in map_blocks(rank, range(0, num_q, rows)):
        for row, ranks in tally.match_ranks.items():
            out[row] = ranks
    return out


# --------------------------------------------------------------------------- input checks

def _check_distance_matrix(distmat):
    if not isinstance(distmat, (np.ndarray, torch.Tensor)):
        distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ProtocolError(f"distmat: expected a 2-D (queries x gallery) matrix, got shape {tuple(distmat.shape)}")
    if isinstance(distmat, np.ndarray):
        ok = np.issubdtype(distmat.dtype, np.floating) or np.issubdtype(distmat.dtype, np.integer)
    else:
        ok = distmat.is_floating_point() or not (distmat.is_complex() or distmat.dtype == torch.bool)
    if not ok:
        raise ProtocolError(f"distmat: expected real-valued distances, got dtype {distmat.dtype}")
    if distmat.shape[0] == 0 or distmat.shape[1] == 0:
        raise ProtocolError(f"distmat has shape {tuple(distmat.shape)}: need at least one query and one gallery entry")
    return distmat


def _float_block(block) -> torch.Tensor:
    """A block of distance rows as a contiguous CPU float32/float64 tensor (integers become float64)."""
    if isinstance(block, np.ndarray):
        if block.dtype not in (np.float32, np.float64):
            block = block.astype(np.float32 if np.issubdtype(block.dtype, np.floating) and block.itemsize < 4
                                 else np.float64)
        elif not (block.flags.c_contiguous and block.flags.writeable):
            block = np.array(block, order="C")
        return torch.from_numpy(block)
    block = block.detach().to("cpu")
    if block.dtype not in (torch.float32, torch.float64):
        block = block.float() if block.is_floating_point() and block.element_size() < 4 else block.double()
    return block.contiguous()


def _as_ids(x, name: str, length: int, what: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 1:
        raise ProtocolError(f"{name}: expected a 1-D array, got shape {a.shape}")
    if len(a) != length:
        raise ProtocolError(f"{name} has {len(a)} entries but there are {length} {what}")
    if not np.issubdtype(a.dtype, np.integer) and a.size:
        raise ProtocolError(f"{name}: expected integer ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


# --------------------------------------------------------------------------- the ranking engine

class _TrueMatchRanker:
    """Ranks the true matches of blocks of distance rows into tallies, and combines the tallies.

    ``strategy`` is for tests: "auto" (histogram, sorting fallback) or "sort" (every row sorted).
    """

    def __init__(self, q_pids, g_pids, q_camids, g_camids, *, num_q: int, num_g: int, max_rank: int,
                 single_gallery_shot: bool, num_repeats: int, seed: int, strategy: str = "auto",
                 keep_ranks: bool = False):
        self.q_pids = _as_ids(q_pids, "q_pids", num_q, "queries (distmat rows)")
        self.g_pids = _as_ids(g_pids, "g_pids", num_g, "gallery entries (distmat columns)")
        self.q_cams = _as_ids(q_camids, "q_camids", num_q, "queries (distmat rows)")
        self.g_cams = _as_ids(g_camids, "g_camids", num_g, "gallery entries (distmat columns)")
        if not (isinstance(max_rank, (int, np.integer)) and max_rank >= 1):
            raise ProtocolError(f"max_rank must be a positive integer, got {max_rank!r}")
        if num_g < max_rank:
            log.warning("gallery has only %d entries: CMC computed up to rank %d instead of max_rank=%d",
                        num_g, num_g, max_rank)
            max_rank = num_g
        if single_gallery_shot and not (isinstance(num_repeats, (int, np.integer)) and num_repeats >= 1):
            raise ProtocolError(f"num_repeats must be a positive integer, got {num_repeats!r}")
        if strategy not in ("auto", "sort"):
            raise ValueError(f"unknown strategy {strategy!r}")
        self.num_q, self.num_g, self.max_rank, self.strategy = num_q, num_g, int(max_rank), strategy
        self.keep_ranks = keep_ranks  # tallies keep every query's true-match ranks (true_match_ranks)
        self.num_bins = int(min(4096, max(16, num_g // 4)))
        self.rows_sorted = 0  # set by result(): rows ranked by the sorting fallback

        # Gallery grouped by identity: same-identity entries of any query are one slice of `order`.
        order = np.argsort(self.g_pids, kind="stable")
        uniq, starts, counts = np.unique(self.g_pids[order], return_index=True, return_counts=True)
        pos = np.searchsorted(uniq, self.q_pids).clip(max=len(uniq) - 1)
        found = uniq[pos] == self.q_pids
        self.q_group = np.where(found, pos, -1)
        self.q_start = starts[pos]
        self.q_count = np.where(found, counts[pos], 0)
        self.g_order = order
        self.g_pids_t = torch.from_numpy(self.g_pids)
        self.g_cams_t = torch.from_numpy(self.g_cams)

        self.single_gallery_shot = bool(single_gallery_shot)
        if self.single_gallery_shot:
            # Random priorities per repeat; each identity is represented by its lowest-priority image.
            # Only the query's own identity can lose images to the same-camera rule, so every other
            # identity's pick is shared by all queries and only the own pick is per query.
            rng = np.random.default_rng(seed)
            self.priorities = torch.from_numpy(np.stack([rng.permutation(num_g) for _ in range(num_repeats)]))
            picks = [np.lexsort((p, self.g_pids))[starts] for p in self.priorities.numpy()]
            self.group_picks = torch.from_numpy(np.stack(picks))  # (repeats, num_identities)

    # ---- per block

    def rank_block(self, start: int, x: torch.Tensor) -> "_Tally":
        """Rank query rows ``start .. start + len(x) - 1`` (distances ``x``); blocks are independent."""
        num_rows = x.shape[0]
        tally = _Tally(self.max_rank, num_rows, keep_ranks=self.keep_ranks)
        rows = slice(start, start + num_rows)
        if torch.isnan(x.sum()):  # a NaN makes the sum NaN (so do +inf and -inf together: check exactly)
            nan = torch.isnan(x)
            if nan.any():
                r, c = (int(v) for v in torch.nonzero(nan)[0])
                raise ProtocolError(f"distmat has NaN distances (first at query {start + r}, gallery {c}; "
                                    f"{int(nan.sum())} in rows {start}..{start + num_rows - 1})")

        same = self._same_identity_entries(rows, x)
        valid = same.num_kept > 0
        tally.num_skipped = int((~valid).sum())
        if not valid.any():
            return tally

        pmin = torch.where(same.kept, same.values, torch.inf).amin(dim=1)
        pmax = torch.where(same.kept, same.values, -torch.inf).amax(dim=1)
        if self.strategy == "sort":
            by_hist = torch.zeros_like(valid)
        else:
            by_hist = valid & (same.count <= _MAX_SAME_IDENTITY) & torch.isfinite(pmin) & torch.isfinite(pmax)
        if by_hist.any():
            idx = torch.nonzero(by_hist).flatten()
            sub = same.select(idx, all_rows=bool(by_hist.all()))
            xs = x if by_hist.all() else x[idx]
            done = self._rank_by_histogram(xs, sub, pmin[idx], pmax[idx], tally, start + idx)
            by_hist[idx[~done]] = False
        by_sort = valid & ~by_hist
        if by_sort.any():
            idx = torch.nonzero(by_sort).flatten()
            tally.rows_sorted = idx.numel()
            self._rank_by_sorting(x[idx], torch.from_numpy(self.q_pids[rows])[idx],
                                  torch.from_numpy(self.q_cams[rows])[idx], tally, start + idx)
        if self.single_gallery_shot:
            idx = torch.nonzero(valid).flatten()
            self._single_shot_ranks(x, same, idx, self.q_group[rows], tally)
        return tally

    def _same_identity_entries(self, rows: slice, x: torch.Tensor) -> "_SameIdentity":
        """Per row: the gallery entries of the query's identity, in stable distance order."""
        counts = self.q_count[rows]
        width = max(1, int(counts.max()))
        col = np.arange(width)
        present = col[None, :] < counts[:, None]
        slot = np.where(present, self.q_start[rows][:, None] + col[None, :], 0)
        gidx = torch.from_numpy(self.g_order[slot])
        present = torch.from_numpy(present)
        kept = present & (self.g_cams_t[gidx] != torch.from_numpy(self.q_cams[rows])[:, None])
        # Absent slots sort last: +inf and after every real entry (stable sort, they come last).
        values = torch.where(present, x.gather(1, gidx), torch.inf)
        values, perm = torch.sort(values, dim=1, stable=True)
        return _SameIdentity(values=values, gallery_index=gidx.gather(1, perm), kept=kept.gather(1, perm),
                             count=torch.from_numpy(counts), num_kept=kept.sum(dim=1))

    def _rank_by_histogram(self, x: torch.Tensor, same: "_SameIdentity", pmin, pmax,
                           tally: "_Tally", query_rows: torch.Tensor) -> torch.Tensor:
        """Ranks the true matches of each row without sorting the row; returns which rows it did."""
        num_rows, num_g = x.shape
        nbins = self.num_bins
        # Bin 0: below the best true match; bins 1..nbins-2 span [pmin, pmax]; bin nbins-1: above.
        # Only monotonicity of the binning matters for exactness (x < y implies bin(x) <= bin(y)).
        finfo = torch.finfo(x.dtype)
        span = (pmax.double() - pmin.double())
        scale = torch.where(span > 0, (nbins - 3) / span, torch.inf).clamp(finfo.tiny, finfo.max).to(x.dtype)
        y = torch.sub(x, pmin[:, None])
        y.mul_(scale[:, None]).add_(1.0).clamp_(0, nbins - 1)
        bins = y.to(torch.int64)
        del y
        hist = torch.zeros(num_rows, nbins, dtype=torch.int32)  # int32: 4x faster than int64 here (cache)
        hist.scatter_add_(1, bins, torch.ones(1, 1, dtype=torch.int32).expand(num_rows, num_g))

        width = same.values.shape[1]
        kept = same.kept
        true_bins = bins.gather(1, same.gallery_index)
        below = hist.cumsum(dim=1).gather(1, (true_bins - 1).clamp_min(0))
        below = torch.where(true_bins > 0, below, 0)  # entries in lower bins: all strictly closer

        # Entries sharing a bin with a true match need an exact comparison ("candidates").
        marked = torch.zeros(num_rows, nbins, dtype=torch.bool)
        r_idx = torch.arange(num_rows)[:, None].expand(-1, width)
        marked[r_idx[kept], true_bins[kept]] = True
        num_candidates = hist.masked_fill(~marked, 0).sum(dim=1)
        done = num_candidates * same.num_kept <= _REFINE_BUDGET_PER_GALLERY * num_g + 4096
        marked[~done] = False
        flat = torch.nonzero(marked.gather(1, bins).view(-1)).flatten()
        cr, cg = flat // num_g, flat % num_g
        cand_bin, cd = bins.view(-1).index_select(0, flat), x.reshape(-1).index_select(0, flat)
        del bins
        # Candidate c comes before true match j iff it is closer, or equally close and earlier in
        # the gallery (the stable-sort tie rule).  j itself is a candidate and is not before itself.
        tv, ti, tb, tk = same.values[cr], same.gallery_index[cr], true_bins[cr], kept[cr]
        before = tk & (tb == cand_bin[:, None]) & (
            (cd[:, None] < tv) | ((cd[:, None] == tv) & (cg[:, None] < ti)))
        in_bin_before = torch.zeros(num_rows, width, dtype=torch.int64).index_add_(0, cr, before.long())
        # All entries before j, minus the same-identity ones before it (its position in the sorted
        # same-identity list), plus the kept true matches before it: j's rank among kept entries.
        position = torch.arange(width)[None, :]
        kept_before = kept.long().cumsum(dim=1) - kept.long()
        rank = below + in_bin_before - position + kept_before + 1
        sel = torch.nonzero(done).flatten()
        tally.add(rank[sel], kept[sel], kept_before[sel], query_rows[sel])
        return done

    def _rank_by_sorting(self, x: torch.Tensor, q_pid: torch.Tensor, q_cam: torch.Tensor, tally: "_Tally",
                         query_rows: torch.Tensor) -> None:
        """Reference path: stable-sort whole rows and read the ranks off the sorted identities."""
        step = default_chunk_rows(x.shape[1], _BLOCK_ELEMENTS // 4)
        for s in range(0, x.shape[0], step):
            order = torch.sort(x[s:s + step], dim=1, stable=True).indices
            same = self.g_pids_t[order] == q_pid[s:s + step, None]
            removed = same & (self.g_cams_t[order] == q_cam[s:s + step, None])
            true_match = same & ~removed
            rank = torch.cumsum(~removed, dim=1)  # 1-based rank among kept entries
            kept_before = torch.cumsum(true_match, dim=1) - true_match.long()
            tally.add(rank, true_match, kept_before, query_rows[s:s + step])

    def _single_shot_ranks(self, x: torch.Tensor, same: "_SameIdentity", rows: torch.Tensor,
                           q_group: np.ndarray, tally: "_Tally") -> None:
        own = torch.from_numpy(q_group)[rows]
        xv = x[rows]
        values, gidx, kept = same.values[rows], same.gallery_index[rows], same.kept[rows]
        for picks, prio in zip(self.group_picks, self.priorities):
            # The query's own pick: its kept true match with the lowest priority.
            p = torch.where(kept, prio[gidx], torch.iinfo(torch.int64).max).argmin(dim=1, keepdim=True)
            own_d, own_g = values.gather(1, p), gidx.gather(1, p)
            picked = xv.index_select(1, picks)
            before = (picked < own_d) | ((picked == own_d) & (picks[None, :] < own_g))
            before.scatter_(1, own[:, None], False)
            tally.single_shot_counts += _rank_counts(before.sum(dim=1) + 1, self.max_rank)

    # ---- result

    def result(self, tallies: list["_Tally"]) -> RankResult:
        """Combine the blocks' tallies (in row order, so sums do not depend on threading)."""
        total = _Tally(self.max_rank, 0)
        for t in tallies:
            total.merge(t)
        if total.num_rows != self.num_q:
            raise AssertionError(f"ranked {total.num_rows} of {self.num_q} query rows")
        self.rows_sorted = total.rows_sorted
        if total.num_valid == 0:
            raise ProtocolError(f"no query has a true match in the gallery ({self.num_q} queries; do query "
                                "identities appear in the gallery under another camera?)")
        if total.num_skipped:
            log.warning("%d of %d queries have no true match in the gallery (after removing same-identity "
                        "same-camera entries) and were skipped", total.num_skipped, self.num_q)
        if self.single_gallery_shot:
            counts, num = total.single_shot_counts, total.num_valid * len(self.priorities)
        else:
            counts, num = total.first_rank_counts, total.num_valid
        cmc = np.cumsum(counts[1:]).astype(np.float64) / num
        return RankResult(cmc=cmc, mAP=total.ap_sum / total.num_valid, mINP=total.inp_sum / total.num_valid,
                          num_valid_queries=total.num_valid, num_skipped_queries=total.num_skipped)


def _rank_counts(ranks: torch.Tensor, max_rank: int) -> np.ndarray:
    """counts[r] = how many of ``ranks`` equal r, for r in 0..max_rank (larger ranks are dropped)."""
    return np.bincount(ranks.clamp(max=max_rank + 1).numpy(), minlength=max_rank + 2)[: max_rank + 1]


class _Tally:
    """Sums over the valid queries of one block (or, merged, of all blocks)."""

    def __init__(self, max_rank: int, num_rows: int, keep_ranks: bool = False):
        self.max_rank = max_rank
        self.num_rows = num_rows
        self.first_rank_counts = np.zeros(max_rank + 1, dtype=np.int64)  # [r]: first true match at rank r
        self.single_shot_counts = np.zeros(max_rank + 1, dtype=np.int64)  # [r]: per (query, repeat)
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        self.num_skipped = 0
        self.rows_sorted = 0  # rows ranked by the sorting fallback (the benchmark reports it)
        self.keep_ranks = keep_ranks
        self.match_ranks: dict[int, np.ndarray] = {}  # with keep_ranks: query row -> true-match ranks

    def add(self, rank: torch.Tensor, true_match: torch.Tensor, kept_before: torch.Tensor,
            query_rows: torch.Tensor) -> None:
        """Add rows (queries ``query_rows``) given, per row, the rank of every true match (other
        positions are ignored, true matches in ascending rank order) and the number of true matches
        before it."""
        if rank.shape[0] == 0:
            return
        if self.keep_ranks:
            for row, r, t in zip(query_rows.tolist(), rank, true_match):
                self.match_ranks[row] = r[t].numpy().astype(np.int64)
        n = true_match.sum(dim=1)
        first = torch.where(true_match, rank, torch.iinfo(torch.int64).max).amin(dim=1)
        last = torch.where(true_match, rank, 0).amax(dim=1)
        precision = torch.where(true_match, (kept_before + 1).double() / rank.double(), 0.0)
        self.ap_sum += float((precision.sum(dim=1) / n).sum())
        self.inp_sum += float((n.double() / last.double()).sum())
        self.num_valid += rank.shape[0]
        self.first_rank_counts += _rank_counts(first, self.max_rank)

    def merge(self, other: "_Tally") -> None:
        self.num_rows += other.num_rows
        self.first_rank_counts += other.first_rank_counts
        self.single_shot_counts += other.single_shot_counts
        self.ap_sum += other.ap_sum
        self.inp_sum += other.inp_sum
        self.num_valid += other.num_valid
        self.num_skipped += other.num_skipped
        self.rows_sorted += other.rows_sorted
        self.match_ranks.update(other.match_ranks)


@dataclass
class _SameIdentity:
    """Per row, the gallery entries sharing the query's identity, sorted by (distance, gallery index);
    padded on the right with +inf values (``kept`` False there)."""

    values: torch.Tensor         # (rows, width) distances
    gallery_index: torch.Tensor  # (rows, width) int64
    kept: torch.Tensor           # (rows, width) bool: true match (not same camera, not padding)
    count: torch.Tensor          # (rows,) same-identity entries (kept or removed)
    num_kept: torch.Tensor       # (rows,)

    def select(self, idx: torch.Tensor, all_rows: bool = False) -> "_SameIdentity":
        if all_rows:
            return self
        width = max(1, int(self.count[idx].max()))
        return _SameIdentity(self.values[idx, :width], self.gallery_index[idx, :width], self.kept[idx, :width],
                             self.count[idx], self.num_kept[idx])
