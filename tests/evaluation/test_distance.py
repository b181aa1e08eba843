"""Query-gallery distances: values, chunking that never changes results, bounded memory, top-k."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from lrreid.errors import ProtocolError
from lrreid.evaluation import distance_chunks, pairwise_distance, topk_neighbors
from lrreid.evaluation import distance as D


def test_euclidean_is_the_l2_distance_and_cosine_is_one_minus_cos():
    q = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    g = torch.tensor([[3.0, 4.0], [0.0, 1.0], [2.0, 0.0]])
    torch.testing.assert_close(pairwise_distance(q, g), torch.tensor([[5.0, 1.0, 2.0], [20 ** 0.5, 2 ** 0.5, 1.0]]))
    # cosine: zero query has cos 0 with everything (distance 1); (1,0) vs (3,4): cos 0.6
    torch.testing.assert_close(pairwise_distance(q, g, "cosine"), torch.tensor([[1.0, 1.0, 1.0], [0.4, 1.0, 0.0]]))


def test_distances_match_torch_cdist_on_random_features():
    rng = np.random.default_rng(0)
    q, g = rng.standard_normal((30, 64)), rng.standard_normal((70, 64))
    d = pairwise_distance(q, g)  # numpy float64 in -> float64 tensor out
    assert d.dtype == torch.float64
    torch.testing.assert_close(d, torch.cdist(torch.from_numpy(q), torch.from_numpy(g)))
    qn, gn = q / np.linalg.norm(q, axis=1, keepdims=True), g / np.linalg.norm(g, axis=1, keepdims=True)
    torch.testing.assert_close(pairwise_distance(q, g, "cosine"), torch.from_numpy(1 - qn @ gn.T))
    assert pairwise_distance(q.astype(np.float32), g).dtype == torch.float32


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_chunked_distances_equal_the_unchunked_matrix(metric):
    rng = np.random.default_rng(1)
    q, g = torch.from_numpy(rng.standard_normal((53, 32))), torch.from_numpy(rng.standard_normal((41, 32)))
    full = pairwise_distance(q, g, metric)
    blocks = list(distance_chunks(q, g, metric, chunk_size=8))
    assert [s for s, _ in blocks] == list(range(0, 53, 8))
    assert max(b.shape[0] for _, b in blocks) == 8
    torch.testing.assert_close(torch.cat([b for _, b in blocks]), full, rtol=0, atol=1e-12)


def test_topk_equals_a_stable_full_sort_for_any_chunk_size():
    rng = np.random.default_rng(2)
    # Integer features: many exactly equal distances, including ties at the k-th place.
    q = torch.from_numpy(rng.integers(0, 3, (37, 4)).astype(np.float32))
    g = torch.from_numpy(rng.integers(0, 3, (90, 4)).astype(np.float32))
    full = pairwise_distance(q, g)
    ref_d, ref_i = torch.sort(full, dim=1, stable=True)
    for chunk in (None, 1, 5, 64):
        for k in (1, 7, 90):
            d, i = topk_neighbors(q, g, k, chunk_size=chunk)
            torch.testing.assert_close(d, ref_d[:, :k])
            assert torch.equal(i, ref_i[:, :k]), (chunk, k)


def test_topk_and_distances_reject_bad_input():
    with pytest.raises(ProtocolError, match="k=5 neighbours requested but the gallery has 3"):
        topk_neighbors(np.ones((2, 4)), np.ones((3, 4)), 5)
    with pytest.raises(ProtocolError, match="unknown distance metric 'l1'"):
        pairwise_distance(np.ones((2, 4)), np.ones((3, 4)), "l1")
    with pytest.raises(ProtocolError, match="dimension 4 but gallery features have 5"):
        pairwise_distance(np.ones((2, 4)), np.ones((3, 5)))
    bad = np.ones((3, 4))
    bad[1, 2] = np.nan
    with pytest.raises(ProtocolError, match="gallery features: 1 feature rows contain NaN or infinite values .*row 1"):
        topk_neighbors(np.ones((2, 4)), bad, 1)
    with pytest.raises(ProtocolError, match="2-D"):
        pairwise_distance(np.ones(4), np.ones((3, 4)))
    with pytest.raises(ProtocolError, match="chunk_size"):
        list(distance_chunks(np.ones((2, 4)), np.ones((3, 4)), chunk_size=0))


def test_blocks_never_exceed_chunk_size_times_gallery(monkeypatch):
    seen = []
    real = D.PreparedGallery.distances

    def spy(self, q):
        out = real(self, q)
        seen.append(out.shape)
        return out

    monkeypatch.setattr(D.PreparedGallery, "distances", spy)
    rng = np.random.default_rng(3)
    topk_neighbors(rng.standard_normal((1000, 8)), rng.standard_normal((3000, 8)), 5, chunk_size=100)
    assert len(seen) == 10 and all(s == (100, 3000) for s in seen)
    seen.clear()
    topk_neighbors(rng.standard_normal((1000, 8)), rng.standard_normal((3000, 8)), 5)  # default block
    assert all(s[0] * s[1] <= D.DEFAULT_CHUNK_ELEMENTS for s in seen)


def test_memory_stays_bounded_on_a_problem_whose_matrix_would_not():
    # 2000 x 20000 distances would take 160 MB in float32.  In a fresh process, a warm-up call on
    # 200 queries (same block shape: it loads the kernels and reaches the per-block peak) is followed
    # by the full problem; the growth of peak resident memory (VmHWM) between the two must stay well
    # below the size of the matrix (measured 25-35 MB; holding the matrix adds 160 MB and more for its
    # temporaries: about 800 MB measured with chunk_size=2000).
    code = textwrap.dedent("""
        import json, numpy as np, torch
        torch.set_num_threads(1)  # a shared CI machine: no OpenMP waits on a busy second core
        from lrreid.evaluation import evaluate_features, topk_neighbors
        rng = np.random.default_rng(0)
        qf = torch.from_numpy(rng.standard_normal((2000, 16), dtype=np.float32))
        gf = torch.from_numpy(rng.standard_normal((20000, 16), dtype=np.float32))
        q_pids, g_pids = rng.integers(0, 500, 2000), rng.integers(0, 500, 20000)
        q_cams, g_cams = rng.integers(0, 4, 2000), rng.integers(0, 4, 20000)
        def run(n):
            res = evaluate_features(qf[:n], gf, q_pids[:n], g_pids, q_cams[:n], g_cams, chunk_size=100)
            return res, topk_neighbors(qf[:n], gf, 10, chunk_size=100)[1]
        def peak_mb():  # VmHWM: ru_maxrss would include the parent's (pytest's) peak across fork+exec
            with open("/proc/self/status") as fh:
                return next(int(l.split()[1]) for l in fh if l.startswith("VmHWM:")) / 1024
        run(200)
        before = peak_mb()
        res, idx = run(2000)
        print(json.dumps({"extra_mb": peak_mb() - before, "valid": res.num_valid_queries, "shape": list(idx.shape)}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["shape"] == [2000, 10] and report["valid"] > 1900
    assert report["extra_mb"] < 80, report


def test_docstring_examples_run():
    import doctest

    from lrreid.evaluation import metrics

    for module in (D, metrics):
        failed, _ = doctest.testmod(module)
        assert failed == 0, module.__name__
