"""MARS (Zheng et al., ECCV 2016): 1261 identities, 6 cameras, 20k tracklets (video re-ID).

Layout of the release (``bbox_train.zip``, ``bbox_test.zip`` and the ``MARS-evaluation`` info files)::

    MARS/
        bbox_train/0001/0001C1T0001F001.jpg
        bbox_test/0002/...         (folder 0000 = distractors, 00-1 = junk)
        info/train_name.txt        one frame name per line, in tracklet order
        info/test_name.txt
        info/tracks_train_info.mat track_train_info: one row per tracklet
        info/tracks_test_info.mat  track_test_info
        info/query_IDX.mat         query_IDX: 1-based rows of track_test_info used as queries

A tracks-info row is ``start_index, end_index, pid, camid``: 1-based, inclusive line numbers in the
name file, the person, and the camera 1..6; ``camid`` in records is ``camera - 1`` (0..5).  The
frame ``NNNNCcTttttFfff.jpg`` lives in ``bbox_<set>/NNNN/``.

Records: TrackletRecords, split ``train`` (tracks_train_info), ``query`` (rows in query_IDX),
``gallery`` (the other test rows, as in the official evaluation).  Junk tracklets (pid -1) are
dropped and counted; distractors (pid 0) stay in the gallery.  Rows whose range is outside the name
file, whose frames name another person/camera than the row, or whose first frame is missing on
disk, are counted skips (errors with ``strict=True``).

Example::

    >>> ds = build_dataset("mars", "data/MARS")
    >>> len(ds.train), len(ds.query), len(ds.gallery)
    (8298, 1980, 9330)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, check_options, finish, locate, read_mat
from lrreid.data.records import ReidDataset, TrackletRecord
from lrreid.errors import DatasetLayoutError

INFO_FILES = ("train_name.txt", "test_name.txt", "tracks_train_info.mat", "tracks_test_info.mat", "query_IDX.mat")
LAYOUT = "bbox_train/, bbox_test/ and info/{" + ",".join(INFO_FILES) + "}"
NUM_CAMERAS = 6


def _load_mat_variable(path: Path, key: str) -> np.ndarray:
    return np.asarray(read_mat(path, [key])[key])


def _read_names(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


def _tracks(path: Path, key: str) -> np.ndarray:
    rows = _load_mat_variable(path, key)
    if rows.ndim != 2 or rows.shape[1] != 4:
        raise DatasetLayoutError(f"{path}: {key} has shape {rows.shape}, expected (tracklets, 4): start, end, pid, camera")
    return rows.astype(np.int64)


def _tracklets(rows, row_ids, names, folder: Path, split: str, skips: Skips, info: Path) -> list[TrackletRecord]:
    records = []
    for row_id in row_ids:
        start, end, pid, cam = (int(v) for v in rows[row_id])
        where = f"{info} row {row_id + 1}"
        if pid == -1:
            skips.by_design("junk tracklet (pid -1)")
            continue
        if pid == 0 and split != "gallery":
            skips("distractor (pid 0) outside the gallery", where, f"split {split}")
            continue
        if not 1 <= start <= end <= len(names):
            skips("frame range outside the name file", where, f"frames {start}..{end}, name file has {len(names)}")
            continue
        if not 1 <= cam <= NUM_CAMERAS:
            skips("camera out of range", where, f"camera {cam}, expected 1..{NUM_CAMERAS}")
            continue
        frame_names = names[start - 1:end]
        expected_prefix = f"{pid:04d}C{cam}"
        if any(not name.startswith(expected_prefix) for name in frame_names):
            bad = next(name for name in frame_names if not name.startswith(expected_prefix))
            skips("frame names disagree with tracks info", where, f"{bad!r} is not person {pid:04d} camera {cam}")
            continue
        frames = tuple(str(folder / name[:4] / name) for name in frame_names)
        if not Path(frames[0]).is_file():
            skips("frames missing on disk", where, frames[0])
            continue
        records.append(TrackletRecord(frames=frames, pid=pid, camid=cam - 1, split=split))
    return records


@DATASETS.register("mars")
@check_options
def load_mars(root, *, strict: bool = False) -> ReidDataset:
    """MARS from its folder (or a parent holding ``MARS/``); TrackletRecords, camid 0..5."""
    base = locate(
        root, dataset="mars", required=["bbox_train", "bbox_test", *(f"info/{f}" for f in INFO_FILES)],
        wrappers=("MARS", "mars"), layout=LAYOUT,
    )
    info = base / "info"
    train_names, test_names = _read_names(info / "train_name.txt"), _read_names(info / "test_name.txt")
    train_rows = _tracks(info / "tracks_train_info.mat", "track_train_info")
    test_rows = _tracks(info / "tracks_test_info.mat", "track_test_info")
    query_idx = _load_mat_variable(info / "query_IDX.mat", "query_IDX").astype(np.int64).ravel() - 1
    if query_idx.size and (query_idx.min() < 0 or query_idx.max() >= len(test_rows)):
        raise DatasetLayoutError(
            f"{info / 'query_IDX.mat'}: query rows {query_idx.min() + 1}..{query_idx.max() + 1} outside "
            f"track_test_info's 1..{len(test_rows)}"
        )
    query_rows = list(dict.fromkeys(query_idx.tolist()))  # official order, each row once
    query_set = set(query_rows)
    gallery_idx = [i for i in range(len(test_rows)) if i not in query_set]

    skips = Skips("mars", strict)
    records = _tracklets(train_rows, range(len(train_rows)), train_names, base / "bbox_train", "train", skips, info / "tracks_train_info.mat")
    records += _tracklets(test_rows, query_rows, test_names, base / "bbox_test", "query", skips, info / "tracks_test_info.mat")
    records += _tracklets(test_rows, gallery_idx, test_names, base / "bbox_test", "gallery", skips, info / "tracks_test_info.mat")
    return finish("mars", records, skips, root=base, layout=LAYOUT, is_video=True)
