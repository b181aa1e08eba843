"""`lrreid demo`: trains a (here: tiny) PRI on synthetic data, prints Table 2, writes the pictures."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from lrreid.cli import run


def cli(*argv: str) -> int:
    return run(argv)


def tiny(tmp_path) -> list[str]:
    return [
        f"data.dataset_args={{num_ids: 12, images_per_camera: 2, cache_dir: {tmp_path / 'cache'}}}",
        "data.input_size=[32,16]", "model.backbone=resnet18", "model.predictor_backbone=resnet18",
        "model.feat_dim=16", "model.predictor_feat_dim=8", "model.sr_args={G0: 8, D: 2, C: 2, G: 8}",
        "schedule.pretrain_epochs=1", "schedule.joint_epochs=1",
        "train.batch_size=8", "train.num_instances=2", "train.max_iters_per_epoch=2", "train.progress=false",
    ]


@pytest.mark.slow  # two demo runs: 11-34 s
def test_demo_trains_both_phases_prints_table2_and_draws(tmp_path, capsys):
    run = tmp_path / "demo"
    assert cli("demo", *tiny(tmp_path), "--output", str(run), "--threads", "1") == 0
    out = capsys.readouterr().out
    for row in ("no SR", "fixed x1", "fixed x4", "size-based", "ideal", "adaptive (P)", "In this run P (adaptive", "Rows: no SR ="):
        assert row in out
    for name in ("probes.png", "scale_histogram.png", "losses.png"):
        assert Image.open(run / name).format == "PNG"
    report = json.loads((run / "eval.json").read_text())
    assert [r["name"] for r in report["rows"]][-1] == "adaptive (P)"
    phases = {line.split(",")[0] for line in (run / "losses.csv").read_text().splitlines()[1:]}
    assert phases == {"pretrain", "joint"}

    assert "[2/3] training PRI: 1 pre-training + 1 joint epochs" in out

    # a second run reuses the finished one (instead of failing on the existing checkpoints) and says so
    assert cli("demo", *tiny(tmp_path), "--output", str(run), "--threads", "1") == 0
    out = capsys.readouterr().out
    assert "[2/3] reusing the trained PRI in" in out and "training PRI" not in out


def test_training_left_reads_the_newest_checkpoint_position(tmp_path):
    import json

    from lrreid.cli.demo_commands import training_left
    from types import SimpleNamespace

    phases = [SimpleNamespace(name="pretrain", epochs=2), SimpleNamespace(name="joint", epochs=3)]

    def stem(phase_index, epochs_done):
        (tmp_path / "c.json").write_text(json.dumps({"position": {"phase_index": phase_index, "epochs_done": epochs_done}}))
        return tmp_path / "c"

    assert training_left(None, phases) == "all"
    assert training_left(stem(0, 2), phases) == "some"  # killed after pre-training
    assert training_left(stem(1, 1), phases) == "some"
    assert training_left(stem(1, 3), phases) == "none"


def test_demo_rejects_an_unknown_pri_key(tmp_path, capsys):
    assert cli("demo", "loss.gama=3", "--output", str(tmp_path / "x")) == 2
    err = capsys.readouterr().err
    assert "error: unknown config key 'loss.gama' (did you mean 'loss.gamma'?)" in err
