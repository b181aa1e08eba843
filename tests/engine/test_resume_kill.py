"""Kill a real training process (SIGKILL) and resume it: the result equals an uninterrupted run.

Three ``lrreid train`` processes on the toy method (2 phases, Adam, StepLR, per-epoch extra state):
A is killed at the start of joint epoch 2, right after the checkpoint of joint epoch 1;
B (--resume) is killed in the middle of writing the checkpoint of joint epoch 2 (tensor file
written, JSON not); C (--resume) finishes.  Its final weights, extra state and loss history must
equal those of an uninterrupted run with the same seed.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lrreid.engine import read_loss_history
from lrreid.engine.checkpoint import find_last, load_checkpoint

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from test_trainer import TOY_FILE, make_trainer, toy  # noqa: E402


def run_cli(config: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in (toy.KILL_ENV, toy.KILL_IN_WRITE_ENV)}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "lrreid.cli", "train", str(config), *args],
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow  # three subprocess runs: 8-13 s
def test_sigkilled_run_resumes_to_the_same_weights(tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "method": "toy", "imports": [TOY_FILE], "seed": 0,
        "data": {"dataset": "toy_points", "protocol": "genuine", "num_splits": 2},
        "train": {"batch_size": 8, "num_instances": 2, "output_dir": str(run), "progress": False, "tensorboard": False},
    }))
    ckpts = run / "checkpoints"

    a = run_cli(config, env_extra={toy.KILL_ENV: "joint:1"})
    assert a.returncode == -signal.SIGKILL, a.stderr[-2000:]
    assert find_last(ckpts) == ckpts / "p1-joint-e001"
    assert not (ckpts / "p1-joint-e002.safetensors").exists()

    b = run_cli(config, "--resume", env_extra={toy.KILL_IN_WRITE_ENV: "p1-joint-e002"})
    assert b.returncode == -signal.SIGKILL, b.stderr[-2000:]
    assert (ckpts / "p1-joint-e002.safetensors").exists() and not (ckpts / "p1-joint-e002.json").exists()
    assert find_last(ckpts) == ckpts / "p1-joint-e001"  # the half-written one is ignored

    c = run_cli(config, "--resume")
    assert c.returncode == 0, c.stderr[-2000:]
    assert "resuming from p1-joint-e001" in c.stderr

    reference = make_trainer(tmp_path / "reference")
    reference.train()
    final = load_checkpoint(ckpts)
    assert final.path.name == "p1-joint-e003"
    for key, value in reference.method.state_dict().items():
        torch.testing.assert_close(final.model_state[key], value, rtol=0, atol=1e-6, msg=key)
    torch.testing.assert_close(final.extra_state["sample_weights"], reference.method.sample_weights, rtol=0, atol=0)
    rows, ref_rows = read_loss_history(run / "losses.csv"), read_loss_history(tmp_path / "reference" / "losses.csv")
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in ref_rows]
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in ref_rows], abs=1e-6)
