"""Market-1501 loader on a tiny copy of the official layout."""
from __future__ import annotations

import logging

import pytest

from lrreid.data.datasets import build_dataset
from lrreid.errors import ConfigError, DatasetLayoutError

MARKET_FILES = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c6s3_005567_02.jpg"],
    "query": ["0001_c1s1_001051_00.jpg", "0003_c3s1_000001_00.jpg"],
    "bounding_box_test": [
        "0001_c2s1_000201_01.jpg", "0003_c4s2_001111_02.jpg",
        "0000_c1s1_000151_01.jpg",  # distractor: kept
        "-1_c1s1_000401_03.jpg", "-1_c5s1_000401_03.jpg",  # junk: dropped
    ],
}


def make_market(root, tiny_image, files=MARKET_FILES):
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            tiny_image(root / folder / name)
    return root


def test_market_splits_pids_cameras(tmp_path, tiny_image):
    root = make_market(tmp_path / "Market-1501-v15.09.15", tiny_image)
    ds = build_dataset("market1501", root)
    assert not ds.is_video
    assert len(ds.train) == 3 and len(ds.query) == 2 and len(ds.gallery) == 3
    assert sorted({r.pid for r in ds.train}) == [2, 7]
    assert {r.pid for r in ds.query} == {1, 3}
    assert 0 in {r.pid for r in ds.gallery}  # distractors stay in the gallery
    assert -1 not in ds.pids
    assert ds.skipped == {"junk (pid -1)": 2}
    cams = {r.path.split("/")[-1]: r.camid for r in ds.records}
    assert cams["0002_c1s1_000451_03.jpg"] == 0 and cams["0007_c6s3_005567_02.jpg"] == 5  # c1 -> 0, c6 -> 5


def test_market_accepts_the_parent_of_the_archive_folder(tmp_path, tiny_image):
    make_market(tmp_path / "Market-1501-v15.09.15", tiny_image)
    assert len(build_dataset("market1501", tmp_path)) == 8


def test_market_missing_folder_names_it_before_parsing(tmp_path, tiny_image):
    root = make_market(tmp_path / "m", tiny_image, {k: v for k, v in MARKET_FILES.items() if k != "query"})
    with pytest.raises(DatasetLayoutError) as exc:
        build_dataset("market1501", root)
    message = str(exc.value)
    assert "query" in message and "bounding_box_train" in message and "\n" not in message


def test_market_root_not_found(tmp_path):
    with pytest.raises(DatasetLayoutError, match="not found"):
        build_dataset("market1501", tmp_path / "absent")


def test_market_unparseable_names_counted_or_strict_error(tmp_path, tiny_image, caplog):
    files = dict(MARKET_FILES)
    files["query"] = MARKET_FILES["query"] + ["holiday.jpg", "0004_c9s1_000001_00.jpg"]
    root = make_market(tmp_path / "m", tiny_image, files)
    (root / "query" / "Thumbs.db").write_bytes(b"x")  # not an image: ignored, not counted
    with caplog.at_level(logging.DEBUG, logger="lrreid"):
        ds = build_dataset("market1501", root)
    assert ds.skipped["unparseable file name"] == 1
    assert ds.skipped["camera out of range"] == 1  # Market has cameras 1..6
    assert len(ds.query) == 2
    assert any("holiday.jpg" in r.getMessage() for r in caplog.records)
    with pytest.raises(DatasetLayoutError, match="holiday.jpg|c9s1"):
        build_dataset("market1501", root, strict=True)


def test_market_strict_still_drops_junk(tmp_path, tiny_image):
    root = make_market(tmp_path / "m", tiny_image)
    assert build_dataset("market1501", root, strict=True).skipped == {"junk (pid -1)": 2}


def test_market_empty_layout_is_an_error(tmp_path):
    root = tmp_path / "m"
    for folder in MARKET_FILES:
        (root / folder).mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no usable images"):
        build_dataset("market1501", root)


def test_query_identities_absent_from_gallery_are_accepted(tmp_path, tiny_image):
    # The evaluation decides what to do with a query without a true match; the loader must not crash.
    files = {"bounding_box_train": ["0002_c1s1_000451_03.jpg"], "query": ["0050_c1s1_000001_00.jpg"],
             "bounding_box_test": ["0060_c2s1_000001_00.jpg"]}
    ds = build_dataset("market1501", make_market(tmp_path / "m", tiny_image, files))
    assert {r.pid for r in ds.query}.isdisjoint({r.pid for r in ds.gallery})


def test_unknown_option_is_a_config_error(tmp_path, tiny_image):
    root = make_market(tmp_path / "m", tiny_image)
    with pytest.raises(ConfigError, match="strictt.*known: strict"):
        build_dataset("market1501", root, strictt=True)
