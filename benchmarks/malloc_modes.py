"""Benchmark: the cost of the two ways to stop glibc's heaps from holding freed activations.

Times an S3-CLIP-shaped training step (random weights: CARN-M x2 from 128x64 to 256x128, then
an OSNet x1.0 the size of Intel's 0277, forward + backward, 12 and 16 frames alternately) in each
of lrreid.utils.memory's allocator modes, each in its own process so that one mode's malloc state
cannot leak into another's (``default`` is glibc as it is; see that module for the others).

Prints per mode the median step time, its ratio to ``default``, user and system CPU seconds, and
the resident size after the last step.  Target: ``reuse`` (``LRREID_MALLOC=reuse``) no slower
than ``default`` (ratio <= 1.0; measured 0.61x here, where page faults are expensive); ``trim``
(lrreid's default, for memory) and ``mmap`` (the first fix of issue 12) are shown for what they
cost (measured 1.00x and 1.59x).

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
memory.configure_allocator(mode)
torch.manual_seed(0)
torch.set_num_threads(threads)
from lrreid.models.reid.encoder import build_encoder
from lrreid.models.sr import SR_MODELS
net = build_encoder("osnet_omz_x1_0")
sr = SR_MODELS.get("carn_m")()
times = []
for i in range(steps):
    x = torch.rand(16 if i % 2 else 12, 3, 128, 64)
    start = time.perf_counter()
    net(sr(x, 2)).sum().backward()
    net.zero_grad(set_to_none=True)
    sr.zero_grad(set_to_none=True)
    memory.step_done()
    times.append(time.perf_counter() - start)
usage = resource.getrusage(resource.RUSAGE_SELF)
rss = int(open("/proc/self/statm").read().split()[1]) * 4096 / 1e9
print(json.dumps({"times": times[1:], "user": usage.ru_utime, "sys": usage.ru_stime, "rss_gb": rss}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--target", type=float, default=1.0, help="PASS when reuse/default is at most this")
    args = parser.parse_args()
    results = {}
    for mode in ("default", "reuse", "trim", "mmap"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode, str(args.steps), str(args.threads)],
                             capture_output=True, text=True, check=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    base = statistics.median(results["default"]["times"])
    for mode, r in results.items():
        med = statistics.median(r["times"])
        print(f"{mode:7s} step {med:.2f} s ({med / base:.2f}x default)  user {r['user']:.1f} s  sys {r['sys']:.1f} s  "
              f"resident after {r['rss_gb']:.2f} GB")
    ratio = statistics.median(results["reuse"]["times"]) / base
    verdict = "PASS" if ratio <= args.target else "FAIL"
    print(f"reuse / default = {ratio:.2f}x; target <= {args.target:g}x: {verdict}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
