"""Benchmark: searching a 1,000,000 x 512 float32 gallery -- faiss exact, faiss IVF, numpy.

All in one run, on one seeded gallery generated in chunks:

  * numpy: one matrix product per query batch (``|g|^2 - 2 q.g``, gallery norms precomputed) and
    ``argpartition`` for the top k, then a sort of those k;
  * lrreid exact (``lrreid.search.index.exact_topk``, what ``lrreid search`` runs on an exact
    index): the same in blocks of 131072 gallery rows (memory O(queries x block)), with the
    winners' distances recomputed directly;
  * faiss ``IndexFlatL2`` (exact; what ``lrreid index`` builds by default);
  * faiss ``IndexIVFFlat`` (approximate; ``lrreid index --approx ivf``) at several ``nprobe``, with
    its recall@10 against the exact top 10;
  * optionally faiss ``IndexHNSWFlat`` (``--hnsw``; its build takes long on few cores).

Time per query is the median over ``--repeats`` batches of ``--batch`` queries, divided by the
batch size.  Memory: the bytes each structure holds, and the growth of peak resident memory
(VmHWM, reset through /proc/self/clear_refs before each step) while building and searching it.
At most two gallery-sized copies are alive at once (the numpy gallery and one faiss index).

The gallery is random and seeded: ``--data clustered`` (default) draws ``--clusters`` identity
centres and scatters images around them, as re-ID features cluster by person; ``--data gaussian``
is i.i.d. normal, the hardest case for an approximate index.  Queries are fresh draws of the same
kind (a new image of a gallery identity, or a new Gaussian vector).

    python benchmarks/search.py                      # ~2 GB per copy, a few minutes
    python benchmarks/search.py --n 100000 --hnsw    # smaller, with HNSW
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import faiss
import numpy as np

from lrreid.search.index import exact_topk


def vm(field: str) -> int:
    """A VmXXX line of /proc/self/status in bytes."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux >= 4.0); returns the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return vm("VmRSS")


def make_gallery(n: int, d: int, kind: str, clusters: int, seed: int, chunk: int = 65536) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, d), dtype=np.float32)
    centres = rng.standard_normal((clusters, d), dtype=np.float32) if kind == "clustered" else None
    for s in range(0, n, chunk):
        block = out[s : s + chunk]
        rng.standard_normal(block.shape, dtype=np.float32, out=block)
        if centres is not None:
            block *= 0.5
            block += centres[rng.integers(0, clusters, len(block))]
    return out, centres


def make_queries(m: int, d: int, centres, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((m, d), dtype=np.float32)
    if centres is not None:
        q *= 0.5
        q += centres[rng.integers(0, len(centres), m)]
    return q


def numpy_topk(xb: np.ndarray, xb_sq: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k by one matrix product and argpartition (squared L2 up to a per-row constant)."""
    d = xb_sq[None, :] - 2.0 * (q @ xb.T)
    part = np.argpartition(d, k, axis=1)[:, :k]
    order = np.take_along_axis(d, part, axis=1).argsort(axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def per_query_ms(fn, batches: list[np.ndarray], repeats: int) -> tuple[float, object]:
    out = fn(batches[0])  # warm-up
    times = []
    for r in range(repeats):
        q = batches[r % len(batches)]
        t0 = time.perf_counter()
        out = fn(q)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times) / len(batches[0]), out


def recall(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(f[:k]) & set(t[:k])) / k for f, t in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", choices=["clustered", "gaussian"], default="clustered")
    ap.add_argument("--clusters", type=int, default=100_000, help="identities of the clustered gallery")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[8, 32, 128])
    ap.add_argument("--train-size", type=int, default=65536, help="IVF k-means training points")
    ap.add_argument("--hnsw", action="store_true", help="also build and search an HNSW index (slow to build)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    rows = []

    def report(name, ms, nbytes, peak, rec=None, build_s=None):
        rows.append({"method": name, "ms_per_query": ms, "bytes": nbytes, "peak_rss_delta": peak,
                     "recall_at_10": rec, "build_s": build_s})
        extra = f"  recall@10 {rec:.3f}" if rec is not None else ""
        built = f"  built in {build_s:6.1f} s" if build_s is not None else ""
        print(f"{name:28s} {ms:9.3f} ms/query  {nbytes / 2**30:6.2f} GiB held  "
              f"peak RSS +{peak / 2**30:5.2f} GiB{built}{extra}", flush=True)

    print(f"gallery {args.n} x {args.d} float32 ({args.data}), {args.batch} queries per batch, k={args.k}, "
          f"{faiss.omp_get_max_threads()} threads, median of {args.repeats}", flush=True)
    base = reset_peak()
    t0 = time.perf_counter()
    xb, centres = make_gallery(args.n, args.d, args.data, args.clusters, args.seed)
    print(f"generated in {time.perf_counter() - t0:.1f} s, RSS +{(vm('VmRSS') - base) / 2**30:.2f} GiB", flush=True)
    batches = [make_queries(args.batch, args.d, centres, args.seed + 1 + r) for r in range(args.repeats)]

    # numpy: matrix product + argpartition
    before = reset_peak()
    xb_sq = (xb * xb).sum(axis=1)
    ms, _ = per_query_ms(lambda q: numpy_topk(xb, xb_sq, q, args.k), batches, args.repeats)
    report("numpy matmul+argpartition", ms, xb.nbytes + xb_sq.nbytes, vm("VmHWM") - before)
    del xb_sq

    before = reset_peak()
    ms, _ = per_query_ms(lambda q: exact_topk(xb, q, args.k), batches, args.repeats)
    report("lrreid exact (blocked numpy)", ms, xb.nbytes, vm("VmHWM") - before)

    # faiss exact
    before = reset_peak()
    t0 = time.perf_counter()
    flat = faiss.IndexFlatL2(args.d)
    for s in range(0, args.n, 65536):
        flat.add(xb[s : s + 65536])
    build = time.perf_counter() - t0
    ms, _ = per_query_ms(lambda q: flat.search(q, args.k), batches, args.repeats)
    truth = [flat.search(q, args.k)[1] for q in batches]
    report("faiss IndexFlatL2 (exact)", ms, flat.ntotal * args.d * 4, vm("VmHWM") - before, 1.0, build)
    agree = recall(exact_topk(xb, batches[0], args.k)[1], truth[0], args.k)
    print(f"  lrreid and faiss exact top-{args.k} agree on {100 * agree:.2f}% of ids (float rounding decides near-ties)")
    del flat

    # faiss IVF-Flat
    before = reset_peak()
    t0 = time.perf_counter()
    quantizer = faiss.IndexFlatL2(args.d)
    ivf = faiss.IndexIVFFlat(quantizer, args.d, args.nlist, faiss.METRIC_L2)
    rows_train = np.sort(np.random.default_rng(args.seed).choice(args.n, min(args.train_size, args.n), replace=False))
    ivf.train(np.ascontiguousarray(xb[rows_train]))
    for s in range(0, args.n, 65536):
        ivf.add(xb[s : s + 65536])
    build = time.perf_counter() - t0
    ivf_bytes = args.n * (args.d * 4 + 8) + args.nlist * args.d * 4
    for nprobe in args.nprobe:
        ivf.nprobe = nprobe
        ms, _ = per_query_ms(lambda q: ivf.search(q, args.k), batches, args.repeats)
        found = [ivf.search(q, args.k)[1] for q in batches]
        rec = float(np.mean([recall(f, t, args.k) for f, t in zip(found, truth)]))
        report(f"faiss IVF{args.nlist},Flat nprobe={nprobe}", ms, ivf_bytes, vm("VmHWM") - before, rec, build)
        build = None
    del ivf, quantizer

    if args.hnsw:
        before = reset_peak()
        t0 = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(args.d, 32)
        hnsw.hnsw.efConstruction = 80
        for s in range(0, args.n, 65536):
            hnsw.add(xb[s : s + 65536])
        build = time.perf_counter() - t0
        for ef in (64, 128):
            hnsw.hnsw.efSearch = ef
            ms, _ = per_query_ms(lambda q: hnsw.search(q, args.k), batches, args.repeats)
            found = [hnsw.search(q, args.k)[1] for q in batches]
            rec = float(np.mean([recall(f, t, args.k) for f, t in zip(found, truth)]))
            report(f"faiss HNSW32 efSearch={ef}", ms, args.n * (args.d * 4 + 32 * 2 * 4), vm("VmHWM") - before, rec, build)
            build = None
        del hnsw

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
