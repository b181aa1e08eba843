"""iLIDS-VID (Wang et al., ECCV 2014): 300 people, one tracklet in each of two airport cameras.

Layout of ``iLIDS-VID.tar``::

    i-LIDS-VID/sequences/cam1/person001/cam1_person001.png ...   (one folder of frames per person)
    i-LIDS-VID/sequences/cam2/person001/...
    train-test people splits/train_test_splits_ilidsvid.mat      (optional: ls_set, 10 x 300)

``root`` may be the folder holding both (the extracted archive), ``i-LIDS-VID/`` or its
``sequences/``; the splits file is looked for beside ``i-LIDS-VID/``.

Records: TrackletRecords, ``camid`` 0 for cam1 and 1 for cam2, ``pid`` the NNN of ``personNNN``.
Splits: when the splits file is present, split ``split_id`` (0..9, default 0) is applied as in Wang
et al.: row ``split_id`` of ``ls_set`` lists 1-based indices into the sorted person folders; the
first half are test persons (cam1 tracklet -> ``query``, cam2 -> ``gallery``), the second half
train.  Without the file ``split`` is None and asking for a ``split_id`` is an error.

Person folders without frames, or whose name is not ``personNNN``, are counted skips (errors with
``strict=True``).

Example::

    >>> ds = build_dataset("ilidsvid", "data/iLIDS-VID", split_id=0)
    >>> len(ds.train), len(ds.query), len(ds.gallery)
    (300, 150, 150)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, as_root, check_options, finish, list_dirs, list_images, pick_split_id, read_mat
from lrreid.data.records import ReidDataset, TrackletRecord
from lrreid.errors import ConfigError, DatasetLayoutError

PERSON = re.compile(r"^person(?P<pid>\d+)$")
CAMERAS = (("cam1", 0), ("cam2", 1))
SPLITS_FILE = Path("train-test people splits") / "train_test_splits_ilidsvid.mat"
LAYOUT = "i-LIDS-VID/sequences/cam1/personNNN/*.png and .../cam2/personNNN/*.png (optional 'train-test people splits/')"


def _find(root) -> tuple[Path, Path | None]:
    """The ``sequences`` folder and the splits file (None if absent)."""
    base = as_root(root, "ilidsvid", LAYOUT)
    for sequences in (base / "i-LIDS-VID" / "sequences", base / "sequences", base):
        if (sequences / "cam1").is_dir() and (sequences / "cam2").is_dir():
            break
    else:
        missing = "i-LIDS-VID/sequences/cam1" if not (base / "i-LIDS-VID").is_dir() else "i-LIDS-VID/sequences/cam1 or cam2"
        raise DatasetLayoutError(f"{base}: {missing} not found: not an ilidsvid folder (expected {LAYOUT})")
    dataset_dir = sequences.parent.parent if sequences.parent.name == "i-LIDS-VID" else sequences.parent
    candidates = (dataset_dir / SPLITS_FILE, base / SPLITS_FILE, base / SPLITS_FILE.name)
    return sequences, next((c for c in candidates if c.is_file()), None)


def _read_splits(path: Path) -> np.ndarray:
    mat = read_mat(path, ["ls_set"], "iLIDS-VID's 10 x 300 person splits")
    ls_set = np.asarray(mat["ls_set"])
    if ls_set.ndim != 2 or ls_set.shape[1] < 2:
        raise DatasetLayoutError(f"{path}: ls_set has shape {ls_set.shape}, expected (splits, persons)")
    return ls_set.astype(np.int64)


@DATASETS.register("ilidsvid")
@check_options
def load_ilidsvid(root, *, split_id: int | None = None, strict: bool = False) -> ReidDataset:
    """iLIDS-VID tracklets; camid 0 = cam1, 1 = cam2; ``split_id`` as in the module docstring."""
    sequences, splits_file = _find(root)
    skips = Skips("ilidsvid", strict)
    tracklets: dict[tuple[str, int], TrackletRecord] = {}
    for cam_folder, camid in CAMERAS:
        for person_dir in list_dirs(sequences / cam_folder):
            match = PERSON.match(person_dir.name)
            if match is None or int(match["pid"]) == 0:
                skips("unparseable folder name", person_dir, "expected personNNN with NNN >= 1")
                continue
            frames = list_images(person_dir)
            if not frames:
                skips("tracklet without frames", person_dir)
                continue
            tracklets[(person_dir.name, camid)] = TrackletRecord(
                frames=tuple(str(f) for f in frames), pid=int(match["pid"]), camid=camid, split=None
            )

    if splits_file is None:
        if split_id is not None:
            raise ConfigError(f"ilidsvid: split_id={split_id} needs {SPLITS_FILE}, which is not beside {sequences.parent}")
        records = list(tracklets.values())
    else:
        ls_set = _read_splits(splits_file)
        row = ls_set[pick_split_id(split_id, ls_set.shape[0], splits_file, "ilidsvid")]
        # The indices refer to the sorted person folders of cam1, as the authors' code enumerates them.
        persons = [p.name for p in list_dirs(sequences / "cam1")]
        if row.min() < 1 or row.max() > len(persons):
            raise DatasetLayoutError(f"{splits_file}: indices {row.min()}..{row.max()} outside the {len(persons)} person folders of cam1")
        half = len(row) // 2
        test = {persons[i - 1] for i in row[:half]}
        records = []
        for (person, camid), record in tracklets.items():
            if person in test:
                records.append(record.with_(split="query" if camid == 0 else "gallery"))
            else:
                records.append(record.with_(split="train"))
    return finish("ilidsvid", records, skips, root=sequences, layout=LAYOUT, is_video=True)
