"""Query-gallery distances, computed a block of query rows at a time.

Two metrics, both "smaller = more similar":

* ``"euclidean"``: the L2 distance ``||q - g||`` (not squared; the ranking is the same either way),
  computed as ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))`` with one matrix product per block.
* ``"cosine"``: ``1 - cos(q, g)`` in [0, 2]; an all-zero feature has cosine 0 with everything
  (distance 1).

:func:`distance_chunks` never holds more than ``chunk_size x G`` distances, so a 100k x 100k
search or evaluation needs a few hundred MB instead of 40 GB.  Inputs may be numpy arrays or
torch tensors; computation runs on the device of ``qf`` in float32 (float64 if both inputs are
float64).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from lrreid.errors import ProtocolError

METRICS = ("euclidean", "cosine")
T = TypeVar("T")

# Worker threads for blocks: each holds one block's temporaries (tens of MB), so memory stays bounded.
MAX_WORKERS = 8

# Default block: about 4M distances (16 MB in float32), small enough to stay in cache-friendly
# sizes and large enough that the per-block overhead does not matter.
DEFAULT_CHUNK_ELEMENTS = 1 << 22


def default_chunk_rows(num_gallery: int, elements: int = DEFAULT_CHUNK_ELEMENTS) -> int:
    """Number of query rows per block so that one block holds about ``elements`` distances."""
    return max(1, elements // max(1, num_gallery))


def as_feature_matrix(x, name: str, device: torch.device | None = None) -> torch.Tensor:
    """``x`` (numpy array or tensor, shape (N, D)) as a floating tensor; ProtocolError if it is not one."""
    if not isinstance(x, torch.Tensor):
        x = np.asarray(x)
        if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
            raise ProtocolError(f"{name}: expected real-valued features, got dtype {x.dtype}")
        x = np.ascontiguousarray(x)
        x = torch.from_numpy(x if x.flags.writeable else x.copy())
    if x.ndim != 2:
        raise ProtocolError(f"{name}: expected a 2-D feature matrix (N, D), got shape {tuple(x.shape)}")
    t = x if x.dtype == torch.float64 else x.float()
    if device is not None:
        t = t.to(device)
    bad = ~torch.isfinite(t).all(dim=1)
    if bad.any():
        rows = torch.nonzero(bad).flatten()
        raise ProtocolError(
            f"{name}: {rows.numel()} feature rows contain NaN or infinite values (first: row {int(rows[0])})")
    return t


class PreparedGallery:
    """Gallery features with the per-gallery terms of the metric computed once."""

    def __init__(self, gf: torch.Tensor, metric: str):
        if metric not in METRICS:
            raise ProtocolError(f"unknown distance metric {metric!r} (expected one of {', '.join(METRICS)})")
        self.metric = metric
        if metric == "cosine":
            self.features = F.normalize(gf, dim=1)
        else:
            self.features = gf
            self.sq_norms = (gf * gf).sum(dim=1)

    def distances(self, q: torch.Tensor) -> torch.Tensor:
        if self.metric == "cosine":
            sim = F.normalize(q, dim=1) @ self.features.T
            return sim.neg_().add_(1.0)
        q_sq = (q * q).sum(dim=1, keepdim=True)
        d2 = torch.addmm(q_sq + self.sq_norms[None, :], q, self.features.T, alpha=-2.0)
        return d2.clamp_min_(0.0).sqrt_()


def check_feature_pair(qf, gf) -> tuple[torch.Tensor, torch.Tensor]:
    q = as_feature_matrix(qf, "query features")
    g = as_feature_matrix(gf, "gallery features", device=q.device)
    if q.shape[1] != g.shape[1]:
        raise ProtocolError(
            f"query features have dimension {q.shape[1]} but gallery features have {g.shape[1]}")
    if q.dtype != g.dtype:
        q, g = q.float(), g.float()
    return q, g


def distance_chunks(qf, gf, metric: str = "euclidean",
                    chunk_size: int | None = None) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(first_query_row, distances)`` blocks of the (Q, G) distance matrix, in row order.

    Each block has at most ``chunk_size`` rows (default: about 4M distances per block).

    Example::

        for start, d in distance_chunks(qf, gf, "cosine", chunk_size=1024):
            best = d.argmin(dim=1)   # nearest gallery entry of queries start .. start+len(d)-1
    """
    q, g = check_feature_pair(qf, gf)
    return _blocks(q, g, metric, chunk_size)


def check_chunk_rows(chunk_size: int | None, num_gallery: int) -> int:
    """Query rows per block: ``chunk_size``, or the default for this gallery size when None."""
    rows = chunk_size if chunk_size is not None else default_chunk_rows(num_gallery)
    if not (isinstance(rows, (int, np.integer)) and rows >= 1):
        raise ProtocolError(f"chunk_size must be a positive number of query rows, got {rows!r}")
    return int(rows)


def map_blocks(fn: Callable[[int], T], starts) -> list[T]:
    """``[fn(start) for start in starts]``, several blocks at a time in worker threads when torch
    may use several threads (``torch.get_num_threads()`` workers, at most ``MAX_WORKERS``: each
    worker holds one block's temporaries).

    Each worker runs torch single-threaded and takes whole blocks.  On a busy machine torch's own
    per-operation threading waits at a barrier after every operation for a thread that may not be
    scheduled (measured 5-20x slower than one thread on a shared 2-core machine); whole blocks per
    thread need no barrier.  torch's thread setting is restored afterwards.
    """
    starts = list(starts)
    workers = min(torch.get_num_threads(), len(starts), MAX_WORKERS)
    if workers <= 1:
        return [fn(s) for s in starts]
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, starts))
    finally:
        torch.set_num_threads(previous)


def _blocks(q: torch.Tensor, g: torch.Tensor, metric: str,
            chunk_size: int | None) -> Iterator[tuple[int, torch.Tensor]]:
    gallery = PreparedGallery(g, metric)
    rows = check_chunk_rows(chunk_size, g.shape[0])
    return ((start, gallery.distances(q[start:start + rows])) for start in range(0, q.shape[0], rows))


def pairwise_distance(qf, gf, metric: str = "euclidean") -> torch.Tensor:
    """The full (Q, G) distance matrix (smaller = more similar).

    For large problems prefer :func:`distance_chunks`, :func:`topk_neighbors` or
    :func:`lrreid.evaluation.evaluate_features`, which never hold the whole matrix.

    Example::

        >>> q = torch.tensor([[0.0, 0.0]]); g = torch.tensor([[3.0, 4.0], [0.0, 1.0]])
        >>> pairwise_distance(q, g)
        tensor([[5., 1.]])
    """
    q, g = check_feature_pair(qf, gf)
    return PreparedGallery(g, metric).distances(q)


def topk_neighbors(qf, gf, k: int, metric: str = "euclidean",
                   chunk_size: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest gallery entries of every query: ``(distances (Q, k), indices (Q, k))``.

    Rows are sorted by distance; equal distances are ordered by gallery index, and when several
    gallery entries tie at the k-th distance the ones with the lowest indices are returned (the
    same rule :func:`lrreid.evaluation.evaluate_rank` uses).  Memory is O(chunk_size x G).

    Example::

        dist, idx = topk_neighbors(query_feats, gallery_feats, k=10, metric="cosine")
    """
    q, g = check_feature_pair(qf, gf)
    num_g = g.shape[0]
    if not 1 <= k <= num_g:
        raise ProtocolError(f"k={k} neighbours requested but the gallery has {num_g} entries")
    gallery = PreparedGallery(g, metric)
    rows = check_chunk_rows(chunk_size, num_g)
    # Written in place: small per-block results kept alive between large block temporaries would
    # fragment the heap (measured: resident memory creeping up by one block every few blocks).
    out_d = torch.empty(q.shape[0], k, dtype=q.dtype, device=q.device)
    out_i = torch.empty(q.shape[0], k, dtype=torch.long, device=q.device)

    def search(start: int) -> None:
        out_d[start:start + rows], out_i[start:start + rows] = _stable_topk(gallery.distances(q[start:start + rows]), k)

    map_blocks(search, range(0, q.shape[0], rows))
    return out_d, out_i


def smallest_k(d, k: int):
    """The ``k`` smallest entries along the last axis of ``d``: ``(values, indices)``, sorted.

    The one top-k of lrreid (:func:`topk_neighbors`, ``search.index.exact_topk`` and PRI's
    neighbour lists use it): equal values are ordered by index, and when several tie at the k-th
    place the lowest indices are kept, i.e. exactly ``np.argsort(d, kind="stable")[..., :k]``,
    without sorting whole rows.  ``d`` is a numpy array (numpy arrays back) or a tensor (tensors
    back) of any number of leading axes.

    >>> smallest_k(np.array([[3.0, 1.0, 1.0, 0.0]]), 2)
    (array([[0., 1.]]), array([[3, 1]]))
    """
    is_numpy = not isinstance(d, torch.Tensor)
    t = torch.from_numpy(np.array(d) if not (isinstance(d, np.ndarray) and d.flags.writeable) else d) if is_numpy else d
    n = t.shape[-1]
    if not 0 <= k <= n:
        raise ProtocolError(f"k={k} smallest entries requested but there are {n}")
    flat = t.reshape(int(np.prod(t.shape[:-1])), n)
    if k == 0 or flat.shape[0] == 0:
        vals, idx = flat[:, :k], torch.zeros(flat.shape[0], k, dtype=torch.long, device=flat.device)
    else:
        vals, idx = _stable_topk(flat, k)
    vals, idx = vals.reshape(*t.shape[:-1], k), idx.reshape(*t.shape[:-1], k)
    return (vals.numpy(), idx.numpy()) if is_numpy else (vals, idx)


def _stable_topk(d: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk, made deterministic: ties ordered (and cut at the k-th place) by column index."""
    num_g = d.shape[1]
    kk = min(k + 1, num_g)
    vals, idx = torch.topk(d, kk, dim=1, largest=False, sorted=True)
    # Put equal distances in index order: sort by index, then stably by distance.
    by_index = idx.argsort(dim=1)
    idx, vals = idx.gather(1, by_index), vals.gather(1, by_index)
    by_value = torch.sort(vals, dim=1, stable=True).indices
    idx, vals = idx.gather(1, by_value), vals.gather(1, by_value)
    if kk > k:
        # Rows where the k-th and (k+1)-th distances are equal may have left out a tied entry with
        # a lower index than one kept: redo those rows with a full stable sort (rare).
        boundary = vals[:, k - 1] == vals[:, k]
        if boundary.any():
            rows = torch.nonzero(boundary).flatten()
            s_vals, s_idx = torch.sort(d[rows], dim=1, stable=True)
            vals[rows, :k] = s_vals[:, :k]
            idx[rows, :k] = s_idx[:, :k]
    return vals[:, :k].contiguous(), idx[:, :k].contiguous()
