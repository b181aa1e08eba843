"""PRID 2011 loaders (single-shot images and multi-shot tracklets) on a tiny copy of prid_2011/."""
from __future__ import annotations

from pathlib import Path

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.data.records import TrackletRecord
from lrreid.errors import DatasetLayoutError

CAM_A, CAM_B = (1, 2, 3), (1, 2, 3, 4, 5)  # persons 1..3 in both cameras, 4..5 only in cam_b


def make_prid(root, tiny_image, frames=3):
    for cam, people in (("cam_a", CAM_A), ("cam_b", CAM_B)):
        for pid in people:
            tiny_image(root / "single_shot" / cam / f"person_{pid:04d}.png")
            for f in range(1, frames + 1):
                tiny_image(root / "multi_shot" / cam / f"person_{pid:04d}" / f"{f:04d}.png")
    return root


def test_single_shot(tmp_path, tiny_image):
    make_prid(tmp_path / "prid_2011", tiny_image)
    ds = build_dataset("prid2011", tmp_path)
    assert len(ds) == 8 and ds.pids == [1, 2, 3, 4, 5] and not ds.is_video
    assert {r.pid for r in ds.records if r.camid == 0} == {1, 2, 3}
    assert {r.pid for r in ds.records if r.camid == 1} == {1, 2, 3, 4, 5}
    assert all(r.split is None for r in ds.records)


def test_multi_shot_tracklets_in_frame_order(tmp_path, tiny_image):
    root = make_prid(tmp_path / "prid_2011", tiny_image, frames=12)
    ds = build_dataset("prid2011_video", root)
    assert ds.is_video and len(ds) == 8
    record = next(r for r in ds.records if r.pid == 2 and r.camid == 1)
    assert isinstance(record, TrackletRecord) and len(record.frames) == 12
    assert [Path(f).name for f in record.frames[:3]] == ["0001.png", "0002.png", "0003.png"]
    assert all("person_0002" in f and "/cam_b/" in f for f in record.frames)


def test_empty_tracklet_and_bad_names_are_counted(tmp_path, tiny_image):
    root = make_prid(tmp_path / "prid_2011", tiny_image)
    (root / "multi_shot" / "cam_a" / "person_0009").mkdir()
    (root / "multi_shot" / "cam_a" / "backup").mkdir()
    tiny_image(root / "single_shot" / "cam_b" / "person_x.png")
    assert build_dataset("prid2011_video", root).skipped == {"tracklet without frames": 1, "unparseable folder name": 1}
    assert build_dataset("prid2011", root).skipped == {"unparseable file name": 1}
    with pytest.raises(DatasetLayoutError, match="backup|person_0009"):
        build_dataset("prid2011_video", root, strict=True)


def test_wrong_layout(tmp_path, tiny_image):
    root = make_prid(tmp_path / "prid_2011", tiny_image)
    with pytest.raises(DatasetLayoutError, match="single_shot"):
        build_dataset("prid2011", root / "multi_shot")
