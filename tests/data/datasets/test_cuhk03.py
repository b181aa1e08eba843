"""CUHK03 loader on a tiny cuhk-03.mat written with h5py in MATLAB v7.3's real structure.

MATLAB v7.3 files are HDF5: a cell array is a dataset of object references into ``#refs#``, arrays
are stored column-major (so an H x W x 3 image appears as 3 x W x H), and an empty cell is a
uint64 vector of its zero dimensions.  The new-protocol configs are MATLAB v5 (scipy.io.savemat).
"""
from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from lrreid.data.datasets import build_dataset
from lrreid.data.datasets import cuhk03 as cuhk03_module
from lrreid.errors import ConfigError, DatasetLayoutError

# Camera pair -> persons -> which of the 10 image cells are filled.
PAIRS = {
    1: [range(10), [0, 1, 5, 6], [2, 3]],  # person 3 of pair 1 only seen by the first camera
    2: [[0, 5], range(1, 9)],
}
TESTSETS = [[(1, 2), (2, 1)], [(1, 1), (2, 2)]]


def pixels_for(pair, person, index):
    """A distinct, non-square H x W x 3 image per cell, so orientation mistakes show."""
    rng = np.random.default_rng(pair * 100 + person * 10 + index)
    return rng.integers(0, 256, (12, 5, 3), dtype=np.uint8)


def write_raw_mat(path: Path, kinds=("detected", "labeled")):
    path.parent.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()
    with h5py.File(path, "w") as f:
        refs = f.create_group("#refs#")

        def store(array, dtype=None):
            return refs.create_dataset(f"r{next(counter)}", data=array, dtype=dtype).ref

        empty = np.zeros(2, dtype=np.uint64)  # MATLAB's empty cell
        for kind in kinds:
            pair_refs = []
            for pair, persons in PAIRS.items():
                cell = np.empty((10, len(persons)), dtype=object)  # persons x 10, stored transposed
                for p, filled in enumerate(persons, start=1):
                    for k in range(10):
                        cell[k, p - 1] = store(pixels_for(pair, p, k + 1).T if k in filled else empty)
                pair_refs.append(store(cell, dtype=h5py.ref_dtype))
            f.create_dataset(kind, data=np.array([pair_refs], dtype=object), dtype=h5py.ref_dtype)  # MATLAB 5x1 -> (1, 5)
        test_refs = [store(np.array(rows, dtype=np.float64).T) for rows in TESTSETS]
        f.create_dataset("testsets", data=np.array([test_refs], dtype=object), dtype=h5py.ref_dtype)
    return path


def make_cuhk03(root):
    write_raw_mat(root / "cuhk03_release" / "cuhk-03.mat")
    return root


def test_extracts_images_once_in_upright_orientation(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    build_dataset("cuhk03", root, protocol="classic")
    images = root / "images_detected"
    names = sorted(p.name for p in images.iterdir())
    assert len(names) == 10 + 4 + 2 + 2 + 8
    assert "1_001_1_01.png" in names and "1_001_2_10.png" in names and "2_002_2_09.png" in names
    assert "1_003_2_06.png" not in names  # empty cells are not images
    out = np.asarray(Image.open(images / "2_002_1_02.png"))
    np.testing.assert_array_equal(out, pixels_for(2, 2, 2))  # 12 x 5, as MATLAB showed it
    assert not [p for p in images.parent.iterdir() if p.name.startswith(".")]  # no partial folder left
    stamp = (images / "1_001_1_01.png").stat().st_mtime_ns
    build_dataset("cuhk03", root, protocol="classic")
    assert (images / "1_001_1_01.png").stat().st_mtime_ns == stamp  # not extracted twice


def test_classic_split(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    ds = build_dataset("cuhk03", root, protocol="classic", split_id=0)
    # pids run across pairs from 1: pair 1 persons 1..3 -> 1..3, pair 2 persons 1..2 -> 4..5
    assert {r.pid for r in ds.query} == {2, 4} and {r.pid for r in ds.gallery} == {2, 4}
    assert {r.pid for r in ds.train} == {1, 3, 5}
    assert all(r.camid in (0, 2) for r in ds.query) and all(r.camid in (1, 3) for r in ds.gallery)
    person5 = [r for r in ds.train if r.pid == 5]
    assert len(person5) == 8 and {r.camid for r in person5} == {2, 3}  # pair 2: cameras 2 and 3
    assert {r.pid for r in build_dataset("cuhk03", root, protocol="classic", split_id=1).query} == {1, 5}
    with pytest.raises(ConfigError, match="split_id=2"):
        build_dataset("cuhk03", root, protocol="classic", split_id=2)


def test_labeled_images_go_to_their_own_folder(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    ds = build_dataset("cuhk03", root, protocol="classic", labeled=True)
    assert all("/images_labeled/" in r.path for r in ds.records)
    assert not (root / "images_detected").exists()


def write_new_protocol(root, kind="detected"):
    names = sorted(p.name for p in (root / f"images_{kind}").iterdir())
    pid_of = {(1, 1): 1, (1, 2): 2, (1, 3): 3, (2, 1): 4, (2, 2): 5}
    labels = [pid_of[(int(n[0]), int(n[2:5]))] for n in names]
    train = [i + 1 for i, pid in enumerate(labels) if pid in (1, 3)]
    query = [i + 1 for i, (n, pid) in enumerate(zip(names, labels)) if pid in (2, 4, 5) and n.split("_")[2] == "1"]
    gallery = [i + 1 for i, (n, pid) in enumerate(zip(names, labels)) if pid in (2, 4, 5) and n.split("_")[2] == "2"]
    filelist = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        filelist[i, 0] = n
    col = lambda v: np.array(v, dtype=np.float64).reshape(-1, 1)  # noqa: E731
    camid = [int(n.split("_")[2]) for n in names]
    savemat(root / f"cuhk03_new_protocol_config_{kind}.mat", {
        "train_idx": col(train), "query_idx": col(query), "gallery_idx": col(gallery),
        "labels": col(labels), "filelist": filelist, "camId": col(camid),
    })
    return names


def test_new_protocol(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    cuhk03_module.extract_images(root / "cuhk03_release" / "cuhk-03.mat", "detected", root / "images_detected")
    write_new_protocol(root)
    ds = build_dataset("cuhk03", root)  # protocol="new" is the default
    assert {r.pid for r in ds.train} == {1, 3} and len(ds.train) == 12
    assert {r.pid for r in ds.query} == {2, 4, 5} and {r.pid for r in ds.gallery} == {2, 4, 5}
    assert all(r.camid % 2 == 0 for r in ds.query) and all(r.camid % 2 == 1 for r in ds.gallery)
    assert ds.skipped == {}


def test_new_protocol_extracts_when_images_missing(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    cuhk03_module.extract_images(root / "cuhk03_release" / "cuhk-03.mat", "detected", root / "images_detected")
    write_new_protocol(root)
    for p in (root / "images_detected").iterdir():
        p.unlink()
    (root / "images_detected").rmdir()
    assert len(build_dataset("cuhk03", root)) == 26
    assert (root / "images_detected" / "1_001_1_01.png").is_file()


def test_new_protocol_without_raw_mat_uses_existing_images(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    cuhk03_module.extract_images(root / "cuhk03_release" / "cuhk-03.mat", "detected", root / "images_detected")
    write_new_protocol(root)
    (root / "cuhk03_release" / "cuhk-03.mat").unlink()
    (root / "images_detected" / "2_002_2_09.png").unlink()
    ds = build_dataset("cuhk03", root)
    assert ds.skipped == {"listed image missing": 1} and len(ds) == 25
    with pytest.raises(DatasetLayoutError, match="2_002_2_09.png"):
        build_dataset("cuhk03", root, strict=True)


def test_missing_files_are_layout_errors(tmp_path):
    root = make_cuhk03(tmp_path / "cuhk03")
    with pytest.raises(DatasetLayoutError, match="cuhk03_new_protocol_config_detected.mat"):
        build_dataset("cuhk03", root)  # the new protocol needs its config file
    cuhk03_module.extract_images(root / "cuhk03_release" / "cuhk-03.mat", "detected", root / "images_detected")
    write_new_protocol(root)
    shutil.copy(root / "cuhk03_new_protocol_config_detected.mat", root / "cuhk03_new_protocol_config_labeled.mat")
    (root / "cuhk03_release" / "cuhk-03.mat").unlink()
    with pytest.raises(DatasetLayoutError, match="cuhk-03.mat"):
        build_dataset("cuhk03", root, protocol="classic")  # classic needs testsets from cuhk-03.mat
    with pytest.raises(DatasetLayoutError, match="images_labeled not found and no cuhk-03.mat"):
        build_dataset("cuhk03", root, labeled=True)
    with pytest.raises(ConfigError, match="protocol"):
        build_dataset("cuhk03", root, protocol="old")


def test_not_an_hdf5_file(tmp_path):
    raw = tmp_path / "cuhk03" / "cuhk03_release" / "cuhk-03.mat"
    raw.parent.mkdir(parents=True)
    savemat(raw, {"detected": np.zeros(3)})  # MATLAB v5, not the v7.3 release
    with pytest.raises(DatasetLayoutError, match="HDF5"):
        build_dataset("cuhk03", tmp_path / "cuhk03", protocol="classic")


def test_crash_during_extraction_leaves_no_images_folder(tmp_path, monkeypatch):
    root = make_cuhk03(tmp_path / "cuhk03")
    calls = itertools.count()
    real_save = cuhk03_module._save_png

    def failing_save(pixels, target):
        if next(calls) == 5:
            raise OSError("disk full")
        real_save(pixels, target)

    monkeypatch.setattr(cuhk03_module, "_save_png", failing_save)
    with pytest.raises(OSError, match="disk full"):
        build_dataset("cuhk03", root, protocol="classic")
    assert not (root / "images_detected").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".images_detected")]
