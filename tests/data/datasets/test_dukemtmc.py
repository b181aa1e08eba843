"""DukeMTMC-reID loader on a tiny copy of the official layout (Market-style, 8 cameras)."""
from __future__ import annotations

import pytest

from lrreid.data.datasets import DATASETS, build_dataset
from lrreid.errors import DatasetLayoutError


def make_duke(root, tiny_image, files):
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            tiny_image(root / folder / name)
    return root


def test_dukemtmc_eight_cameras(tmp_path, tiny_image):
    files = {
        "bounding_box_train": ["0005_c2_f0046985.jpg", "0005_c8_f0047000.jpg"],
        "query": ["0001_c1_f0000001.jpg"],
        "bounding_box_test": ["0001_c5_f0000100.jpg", "0010_c7_f0000200.jpg", "0011_c9_f0000300.jpg"],
    }
    root = make_duke(tmp_path / "DukeMTMC-reID", tiny_image, files)
    ds = build_dataset("dukemtmc", tmp_path)
    assert "dukemtmc" in DATASETS
    assert sorted(r.camid for r in ds.train) == [1, 7]
    assert len(ds.gallery) == 2 and ds.skipped == {"camera out of range": 1}
    with pytest.raises(DatasetLayoutError, match="dukemtmc"):
        build_dataset("dukemtmc", root / "query")
