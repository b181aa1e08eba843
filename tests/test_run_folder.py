"""A trained run is a thing of its own: its folder, copied alone, serves search and evaluation.

The run is trained on a prepared dataset; then the run folder is copied to another place and the
dataset moved away from where the run's config says it is.  ``index``/``search`` need nothing
else; ``evaluate`` needs data and is given the dataset's new place on the command line.
"""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from lrreid.cli import run as cli_run


def cli(*argv) -> int:
    return cli_run([str(a) for a in argv])


@pytest.fixture(scope="module")
def trained_elsewhere(tmp_path_factory, viper_writer):
    """A tiny PRI trained on a prepared MLR-VIPeR look-alike in ``a/``; returns (tmp, run, prepared)."""
    tmp = tmp_path_factory.mktemp("run_folder")
    a = tmp / "a"
    prepared = a / "prepared"
    assert cli("prepare", "viper", viper_writer(a / "VIPeR"), prepared, "--splits", "2", "--quiet") == 0
    config = a / "pri.yaml"
    config.write_text(yaml.safe_dump({
        "method": "pri", "seed": 0,
        "data": {"protocol": "prepared", "prepared": str(prepared), "input_size": [32, 16]},
        "model": {"backbone": "resnet18", "pretrained": None, "feat_dim": 16, "predictor_feat_dim": 8,
                  "sr_args": {"G0": 8, "D": 2, "C": 2, "G": 8}},
        "triplets": {"lr_size": "native"},
        "schedule": {"pretrain_epochs": 1, "joint_epochs": 1},
        "train": {"batch_size": 4, "num_instances": 2, "max_iters_per_epoch": 1, "output_dir": str(a / "run"),
                  "progress": False, "tensorboard": False},
        "eval": {"at_end": False},
    }))
    torch.set_num_threads(1)
    assert cli("train", config) == 0
    return tmp, a / "run", prepared


def test_a_copied_run_folder_searches_and_evaluates_without_its_dataset(trained_elsewhere, capsys):
    from lrreid.inference.loading import load_pipeline

    tmp, run, prepared = trained_elsewhere
    gallery = sorted((prepared).rglob("*.png")) + sorted(prepared.rglob("*.bmp"))
    assert gallery, "the prepared folder has images"
    photos = tmp / "photos"
    photos.mkdir()
    for i, path in enumerate(gallery[:6]):
        shutil.copy(path, photos / f"{i}{path.suffix}")
    before = load_pipeline(run, fast=False, device="cpu").embed_gallery(sorted(photos.iterdir()))
    assert cli("evaluate", run) == 0
    table_before = json.loads((run / "eval.json").read_text())["rows"]
    capsys.readouterr()

    # the run folder alone, somewhere else; the dataset no longer where the config says
    copy = tmp / "elsewhere" / "run"
    shutil.copytree(run, copy)
    (copy / "eval.json").unlink()
    moved = tmp / "moved"
    shutil.move(prepared, moved)
    try:
        after = load_pipeline(copy, fast=False, device="cpu").embed_gallery(sorted(photos.iterdir()))
        torch.testing.assert_close(after, before)
        index = tmp / "index"
        assert cli("index", photos, "--model", copy, "--out", index) == 0
        capsys.readouterr()
        assert cli("search", sorted(photos.iterdir())[0], "--index", index, "--json", "-k", "2") == 0
        results = json.loads(capsys.readouterr().out)["results"]
        assert len(results[0]["matches"]) == 2

        # evaluate needs data: the prepared dataset's new place, on the command line
        assert cli("evaluate", copy, f"data.prepared={moved}") == 0
        assert json.loads((copy / "eval.json").read_text())["rows"] == table_before
    finally:
        shutil.move(moved, prepared)


def test_a_checkpoint_from_before_derived_settings_still_loads(trained_elsewhere, tmp_path):
    """Checkpoints written before ``derived`` existed: the same numbers from their shapes."""
    from lrreid.build import load_trained
    from lrreid.engine.checkpoint import find_last

    _, run, _ = trained_elsewhere
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    stem = find_last(copy / "checkpoints")
    meta = json.loads(stem.with_suffix(".json").read_text())
    derived = meta.pop("derived")
    assert derived["classes"] > 0 and derived["lr_images"] > 0 and derived["hr_mean_area"] > 0
    stem.with_suffix(".json").write_text(json.dumps(meta))
    _, method, _ = load_trained(copy)
    assert method.reid_net.num_classes == derived["classes"] and len(method.soft_labels) == derived["lr_images"]
    assert float(method.hr_mean_area) == pytest.approx(derived["hr_mean_area"])
