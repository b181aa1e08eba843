"""Query a gallery index with LR probes: predicted scale -> SR -> features -> top-k gallery images."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import torch

from lrreid.errors import ImageReadError, IndexMismatchError
from lrreid.search.index import GalleryIndex
from lrreid.utils.logging import get_logger

log = get_logger("search")


@dataclass
class Match:
    """One ranked gallery image."""

    rank: int  # 1 = nearest
    path: str  # the gallery file (absolute)
    distance: float  # Euclidean (or 1 - cosine for a cosine index)
    missing: bool = False  # the file is gone since indexing
    changed: bool = False  # the file was modified since indexing (its features may be stale)

    def to_dict(self) -> dict:
        return {"rank": self.rank, "path": self.path, "distance": self.distance,
                "missing": self.missing, "changed": self.changed}


@dataclass
class SearchResult:
    """The ranked gallery for one probe, with the scale it was super-resolved at."""

    probe: str  # the probe's path, or "<image N>" for in-memory images
    scale: int
    matches: list[Match]
    probe_image: torch.Tensor | None = field(default=None, repr=False)  # [3, h, w] in [0, 1] (keep_images)
    sr_image: torch.Tensor | None = field(default=None, repr=False)  # the SR output (keep_images)

    def to_dict(self) -> dict:
        return {"probe": self.probe, "scale": self.scale, "matches": [m.to_dict() for m in self.matches]}


class Searcher:
    """Search a gallery index (built by ``lrreid index`` / :func:`build_index`) with probe images.

    Args:
        index_dir: the index folder.
        model: a run folder / checkpoint path, or an :class:`LRReIDPipeline`; default: the model
            the index was built with.  Another model raises :class:`IndexMismatchError`.
        fast: the fast inference path (bf16/fp16 autocast) when loading ``model`` from a path.
        nprobe, ef_search: search-time settings of an approximate index.

    Example::

        >>> from lrreid import Searcher
        >>> searcher = Searcher("gallery.lrreid-index", model="runs/demo")
        >>> for result in searcher.search(["probe1.jpg", np.asarray(pil_image)], k=5):
        ...     print(result.probe, result.scale, [(m.rank, m.path, round(m.distance, 3)) for m in result.matches])
    """

    def __init__(
        self,
        index_dir: str | os.PathLike,
        model=None,
        *,
        fast: bool = True,
        device: str = "auto",
        nprobe: int | None = None,
        ef_search: int | None = None,
    ):
        from lrreid.inference.identity import model_identity
        from lrreid.inference.loading import load_pipeline

        self.index = GalleryIndex.load(index_dir)
        if model is None:
            model = self.index.manifest["model"].get("source")
            if not model:
                raise IndexMismatchError(
                    f"{index_dir}: the index does not record where its model came from; pass model=..."
                )
        if isinstance(model, (str, os.PathLike)):
            model = load_pipeline(model, fast=fast, device=device)
        self.pipeline = model
        self.index.check_model(model_identity(self.pipeline))
        self.index.set_params(nprobe=nprobe, efSearch=ef_search)
        self.missing_seen = 0  # gallery files found missing in results, over all searches
        self.skipped: dict[str, int] = {}  # unreadable probes of the last search, by reason

    def search(
        self,
        images,
        k: int = 10,
        scale: int | str | None = None,
        *,
        keep_images: bool = False,
        bad_images: str = "raise",
    ) -> list[SearchResult]:
        """The top-``k`` gallery images for each probe (paths, PIL images, HxWx3 arrays or tensors).

        ``scale``: ``None``/``"auto"`` lets the model's predictor choose, an integer forces it.
        ``bad_images="skip"`` skips unreadable probes and probes too small to super-resolve (counted
        and logged) instead of raising; probes larger than the re-ID input are reduced first.
        ``keep_images`` keeps each probe and its SR output on the result (for pictures).
        """
        from lrreid.data.imageio import BadImagePolicy
        from lrreid.inference.pipeline import probe_name, to_image_tensor

        policy = BadImagePolicy(bad_images)
        names, tensors, tracklets = [], [], []
        for i, image in enumerate(_as_list(images)):
            if isinstance(image, Tracklet):  # several frames, one probe (a video model)
                try:
                    frames = [self.pipeline.prepare_probe(to_image_tensor(f), str(f)) for f in image.frames]
                except ImageReadError as exc:
                    policy.handle(exc)
                    continue
                tracklets.append((len(names), frames))
                names.append(str(image.name))
                tensors.append(frames[0])
                continue
            name = probe_name(image, i)
            try:  # too small: refused; very large: reduced now, so only one full-size image is ever held
                tensors.append(self.pipeline.prepare_probe(to_image_tensor(image), name))
                names.append(name)
            except ImageReadError as exc:
                policy.handle(exc)
        policy.log_summary()
        self.skipped = dict(policy.skipped)
        if not tensors:
            return []
        feats, scales, sr = self._embed(tensors, tracklets, scale, keep_images)
        distances, rows = self.index.search(feats.numpy(), k)
        results = []
        missing = changed = 0
        for q, name in enumerate(names):
            matches = []
            for rank, (d, row) in enumerate(zip(distances[q], rows[q]), start=1):
                if row < 0:  # an approximate index found fewer than k
                    continue
                m = self._match(rank, int(row), float(d))
                missing += m.missing
                changed += m.changed
                matches.append(m)
            results.append(SearchResult(name, int(scales[q]), matches,
                                        tensors[q] if keep_images else None, sr[q] if keep_images else None))
        if missing:
            log.warning("%d result(s) point to gallery files removed since indexing; re-run 'lrreid index %s'",
                        missing, self.index.gallery_root)
        if changed:
            log.warning("%d result(s) point to gallery files modified since indexing; re-run 'lrreid index %s'",
                        changed, self.index.gallery_root)
        self.missing_seen += missing
        return results

    def _embed(self, tensors: list, tracklets: list, scale, keep_images: bool):
        """Features of the single-image probes and of the tracklets, in probe order."""
        in_tracklet = {q for q, _ in tracklets}
        singles = [q for q in range(len(tensors)) if q not in in_tracklet]
        feats, scales, sr = None, [0] * len(tensors), [None] * len(tensors)
        parts = []
        if singles:
            out = self.pipeline.embed_probes([tensors[q] for q in singles], scale=scale, return_sr=keep_images)
            parts.append((singles, out))
        if tracklets:
            parts.append(([q for q, _ in tracklets], self.pipeline.embed_tracklets([f for _, f in tracklets], scale=scale)))
        for rows, out in parts:
            if feats is None:
                feats = torch.empty(len(tensors), out.features.shape[1])
            feats[rows] = out.features
            for j, q in enumerate(rows):
                scales[q] = out.scales[j]
                sr[q] = out.sr_images[j] if out.sr_images is not None else None
        return feats, scales, sr

    def _match(self, rank: int, row: int, distance: float) -> Match:
        entry = self.index.entries[row]
        path = self.index.gallery_root / entry.path
        try:
            st = path.stat()
            missing, changed = False, (st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns)
        except OSError:
            missing, changed = True, False
        return Match(rank, str(path), distance, missing, changed)


@dataclass
class Tracklet:
    """A probe of several frames of one person (a folder), embedded as one by a video model."""

    name: str | os.PathLike
    frames: list


def _as_list(images) -> list:
    if isinstance(images, (str, os.PathLike)) or not isinstance(images, Iterable):
        return [images]
    if isinstance(images, (np.ndarray, torch.Tensor)) and images.ndim == 3:
        return [images]
    from PIL import Image

    if isinstance(images, Image.Image):
        return [images]
    return list(images)
