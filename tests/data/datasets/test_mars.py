"""MARS loader on a tiny copy of the release: bbox folders plus info files written with scipy.io.savemat."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from lrreid.data.datasets import build_dataset
from lrreid.data.records import TrackletRecord
from lrreid.errors import DatasetLayoutError

# (pid, camera, tracklet no., frames)
TRAIN = [(1, 1, 1, 3), (1, 2, 2, 2), (3, 6, 1, 2)]
TEST = [(2, 1, 1, 2), (2, 3, 2, 3), (0, 4, 1, 2), (-1, 2, 1, 2), (5, 2, 1, 2), (6, 5, 1, 2)]
QUERY_ROWS = [1, 5]  # 1-based rows of TEST: person 2 (camera 1) and person 5, whose only tracklet is the query


def frame_name(pid, cam, tracklet, f):
    folder = "00-1" if pid == -1 else f"{pid:04d}"
    return folder, f"{folder}C{cam}T{tracklet:04d}F{f:03d}.jpg"


def write_set(root, folder, tracks, tiny_image, write_frames=True):
    names, rows = [], []
    for pid, cam, tracklet, n in tracks:
        start = len(names) + 1
        for f in range(1, n + 1):
            sub, name = frame_name(pid, cam, tracklet, f)
            names.append(name)
            if write_frames:
                tiny_image(root / folder / sub / name)
        rows.append([start, len(names), pid, cam])
    return names, np.array(rows, dtype=np.float64)  # MATLAB stores doubles


def make_mars(root, tiny_image, query_rows=QUERY_ROWS, test=TEST):
    info = root / "info"
    info.mkdir(parents=True)
    train_names, train_rows = write_set(root, "bbox_train", TRAIN, tiny_image)
    test_names, test_rows = write_set(root, "bbox_test", test, tiny_image)
    (info / "train_name.txt").write_text("\n".join(train_names) + "\n")
    (info / "test_name.txt").write_text("\n".join(test_names) + "\n")
    savemat(info / "tracks_train_info.mat", {"track_train_info": train_rows})
    savemat(info / "tracks_test_info.mat", {"track_test_info": test_rows})
    savemat(info / "query_IDX.mat", {"query_IDX": np.array([query_rows], dtype=np.float64)})
    return root


def test_tracklets_splits_junk_and_distractors(tmp_path, tiny_image):
    make_mars(tmp_path / "MARS", tiny_image)
    ds = build_dataset("mars", tmp_path)
    assert ds.is_video and all(isinstance(r, TrackletRecord) for r in ds.records)
    assert len(ds.train) == 3 and len(ds.query) == 2 and len(ds.gallery) == 3
    assert [r.pid for r in ds.query] == [2, 5]
    assert sorted(r.pid for r in ds.gallery) == [0, 2, 6]  # distractor kept, junk dropped
    assert ds.skipped == {"junk tracklet (pid -1)": 1}
    first = ds.train[0]
    assert len(first.frames) == 3 and first.camid == 0
    assert [Path(f).name for f in first.frames] == ["0001C1T0001F001.jpg", "0001C1T0001F002.jpg", "0001C1T0001F003.jpg"]
    assert all(Path(f).is_file() for r in ds.records for f in r.frames)
    assert next(r for r in ds.train if r.pid == 3).camid == 5  # camera 6 -> 5


def test_query_without_gallery_match_is_accepted(tmp_path, tiny_image):
    ds = build_dataset("mars", make_mars(tmp_path / "MARS", tiny_image))
    assert 5 in {r.pid for r in ds.query} and 5 not in {r.pid for r in ds.gallery}


def test_missing_info_file(tmp_path, tiny_image):
    root = make_mars(tmp_path / "MARS", tiny_image)
    (root / "info" / "query_IDX.mat").unlink()
    with pytest.raises(DatasetLayoutError, match="query_IDX.mat"):
        build_dataset("mars", root)


def test_query_index_out_of_range(tmp_path, tiny_image):
    root = make_mars(tmp_path / "MARS", tiny_image, query_rows=[1, 99])
    with pytest.raises(DatasetLayoutError, match="query rows 1..99"):
        build_dataset("mars", root)


def test_inconsistent_rows_are_counted(tmp_path, tiny_image):
    root = make_mars(tmp_path / "MARS", tiny_image)
    rows = np.array([[1, 3, 1, 1], [4, 5, 1, 2], [6, 7, 3, 6], [6, 7, 4, 6], [6, 70, 3, 6]], dtype=np.float64)
    savemat(root / "info" / "tracks_train_info.mat", {"track_train_info": rows})
    for f in (root / "bbox_test" / "0006").iterdir():
        f.unlink()
    ds = build_dataset("mars", root)
    assert ds.skipped == {"junk tracklet (pid -1)": 1, "frame names disagree with tracks info": 1,
                          "frame range outside the name file": 1, "frames missing on disk": 1}
    with pytest.raises(DatasetLayoutError, match="tracks_train_info.mat row 4"):
        build_dataset("mars", root, strict=True)


def test_wrong_shape_of_tracks_info(tmp_path, tiny_image):
    root = make_mars(tmp_path / "MARS", tiny_image)
    savemat(root / "info" / "tracks_train_info.mat", {"track_train_info": np.ones((3, 3))})
    with pytest.raises(DatasetLayoutError, match=r"shape \(3, 3\)"):
        build_dataset("mars", root)
