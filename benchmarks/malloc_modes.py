"""Benchmark: the cost of the two ways to stop glibc's heaps from holding freed activations.

Times a training step (forward + backward of an OSNet x1.0, the size of Intel's 0277, random weights,
batches of 12 and 16 alternately at 256x128) in three modes, each in its own process so that one
mode's malloc state cannot leak into another's:

* ``plain``: glibc's defaults (fast; the resident size keeps what fragmentation strands);
* ``trim``: ``malloc_trim`` after every step (what the lrreid engine does);
* ``mmap``: the mmap threshold fixed at 1 MiB (``LRREID_MALLOC=mmap``; what the CLI did first).

Prints per mode the median step time, its ratio to ``plain``, user and system CPU seconds, and the
resident size after the last step.  Target: ``trim`` at most 1.4x ``plain`` (issue 11's S3-CLIP
and issue 10's PRI runs train for hours on this CPU; ``mmap`` measured 2.4-2.6x).

    python benchmarks/malloc_modes.py [--steps 8] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
mode, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
from lrreid.utils import memory
if mode == "mmap":
    memory.fix_malloc_mmap_threshold()
torch.manual_seed(0)
torch.set_num_threads(threads)
from lrreid.models.reid.encoder import build_encoder
net = build_encoder("osnet_omz_x1_0")
times = []
for i in range(steps):
    x = torch.rand(16 if i % 2 else 12, 3, 256, 128)
    start = time.perf_counter()
    net(x).sum().backward()
    net.zero_grad(set_to_none=True)
    if mode == "trim":
        memory.release_freed_memory()
    times.append(time.perf_counter() - start)
usage = resource.getrusage(resource.RUSAGE_SELF)
rss = int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e9
print(json.dumps({"times": times[1:], "user": usage.ru_utime, "sys": usage.ru_stime, "rss_gb": rss}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=1.4, help="PASS when trim/plain is at most this")
    args = parser.parse_args()
    results = {}
    for mode in ("plain", "trim", "mmap"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(args.steps), str(args.threads)],
                             capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    base = statistics.median(results["plain"]["times"])
    for mode, r in results.items():
        med = statistics.median(r["times"])
        print(f"{mode:6s} step {med:.2f} s ({med / base:.2f}x plain)  user {r['user']:.1f} s  sys {r['sys']:.1f} s  "
              f"resident after {r['rss_gb']:.2f} GB")
    ratio = statistics.median(results["trim"]["times"]) / base
    verdict = "PASS" if ratio <= args.target else "FAIL"
    print(f"trim / plain = {ratio:.2f}x; target <= {args.target:g}x: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
