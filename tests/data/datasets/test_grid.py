"""GRID loader on a tiny underground_reid/ copy, with and without the partition .mat file."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.io import savemat

from lrreid.data.datasets import build_dataset
from lrreid.errors import ConfigError, DatasetLayoutError

PROBE = ["0001_1_25004_107_32_130.jpeg", "0002_3_25100_10_20_100.jpeg", "0003_8_1_1_20_60.jpeg", "0004_2_5_1_20_60.jpeg"]
GALLERY = ["0001_5_25010_99_30_128.jpeg", "0002_4_25200_12_22_96.jpeg", "0003_6_2_2_20_60.jpeg",
           "0004_7_6_2_20_60.jpeg", "0000_2_30000_50_30_120.jpeg", "0000_7_30001_51_30_120.jpeg"]


def make_grid(root, tiny_image):
    for name in PROBE:
        tiny_image(root / "probe" / name)
    for name in GALLERY:
        tiny_image(root / "gallery" / name)
    return root


def write_partitions(path, train_sets, field_names=("featureSet", "testIdx", "trainIdx")):
    cell = np.empty((1, len(train_sets)), dtype=object)
    for i, train in enumerate(train_sets):
        struct = {name: np.array([[0.0]]) for name in field_names}
        struct[field_names[2]] = np.array([train], dtype=np.float64)  # MATLAB row vector, 1-based ids
        cell[0, i] = struct
    savemat(path, {"trainIdxAll": cell})


def test_without_partitions_no_split(tmp_path, tiny_image):
    make_grid(tmp_path / "underground_reid", tiny_image)
    ds = build_dataset("grid", tmp_path)
    assert len(ds) == 10 and all(r.split is None for r in ds.records)
    assert ds.pids == [0, 1, 2, 3, 4]
    cams = {r.path.rsplit("/", 1)[1]: r.camid for r in ds.records}
    assert cams["0001_1_25004_107_32_130.jpeg"] == 0 and cams["0003_8_1_1_20_60.jpeg"] == 7


def test_official_partition_applied(tmp_path, tiny_image):
    root = make_grid(tmp_path / "underground_reid", tiny_image)
    write_partitions(root / "features_and_partitions.mat", [[1, 3], [2, 4]])
    ds = build_dataset("grid", root)  # split 0 by default
    assert {r.pid for r in ds.train} == {1, 3} and len(ds.train) == 4
    assert {r.pid for r in ds.query} == {2, 4}
    assert {r.pid for r in ds.gallery} == {0, 2, 4}  # distractors stay in the gallery
    assert sum(r.pid == 0 for r in ds.gallery) == 2
    ds1 = build_dataset("grid", root, split_id=1)
    assert {r.pid for r in ds1.train} == {2, 4}
    with pytest.raises(ConfigError, match="split_id=2.*0..1"):
        build_dataset("grid", root, split_id=2)


def test_partition_field_found_by_name(tmp_path, tiny_image):
    root = make_grid(tmp_path / "underground_reid", tiny_image)
    write_partitions(root / "features_and_partitions.mat", [[2, 3]], field_names=("a", "b", "c"))
    assert {r.pid for r in build_dataset("grid", root).train} == {2, 3}  # third field when none says "train"


def test_split_id_without_partition_file_is_an_error(tmp_path, tiny_image):
    root = make_grid(tmp_path / "underground_reid", tiny_image)
    with pytest.raises(ConfigError, match="features_and_partitions.mat"):
        build_dataset("grid", root, split_id=1)


def test_counted_skips_and_strict(tmp_path, tiny_image):
    root = make_grid(tmp_path / "underground_reid", tiny_image)
    tiny_image(root / "probe" / "0000_1_1_1_1_1.jpeg")
    tiny_image(root / "gallery" / "0009_9_1_1_1_1.jpeg")
    tiny_image(root / "gallery" / "snapshot.jpeg")
    ds = build_dataset("grid", root)
    assert ds.skipped == {"distractor in the probe folder": 1, "camera out of range": 1, "unparseable file name": 1}
    with pytest.raises(DatasetLayoutError):
        build_dataset("grid", root, strict=True)


def test_missing_gallery_folder(tmp_path, tiny_image):
    tiny_image(tmp_path / "underground_reid" / "probe" / PROBE[0])
    with pytest.raises(DatasetLayoutError, match="gallery"):
        build_dataset("grid", tmp_path)


def test_records_say_which_folder_they_come_from_and_all_partitions_are_kept(tmp_path, tiny_image):
    root = make_grid(tmp_path / "underground_reid", tiny_image)
    ds = build_dataset("grid", root)
    assert {r.view for r in ds.records if "/probe/" in r.path} == {"probe"}
    assert {r.view for r in ds.records if "/gallery/" in r.path} == {"gallery"}
    assert ds.official_train_ids == []  # no partition file
    write_partitions(root / "features_and_partitions.mat", [[1, 3], [2, 4]])
    assert build_dataset("grid", root, split_id=1).official_train_ids == [(1, 3), (2, 4)]
