"""`lrreid train` / `lrreid evaluate`: a run end to end, and one-line errors with exit status 2."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lrreid.cli import run

TOY_FILE = str(Path(__file__).resolve().parents[1] / "engine" / "toy_method.py")


def toy_yaml(tmp_path: Path, run: Path, method: str = "toy") -> Path:
    path = tmp_path / f"{method}.yaml"
    path.write_text(yaml.safe_dump({
        "method": method, "imports": [TOY_FILE], "seed": 0,
        "data": {"dataset": "toy_points", "protocol": "genuine", "num_splits": 2},
        "train": {"batch_size": 8, "num_instances": 2, "output_dir": str(run), "progress": False, "tensorboard": False},
        "schedule": {"warmup_epochs": 1, "joint_epochs": 1},
    }))
    return path


def available_devices() -> list[str]:
    import torch

    return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def cli(*argv: str) -> int:
    return run(argv)


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    return [line for line in err.splitlines() if line.startswith("error:")], err


def test_train_then_evaluate_writes_the_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", str(toy_yaml(tmp_path, tmp_path / "ignored")), "--output", str(run)) == 0
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["output_dir"] == str(run)  # --output is recorded in the resolved config

    assert cli("evaluate", str(run), "eval.splits=[1]") == 0
    out = capsys.readouterr().out
    assert "toy rank-1" in out and "rank1" in out
    report = json.loads((run / "eval.json").read_text())
    assert report["rows"][0]["name"] == "toy" and 0.0 <= report["rows"][0]["metrics"]["rank1"] <= 1.0
    assert (run / "eval.md").read_text().startswith("## toy rank-1")

    # evaluating one checkpoint file, into another folder (the newest: train.keep_checkpoints=last removed the warm-up's)
    assert sorted(p.name for p in (run / "checkpoints").glob("*.json")) == ["p1-joint-e001.json"]
    out_dir = tmp_path / "elsewhere"
    assert cli("evaluate", str(run / "checkpoints" / "p1-joint-e001.safetensors"), "--output", str(out_dir)) == 0
    assert (out_dir / "eval.md").is_file()


def test_resume_finishes_and_a_fresh_start_is_refused(tmp_path, capsys):
    cfg = toy_yaml(tmp_path, tmp_path / "run")
    assert cli("train", str(cfg), "schedule.joint_epochs=0") == 0
    saved_config = (tmp_path / "run" / "config.yaml").read_text()
    assert cli("train", str(cfg)) == 2
    errors, _ = error_lines(capsys)
    assert len(errors) == 1 and "already has checkpoints; pass --resume" in errors[0]
    assert (tmp_path / "run" / "config.yaml").read_text() == saved_config  # the refused start wrote nothing
    assert cli("train", str(cfg), "--resume") == 0  # continues with the joint phase
    assert (tmp_path / "run" / "checkpoints" / "p1-joint-e001.json").is_file()


@pytest.mark.parametrize("argv, expected", [
    (["train", "{tmp}/missing.yaml"], "error: config file '{tmp}/missing.yaml' not found"),
    (["train", "{cfg}", "train.batchsize=4"], "error: unknown config key 'train.batchsize' (did you mean 'train.batch_size'?)"),
    (["train", "{cfg}", "train.batchsize=4", "--nproc", "2"], "error: unknown config key 'train.batchsize' (did you mean 'train.batch_size'?)"),
    (["train", "{cfg}", "train.batch_size=abc"], "error: config key 'train.batch_size' = 'abc': expected int"),
    (["train", "{cfg}", "nonsense"], "error: override 'nonsense' is not KEY=VALUE (e.g. train.batch_size=8)"),
    (["evaluate", "{tmp}/no-run"], "error: checkpoint '{tmp}/no-run' not found"),
    (["train", "{cfg}", "train.device=cuda:7"],
     "error: train.device 'cuda:7': not available on this machine (available: {devices})"),
    (["train", "{cfg}", "train.device=banana"],
     "error: train.device 'banana': not a device (expected auto, cpu, cuda or cuda:N; available: {devices})"),
])
def test_user_mistakes_give_one_error_line_and_status_2(tmp_path, capsys, argv, expected):
    cfg = toy_yaml(tmp_path, tmp_path / "run")
    argv = [a.format(tmp=tmp_path, cfg=cfg) for a in argv]
    assert cli(*argv) == 2
    errors, err = error_lines(capsys)
    assert errors == [expected.format(tmp=tmp_path, devices=", ".join(available_devices()))], err
    assert "Traceback" not in err


def test_checkpoint_of_another_method_or_architecture(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli("train", str(toy_yaml(tmp_path, run)), "schedule.joint_epochs=0") == 0
    capsys.readouterr()

    assert cli("train", str(toy_yaml(tmp_path, run, method="toy_b")), "--resume") == 2
    errors, _ = error_lines(capsys)
    assert errors == [f"error: {run}/checkpoints/p0-warmup-e001.json: checkpoint of method 'toy', this run uses 'toy_b'"]

    assert cli("evaluate", str(run), "model.hidden=7") == 2
    errors, _ = error_lines(capsys)
    assert len(errors) == 1 and "different architecture: 'encoder.weight' has shape [6, 8] in the checkpoint, [7, 8]" in errors[0]


def test_console_entry_point_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "lrreid.cli", "train", str(tmp_path / "nope.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: config file '{tmp_path / 'nope.yaml'}' not found"]


def test_a_run_that_fails_to_start_leaves_no_config_yaml(tmp_path, capsys):
    run = tmp_path / "run"
    cfg = toy_yaml(tmp_path, run)
    assert cli("train", str(cfg), "data.dataset=no_such_dataset") == 2  # fails while building the splits
    assert not (run / "config.yaml").exists()
    assert cli("train", str(cfg), "data.protocol_args={bad_option: 1}") == 2
    assert not (run / "config.yaml").exists()
    assert cli("train", str(cfg), "train.precision=fp16", "train.device=cpu") == 2  # refused by the trainer
    assert not (run / "config.yaml").exists()
    assert cli("train", str(cfg), "schedule.joint_epochs=0") == 0 and (run / "config.yaml").is_file()


# --------------------------------------------------------------------------- evaluate --model (no training)
def test_evaluate_a_weight_file_with_no_training_on_a_prepared_dataset(tmp_path, capsys, viper_writer):
    from lrreid.cli import run
    from lrreid.data.protocols import load_prepared_splits
    from lrreid.evaluation.zero_shot import evaluate_encoders
    from lrreid.models.reid import build_encoder

    root, prepared = viper_writer(tmp_path / "VIPeR", colour_per_person=True), tmp_path / "prepared"
    assert run(["prepare", "viper", str(root), str(prepared), "--protocol", "mlr", "--splits", "2", "-q"]) == 0
    torch.manual_seed(0)
    weights = tmp_path / "osnet_x0_25.pth"
    torch.save(build_encoder("osnet_x0_25", num_classes=3).state_dict(), weights)
    capsys.readouterr()
    assert run(["evaluate", "--model", str(weights), str(prepared), "--output", str(tmp_path / "zs")]) == 0
    out = capsys.readouterr().out
    assert "2 splits" in out and "osnet_x0_25" in out
    saved = json.loads((tmp_path / "zs" / "eval.json").read_text())
    row = saved["rows"][0]
    # the table is the per-split evaluation of that network, averaged: recompute it independently
    direct = evaluate_encoders([weights], load_prepared_splits(prepared))
    assert row["metrics"]["Rank-1"] == pytest.approx(direct.rows[0].metrics["Rank-1"])
    assert 0.0 <= row["metrics"]["Rank-1"] <= 100.0 and "img/s" in row["metrics"]


def test_evaluate_model_errors_are_one_line(tmp_path, capsys, viper_writer):
    from lrreid.cli import run

    root, prepared = viper_writer(tmp_path / "VIPeR", 4), tmp_path / "prepared"
    assert run(["prepare", "viper", str(root), str(prepared), "--protocol", "mlr", "--splits", "1", "-q"]) == 0
    junk = tmp_path / "notes.pth"
    junk.write_text("not weights")
    capsys.readouterr()
    for argv, expected in [
        (["evaluate", "--model", str(junk), str(prepared)], "notes.pth: not a PyTorch or safetensors checkpoint"),
        (["evaluate", "--model", str(tmp_path / "missing.xml"), str(prepared)], "missing.xml: no such"),
        (["evaluate", "--model", "osnet_x0_25", str(tmp_path / "nowhere")], "expected a prepared dataset folder"),
    ]:
        assert run(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and expected in err, err
