"""A gallery folder embedded into a faiss index on disk, updated incrementally.

On-disk layout of an index folder (default ``<GALLERY_DIR>.lrreid-index`` beside the gallery)::

    manifest.json            written last; names the three files below and holds everything else:
                             format, lrreid version, model identity and source, gallery root,
                             metric, index kind and parameters, count, feature size, recall check
    entries-<tag>.json       one entry per indexed image: path relative to the gallery root,
                             size in bytes, mtime in ns (to find new and changed files)
    features-<tag>.npy       float32 [N, D] features in entry order (the raw re-ID features);
                             for exact search this array is the index
    faiss-<tag>.index        the faiss index of an approximate kind (ivf, hnsw; faiss.write_index)

Every file is written atomically under a fresh ``<tag>`` and the manifest is replaced last, so an
interrupted update leaves the previous index intact; files no manifest names are removed.

Metric: ``euclidean`` (default; distances are Euclidean, as the evaluation ranks) or ``cosine``
(distance = 1 - cosine; faiss indexes hold L2-normalised features and use the inner product).

Index kinds: ``flat`` (exact, default), ``ivf`` (faiss IVF-Flat, ``nlist`` ~ 4 sqrt(N), searched
with ``nprobe`` lists) and ``hnsw`` (faiss HNSW-Flat, ``M`` links, ``efSearch``) for large
galleries; their recall@10 against exact search is measured by ``check=True`` (``lrreid index
--check``).  Exact search is the brute force of faiss's ``IndexFlatL2``/``IndexFlatIP`` (which hold
nothing but this feature array), done with one numpy matrix product per block of gallery rows and
a top-k per block (lrreid.evaluation.distance.smallest_k): measured 3.3x faster than faiss's flat search on a 1M x 512 gallery here, whose
bundled BLAS is slower than numpy's (benchmarks/search.py, docs/search.md).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# faiss's loader logs at INFO each optional build it does not find; lrreid's CLI logs at INFO.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
import faiss  # noqa: E402

from lrreid.errors import DatasetLayoutError, ImageReadError, IndexMismatchError, LrreidError
from lrreid.evaluation.distance import smallest_k
from lrreid.utils.atomic import atomic_path, atomic_write_json
from lrreid.utils.logging import get_logger

log = get_logger("search.index")

INDEX_FORMAT = 1
MANIFEST = "manifest.json"
METRICS = ("euclidean", "cosine")
KINDS = ("flat", "ivf", "hnsw")


# --------------------------------------------------------------------------------------------
# Gallery files
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileEntry:
    """One gallery file as indexed: path relative to the gallery root, size and mtime."""

    path: str
    size: int
    mtime_ns: int


def readable_extensions() -> set[str]:
    """File extensions of every format PIL can open (lower case, with the dot)."""
    from PIL import Image

    Image.init()
    return {ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN}


def scan_gallery(root: Path, exclude: Path | None = None) -> tuple[list[FileEntry], int]:
    """Image files under ``root`` (recursively, sorted, hidden files and folders skipped).

    Returns (entries, number of other files ignored for their extension).
    """
    exts = readable_extensions()
    exclude = exclude.resolve() if exclude is not None else None
    entries, ignored = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != exclude)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() not in exts:
                ignored += 1
                continue
            p = here / name
            try:
                st = p.stat()
            except OSError:  # vanished or a broken link: nothing to index
                ignored += 1
                continue
            entries.append(FileEntry(p.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return entries, ignored


# --------------------------------------------------------------------------------------------
# faiss
# --------------------------------------------------------------------------------------------
def prepare_features(features: np.ndarray, metric: str) -> np.ndarray:
    """float32, C-contiguous; L2-normalised for the cosine metric."""
    x = np.ascontiguousarray(features, dtype=np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def default_params(kind: str, n: int, params: dict | None = None) -> dict:
    """Index parameters: the given ones completed with defaults that fit a gallery of ``n`` images."""
    p = dict(params or {})
    if kind == "ivf":
        # ~4 sqrt(N) lists, at least 39 training points per list (faiss's own rule of thumb).
        p.setdefault("nlist", int(max(1, min(round(4 * math.sqrt(max(n, 1))), max(n, 1) // 39))))
        p.setdefault("nprobe", int(min(p["nlist"], max(8, p["nlist"] // 16))))
    elif kind == "hnsw":
        p.setdefault("M", 32)
        p.setdefault("efConstruction", 80)
        p.setdefault("efSearch", 64)
    return p


def make_faiss_index(features: np.ndarray, metric: str, kind: str = "flat", params: dict | None = None) -> faiss.Index:
    """A faiss index holding ``features`` (already prepared with :func:`prepare_features`).

    >>> make_faiss_index(np.random.rand(100, 8).astype("float32"), "euclidean").ntotal
    100
    """
    d = features.shape[1]
    faiss_metric = faiss.METRIC_L2 if metric == "euclidean" else faiss.METRIC_INNER_PRODUCT
    params = default_params(kind, len(features), params)
    if kind == "flat":
        index = faiss.IndexFlatL2(d) if metric == "euclidean" else faiss.IndexFlatIP(d)
    elif kind == "ivf":
        quantizer = faiss.IndexFlatL2(d) if metric == "euclidean" else faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, params["nlist"], faiss_metric)
        index.train(_training_sample(features, params["nlist"]))
        index.nprobe = params["nprobe"]
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params["M"], faiss_metric)
        index.hnsw.efConstruction = params["efConstruction"]
        index.hnsw.efSearch = params["efSearch"]
    else:
        raise LrreidError(f"index kind {kind!r}: expected one of {', '.join(KINDS)}")
    for start in range(0, len(features), 65536):  # add in chunks: faiss copies, the peak stays small
        index.add(features[start : start + 65536])
    return index


def _training_sample(features: np.ndarray, nlist: int) -> np.ndarray:
    """At most 256 points per list for k-means: more costs time without improving the lists."""
    limit = 256 * nlist
    if len(features) <= limit:
        return features
    rows = np.sort(np.random.default_rng(0).choice(len(features), limit, replace=False))
    return np.ascontiguousarray(features[rows])


def set_search_params(index: faiss.Index, kind: str, params: dict) -> None:
    if kind == "ivf":
        index.nprobe = int(params["nprobe"])
    elif kind == "hnsw":
        index.hnsw.efSearch = int(params["efSearch"])


def to_distances(raw: np.ndarray, metric: str) -> np.ndarray:
    """faiss scores -> distances: Euclidean (from squared L2) or 1 - cosine."""
    if metric == "euclidean":
        return np.sqrt(np.maximum(raw, 0.0))
    return 1.0 - raw


def exact_topk(features: np.ndarray, queries: np.ndarray, k: int, metric: str = "euclidean",
               block: int = 131072) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest gallery rows per query: ``(distances [Q, k], rows [Q, k])``, nearest first.

    One matrix product per block of ``block`` gallery rows (``features`` may be memory-mapped),
    :func:`lrreid.evaluation.distance.smallest_k` for each block's k best and a merge; memory is O(Q x block).  Distances are
    those of the evaluation (:mod:`lrreid.evaluation.distance`): Euclidean, or 1 - cosine; ties
    are ordered by gallery row.

    >>> g = np.array([[0, 0], [3, 4], [1, 0]], np.float32)
    >>> exact_topk(g, np.array([[0, 0]], np.float32), k=2)
    (array([[0., 1.]], dtype=float32), array([[0, 2]]))
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    n = len(features)
    k = min(int(k), n)
    if metric == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    best_s = np.empty((len(q), 0), np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, n, block):
        g = np.asarray(features[start : start + block], dtype=np.float32)
        if metric == "cosine":  # score = -cos (smaller is nearer)
            score = (q @ g.T) / -np.maximum(np.linalg.norm(g, axis=1), 1e-12)[None, :]
        else:  # score = |g|^2 - 2 q.g = d^2 - |q|^2
            score = np.einsum("ij,ij->i", g, g)[None, :] - 2.0 * (q @ g.T)
        part_s, part = smallest_k(score, min(k, g.shape[0]))
        # Winners so far (lower rows) first, each part in (score, row) order: ties stay in row order.
        best_s = np.concatenate([best_s, part_s], axis=1)
        best_i = np.concatenate([best_i, part + start], axis=1)
        if best_s.shape[1] > k:
            best_s, keep = smallest_k(best_s, k)
            best_i = np.take_along_axis(best_i, keep, axis=1)
    # The k winners' distances computed directly: |q|^2 + |g|^2 - 2 q.g loses the small ones to
    # float32 cancellation (a duplicate image would show ~1e-3 instead of 0).
    rows, where = np.unique(best_i, return_inverse=True)  # sorted rows: one pass over a memory map
    g = np.asarray(features[rows], dtype=np.float32)[where.reshape(best_i.shape)]
    if metric == "cosine":
        g = g / np.maximum(np.linalg.norm(g, axis=2, keepdims=True), 1e-12)
        dist = 1.0 - np.einsum("qkd,qd->qk", g, q)
    else:
        dist = np.linalg.norm(g - q[:, None, :], axis=2)
    order = np.lexsort((best_i, dist), axis=1) if len(q) else np.empty((0, k), np.int64)
    return np.take_along_axis(dist, order, axis=1).astype(np.float32), np.take_along_axis(best_i, order, axis=1)


def recall_at_k(approx: faiss.Index, features: np.ndarray, metric: str, k: int = 10, queries: int = 1000) -> float:
    """Recall@k of ``approx`` against exact search, with gallery images as queries (themselves excluded)."""
    n = len(features)
    if n <= 1:
        return 1.0
    k = min(k, n - 1)
    rows = np.sort(np.random.default_rng(0).choice(n, min(queries, n), replace=False))
    q = np.asarray(features[rows], dtype=np.float32)
    _, truth = exact_topk(features, q, k + 1, metric)
    _, found = approx.search(prepare_features(q, metric), k + 1)
    hits = 0
    for i, row in enumerate(rows):
        t = [j for j in truth[i] if j != row][:k]
        f = {j for j in found[i] if j != row and j >= 0}
        hits += len(f.intersection(t))
    return hits / (len(rows) * k)


# --------------------------------------------------------------------------------------------
# The index on disk
# --------------------------------------------------------------------------------------------
@dataclass
class GalleryIndex:
    """An index folder in memory: manifest, entries, features and (approximate kinds) the faiss index.

    Example::

        >>> idx = GalleryIndex.load("gallery.lrreid-index")
        >>> idx.check_model(model_identity(pipe))        # IndexMismatchError for another model
        >>> distances, rows = idx.search(query_features, k=10)
    """

    root: Path  # the index folder
    manifest: dict
    entries: list[FileEntry]
    features: np.ndarray  # [N, D] float32, memory-mapped
    index: faiss.Index | None  # None for exact search (the features are the index)

    @property
    def gallery_root(self) -> Path:
        return Path(self.manifest["gallery_root"])

    @property
    def metric(self) -> str:
        return self.manifest["metric"]

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def load(cls, root: str | os.PathLike, mmap: bool = True) -> "GalleryIndex":
        root = Path(root)
        manifest = read_manifest(root)
        files = manifest["files"]
        try:
            with open(root / files["entries"]) as fh:
                entries = [FileEntry(**e) for e in json.load(fh)]
            features = np.load(root / files["features"], mmap_mode="r" if mmap else None)
            index = faiss.read_index(str(root / files["faiss"])) if files.get("faiss") else None
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
            raise IndexMismatchError(
                f"{root}: index files are damaged or missing ({type(exc).__name__}: {exc}); re-run 'lrreid index'"
            ) from None
        in_faiss = len(features) if index is None else index.ntotal
        if not (len(entries) == len(features) == in_faiss == manifest["count"]) or (
            index is None and manifest["kind"] != "flat"
        ):
            raise IndexMismatchError(
                f"{root}: index files disagree ({len(entries)} entries, {len(features)} features, "
                f"{in_faiss} in faiss, manifest says {manifest['count']}); re-run 'lrreid index'"
            )
        if index is not None:
            set_search_params(index, manifest["kind"], manifest["params"])
        return cls(root, manifest, entries, features, index)

    def check_model(self, identity: str) -> None:
        """Raise :class:`IndexMismatchError` unless the index was built by the model ``identity``."""
        from lrreid import __version__

        built = self.manifest["model"]["identity"]
        if built != identity:
            raise IndexMismatchError(
                f"{self.root}: index was built by model {built[:12]} (lrreid {self.manifest['lrreid_version']}), "
                f"not by this model {identity[:12]} (lrreid {__version__}); re-run 'lrreid index' with this model"
            )

    def search(self, features: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(distances, rows) of the k nearest gallery images per query; rows index ``entries``."""
        k = max(1, min(int(k), len(self.entries)))
        if self.index is None:
            return exact_topk(self.features, np.asarray(features), k, self.metric)
        raw, rows = self.index.search(prepare_features(np.asarray(features), self.metric), k)
        return to_distances(raw, self.metric), rows

    def set_params(self, **params) -> None:
        """Change search-time parameters (``nprobe`` for ivf, ``efSearch`` for hnsw)."""
        self.manifest["params"].update({k: v for k, v in params.items() if v is not None})
        if self.index is not None:
            set_search_params(self.index, self.kind, self.manifest["params"])


def read_manifest(root: Path) -> dict:
    path = root / MANIFEST
    if not path.is_file():
        raise IndexMismatchError(f"{root}: not an lrreid index (no {MANIFEST}); build one with 'lrreid index'")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexMismatchError(f"{path}: unreadable manifest ({exc}); re-run 'lrreid index'") from None
    if manifest.get("format") != INDEX_FORMAT:
        raise IndexMismatchError(
            f"{root}: index format {manifest.get('format')!r} (lrreid {manifest.get('lrreid_version')}); "
            f"this lrreid reads format {INDEX_FORMAT}; re-run 'lrreid index'"
        )
    return manifest


def write_index(root: Path, manifest: dict, entries: list[FileEntry], features: np.ndarray,
                index: faiss.Index | None) -> None:
    """Write the data files under a fresh tag, then the manifest, then remove stale files."""
    root.mkdir(parents=True, exist_ok=True)
    tag = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
    files = {"entries": f"entries-{tag}.json", "features": f"features-{tag}.npy"}
    atomic_write_json(root / files["entries"], [e.__dict__ for e in entries])
    with atomic_path(root / files["features"]) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(features, dtype=np.float32))
    if index is not None:
        files["faiss"] = f"faiss-{tag}.index"
        with atomic_path(root / files["faiss"]) as tmp:
            faiss.write_index(index, str(tmp))
    atomic_write_json(root / MANIFEST, {**manifest, "files": files})
    keep = set(files.values()) | {MANIFEST}
    for p in root.iterdir():
        if p.is_file() and p.name not in keep and _is_index_file(p.name):
            p.unlink(missing_ok=True)


def _is_index_file(name: str) -> bool:
    """A data file of some index version (or a temporary file of an interrupted write)."""
    return name.startswith(".") or name == MANIFEST or name.split("-")[0] in ("entries", "features", "faiss")


# --------------------------------------------------------------------------------------------
# Building and updating
# --------------------------------------------------------------------------------------------
@dataclass
class IndexReport:
    """What one ``build_index`` call did."""

    index_dir: Path
    total: int = 0  # images in the index now
    embedded: int = 0  # images embedded by this call (new or changed)
    reused: int = 0  # features kept from the previous index
    removed: int = 0  # entries dropped because their file is gone
    skipped: dict[str, int] = field(default_factory=dict)  # unreadable files by reason
    ignored: int = 0  # files that are not images by their extension
    unchanged: bool = False  # nothing to do: the index was already up to date
    recall_at_10: float | None = None  # approximate index vs exact, when checked
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"{self.total} images indexed in {self.index_dir}"]
        if self.unchanged:
            parts.append("already up to date")
        else:
            parts.append(f"{self.embedded} embedded, {self.reused} reused, {self.removed} removed")
        if self.skipped:
            parts.append(f"skipped {sum(self.skipped.values())} unreadable ("
                         + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())) + ")")
        if self.ignored:
            parts.append(f"{self.ignored} non-image files ignored")
        if self.recall_at_10 is not None:
            parts.append(f"recall@10 vs exact {self.recall_at_10:.3f}")
        return "; ".join(parts)


def default_index_dir(gallery_dir: str | os.PathLike) -> Path:
    """``<gallery>.lrreid-index`` beside the gallery folder (the gallery itself is never written to)."""
    g = Path(gallery_dir).resolve()
    return g.with_name(g.name + ".lrreid-index")


def build_index(
    gallery_dir: str | os.PathLike,
    pipeline,
    out_dir: str | os.PathLike | None = None,
    *,
    metric: str = "euclidean",
    kind: str = "flat",
    params: dict | None = None,
    check: bool = False,
    bad_images: str = "skip",
    progress: bool = True,
    identity: str | None = None,
) -> IndexReport:
    """Embed every image under ``gallery_dir`` into an index folder; on a re-run only new/changed files.

    Files whose size and mtime match the previous index keep their features; removed files are
    dropped; a different model re-embeds everything.  Unreadable images are skipped, counted and
    logged (``bad_images="raise"`` stops at the first one instead).

    Example::

        >>> report = build_index("gallery/", pipe, kind="flat")
        >>> print(report.summary())
        1200 images indexed in gallery.lrreid-index; 1200 embedded, 0 reused, 0 removed
    """
    from lrreid import __version__
    from lrreid.data.imageio import BadImagePolicy
    from lrreid.inference.identity import model_identity

    t0 = time.perf_counter()
    if metric not in METRICS:
        raise LrreidError(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    if kind not in KINDS:
        raise LrreidError(f"index kind {kind!r}: expected one of {', '.join(KINDS)}")
    gallery = Path(gallery_dir).resolve()
    if not gallery.is_dir():
        raise DatasetLayoutError(f"{gallery_dir}: gallery folder not found (expected a folder of images)")
    out = Path(out_dir).resolve() if out_dir is not None else default_index_dir(gallery)
    identity = identity or model_identity(pipeline)
    report = IndexReport(out)

    scanned, report.ignored = scan_gallery(gallery, exclude=out)
    if not scanned:
        raise DatasetLayoutError(
            f"{gallery_dir}: no image files found (looked recursively for {', '.join(sorted(_common_exts()))}, ...)"
        )

    previous = _previous_index(out, gallery, identity)
    old_rows = {e.path: (i, e) for i, e in enumerate(previous.entries)} if previous else {}
    keep_entries, keep_rows, todo = [], [], []
    for entry in scanned:
        old = old_rows.get(entry.path)
        if old is not None and old[1] == entry:
            keep_entries.append(entry)
            keep_rows.append(old[0])
        else:
            todo.append(entry)
    scanned_paths = {e.path for e in scanned}
    report.removed = sum(1 for p in old_rows if p not in scanned_paths)
    report.reused = len(keep_entries)

    settings_same = previous is not None and (
        previous.metric == metric and previous.kind == kind
        and previous.manifest["params"] == default_params(kind, len(previous.entries), params)
    )
    if not todo and not report.removed and settings_same:
        report.total, report.unchanged = len(previous.entries), True
        if check:
            report.recall_at_10 = 1.0 if previous.index is None else recall_at_k(previous.index, previous.features, metric)
        report.seconds = time.perf_counter() - t0
        return report

    policy = BadImagePolicy(bad_images)
    new_entries, new_feats = _embed_files(gallery, todo, pipeline, policy, progress)
    report.embedded, report.skipped = len(new_entries), dict(policy.skipped)
    policy.log_summary()

    entries = keep_entries + new_entries
    if not entries:
        raise DatasetLayoutError(f"{gallery_dir}: no readable images ({policy.summary()})")
    dim = new_feats.shape[1] if len(new_feats) else previous.features.shape[1]
    old_feats = np.asarray(previous.features[keep_rows]) if keep_rows else np.empty((0, dim), np.float32)
    features = np.concatenate([old_feats, new_feats]) if len(new_feats) else old_feats
    order = sorted(range(len(entries)), key=lambda i: entries[i].path)
    entries = [entries[i] for i in order]
    features = np.ascontiguousarray(features[order], dtype=np.float32)
    del previous  # release the memory-mapped old features before their file is removed

    full_params = default_params(kind, len(entries), params)
    index = None
    if kind != "flat":
        prepared = prepare_features(features, metric)
        index = make_faiss_index(prepared, metric, kind, full_params)
        del prepared
    if check:
        report.recall_at_10 = 1.0 if index is None else recall_at_k(index, features, metric, k=10)
    report.total = len(entries)
    manifest = {
        "format": INDEX_FORMAT,
        "lrreid_version": __version__,
        "model": {"identity": identity, "source": pipeline.source.get("path")},
        "gallery_root": str(gallery),
        "metric": metric,
        "kind": kind,
        "params": full_params,
        "count": len(entries),
        "feature_dim": int(features.shape[1]),
        "recall_at_10": report.recall_at_10,
        "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_index(out, manifest, entries, features, index)
    report.seconds = time.perf_counter() - t0
    return report


def _common_exts() -> list[str]:
    return [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif"]


def _previous_index(out: Path, gallery: Path, identity: str) -> GalleryIndex | None:
    """The index already in ``out`` if its features can be reused, else None (with the reason logged)."""
    if not (out / MANIFEST).exists():
        if out.exists() and any(not _is_index_file(p.name) for p in out.iterdir()):
            raise LrreidError(f"{out}: exists and is not an lrreid index; choose another --out")
        return None  # empty, or only files of an interrupted first build
    try:
        previous = GalleryIndex.load(out)
    except IndexMismatchError as exc:
        log.warning("%s; rebuilding from scratch", exc)
        return None
    if Path(previous.manifest["gallery_root"]) != gallery:
        raise LrreidError(
            f"{out}: this index belongs to gallery {previous.manifest['gallery_root']}, not {gallery}; "
            "choose another --out"
        )
    if previous.manifest["model"]["identity"] != identity:
        log.warning("%s: built by another model (%s); re-embedding every image with this one (%s)",
                    out, previous.manifest["model"]["identity"][:12], identity[:12])
        return None
    return previous


def _embed_files(gallery: Path, todo: list[FileEntry], pipeline, policy, progress: bool):
    """Read and embed ``todo`` in batches; unreadable files go to ``policy``."""
    from tqdm import tqdm

    entries, feats = [], []
    bar = tqdm(total=len(todo), desc="embedding gallery", unit="img", disable=not progress or not todo,
               leave=False, dynamic_ncols=True)
    try:
        for start in range(0, len(todo), pipeline.batch_size):
            chunk = todo[start : start + pipeline.batch_size]
            images, ok = [], []
            for entry in chunk:
                try:
                    images.append(_read(gallery / entry.path))
                    ok.append(entry)
                except ImageReadError as exc:
                    policy.handle(exc)
            if images:
                feats.append(pipeline.embed_gallery(images).numpy())
                entries.extend(ok)
            bar.update(len(chunk))
    finally:
        bar.close()
    dim = feats[0].shape[1] if feats else 0
    return entries, (np.concatenate(feats) if feats else np.empty((0, dim), np.float32))


def _read(path: Path):
    from lrreid.data.imageio import read_image

    return read_image(path)
