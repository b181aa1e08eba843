"""Benchmark: peak resident memory of one CAVIAR4REID split of the PRI CPU recipe.

Target (issue 12, docs/pri.md): peak RSS <= 3 GB for ``lrreid train configs/pri_caviar_cpu.yaml``
on split 0 (training, then the end-of-run evaluation of that split): 4.15 GB (--quick) before issue 12's
memory fix, 2.51 GB after it (docs/pri.md says where it went).

The run is a child process (``python -m lrreid.cli train ...`` with this checkout's ``src`` first on
PYTHONPATH, started from the repository root so that ``../shared/data/CAVIAR4REID`` resolves); its
peak RSS is ``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the high-water mark of the largest child.
The run folder is a temporary folder, removed afterwards.

    python benchmarks/pri_memory.py            # the whole recipe: 10 + 14 epochs, ~10+ min on 2 cores
    python benchmarks/pri_memory.py --quick    # 1 + 2 epochs: the same images cached, every kind of step
    python benchmarks/pri_memory.py --target-gb 3 train.num_threads=2   # extra KEY=VALUE overrides

Prints the peak in GB, the wall time and PASS or FAIL against the target; exits 1 on FAIL.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pri_caviar_cpu.yaml"
# The first joint epoch re-measures the soft labels (omega 4 counts from it), so 1 + 2 epochs run
# every kind of step the recipe has; the image cache holds the same images as in the full run.
QUICK = ["schedule.pretrain_epochs=1", "schedule.joint_epochs=2"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 pre-training + 2 joint epochs instead of 10 + 14")
    parser.add_argument("--target-gb", type=float, default=3.0, help="PASS when the peak RSS is at most this (GB)")
    parser.add_argument("overrides", nargs="*", help="extra KEY=VALUE config overrides")
    args = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    with tempfile.TemporaryDirectory(prefix="pri-memory-") as tmp:
        overrides = ["eval.splits=[0]", "train.progress=false", f"train.output_dir={Path(tmp) / 'run'}",
                     *(QUICK if args.quick else []), *args.overrides]
        command = [sys.executable, "-m", "lrreid.cli", "train", str(CONFIG), *overrides]
        print("running:", " ".join(command), flush=True)
        start = time.perf_counter()
        status = subprocess.run(command, cwd=REPO, env=env).returncode
        seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux
    if status != 0:
        print(f"FAIL: the training run exited with status {status} after {seconds:.0f} s")
        return 1
    verdict = "PASS" if peak_gb <= args.target_gb else "FAIL"
    print(f"PRI CPU recipe, CAVIAR4REID split 0{' (--quick)' if args.quick else ''}: peak RSS {peak_gb:.2f} GB "
          f"in {seconds:.0f} s; target <= {args.target_gb:g} GB: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
