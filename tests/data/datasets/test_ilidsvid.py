"""iLIDS-VID loader on a tiny copy of the extracted archive, with and without the splits file."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from lrreid.data.datasets import build_dataset
from lrreid.errors import ConfigError, DatasetLayoutError

PERSONS = ("person001", "person002", "person004", "person007")  # iLIDS-VID numbers are not contiguous


def make_ilids(root, tiny_image, frames=2):
    for cam in ("cam1", "cam2"):
        for person in PERSONS:
            for f in range(1, frames + 1):
                tiny_image(root / "i-LIDS-VID" / "sequences" / cam / person / f"{cam}_{person}_{f:05d}.png")
    return root


def write_splits(root, rows):
    folder = root / "train-test people splits"
    folder.mkdir(parents=True)
    savemat(folder / "train_test_splits_ilidsvid.mat", {"ls_set": np.array(rows, dtype=np.float64)})


def test_tracklets_without_splits(tmp_path, tiny_image):
    root = make_ilids(tmp_path / "iLIDS-VID", tiny_image, frames=11)
    ds = build_dataset("ilidsvid", root)
    assert ds.is_video and len(ds) == 8 and ds.pids == [1, 2, 4, 7]
    assert all(r.split is None for r in ds.records)
    record = next(r for r in ds.records if r.pid == 4 and r.camid == 1)
    assert len(record.frames) == 11 and all("/cam2/person004/" in f for f in record.frames)
    assert record.frames[1].endswith("_00002.png")  # frame order


def test_root_may_be_inner_folders(tmp_path, tiny_image):
    root = make_ilids(tmp_path / "iLIDS-VID", tiny_image)
    assert len(build_dataset("ilidsvid", root / "i-LIDS-VID")) == 8
    assert len(build_dataset("ilidsvid", root / "i-LIDS-VID" / "sequences")) == 8


def test_official_splits(tmp_path, tiny_image):
    root = make_ilids(tmp_path / "iLIDS-VID", tiny_image)
    write_splits(root, [[3, 1, 2, 4], [2, 4, 1, 3]])  # first half test, second half train (1-based)
    ds = build_dataset("ilidsvid", root)
    assert {r.pid for r in ds.query} == {4, 1} and all(r.camid == 0 for r in ds.query)
    assert {r.pid for r in ds.gallery} == {4, 1} and all(r.camid == 1 for r in ds.gallery)
    assert {r.pid for r in ds.train} == {2, 7} and len(ds.train) == 4
    assert {r.pid for r in build_dataset("ilidsvid", root, split_id=1).query} == {2, 7}
    with pytest.raises(ConfigError, match="0..1"):
        build_dataset("ilidsvid", root, split_id=5)


def test_split_id_needs_the_splits_file(tmp_path, tiny_image):
    root = make_ilids(tmp_path / "iLIDS-VID", tiny_image)
    with pytest.raises(ConfigError, match="train_test_splits_ilidsvid.mat"):
        build_dataset("ilidsvid", root, split_id=0)


def test_empty_tracklet_counted(tmp_path, tiny_image):
    root = make_ilids(tmp_path / "iLIDS-VID", tiny_image)
    (root / "i-LIDS-VID" / "sequences" / "cam2" / "person009").mkdir()
    assert build_dataset("ilidsvid", root).skipped == {"tracklet without frames": 1}
    with pytest.raises(DatasetLayoutError, match="person009"):
        build_dataset("ilidsvid", root, strict=True)


def test_wrong_layout(tmp_path, tiny_image):
    tiny_image(tmp_path / "iLIDS-VID" / "i-LIDS-VID" / "sequences" / "cam1" / "person001" / "a.png")
    with pytest.raises(DatasetLayoutError, match="cam1 or cam2"):
        build_dataset("ilidsvid", tmp_path / "iLIDS-VID")
