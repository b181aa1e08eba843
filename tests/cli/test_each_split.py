"""`lrreid train --each-split` / `lrreid evaluate` of such a run: one model per split of a random-split
protocol, the combined mean ± std report, resume that skips finished splits, and the refusals."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from lrreid.cli import run as cli_run
from lrreid.engine.checkpoint import find_last, load_checkpoint
from lrreid.errors import ProtocolError
from lrreid.methods.base import EvalReport, combine_split_reports

TOY_FILE = str(Path(__file__).resolve().parents[1] / "engine" / "toy_method.py")
NUM_SPLITS = 3


def toy_yaml(folder: Path, run: Path) -> Path:
    path = folder / "toy.yaml"
    path.write_text(yaml.safe_dump({
        "method": "toy", "imports": [TOY_FILE], "seed": 0,
        "data": {"dataset": "toy_points", "protocol": "genuine", "num_splits": NUM_SPLITS},
        "train": {"batch_size": 8, "num_instances": 2, "output_dir": str(run), "progress": False,
                  "tensorboard": False, "device": "cpu",
                  # every checkpoint: a test fakes a run killed in the joint phase by deleting its newest one
                  "keep_checkpoints": "all"},
        "schedule": {"warmup_epochs": 1, "joint_epochs": 1},
    }))
    return path


def cli(*argv: str) -> int:
    return cli_run(argv)


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def final_weights(sub_run: Path) -> dict:
    return load_checkpoint(sub_run).model_state


def file_times(folder: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One `--each-split` run over all 3 splits, shared by the tests (each copies it before changing it)."""
    folder = tmp_path_factory.mktemp("each_split")
    run = folder / "run"
    config = toy_yaml(folder, run)
    assert cli("train", str(config), "--each-split") == 0
    return config, run


# ------------------------------------------------------------------------------------------------
def test_combine_split_reports_mean_std_missing_rows_and_notes():
    a = EvalReport("PRI scale-factor predictors (Table 2), 1 split")
    a.add("x1", {"rank1": 0.2, "mAP": 0.3}, std={"rank1": 0.0})
    a.add("adaptive (P)", {"rank1": 0.25, "mAP": 0.35})
    a.counts["picked"] = {"x1": 10, "x2": 2, "x4": 1}
    a.notes += ["skipped 3 probe(s) smaller than 8 px on a side"]
    b = EvalReport("PRI scale-factor predictors (Table 2), 1 split")
    b.add("x1", {"rank1": 0.4})  # no mAP here
    b.add("adaptive (P)", {"rank1": 0.45, "mAP": 0.5})
    b.counts["picked"] = {"x1": 5, "x4": 7}
    c = EvalReport("PRI scale-factor predictors (Table 2), 1 split")
    c.add("x1", {"rank1": 0.9, "mAP": 0.6})
    c.counts["picked"] = {"x2": 4}  # and no adaptive row at all

    out = combine_split_reports([a, b, c], ["split0", "split3", "split7"])
    assert out.title == "PRI scale-factor predictors (Table 2), 3 splits, one model per split"
    rows = {r.name: r for r in out.rows}
    assert [r.name for r in out.rows] == ["x1", "adaptive (P)"]
    assert rows["x1"].metrics["rank1"] == pytest.approx(np.mean([0.2, 0.4, 0.9]))
    assert rows["x1"].std["rank1"] == pytest.approx(np.std([0.2, 0.4, 0.9]))  # population std, ddof=0
    assert rows["x1"].metrics["mAP"] == pytest.approx(np.mean([0.3, 0.6]))
    assert rows["adaptive (P)"].std["mAP"] == pytest.approx(np.std([0.35, 0.5]))
    assert out.counts == {"picked (sum over 3 splits)": {"x1": 15, "x2": 6, "x4": 8}}
    assert "picked (sum over 3 splits): x1 15, x2 6, x4 8" in out.to_markdown()
    assert "split0: skipped 3 probe(s) smaller than 8 px on a side" in out.notes
    assert any("'adaptive (P)'" in n and "missing in split7" in n and "other 2 split(s)" in n for n in out.notes)
    assert any("no mAP in split3" in n for n in out.notes)
    assert EvalReport.from_dict(out.to_dict()).counts == out.counts
    assert "± " in out.to_markdown()

    with pytest.raises(ProtocolError):
        combine_split_reports([], [])


def test_combine_split_reports_doctest():
    import doctest

    import lrreid.methods.base as base

    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(base.combine_split_reports, "combine_split_reports", globs=vars(base)):
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0


# ------------------------------------------------------------------------------------------------
def test_each_split_trains_one_model_per_split_and_combines(trained, tmp_path):
    config, run = trained
    top = yaml.safe_load((run / "config.yaml").read_text())
    assert top["train"]["one_model_per_split"] is True and top["train"]["output_dir"] == str(run)

    subs = []
    for i in range(NUM_SPLITS):
        sub = run / f"split{i}"
        saved = yaml.safe_load((sub / "config.yaml").read_text())
        assert saved["data"]["split_for_training"] == i and saved["eval"]["splits"] == [i]
        assert saved["train"]["output_dir"] == str(sub) and saved["train"]["one_model_per_split"] is False
        assert load_checkpoint(sub).meta["config"]["data"]["split_for_training"] == i  # what the trainer was given
        assert (sub / "eval.md").is_file() and (sub / "losses.csv").is_file()
        subs.append(report(sub / "eval.json"))
    # different training persons -> different models
    assert not torch.equal(final_weights(run / "split0")["encoder.weight"], final_weights(run / "split1")["encoder.weight"])

    combined = report(run / "eval.json")
    assert combined["title"] == f"toy rank-1, {NUM_SPLITS} splits, one model per split"
    values = [s["rows"][0]["metrics"]["rank1"] for s in subs]
    row = combined["rows"][0]
    assert row["name"] == "toy"
    assert row["metrics"]["rank1"] == pytest.approx(float(np.mean(values)), abs=1e-12)
    assert row["std"]["rank1"] == pytest.approx(float(np.std(values)), abs=1e-12)
    assert (run / "eval.md").read_text().startswith(f"## toy rank-1, {NUM_SPLITS} splits")

    # split 1's sub-run is exactly the ordinary run trained with data.split_for_training=1
    single = tmp_path / "single"
    assert cli("train", str(config), "data.split_for_training=1", "--output", str(single)) == 0
    ref, got = final_weights(single), final_weights(run / "split1")
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_evaluate_an_each_split_run(trained, tmp_path, capsys):
    _, run = trained
    out = tmp_path / "eval"
    assert cli("evaluate", str(run), "--output", str(out)) == 0
    assert "one model per split" in capsys.readouterr().out
    again = report(out / "eval.json")
    assert again == report(run / "eval.json")  # the same models on the same splits
    for i in range(NUM_SPLITS):
        assert report(out / f"split{i}" / "eval.json") == report(run / f"split{i}" / "eval.json")

    # eval.splits picks sub-runs; each is still evaluated on its own split
    picked = tmp_path / "picked"
    assert cli("evaluate", str(run), "eval.splits=[0,2]", "--output", str(picked)) == 0
    got = report(picked / "eval.json")
    values = [report(run / f"split{i}" / "eval.json")["rows"][0]["metrics"]["rank1"] for i in (0, 2)]
    assert got["title"].startswith("toy rank-1, 2 splits") and not (picked / "split1").exists()
    assert got["rows"][0]["metrics"]["rank1"] == pytest.approx(float(np.mean(values)), abs=1e-12)


def test_resume_retrains_only_unfinished_splits(trained, tmp_path, caplog):
    config, original = trained
    run = tmp_path / "run"
    shutil.copytree(original, run)
    for name in ("config.yaml", "split0/config.yaml", "split1/config.yaml", "split2/config.yaml"):  # point at the copy
        text = (run / name).read_text().replace(str(original), str(run))
        (run / name).write_text(text)
    before = {i: final_weights(run / f"split{i}") for i in range(NUM_SPLITS)}
    split0_times = file_times(run / "split0" / "checkpoints")
    split0_report = (run / "split0" / "eval.json").stat().st_mtime_ns

    # split 1: nothing left (fresh start); split 2: killed inside the joint phase (resume from warm-up)
    shutil.rmtree(run / "split1" / "checkpoints")
    (run / "split1" / "eval.json").unlink()
    (run / "split2" / "eval.json").unlink()
    for suffix in (".json", ".safetensors"):
        (run / "split2" / "checkpoints" / f"p1-joint-e001{suffix}").unlink()
    warmup_time = (run / "split2" / "checkpoints" / "p0-warmup-e001.safetensors").stat().st_mtime_ns
    assert find_last(run / "split2" / "checkpoints").name == "p0-warmup-e001"

    caplog.set_level(logging.INFO, logger="lrreid")
    assert cli("train", str(config), "--each-split", "--output", str(run), "--resume") == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "lrreid.train"]
    assert any(line.startswith("split 0 (run 1 of 3): finished before") for line in lines), lines
    assert any(line.startswith("split 1 (run 2 of 3): training from scratch") for line in lines), lines
    assert any(line.startswith("split 2 (run 3 of 3): resuming from its last checkpoint") for line in lines), lines

    assert file_times(run / "split0" / "checkpoints") == split0_times  # split 0 untouched
    assert (run / "split0" / "eval.json").stat().st_mtime_ns == split0_report
    assert (run / "split2" / "checkpoints" / "p0-warmup-e001.safetensors").stat().st_mtime_ns == warmup_time
    for i in range(NUM_SPLITS):
        after = final_weights(run / f"split{i}")
        assert all(torch.equal(before[i][k], after[k]) for k in after), i  # deterministic: the same models again
    resumed, first = report(run / "eval.json"), report(original / "eval.json")
    for r in (resumed, first):  # the wall-time note is a measurement of this run, not a result
        r["notes"] = [n for n in r.get("notes", []) if not n.startswith("training wall time")]
    assert resumed == first


def test_existing_run_is_refused_without_resume(trained, tmp_path, capsys):
    config, original = trained
    run = tmp_path / "run"
    shutil.copytree(original, run)
    (run / "config.yaml").write_text("marker: the refused start must not rewrite this\n")
    assert cli("train", str(config), "--each-split", "--output", str(run)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{run / 'split0'} already has checkpoints; pass --resume" in errors[0]
    assert (run / "config.yaml").read_text().startswith("marker:")


def test_user_mistakes_give_one_error_line(trained, tmp_path, capsys):
    config, original = trained
    assert cli("train", str(config), "--each-split", "eval.splits=[0,5]", "--output", str(tmp_path / "a")) == 2
    assert cli("train", str(config), "--each-split", "eval.splits=[1,1]", "--output", str(tmp_path / "b")) == 2
    run = tmp_path / "run"
    shutil.copytree(original, run)
    shutil.rmtree(run / "split2")
    assert cli("evaluate", str(run)) == 2
    assert cli("evaluate", str(run), "data.split_for_training=0") == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 4, errors
    assert "split 5 does not exist (there are 3)" in errors[0]
    assert "listed twice" in errors[1]
    assert f"{run / 'split2'}: no trained model for split 2" in errors[2] and "eval.splits=[...]" in errors[2]
    assert "data.split_for_training=0" in errors[3]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    # the remaining splits can still be evaluated
    assert cli("evaluate", str(run), "eval.splits=[0,1]") == 0


@pytest.mark.slow  # two gloo processes via torchrun: 9 s idle, more on a busy machine
def test_each_split_under_ddp_matches_one_process(trained, tmp_path):
    """`--each-split --nproc 2`: the torchrun processes train each split in turn, like one process."""
    import os
    import subprocess
    import sys

    config, single = trained
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "lrreid.cli", "train", str(config), "eval.splits=[0,2]",
                           "--each-split", "--nproc", "2", "--output", str(run)],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("all 2 processes hold identical weights") == 2
    assert sorted(p.name for p in run.glob("split*")) == ["split0", "split2"]
    for i in (0, 2):
        ddp, ref = final_weights(run / f"split{i}"), final_weights(single / f"split{i}")
        for key in ref:
            torch.testing.assert_close(ddp[key], ref[key], rtol=0, atol=1e-5, msg=key)
    assert report(run / "eval.json")["title"] == "toy rank-1, 2 splits, one model per split"


def test_a_model_is_one_sub_run_not_the_whole_folder(trained):
    from lrreid.build import load_run
    from lrreid.errors import CheckpointError

    _, run = trained
    with pytest.raises(CheckpointError, match="one-model-per-split run .*split0"):
        load_run(run)
    assert load_run(run / "split1") is not None



def test_each_split_run_that_fails_to_start_leaves_no_config_yaml(tmp_path):
    run = tmp_path / "run"
    # fp16 on a CPU is refused when the trainer is built, after the splits and the method
    assert cli("train", str(toy_yaml(tmp_path, run)), "--each-split", "train.precision=fp16") == 2
    assert not list(run.rglob("config.yaml")) if run.exists() else True
