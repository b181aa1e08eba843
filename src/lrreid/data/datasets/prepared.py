"""A dataset copy written by ``lrreid prepare`` (e.g. MLR-VIPeR), read back from its manifest.

Layout::

    OUT/manifest.json      dataset, source root, protocol, factors, seed, lrreid version, the records
                           (relative path or frames, pid, camid, view, scale, split) and the
                           evaluation splits as lists of record indices
    OUT/images/...         LR images at their small size, HR images copied or hard-linked

``build_dataset("prepared", OUT)`` gives the records (``scale`` = the factor that made each file);
:func:`load_prepared_splits` gives the stored :class:`~lrreid.data.protocols.EvalSplit` list.  A
folder without ``manifest.json`` (e.g. an interrupted prepare, which never gets one) or with a
manifest of another format version is a :class:`~lrreid.errors.DatasetLayoutError`.

Example::

    >>> ds = build_dataset("prepared", "out/mlr-viper")
    >>> ds.name, len(ds)
    ('mlr-viper', 1264)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import check_options
from lrreid.data.records import ImageRecord, ReidDataset, TrackletRecord
from lrreid.errors import DatasetLayoutError

MANIFEST = "manifest.json"
FORMAT = "lrreid-prepared"
FORMAT_VERSION = 1


def read_manifest(folder: str | os.PathLike) -> dict:
    """The checked manifest of a prepared folder, or a one-line DatasetLayoutError."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        raise DatasetLayoutError(f"{folder}: folder not found (expected a folder written by `lrreid prepare`)")
    if not path.is_file():
        raise DatasetLayoutError(f"{path}: not found (not a complete `lrreid prepare` output)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetLayoutError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetLayoutError(f"{path}: not an lrreid prepared-dataset manifest (expected format {FORMAT!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetLayoutError(
            f"{path}: manifest format version {manifest.get('format_version')!r} (written by lrreid "
            f"{manifest.get('lrreid_version')}), this lrreid reads version {FORMAT_VERSION}; prepare it again")
    for key in ("records", "splits"):
        if not isinstance(manifest.get(key), list):
            raise DatasetLayoutError(f"{path}: manifest has no {key!r} list")
    return manifest


def records_from_manifest(folder: str | os.PathLike, manifest: dict) -> list:
    base = Path(os.path.abspath(folder))
    records = []
    for i, item in enumerate(manifest["records"]):
        try:
            common = dict(pid=int(item["pid"]), camid=int(item["camid"]), split=item.get("split"),
                          view=item.get("view"), scale=float(item.get("scale", 1.0)))
            if "frames" in item:
                records.append(TrackletRecord(frames=tuple(str(base / p) for p in item["frames"]), **common))
            else:
                records.append(ImageRecord(path=str(base / item["path"]), **common))
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetLayoutError(f"{base / MANIFEST}: record {i} is malformed ({type(exc).__name__}: {exc})") from None
    return records


@DATASETS.register("prepared")
@check_options
def load_prepared(root) -> ReidDataset:
    """The records of a folder written by ``lrreid prepare``; name e.g. ``"mlr-viper"``."""
    if root is None:
        raise DatasetLayoutError("dataset 'prepared' needs the folder written by `lrreid prepare` as its root")
    manifest = read_manifest(root)
    records = records_from_manifest(root, manifest)
    name = f"{manifest.get('protocol', 'prepared')}-{manifest.get('dataset', 'dataset')}"
    return ReidDataset(name=name, records=records, is_video=any(isinstance(r, TrackletRecord) for r in records),
                       skipped=dict(manifest.get("skipped", {})))


def load_prepared_splits(root: str | os.PathLike) -> list:
    """The evaluation splits stored in a prepared folder, as :class:`~lrreid.data.protocols.EvalSplit`.

    >>> splits = load_prepared_splits("out/mlr-viper")
    >>> len(splits), len(splits[0].query), len(splits[0].gallery)
    (10, 316, 316)
    """
    from lrreid.data.protocols import EvalSplit

    manifest = read_manifest(root)
    records = records_from_manifest(root, manifest)
    splits = []
    for s, item in enumerate(manifest["splits"]):
        try:
            parts = {key: [records[int(i)] for i in item[key]] for key in ("train", "query", "gallery")}
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DatasetLayoutError(
                f"{Path(root) / MANIFEST}: split {s} is malformed ({type(exc).__name__}: {exc})") from None
        splits.append(EvalSplit(str(item.get("name", f"split{s}")), **parts, notes=list(item.get("notes") or [])))
    if not splits:
        raise DatasetLayoutError(f"{Path(root) / MANIFEST}: holds no evaluation split")
    return splits
