"""The generic loader for a user's own data: a split/pid folder tree, or a labels CSV (images or tracklets)."""
from __future__ import annotations

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.data.records import TrackletRecord
from lrreid.errors import DatasetLayoutError


def test_folder_tree(tmp_path, tiny_image):
    root = tmp_path / "mine"
    tiny_image(root / "train" / "5" / "2_a.jpg")
    tiny_image(root / "train" / "5" / "b.jpg")
    tiny_image(root / "query" / "9" / "q.jpg")
    tiny_image(root / "gallery" / "9" / "3_g.png")
    tiny_image(root / "gallery" / "0" / "d.jpg")
    tiny_image(root / "gallery" / "-1" / "junk.jpg")
    ds = build_dataset("generic", root)
    got = sorted((r.split, r.pid, r.camid) for r in ds.records)
    # camid from the "<camid>_" prefix; without it query -> 0, train/gallery -> 1
    assert got == [("gallery", 0, 1), ("gallery", 9, 3), ("query", 9, 0), ("train", 5, 1), ("train", 5, 2)]
    assert ds.skipped == {"junk (pid -1)": 1}


def test_folder_tree_counted_skips_and_strict(tmp_path, tiny_image):
    root = tmp_path / "mine"
    tiny_image(root / "query" / "1" / "q.jpg")
    tiny_image(root / "query" / "alice" / "q.jpg")
    tiny_image(root / "query" / "stray.jpg")
    tiny_image(root / "train" / "0" / "t.jpg")
    ds = build_dataset("generic", root)
    assert ds.skipped == {"non-integer pid folder": 1, "image outside a pid folder": 1,
                          "distractor or negative pid outside the gallery": 1}
    with pytest.raises(DatasetLayoutError):
        build_dataset("generic", root, strict=True)


def test_folder_without_split_folders(tmp_path, tiny_image):
    tiny_image(tmp_path / "mine" / "1" / "a.jpg")
    with pytest.raises(DatasetLayoutError, match="no train/, query/ or gallery/"):
        build_dataset("generic", tmp_path / "mine")


def test_csv_images(tmp_path, tiny_image):
    tiny_image(tmp_path / "img" / "a.jpg")
    tiny_image(tmp_path / "img" / "b.jpg")
    tiny_image(tmp_path / "img" / "c.jpg")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\ufeffpath,pid,camid,split,view\nimg/a.jpg,1,0,query,aerial\nimg/b.jpg,1,1,gallery,ground\nimg/c.jpg,2,1,,\n")
    ds = build_dataset("generic", csv_path)
    assert [(r.pid, r.camid, r.split, r.view) for r in ds.records] == [
        (1, 0, "query", "aerial"), (1, 1, "gallery", "ground"), (2, 1, None, None)]
    assert ds.records[0].path == str(tmp_path / "img" / "a.jpg")


def test_csv_tracklets(tmp_path, tiny_image):
    for name in ("t1_1", "t1_2", "t2_1", "t1_3"):
        tiny_image(tmp_path / f"{name}.jpg")
    csv_path = tmp_path / "tracks.csv"
    csv_path.write_text("tracklet,path,pid,camid,split\nA,t1_1.jpg,4,0,train\nA,t1_2.jpg,4,0,train\n"
                        "B,t2_1.jpg,5,1,train\nA,t1_3.jpg,4,0,train\n")
    ds = build_dataset("generic", csv_path)
    assert ds.is_video and len(ds) == 2
    first = ds.records[0]
    assert isinstance(first, TrackletRecord) and first.pid == 4
    assert [p.rsplit("/", 1)[1] for p in first.frames] == ["t1_1.jpg", "t1_2.jpg", "t1_3.jpg"]


@pytest.mark.parametrize("content, message", [
    ("file,pid,camid\n", r"labels.csv:1: missing column 'path'"),
    ("path,pid,camid,colour\n", r"labels.csv:1: unknown column 'colour'"),
    ("path,pid,camid\nx.jpg,one,0\n", r"labels.csv:2: column 'pid': expected an integer, got 'one'"),
    ("path,pid,camid\nx.jpg,1,c1\n", r"labels.csv:2: column 'camid': expected an integer"),
    ("path,pid,camid\nx.jpg,1,0\nmissing.jpg,2,0\n", r"labels.csv:3: column 'path': file .*missing.jpg not found"),
    ("path,pid,camid,split\nx.jpg,1,0,test\n", r"labels.csv:2: column 'split'"),
    ("path,pid,camid\nx.jpg,1\n", r"labels.csv:2: 2 columns, expected 3"),
    ("path,pid,camid,tracklet\nx.jpg,1,0,A\nx.jpg,2,0,A\n", r"labels.csv:3: tracklet 'A'"),
])
def test_csv_errors_name_line_and_column(tmp_path, tiny_image, content, message):
    tiny_image(tmp_path / "x.jpg")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(content)
    with pytest.raises(DatasetLayoutError, match=message) as exc:
        build_dataset("generic", csv_path)
    assert "\n" not in str(exc.value)


def test_csv_junk_rows_dropped(tmp_path, tiny_image):
    tiny_image(tmp_path / "x.jpg")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,pid,camid,split\nx.jpg,-1,0,gallery\nx.jpg,0,0,gallery\n")
    ds = build_dataset("generic", csv_path)
    assert len(ds) == 1 and ds.records[0].pid == 0 and ds.skipped == {"junk (pid -1)": 1}


def test_missing_csv(tmp_path):
    with pytest.raises(DatasetLayoutError, match="CSV file not found"):
        build_dataset("generic", tmp_path / "nope.csv")
