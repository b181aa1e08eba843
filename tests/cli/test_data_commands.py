"""`lrreid prepare` and `lrreid datasets`: exit codes, one-line errors, "already prepared", real data."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from lrreid.cli import run
from lrreid.data.protocols import load_prepared_splits


def cli(*argv: str) -> int:
    return run(argv)


@pytest.fixture
def make_viper(viper_writer):
    return viper_writer


def test_prepare_then_again_then_different(tmp_path, capsys, make_viper):
    root, out = make_viper(tmp_path / "VIPeR"), tmp_path / "out"
    assert cli("prepare", "viper", str(root), str(out), "--protocol", "mlr", "--factors", "2,4", "--seed", "3",
               "--splits", "2", "--quiet") == 0
    assert "16 records (8 down-sampled), 2 evaluation splits" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["factors"] == [2.0, 4.0] and manifest["seed"] == 3 and len(manifest["splits"]) == 2
    assert {r["scale"] for r in manifest["records"]} <= {1.0, 2.0, 4.0}

    assert cli("prepare", "viper", str(root), str(out), "--factors", "2,4", "--seed", "3", "--splits", "2", "-q") == 0
    assert "already prepared" in capsys.readouterr().out

    assert cli("prepare", "viper", str(root), str(out), "--seed", "4", "--splits", "2", "-q") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "different prepared dataset" in err and "\n" not in err


def test_prepare_option_errors(tmp_path, capsys, make_viper):
    root = make_viper(tmp_path / "VIPeR")
    for args, message in [
        (["--factors", "2,x"], "--factors '2,x': expected numbers"),
        (["--factors", "1,2"], "factors > 1"),
        (["--protocol", "other"], "'other' is not one of mlr, genuine"),
        (["--bad-images", "ignore"], "bad-image policy 'ignore'"),
        (["--test-ids", "9"], "cannot take 9 test persons from 8"),
        (["--lr-camera", "cam_b"], "--lr-camera 'cam_b': expected 'random' or a camera id"),
    ]:
        assert cli("prepare", "viper", str(root), str(tmp_path / "o"), "-q", *args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and message in err and "\n" not in err, (args, err)
    assert not (tmp_path / "o").exists()
    assert cli("prepare", "viper", str(tmp_path / "missing"), str(tmp_path / "o"), "-q") == 2
    assert "folder not found" in capsys.readouterr().err


def test_datasets_lists_registered_names(capsys):
    assert cli("datasets") == 0
    names = capsys.readouterr().out.split()
    assert {"synthetic", "synthetic_video", "prepared", "viper", "caviar"} <= set(names) and names == sorted(names)


def test_prepare_real_viper_and_caviar(shared, tmp_path, capsys):
    viper, caviar = shared("data", "VIPeR"), shared("data", "CAVIAR4REID")
    assert cli("prepare", "viper", str(viper), str(tmp_path / "mlr-viper"), "--protocol", "mlr", "-q") == 0
    assert "1264 records (632 down-sampled), 10 evaluation splits" in capsys.readouterr().out
    split = load_prepared_splits(tmp_path / "mlr-viper")[0]
    assert (len(split.query), len(split.gallery)) == (316, 316)
    assert cli("prepare", "caviar", str(caviar), str(tmp_path / "caviar"), "--protocol", "genuine", "-q") == 0
    split = load_prepared_splits(tmp_path / "caviar")[0]
    assert (len({r.pid for r in split.query}), len(split.gallery)) == (25, 25)


def test_prepare_prid2011_defaults_to_mlr_prid_and_says_what_it_did(tmp_path, capsys):
    single = tmp_path / "prid_2011" / "single_shot"
    rng = np.random.default_rng(0)
    for cam, persons in (("cam_a", range(1, 9)), ("cam_b", [*range(1, 7), *range(9, 14)])):  # 6 in both, 5 cam_b-only
        (single / cam).mkdir(parents=True)
        for pid in persons:
            Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(single / cam / f"person_{pid:04d}.png")
    out = tmp_path / "mlr-prid"
    assert cli("prepare", "prid2011", str(tmp_path / "prid_2011"), str(out), "--splits", "2", "-q") == 0
    text = capsys.readouterr().out
    assert "gallery distractors: 5 images" in text and "2 persons left out" in text
    split = load_prepared_splits(out)[0]
    assert {r.camid for r in split.query} == {0} and len(split.gallery) == 3 + 5
    assert cli("prepare", "prid2011", str(tmp_path / "prid_2011"), str(tmp_path / "plain"), "--splits", "1", "-q",
               "--lr-camera", "random", "--no-distractors") == 0
    assert len(load_prepared_splits(tmp_path / "plain")[0].gallery) == 3
