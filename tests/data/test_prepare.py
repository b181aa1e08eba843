"""`prepare_dataset`: the MLR / genuine copies, their manifest and splits, atomicity, refusals, real data."""
from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from lrreid.data import prepare as prepare_mod
from lrreid.data.datasets import build_dataset
from lrreid.data.datasets.prepared import FORMAT_VERSION
from lrreid.data.prepare import prepare_dataset
from lrreid.data.protocols import load_prepared_splits
from lrreid.errors import ConfigError, DatasetLayoutError, ImageReadError


def make_viper(root, num_people=12, size=(24, 64)):
    """A VIPeR-shaped folder: cam_a/NNN_AAA.bmp, cam_b/NNN_AAA.bmp, one image per person and camera."""
    rng = np.random.default_rng(0)
    for cam in ("cam_a", "cam_b"):
        (root / cam).mkdir(parents=True, exist_ok=True)
        for person in range(num_people):
            pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cam / f"{person:03d}_090.bmp")
    return root


@pytest.fixture
def viper(tmp_path):
    return make_viper(tmp_path / "VIPeR")


def test_mlr_copy_images_manifest_and_splits(viper, tmp_path):
    out = tmp_path / "mlr"
    result = prepare_dataset("viper", viper, out, protocol="mlr", seed=0, num_splits=3, progress=False)
    assert not result.already and result.num_records == 24 and result.num_lr == 12 and result.num_splits == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"] == "viper" and manifest["protocol"] == "mlr" and manifest["factors"] == [2.0, 3.0, 4.0]
    assert manifest["seed"] == 0 and manifest["format_version"] == FORMAT_VERSION and manifest["lrreid_version"]
    assert manifest["source_root"] == os.path.abspath(viper)

    ds = build_dataset("prepared", out)
    assert ds.name == "mlr-viper" and len(ds) == 24
    lr_per_person = Counter(r.pid for r in ds.records if r.scale > 1)
    assert lr_per_person == {p: 1 for p in range(1, 13)}  # one camera of the pair per person
    for r in ds.records:
        w, h = Image.open(r.path).size
        if r.scale > 1:  # stored at its small size, bicubic, lossless
            assert r.path.endswith(".png") and (h, w) == (int(64 / r.scale + 0.5), int(24 / r.scale + 0.5))
        else:
            src = viper / ("cam_a" if r.camid == 0 else "cam_b") / os.path.basename(r.path)
            assert (w, h) == (24, 64) and open(r.path, "rb").read() == src.read_bytes()
            assert os.path.samefile(r.path, src)  # hard-linked (same file system here)

    splits = load_prepared_splits(out)
    assert [s.name for s in splits] == ["split0", "split1", "split2"]
    for s in splits:
        assert len(s.gallery) == 6 and all(r.scale == 1 for r in s.gallery)
        assert {r.pid for r in s.query} == {r.pid for r in s.gallery} and all(r.scale > 1 for r in s.query)
        assert not {r.pid for r in s.train} & {r.pid for r in s.query}


def test_same_seed_same_copy_other_seed_other_copy(viper, tmp_path):
    a = prepare_dataset("viper", viper, tmp_path / "a", seed=4, num_splits=2, progress=False, link=False)
    b = prepare_dataset("viper", viper, tmp_path / "b", seed=4, num_splits=2, progress=False, link=False)
    ma, mb = (json.loads((r.out / "manifest.json").read_text()) for r in (a, b))
    assert ma["records"] == mb["records"] and ma["splits"] == mb["splits"]
    for rec in ma["records"]:
        assert (a.out / rec["path"]).read_bytes() == (b.out / rec["path"]).read_bytes()
        if rec["scale"] == 1:  # link=False: a real copy, not a link to the source
            assert not os.path.samefile(a.out / rec["path"], viper / rec["path"].removeprefix("images/"))
    c = prepare_dataset("viper", viper, tmp_path / "c", seed=5, num_splits=2, progress=False)
    assert json.loads((c.out / "manifest.json").read_text())["records"] != ma["records"]


def test_again_is_a_no_op_and_a_different_copy_is_refused(viper, tmp_path):
    out = tmp_path / "mlr"
    prepare_dataset("viper", viper, out, num_splits=2, progress=False)
    before = (out / "manifest.json").stat().st_mtime_ns
    assert prepare_dataset("viper", viper, out, num_splits=2, progress=False).already
    assert (out / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(DatasetLayoutError, match="holds a different prepared dataset \\(factors=.*refusing") as info:
        prepare_dataset("viper", viper, out, num_splits=2, factors=(2, 4), progress=False)
    assert "\n" not in str(info.value)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetLayoutError, match="exists and is not a prepared dataset"):
        prepare_dataset("viper", viper, tmp_path / "busy", progress=False)
    (tmp_path / "empty").mkdir()
    assert not prepare_dataset("viper", viper, tmp_path / "empty", num_splits=1, progress=False).already


def test_fixed_lr_camera_is_a_parameter_of_the_copy(viper, tmp_path):
    out = tmp_path / "mlr"
    prepare_dataset("viper", viper, out, num_splits=1, lr_camera=1, progress=False)
    ds = build_dataset("prepared", out)
    assert {r.camid for r in ds.records if r.scale > 1} == {1} and sum(r.scale > 1 for r in ds.records) == 12
    assert json.loads((out / "manifest.json").read_text())["lr_camera"] == 1
    assert prepare_dataset("viper", viper, out, num_splits=1, lr_camera=1, progress=False).already
    with pytest.raises(DatasetLayoutError, match="lr_camera=1 there, 'random' asked"):
        prepare_dataset("viper", viper, out, num_splits=1, progress=False)
    with pytest.raises(ConfigError, match="lr_camera 'b'"):
        prepare_dataset("viper", viper, tmp_path / "x", lr_camera="b", progress=False)


def test_a_crash_midway_leaves_nothing_that_loads(viper, tmp_path, monkeypatch):
    real = prepare_mod._write_record
    calls = []

    def write_then_crash(*args, **kwargs):
        calls.append(1)
        if len(calls) == 10:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare_mod, "_write_record", write_then_crash)
    out = tmp_path / "mlr"
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare_dataset("viper", viper, out, progress=False)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["VIPeR"]  # no partial folder either
    with pytest.raises(DatasetLayoutError, match="folder not found"):
        build_dataset("prepared", out)
    monkeypatch.setattr(prepare_mod, "_write_record", real)
    assert not prepare_dataset("viper", viper, out, num_splits=1, progress=False).already  # and it can be redone


def test_loading_errors(viper, tmp_path):
    with pytest.raises(DatasetLayoutError, match="manifest.json: not found"):
        load_prepared_splits(viper)
    out = tmp_path / "mlr"
    prepare_dataset("viper", viper, out, num_splits=1, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetLayoutError, match="format version 2 .*prepare it again"):
        build_dataset("prepared", out)
    (out / "manifest.json").write_text("{")
    with pytest.raises(DatasetLayoutError, match="unreadable manifest"):
        load_prepared_splits(out)


def test_bad_images_raise_or_are_counted(viper, tmp_path):
    (viper / "cam_b" / "005_090.bmp").write_bytes(b"")
    with pytest.raises(ImageReadError, match="005_090.bmp"):
        prepare_dataset("viper", viper, tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()
    result = prepare_dataset("viper", viper, tmp_path / "b", num_splits=1, bad_images="skip", progress=False)
    assert result.num_records == 23 and result.skipped == {"unreadable: empty": 1}
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["skipped"] == {"unreadable: empty": 1}


def test_bad_options_fail_before_writing(viper, tmp_path):
    with pytest.raises(ConfigError, match="protocol_args .*num_test_persons"):
        prepare_dataset("viper", viper, tmp_path / "a", protocol_args={"num_test_persons": 3}, progress=False)
    with pytest.raises(ConfigError, match="'half' is not one of mlr, genuine"):
        prepare_dataset("viper", viper, tmp_path / "a", protocol="half", progress=False)
    assert not (tmp_path / "a").exists()


def test_mlr_viper_real(shared, tmp_path):
    root = shared("data", "VIPeR")
    result = prepare_dataset("viper", root, tmp_path / "mlr-viper", protocol="mlr", progress=False)
    assert result.num_records == 1264 and result.num_lr == 632
    splits = load_prepared_splits(tmp_path / "mlr-viper")
    assert len(splits) == 10
    for s in splits:
        assert len(s.query) == 316 and len(s.gallery) == 316 and len({r.pid for r in s.train}) == 316
    assert len({frozenset(r.pid for r in s.query) for s in splits}) == 10


def test_genuine_caviar_real(shared, tmp_path):
    root = shared("data", "CAVIAR4REID")
    result = prepare_dataset("caviar", root, tmp_path / "caviar", protocol="genuine", progress=False)
    assert result.num_records == 1220 and result.num_lr == 0
    for s in load_prepared_splits(tmp_path / "caviar"):
        assert len({r.pid for r in s.query}) == 25 and len(s.gallery) == 25 and len({r.pid for r in s.train}) == 25
        assert {r.camid for r in s.query} == {1} and {r.camid for r in s.gallery} == {0}


# ------------------------------------------------------------------ PRID2011 and GRID: the literature's protocols

def write_image(path, size=(8, 16), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def make_prid(root, num_both=8, num_a_only=3, num_b_only=11):
    """PRID2011's single_shot layout, scaled down: persons 1..num_both in both cameras, then
    cam_a-only persons, then cam_b-only persons (the real one: 200, 185, 549)."""
    single = root / "prid_2011" / "single_shot"
    for pid in range(1, num_both + num_a_only + 1):
        write_image(single / "cam_a" / f"person_{pid:04d}.png", seed=pid)
    for pid in [*range(1, num_both + 1), *range(num_both + num_a_only + 1, num_both + num_a_only + num_b_only + 1)]:
        write_image(single / "cam_b" / f"person_{pid:04d}.png", seed=1000 + pid)
    return root


def test_prid2011_mlr_default_is_the_literature_protocol(tmp_path):
    out = tmp_path / "mlr-prid"
    result = prepare_dataset("prid2011", make_prid(tmp_path / "src"), out, num_splits=3, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["lr_camera"] == 0 and manifest["distractors"] is True
    b_only = set(range(12, 23))
    for s in load_prepared_splits(out):
        assert len({r.pid for r in s.query}) == 4 and {r.camid for r in s.query} == {0}  # cam_a, down-sampled
        assert all(r.scale in (2.0, 3.0, 4.0) for r in s.query)
        assert {r.pid for r in s.gallery} == {r.pid for r in s.query} | b_only  # + every cam_b-only person
        assert {r.camid for r in s.gallery} == {1} and len(s.gallery) == 4 + 11
        assert {r.pid for r in s.train} | {r.pid for r in s.query} == set(range(1, 9))  # 4 train, no one-camera person
        assert len({r.pid for r in s.train}) == 4
    assert any("distractors" in n for n in result.notes) and "left out" in result.summary()


def test_prid2011_protocol_options_random_camera_without_distractors(tmp_path):
    src = make_prid(tmp_path / "src")
    prepare_dataset("prid2011", src, tmp_path / "a", num_splits=1, progress=False, lr_camera="random", distractors=False)
    s = load_prepared_splits(tmp_path / "a")[0]
    assert len(s.gallery) == 4 and {r.camid for r in s.query} == {0, 1}
    with pytest.raises(ConfigError, match="distractors"):
        prepare_dataset("caviar", src, tmp_path / "b", protocol="genuine", distractors=True, progress=False)


def make_grid(root, num_pairs=10, num_distractors=7):
    base = root / "underground_reid"
    for pid in range(1, num_pairs + 1):
        write_image(base / "probe" / f"{pid:04d}_{pid % 8 + 1}_1_1_1_1.jpeg", size=(10, 24), seed=pid)
        write_image(base / "gallery" / f"{pid:04d}_{(pid + 3) % 8 + 1}_1_1_1_1.jpeg", size=(8, 20), seed=100 + pid)
    for i in range(num_distractors):
        write_image(base / "gallery" / f"0000_{i % 8 + 1}_{i}_1_1_1.jpeg", size=(8, 20), seed=200 + i)
    return root


def test_grid_genuine_is_the_grid_protocol_with_every_distractor(tmp_path):
    result = prepare_dataset("grid", make_grid(tmp_path / "src"), tmp_path / "grid", protocol="genuine", progress=False)
    splits = load_prepared_splits(tmp_path / "grid")
    assert len(splits) == 10 and result.num_lr == 0
    for s in splits:
        assert len(s.query) == 5 and all("/probe/" in r.path for r in s.query)
        assert len(s.gallery) == 5 + 7 and sum(r.pid == 0 for r in s.gallery) == 7
        assert len({r.pid for r in s.train}) == 5
    assert "features_and_partitions.mat not found" in result.summary()
    assert splits[0].notes == result.notes


def test_grid_mlr_keeps_distractors_full_size_and_in_the_gallery(tmp_path):
    prepare_dataset("grid", make_grid(tmp_path / "src"), tmp_path / "mlr-grid", num_splits=2, progress=False)
    ds = build_dataset("prepared", tmp_path / "mlr-grid")
    assert all(r.scale == 1.0 for r in ds.records if r.pid == 0)
    for s in load_prepared_splits(tmp_path / "mlr-grid"):
        assert sum(r.pid == 0 for r in s.gallery) == 7 and 0 not in {r.pid for r in s.train}


def truncated_jpeg(path, size=(24, 64)):
    """A JPEG cut in the middle of its pixel data: its header (and size) read fine."""
    pixels = np.random.default_rng(1).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=95)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])


def test_truncated_hr_jpeg_is_refused_or_counted_at_prepare_time(viper, tmp_path):
    # cam_b is the HR camera for everybody: its images are linked, and must still be decoded once
    (viper / "cam_b" / "005_090.bmp").unlink()
    truncated_jpeg(viper / "cam_b" / "005_090.jpg")
    with pytest.raises(ImageReadError, match="005_090.jpg: image file is truncated"):
        prepare_dataset("viper", viper, tmp_path / "a", lr_camera=0, num_splits=1, progress=False)
    assert not (tmp_path / "a").exists()
    result = prepare_dataset("viper", viper, tmp_path / "b", lr_camera=0, num_splits=1, bad_images="skip",
                             progress=False)
    assert result.num_records == 23 and result.skipped == {"unreadable: truncated": 1}


def test_self_looping_symlink_named_like_an_image_is_refused_or_counted(viper, tmp_path):
    link = viper / "cam_b" / "005_090.bmp"
    link.unlink()
    link.symlink_to(link.name)  # points at itself
    with pytest.raises(ImageReadError, match="005_090.bmp: .*symbolic link"):
        prepare_dataset("viper", viper, tmp_path / "a", num_splits=1, progress=False)
    result = prepare_dataset("viper", viper, tmp_path / "b", num_splits=1, bad_images="skip", progress=False)
    assert result.num_records == 23 and result.skipped == {"unreadable: broken_link": 1}


def test_lr_image_too_small_to_down_sample_is_refused_or_counted_not_recorded_as_reduced(viper, tmp_path):
    Image.new("RGB", (1, 1), (200, 10, 10)).save(viper / "cam_a" / "003_090.bmp")  # cam_a is the LR camera
    with pytest.raises(ImageReadError, match="003_090.bmp: image is 1x1 pixels, too small to down-sample by x"):
        prepare_dataset("viper", viper, tmp_path / "a", lr_camera=0, num_splits=1, progress=False)
    result = prepare_dataset("viper", viper, tmp_path / "b", lr_camera=0, num_splits=1, bad_images="skip",
                             progress=False)
    assert result.num_records == 23 and result.skipped == {"unreadable: too_small": 1}
    records = json.loads((tmp_path / "b" / "manifest.json").read_text())["records"]
    assert all(Image.open(tmp_path / "b" / r["path"]).size != (1, 1) for r in records)
