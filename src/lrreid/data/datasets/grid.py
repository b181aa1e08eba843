"""QMUL GRID (Loy et al., CVPR 2009): 250 paired people in 8 underground-station cameras + 775 distractors.

Layout of ``underground_reid.zip``::

    underground_reid/probe/0001_1_25004_107_32_130.jpeg     (250 images, persons 0001..0250)
    underground_reid/gallery/0001_5_...jpeg                (1025 images; person 0000 = distractor)
    underground_reid/features_and_partitions.mat           (optional: the 10 official splits)

File name ``PPPP_C_...``: person PPPP, camera C (1..8); ``camid = C - 1``; ``view`` is the folder
(``"probe"`` or ``"gallery"``: GRID's pairs are one image in each, whatever their cameras).  Gallery
images of person 0000 are distractors, kept with ``pid 0``; a probe image of person 0000 is a
counted skip.

Splits: when ``features_and_partitions.mat`` is present, split ``split_id`` (0..9, default 0) is
applied: the 125 training persons listed in ``trainIdxAll`` (per split, the struct field whose name
contains "train", else its third field, the one torchreid reads) give ``train`` records from both
folders; the other probe images are ``query``, their gallery images plus all distractors are
``gallery``; all 10 partitions are kept in ``official_train_ids`` for
:func:`~lrreid.data.protocols.grid_protocol`.  Without the file every record has ``split=None`` (the
protocol decides) and asking for a ``split_id`` is an error.

Example::

    >>> ds = build_dataset("grid", "data/underground_reid", split_id=3)
    >>> len({r.pid for r in ds.train}), len(ds.query)
    (125, 125)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, check_options, finish, list_images, locate, pick_split_id, read_mat
from lrreid.data.records import ImageRecord, ReidDataset
from lrreid.errors import ConfigError, DatasetLayoutError

NAME = re.compile(r"^(?P<pid>\d+)_(?P<cam>\d+)_")
NUM_CAMERAS = 8
SPLIT_FILE = "features_and_partitions.mat"
LAYOUT = "underground_reid/probe/PPPP_C_*.jpeg and underground_reid/gallery/PPPP_C_*.jpeg (optional features_and_partitions.mat)"


def _train_ids_of(entry, where: Path) -> set[int]:
    """The training person ids of one split entry of ``trainIdxAll`` (a struct, or a plain vector)."""
    value = entry
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.flat[0]
    if isinstance(value, np.ndarray) and value.dtype.names:  # MATLAB struct
        names = value.dtype.names
        field = next((n for n in names if "train" in n.lower()), names[2] if len(names) > 2 else None)
        if field is None:
            raise DatasetLayoutError(f"{where}: trainIdxAll entries have fields {names}, expected one holding the training ids")
        value = value[field].flat[0] if value[field].dtype == object else value[field]
    try:
        ids = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DatasetLayoutError(f"{where}: a trainIdxAll entry is not a list of person ids") from None
    if ids.size == 0 or not np.all(ids == np.round(ids)) or ids.min() < 1:
        raise DatasetLayoutError(f"{where}: a trainIdxAll entry is not a list of person ids >= 1")
    return {int(i) for i in ids}


def _read_splits(path: Path) -> list[set[int]]:
    mat = read_mat(path, ["trainIdxAll"], "GRID's 10 partitions")
    return [_train_ids_of(entry, path) for entry in np.asarray(mat["trainIdxAll"], dtype=object).ravel()]


@DATASETS.register("grid")
@check_options
def load_grid(root, *, split_id: int | None = None, strict: bool = False) -> ReidDataset:
    """GRID from ``underground_reid/`` (or its parent); camid 0..7, pid 0 = gallery distractor.

    ``split_id``: which official partition to apply (None = 0 when the partition file exists,
    no split otherwise).
    """
    base = locate(root, dataset="grid", required=["probe", "gallery"], wrappers=("underground_reid", "grid/underground_reid"), layout=LAYOUT)
    split_file = base / SPLIT_FILE
    train_ids: set[int] | None = None
    splits: list[set[int]] = []
    if split_file.is_file():
        splits = _read_splits(split_file)
        train_ids = splits[pick_split_id(split_id, len(splits), split_file, "grid")]
    elif split_id is not None:
        raise ConfigError(f"grid: split_id={split_id} needs {split_file} (GRID's partition file), which is missing")

    skips = Skips("grid", strict)
    records = []
    for folder, test_split in (("probe", "query"), ("gallery", "gallery")):
        for path in list_images(base / folder):
            match = NAME.match(path.name)
            if match is None:
                skips("unparseable file name", path, "expected PPPP_C_*.jpeg")
                continue
            pid, cam = int(match["pid"]), int(match["cam"])
            if not 1 <= cam <= NUM_CAMERAS:
                skips("camera out of range", path, f"camera {cam}, expected 1..{NUM_CAMERAS}")
                continue
            if pid == 0 and folder == "probe":
                skips("distractor in the probe folder", path, "person 0000 belongs to the gallery")
                continue
            if train_ids is None:
                split = None
            else:
                split = "train" if pid in train_ids else test_split
            records.append(ImageRecord(path=str(path), pid=pid, camid=cam - 1, split=split, view=folder))
    if train_ids is not None:
        unknown = train_ids - {r.pid for r in records}
        if unknown:
            raise DatasetLayoutError(f"{split_file}: training persons {sorted(unknown)[:5]} have no images in probe/ or gallery/")
    dataset = finish("grid", records, skips, root=base, layout=LAYOUT)
    dataset.official_train_ids = [tuple(sorted(ids)) for ids in splits]
    return dataset
