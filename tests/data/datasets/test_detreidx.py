"""DetReIDX / AG-VPReID style loader: split/PID/tracklet/frame folders, camera and view from names or metadata."""
from __future__ import annotations

import json

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.errors import ConfigError, DatasetLayoutError


def make_set(root, tiny_image, layout, frames=2):
    """layout: {split folder: {pid folder: [tracklet folder, ...]}}"""
    for split, people in layout.items():
        for pid, tracklets in people.items():
            for tracklet in tracklets:
                for f in range(1, frames + 1):
                    tiny_image(root / split / pid / tracklet / f"F{f:03d}.jpg")
    return root


AGV = {"train": {"0001": ["C4T0001", "C0T0002"], "0002": ["C5T0001"]},
       "case1_aerial_to_ground/query": {"0003": ["C4T0005"]},
       "case1_aerial_to_ground/gallery": {"0003": ["C1T0001"], "0000": ["C2T0009"]}}


def test_agvpreid_layout_with_aerial_cameras(tmp_path, tiny_image):
    root = make_set(tmp_path / "AG-VPReID", tiny_image, AGV, frames=12)
    ds = build_dataset("detreidx", root, test_dir="case1_aerial_to_ground", aerial_cameras=(4, 5))
    assert ds.is_video and len(ds.train) == 3 and len(ds.query) == 1 and len(ds.gallery) == 2
    by = {(r.pid, r.camid): r for r in ds.records}
    assert by[(1, 4)].view == "aerial" and by[(1, 0)].view == "ground" and by[(2, 5)].view == "aerial"
    assert ds.query[0].view == "aerial" and {r.view for r in ds.gallery} == {"ground"}
    assert 0 in {r.pid for r in ds.gallery}  # distractor kept
    frames = by[(1, 4)].frames
    assert len(frames) == 12 and frames[1].endswith("F002.jpg") and frames[9].endswith("F010.jpg")


def test_view_and_camera_from_names(tmp_path, tiny_image):
    layout = {"train": {"7": ["C3_aerial", "C1_ground"]}, "query": {"8": ["seq_A_C2"]},
              "gallery": {"8": ["C6-G-01"]}}
    ds = build_dataset("detreidx", make_set(tmp_path / "d", tiny_image, layout))
    views = {(r.pid, r.camid): r.view for r in ds.records}
    assert views == {(7, 3): "aerial", (7, 1): "ground", (8, 2): "aerial", (8, 6): "ground"}


def test_test_folder_with_query_and_gallery_and_flat_test(tmp_path, tiny_image):
    root = make_set(tmp_path / "a", tiny_image, {"train": {"1": ["C1"]}, "test/query": {"2": ["C1"]}, "test/gallery": {"2": ["C2"]}})
    ds = build_dataset("detreidx", root)
    assert len(ds.query) == 1 and len(ds.gallery) == 1
    flat = make_set(tmp_path / "b", tiny_image, {"train": {"1": ["C1"]}, "test": {"2": ["C1", "C2"]}})
    ds = build_dataset("detreidx", flat)
    assert [r.split for r in ds.records] == ["train", None, None]


def test_metadata_csv_overrides_names(tmp_path, tiny_image):
    root = make_set(tmp_path / "d", tiny_image, {"train": {"1": ["trackA", "trackB"]}, "query": {"2": ["trackC"]}})
    (root / "metadata.csv").write_text(
        "tracklet,camid,view,altitude\n"
        "train/1/trackA,3,UAV,40\n"
        "trackB,0,ground,0\n"
        "query/2/trackC,5,aerial,25\n"
    )
    ds = build_dataset("detreidx", root)
    got = sorted((r.pid, r.camid, r.view) for r in ds.records)
    assert got == [(1, 0, "ground"), (1, 3, "aerial"), (2, 5, "aerial")]


def test_metadata_json_keyed_by_tracklet(tmp_path, tiny_image):
    root = make_set(tmp_path / "d", tiny_image, {"train": {"1": ["t1"]}})
    (root / "meta.json").write_text(json.dumps({"t1": {"camid": 2, "view": "drone"}}))
    ds = build_dataset("detreidx", root, metadata="meta.json")
    assert (ds.records[0].camid, ds.records[0].view) == (2, "aerial")


def test_bad_metadata_value_names_line_and_column(tmp_path, tiny_image):
    root = make_set(tmp_path / "d", tiny_image, {"train": {"1": ["t1"]}})
    (root / "metadata.csv").write_text("tracklet,camid\nt1,two\n")
    with pytest.raises(DatasetLayoutError, match=r"metadata.csv:2: column 'camid'"):
        build_dataset("detreidx", root)


def test_empty_tracklets_and_unknown_cameras_counted(tmp_path, tiny_image):
    root = make_set(tmp_path / "d", tiny_image, {"train": {"1": ["C1T1", "nocam"]}, "gallery": {"-1": ["C1"], "unknown": ["C1"]}})
    (root / "train" / "1" / "C2T9").mkdir()
    ds = build_dataset("detreidx", root)
    assert ds.skipped == {"tracklet without frames": 1, "no camera in metadata or name": 1,
                          "junk (pid -1)": 1, "unparseable PID folder": 1}
    assert len(ds) == 1
    with pytest.raises(DatasetLayoutError):
        build_dataset("detreidx", root, strict=True)


def test_custom_camera_pattern(tmp_path, tiny_image):
    root = make_set(tmp_path / "d", tiny_image, {"train": {"1": ["cam07_seq1"]}})
    assert build_dataset("detreidx", root, camera_pattern=r"cam(?P<camid>\d+)").records[0].camid == 7
    with pytest.raises(ConfigError, match="named group"):
        build_dataset("detreidx", root, camera_pattern=r"cam(\d+)")


def test_wrong_layout(tmp_path, tiny_image):
    tiny_image(tmp_path / "d" / "images" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match="train/, query/, gallery/ or test/"):
        build_dataset("detreidx", tmp_path / "d")
