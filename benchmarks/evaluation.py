"""Benchmark: lrreid's re-ID evaluation against torchreid's numpy code and np.argsort alone.

Problem: Market-1501 sized, 3368 queries x 15913 gallery, 751 identities, 6 cameras, seeded.
Distances are random: every row is a random permutation of 15913 distinct float32 values, so there
are no ties and lrreid must agree with torchreid exactly.

Targets (docs/evaluation.md):
  * lrreid at least 60x faster than torchreid's ``eval_market1501`` (numpy path);
  * lrreid no slower than 1.3x ``np.argsort(distmat, axis=1)`` alone;
  * peak extra memory no more than one more copy of the distance matrix;
  * single-gallery-shot with 10 repeats less than 3x one plain evaluation.

Times are medians over ``--repeats`` runs in this process (torchreid: one run, ~45 s; skip it with
``--skip-torchreid``).  Peak extra memory is measured in a fresh subprocess per method as the growth
of peak resident memory (VmHWM in /proc/self/status) across one call, after the distance matrix
has been built in place; it counts everything the call touches, torch kernels' code pages included
(tracemalloc cannot see torch's allocations).

    python benchmarks/evaluation.py [--skip-torchreid] [--repeats 3]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

from lrreid.evaluation import evaluate_rank, pairwise_distance
from lrreid.evaluation import metrics as lrreid_metrics

NUM_Q, NUM_G, NUM_IDS, NUM_CAMS = 3368, 15913, 751, 6


def build_problem(seed: int = 0):
    """Ids, cameras and a (Q, G) float32 distance matrix built in place, row block by row block
    (so building it does not raise the peak memory above the matrix itself)."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, NUM_IDS, NUM_Q)
    g_pids = rng.integers(0, NUM_IDS, NUM_G)
    q_cams = rng.integers(0, NUM_CAMS, NUM_Q)
    g_cams = rng.integers(0, NUM_CAMS, NUM_G)
    distmat = np.empty((NUM_Q, NUM_G), dtype=np.float32)
    base = np.arange(NUM_G, dtype=np.float32) / np.float32(NUM_G)
    for s in range(0, NUM_Q, 256):
        block = distmat[s:s + 256]
        block[:] = base
        rng.permuted(block, axis=1, out=block)
    return distmat, q_pids, g_pids, q_cams, g_cams


def load_torchreid_rank():
    """torchreid/reid/metrics/rank.py by path (``import torchreid`` needs cv2); np.bool restored."""
    spec = importlib.util.find_spec("torchreid")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("torchreid is not installed; run with --skip-torchreid")
    path = Path(list(spec.submodule_search_locations)[0]) / "reid" / "metrics" / "rank.py"
    mod_spec = importlib.util.spec_from_file_location("torchreid_rank", path)
    mod = importlib.util.module_from_spec(mod_spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod_spec.loader.exec_module(mod)
    shim = types.ModuleType("numpy_shim")
    shim.__dict__.update({k: getattr(np, k) for k in dir(np) if not k.startswith("__")})
    shim.bool = bool
    mod.np = shim
    return mod


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM).  Not ru_maxrss: Linux carries that over from
    the parent across fork+exec, so a child started by a big parent would report the parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, seed: int) -> None:
    """Run one method once in this (fresh) process; print time, peak extra memory and result."""
    problem = build_problem(seed)
    call = {
        "lrreid": lambda: evaluate_rank(*problem),
        "lrreid_sgs10": lambda: evaluate_rank(*problem, single_gallery_shot=True, num_repeats=10),
        "argsort": lambda: np.argsort(problem[0], axis=1),
        "torchreid": lambda: load_torchreid_rank().eval_market1501(*problem, 50),
    }[method]
    before = peak_mb()
    t0 = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - t0
    report = {"method": method, "seconds": seconds, "extra_mb": peak_mb() - before}
    if method == "torchreid":
        report["cmc"], report["mAP"] = [float(v) for v in out[0]], float(out[1])
    print(json.dumps(report))


def run_child(method: str, seed: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", method, "--seed", str(seed)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skip-torchreid", action="store_true", help="do not run torchreid's ~45 s numpy evaluation")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method (median reported)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.seed)
        return

    problem = build_problem(args.seed)
    distmat = problem[0]
    matrix_mb = distmat.nbytes / 2**20
    print(f"problem: {NUM_Q} queries x {NUM_G} gallery, {NUM_IDS} identities, {NUM_CAMS} cameras, "
          f"float32 distances ({matrix_mb:.0f} MB), seed {args.seed}")
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f} at start")

    t_sort, _ = median_time(lambda: np.argsort(distmat, axis=1), args.repeats)
    ranker_rows_sorted = []
    real_result = lrreid_metrics._TrueMatchRanker.result

    def spy_result(self, tallies):  # count rows that took the sorting fallback
        out = real_result(self, tallies)
        ranker_rows_sorted.append(self.rows_sorted)
        return out

    lrreid_metrics._TrueMatchRanker.result = spy_result
    t_lr, res = median_time(lambda: evaluate_rank(*problem), args.repeats)
    t_sgs, res_sgs = median_time(lambda: evaluate_rank(*problem, single_gallery_shot=True, num_repeats=10),
                                 args.repeats)
    lrreid_metrics._TrueMatchRanker.result = real_result

    print(f"\nnp.argsort(distmat, axis=1)            {t_sort:8.3f} s   (median of {args.repeats})")
    print(f"lrreid evaluate_rank                   {t_lr:8.3f} s   (median of {args.repeats}; "
          f"rows ranked by the sorting fallback: {ranker_rows_sorted[0]})")
    print(f"lrreid single-gallery-shot, 10 repeats {t_sgs:8.3f} s   (median of {args.repeats})")
    print(f"  Rank-1 {100 * res.rank(1):.2f}%  mAP {100 * res.mAP:.3f}%  mINP {100 * res.mINP:.3f}%  "
          f"(valid queries {res.num_valid_queries}, skipped {res.num_skipped_queries}); "
          f"single-gallery-shot Rank-1 {100 * res_sgs.rank(1):.2f}%")

    # Informational: distances from identity-structured features (true matches mostly near the top,
    # as with a trained model), where the value bins see a different distribution.
    rng = np.random.default_rng(args.seed + 1)
    centers = rng.standard_normal((NUM_IDS, 256), dtype=np.float32)
    qf = torch.from_numpy(centers[problem[1]] + 2 * rng.standard_normal((NUM_Q, 256), dtype=np.float32))
    gf = torch.from_numpy(centers[problem[2]] + 2 * rng.standard_normal((NUM_G, 256), dtype=np.float32))
    feat_dist = pairwise_distance(qf, gf).numpy()
    ranker_rows_sorted.clear()
    lrreid_metrics._TrueMatchRanker.result = spy_result
    t_feat, res_feat = median_time(lambda: evaluate_rank(feat_dist, *problem[1:]), args.repeats)
    lrreid_metrics._TrueMatchRanker.result = real_result
    t_feat_sort, _ = median_time(lambda: np.argsort(feat_dist, axis=1), 1)
    print(f"feature-like distances: lrreid {t_feat:.3f} s, np.argsort {t_feat_sort:.3f} s "
          f"(Rank-1 {100 * res_feat.rank(1):.1f}%, mAP {100 * res_feat.mAP:.1f}%; "
          f"rows ranked by the sorting fallback: {ranker_rows_sorted[0]})")
    del feat_dist

    mem = {m: run_child(m, args.seed) for m in ("argsort", "lrreid", "lrreid_sgs10")}
    checks = []
    if not args.skip_torchreid:
        ref = run_child("torchreid", args.seed)
        mem["torchreid"] = ref
        speedup = ref["seconds"] / t_lr
        d_cmc = float(np.max(np.abs(np.asarray(ref["cmc"]) - res.cmc)))
        d_map = abs(ref["mAP"] - res.mAP)
        print(f"torchreid eval_market1501 (numpy)      {ref['seconds']:8.3f} s   (one run, in a subprocess)")
        checks.append((f"speed-up vs torchreid >= 60x", f"{speedup:.1f}x", speedup >= 60))
        checks.append(("agrees with torchreid (CMC, mAP) to 1e-6", f"max|dCMC| {d_cmc:.2e}, |dmAP| {d_map:.2e}",
                       d_cmc <= 1e-6 and d_map <= 1e-6))
    ratio = t_lr / t_sort
    checks.append(("time <= 1.3x np.argsort alone", f"{ratio:.2f}x", ratio <= 1.3))
    sgs_ratio = t_sgs / t_lr
    checks.append(("single-gallery-shot 10 repeats < 3x plain", f"{sgs_ratio:.2f}x", sgs_ratio < 3))
    extra = mem["lrreid"]["extra_mb"]
    checks.append((f"peak extra memory <= 1 matrix ({matrix_mb:.0f} MB)", f"{extra:.0f} MB", extra <= matrix_mb))
    extra_sgs = mem["lrreid_sgs10"]["extra_mb"]
    checks.append(("  same, single-gallery-shot", f"{extra_sgs:.0f} MB", extra_sgs <= matrix_mb))

    print("\npeak extra memory (growth of VmHWM over one call, fresh subprocess each):")
    for m, r in mem.items():
        print(f"  {m:14s} {r['extra_mb']:8.0f} MB   ({r['extra_mb'] / matrix_mb:.2f} x the matrix; "
              f"{r['seconds']:.3f} s in that run)")
    print("\ntargets:")
    for name, value, ok in checks:
        print(f"  {verdict(ok)}  {name:45s} {value}")
    print(f"\nload average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
