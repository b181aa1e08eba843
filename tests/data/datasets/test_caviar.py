"""CAVIAR4REID loader: a tiny fixture in the original layout, and the real copy in ../shared."""
from __future__ import annotations

from collections import Counter

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.errors import DatasetLayoutError


def make_caviar(root, tiny_image):
    folder = root / "CAVIARa"
    for index in range(1, 21):  # person 1 in both cameras
        tiny_image(folder / f"0001{index:03d}.jpg")
    for index in range(1, 11):  # person 2 only in the near camera
        tiny_image(folder / f"0002{index:03d}.jpg")
    return root


def test_cameras_views_and_people(tmp_path, tiny_image):
    make_caviar(tmp_path / "CAVIAR4REID", tiny_image)
    ds = build_dataset("caviar", tmp_path / "CAVIAR4REID")
    assert len(ds) == 30 and ds.pids == [1, 2]
    assert all(r.split is None for r in ds.records)
    by_index = {r.path[-7:-4]: r for r in ds.records if "/0001" in r.path}
    assert (by_index["010"].camid, by_index["010"].view) == (0, "near")
    assert (by_index["011"].camid, by_index["011"].view) == (1, "far")
    assert {r.pid for r in ds.records if r.camid == 1} == {1}


def test_root_may_be_caviara_or_its_grandparent(tmp_path, tiny_image):
    make_caviar(tmp_path / "CAVIAR4REID", tiny_image)
    assert len(build_dataset("caviar", tmp_path / "CAVIAR4REID" / "CAVIARa")) == 30
    assert len(build_dataset("caviar", tmp_path)) == 30


def test_bad_names_counted_or_strict(tmp_path, tiny_image):
    root = make_caviar(tmp_path / "c", tiny_image)
    tiny_image(root / "CAVIARa" / "0003021.jpg")  # index 21 does not exist
    tiny_image(root / "CAVIARa" / "photo.jpg")
    ds = build_dataset("caviar", root)
    assert ds.skipped == {"image index out of range": 1, "unparseable file name": 1}
    with pytest.raises(DatasetLayoutError, match="0003021.jpg|photo.jpg"):
        build_dataset("caviar", root, strict=True)


def test_wrong_folder(tmp_path, tiny_image):
    tiny_image(tmp_path / "x" / "cat.jpg")
    with pytest.raises(DatasetLayoutError, match="CAVIARa"):
        build_dataset("caviar", tmp_path / "x")


@pytest.mark.shared
def test_real_caviar4reid(shared):
    ds = build_dataset("caviar", shared("data", "CAVIAR4REID"))
    assert len(ds) == 1220 and len(ds.pids) == 72 and ds.skipped == {}
    assert len({r.pid for r in ds.records if r.camid == 1}) == 50
    per_person_camera = Counter((r.pid, r.camid) for r in ds.records)
    assert set(per_person_camera.values()) == {10}
