"""MSMT17 loader on tiny copies of the V1 and V2 layouts."""
from __future__ import annotations

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.data.datasets.msmt17 import TEST_PID_OFFSET
from lrreid.errors import DatasetLayoutError

TRAIN = [("0000/0000_000_01_0303morning_0015_0.jpg", 0), ("0000/0000_001_15_0303noon_0020_1.jpg", 0),
         ("0001/0001_000_03_0303morning_0100_0.jpg", 1)]
VAL = [("0001/0001_002_04_0303afternoon_0001_0.jpg", 1)]
QUERY = [("0000/0000_000_02_0113morning_0001_0.jpg", 0)]
GALLERY = [("0000/0000_003_07_0113noon_0002_0.jpg", 0), ("0005/0005_000_09_0113noon_0003_0.jpg", 5)]


def make_msmt(root, tiny_image, train_dir="train", test_dir="test", query=QUERY):
    for list_name, folder, entries in (("list_train.txt", train_dir, TRAIN), ("list_val.txt", train_dir, VAL),
                                       ("list_query.txt", test_dir, query), ("list_gallery.txt", test_dir, GALLERY)):
        for rel, _ in entries:
            tiny_image(root / folder / rel)
        (root / list_name).parent.mkdir(parents=True, exist_ok=True)
        (root / list_name).write_text("".join(f"{rel} {pid}\n" for rel, pid in entries))
    return root


def test_v1_lists_cameras_and_separate_pid_ranges(tmp_path, tiny_image):
    make_msmt(tmp_path / "MSMT17_V1", tiny_image)
    ds = build_dataset("msmt17", tmp_path)
    assert len(ds.train) == 3 and len(ds.query) == 1 and len(ds.gallery) == 2
    assert sorted({r.pid for r in ds.train}) == [1, 2]  # list pid + 1: no real person gets distractor id 0
    assert {r.pid for r in ds.query} == {1 + TEST_PID_OFFSET}  # test person 0 is not train person 0
    assert {r.pid for r in ds.train}.isdisjoint({r.pid for r in ds.gallery})
    assert sorted(r.camid for r in ds.train) == [0, 2, 14]  # camera field 01 -> 0, 15 -> 14
    assert ds.skipped == {}


def test_combine_train_val(tmp_path, tiny_image):
    root = make_msmt(tmp_path / "MSMT17_V1", tiny_image)
    assert len(build_dataset("msmt17", root, combine_train_val=True).train) == 4


def test_v2_folder_names(tmp_path, tiny_image):
    root = make_msmt(tmp_path / "MSMT17_V2", tiny_image, "mask_train_v2", "mask_test_v2")
    ds = build_dataset("msmt17", root)
    assert "mask_train_v2" in ds.train[0].path and len(ds) == 6


def test_missing_list_is_a_layout_error(tmp_path, tiny_image):
    root = make_msmt(tmp_path / "MSMT17_V1", tiny_image)
    (root / "list_query.txt").unlink()
    with pytest.raises(DatasetLayoutError, match="list_query.txt"):
        build_dataset("msmt17", root)


def test_bad_lines_and_missing_files_are_counted(tmp_path, tiny_image):
    root = make_msmt(tmp_path / "MSMT17_V1", tiny_image)
    with open(root / "list_gallery.txt", "a") as fh:
        fh.write("0009/0009_000_05_x_0001_0.jpg\n")  # no pid
        fh.write("0009/0009_000_05_x_0001_0.jpg 9\n")  # file not on disk
        fh.write("0009/badname.jpg 9\n")
    ds = build_dataset("msmt17", root)
    assert ds.skipped == {"unparseable list line": 1, "listed file missing": 1, "unparseable file name": 1}
    assert len(ds.gallery) == 2
    with pytest.raises(DatasetLayoutError, match=r"list_gallery.txt:3"):
        build_dataset("msmt17", root, strict=True)


def test_query_identity_without_gallery_match_is_accepted(tmp_path, tiny_image):
    root = make_msmt(tmp_path / "MSMT17_V1", tiny_image, query=[("0042/0042_000_02_0113morning_0001_0.jpg", 42)])
    ds = build_dataset("msmt17", root)
    assert {r.pid for r in ds.query}.isdisjoint({r.pid for r in ds.gallery})
