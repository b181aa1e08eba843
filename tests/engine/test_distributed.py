"""Two CPU processes (gloo) started by `lrreid train --nproc 2` (torchrun underneath).

Checks: every rank holds the same weights at every epoch start and at the end; only rank 0 writes
the run folder; and the result equals a single-process run with the same global batch.

Why the two agree: train.batch_size is the global batch, each of N processes takes batch/N; the
sampler (here DistributedSampler, identity_batches=false) deals the shuffled order round-robin, so
the two per-rank batches of step i together are exactly the single process's batch i; DDP averages
the gradients of per-rank mean losses, which equals the gradient of the global mean for a loss that
is a mean over independent samples (the toy's weighted cross-entropy; not batch-hard triplet or
BatchNorm statistics).  Only floating-point summation order differs.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from lrreid.engine.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_trainer import TOY_FILE, make_trainer, toy  # noqa: E402

OVERRIDES = ["schedule.identity_batches=false", "schedule.warmup_epochs=1", "schedule.joint_epochs=2"]


@pytest.mark.slow  # two gloo processes: 9 s idle
def test_two_gloo_processes_match_each_other_and_a_single_process_run(tmp_path):
    run, dumps = tmp_path / "ddp", tmp_path / "dumps"
    dumps.mkdir()
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "method": "toy", "imports": [TOY_FILE], "seed": 0,
        "data": {"dataset": "toy_points", "protocol": "genuine", "num_splits": 2},
        "train": {"batch_size": 8, "output_dir": str(run), "progress": False, "device": "cpu"},
    }))
    env = {**os.environ, toy.DUMP_ENV: str(dumps), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "lrreid.cli", "train", str(config), *OVERRIDES, "--nproc", "2"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all 2 processes hold identical weights" in proc.stderr

    # the same weights on both ranks at the start of every epoch (after all previous updates)
    epochs = [("warmup", 0), ("joint", 0), ("joint", 1)]
    for phase, epoch in epochs:
        r0 = load_file(dumps / f"rank0-{phase}-{epoch}.safetensors")
        r1 = load_file(dumps / f"rank1-{phase}-{epoch}.safetensors")
        assert all(torch.equal(r0[k], r1[k]) for k in r0), (phase, epoch)

    # rank 0 alone wrote the run folder: one event file, one loss history with every step once
    assert len(list((run / "tensorboard").glob("events.*"))) == 1
    lines = (run / "losses.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * 6  # header + 3 epochs x 48 items / global batch 8

    single = make_trainer(tmp_path / "single", *OVERRIDES, "train.device=cpu")
    single.train()
    final = load_checkpoint(run).model_state
    for key, value in single.method.state_dict().items():
        torch.testing.assert_close(final[key], value, rtol=0, atol=1e-5, msg=key)
    # a different data order would not agree: the toy's weights move far more than the tolerance
    assert (final["encoder.weight"] - load_file(dumps / "rank0-warmup-0.safetensors")["encoder.weight"]).abs().max() > 1e-2
