"""PRI through the engine: `lrreid train` (both phases) on synthetic data, `lrreid evaluate`, checkpoints."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from lrreid.cli import run

# every test uses a PRI trained through the CLI: ~15 s for the module
pytestmark = pytest.mark.slow


def cli(*argv: str) -> int:
    return run(argv)


def tiny_pri_config(folder, run, schedule: dict, **sections) -> str:
    """A PRI config of tiny networks on 12 synthetic persons (2 splits) written to ``folder``; ``schedule``
    holds the epochs (learning rates 1e-3), ``sections`` add to the other sections."""
    cfg = {
        "method": "pri", "seed": 0,
        "data": {"dataset": "synthetic", "protocol": "genuine", "num_splits": 2, "input_size": [32, 16],
                 "dataset_args": {"num_ids": 12, "images_per_camera": 2, "cache_dir": str(folder / "cache")}},
        "model": {"backbone": "resnet18", "pretrained": None, "feat_dim": 16, "predictor_feat_dim": 8,
                  "sr_args": {"G0": 8, "D": 2, "C": 2, "G": 8}},
        "schedule": {"lr_backbone": 1e-3, "lr_head": 1e-3, **schedule},
        "train": {"batch_size": 8, "num_instances": 2, "max_iters_per_epoch": 2, "output_dir": str(run),
                  "progress": False, "tensorboard": False},
    }
    for name, values in sections.items():
        cfg[name] = {**cfg.get(name, {}), **values}
    path = folder / "pri_tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pri_e2e")
    run = tmp / "run"
    config = tiny_pri_config(tmp, run, {"pretrain_epochs": 1, "joint_epochs": 2})
    torch.set_num_threads(1)
    assert cli("train", str(config)) == 0
    return run


def test_training_saves_both_phases_and_the_soft_label_table(trained):
    from lrreid.engine import checkpoint as ckpt_io

    ckpt = ckpt_io.load_checkpoint(trained / "checkpoints")
    assert ckpt.position.phase_name == "joint"
    extra = ckpt.extra_state
    assert extra["soft_labels.labels"].shape[1] == 4
    assert extra["soft_labels.measured"].any()  # measured during joint training
    torch.testing.assert_close(extra["soft_labels.labels"].sum(1), torch.ones(len(extra["soft_labels.labels"])))
    assert ckpt.meta["signature"]["extra"]["scales"] == [1, 2, 3, 4]


def test_evaluate_reports_table2_on_the_training_split_only(trained, capsys):
    assert cli("evaluate", str(trained)) == 0
    report = json.loads((trained / "eval.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names == ["no SR", "fixed x1", "fixed x2", "fixed x3", "fixed x4", "size-based", "ideal", "adaptive (P)"]
    # split1's test persons trained the model (split0's training persons): skipped and said so
    assert any("skipped 1 split" in n for n in report["notes"])
    assert "1 split" in report["title"]


def test_checkpoint_of_another_scale_set_or_architecture_is_one_line(trained, capsys):
    assert cli("evaluate", str(trained), "model.scales=[1,2,3]") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "scales [1, 2, 3, 4]" in err[-1] and "[1, 2, 3]" in err[-1]
    assert cli("evaluate", str(trained), "model.backbone=resnet34") == 2
    assert "backbone" in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_triplet_summary_is_a_training_message_not_a_loading_one(trained, caplog):
    """`lrreid evaluate` (and index/search/export) rebuild the method: no "training triplets" line there."""
    import logging

    from lrreid.build import build_method, build_splits, config_from_run

    caplog.set_level(logging.INFO, logger="lrreid")
    assert cli("evaluate", str(trained)) == 0
    assert not [m for m in caplog.messages if "training triplets" in m]
    cfg, _ = config_from_run(trained)
    method = build_method(cfg, build_splits(cfg))  # built to train (a loaded run has no training data)
    for phase in method.phases():  # training asks for the data once per phase; said once
        method.train_dataset(phase)
    assert len([m for m in caplog.messages if m.startswith("PRI training triplets: ")]) == 1


def test_each_split_trains_the_finetune_baseline_beside_pri_and_shows_its_row(tmp_path):
    """schedule.baseline_finetune: `--each-split` trains split<i>/finetune/ too; its row joins the table."""
    run = tmp_path / "run"
    config = tiny_pri_config(tmp_path, run, {"pretrain_epochs": 1, "joint_epochs": 1, "baseline_finetune": True,
                                             "finetune_epochs": 2},
                             eval={"splits": [1]}, train={"num_threads": 1})
    assert cli("train", str(config), "--each-split") == 0
    from lrreid.engine import checkpoint as ckpt_io

    baseline = ckpt_io.load_checkpoint(run / "split1" / "finetune" / "checkpoints")
    assert baseline.position.phase_name == "finetune" and baseline.position.epochs_done == 2
    assert json.loads((run / "split1" / "finetune" / "eval.json").read_text())["rows"][0]["name"] == "fine-tuned, no SR"
    combined = json.loads((run / "eval.json").read_text())
    names = [r["name"] for r in combined["rows"]]
    assert names[0] == "no SR" and names[-1] == "fine-tuned, no SR" and "adaptive (P)" in names
    assert any(n.startswith("training wall time per split") and "finetune" in n for n in combined["notes"])
    # a resume finds both finished and trains nothing
    assert cli("train", str(config), "--each-split", "--resume") == 0
