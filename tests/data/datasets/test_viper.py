"""VIPeR loader: a tiny fixture in the original layout, and the real copy in ../shared."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.errors import DatasetLayoutError


def make_viper(root, tiny_image, people=((0, 45, 90), (1, 0, 180), (2, 90, 270))):
    for person, angle_a, angle_b in people:
        tiny_image(root / "cam_a" / f"{person:03d}_{angle_a}.bmp", (48, 128))
        tiny_image(root / "cam_b" / f"{person:03d}_{angle_b}.bmp", (48, 128))
    return root


def test_pairs_by_person_number(tmp_path, tiny_image):
    make_viper(tmp_path / "VIPeR", tiny_image)
    ds = build_dataset("viper", tmp_path)  # the parent of VIPeR/ works too
    assert len(ds) == 6 and ds.pids == [1, 2, 3]  # 000 -> pid 1: no person gets distractor id 0
    for record in ds.records:
        folder, name = Path(record.path).parent.name, Path(record.path).name
        assert record.camid == (0 if folder == "cam_a" else 1)
        assert record.pid == int(name.split("_")[0]) + 1
    assert all(r.split is None for r in ds.records)


def test_unpaired_and_duplicated_people_are_counted(tmp_path, tiny_image):
    root = make_viper(tmp_path / "VIPeR", tiny_image)
    tiny_image(root / "cam_a" / "007_0.bmp")  # only in cam_a
    tiny_image(root / "cam_b" / "001_90.bmp")  # second cam_b image of person 001
    tiny_image(root / "cam_b" / "readme.bmp")
    ds = build_dataset("viper", root)
    assert ds.skipped == {"person missing from one camera": 1, "several images of a person in one camera": 1,
                          "unparseable file name": 1}
    assert ds.pids == [1, 3]
    with pytest.raises(DatasetLayoutError, match="expected 1 and 1|NNN_AAA"):
        build_dataset("viper", root, strict=True)


def test_missing_camera_folder(tmp_path, tiny_image):
    root = make_viper(tmp_path / "VIPeR", tiny_image)
    for f in (root / "cam_b").iterdir():
        f.unlink()
    (root / "cam_b").rmdir()
    with pytest.raises(DatasetLayoutError, match="cam_b"):
        build_dataset("viper", root)


@pytest.mark.shared
def test_real_viper(shared):
    ds = build_dataset("viper", shared("data", "VIPeR"))
    assert len(ds.pids) == 632 and ds.skipped == {}
    assert Counter((r.pid, r.camid) for r in ds.records) == Counter({(p, c): 1 for p in ds.pids for c in (0, 1)})
