"""Gallery index: build, search, incremental updates, removals, mismatched models, bad files."""
from __future__ import annotations

import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

import lrreid
from lrreid.errors import DatasetLayoutError, ImageReadError, IndexMismatchError
from lrreid.inference.testing import tiny_pipeline
from lrreid.search import GalleryIndex, Searcher, build_index
from lrreid.search.html import write_html
from lrreid.search.index import exact_topk, make_faiss_index, prepare_features, to_distances


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def write_images(folder, names, seed=0, size=(64, 32)):
    rng = np.random.default_rng(seed)
    for name in names:
        p = folder / name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(p)


@pytest.fixture
def gallery(tmp_path):
    g = tmp_path / "gallery"
    write_images(g, [f"cam{c}/{i:03d}.png" for c in (1, 2) for i in range(5)])
    (g / "README.txt").write_text("not an image, ignored by its extension")
    return g


class CountingPipeline:
    """Wraps a pipeline and counts the gallery images it embeds."""

    def __init__(self, pipe):
        self._pipe, self.embedded = pipe, 0

    def embed_gallery(self, images, *a, **kw):
        images = list(images)
        self.embedded += len(images)
        return self._pipe.embed_gallery(images, *a, **kw)

    def __getattr__(self, name):
        return getattr(self._pipe, name)


def test_build_and_exact_search_match_brute_force(gallery, pipe):
    report = build_index(gallery, pipe, progress=False)
    assert (report.total, report.embedded, report.ignored) == (10, 10, 1)
    idx = GalleryIndex.load(report.index_dir)
    assert len(idx) == 10 and idx.kind == "flat" and idx.metric == "euclidean"
    assert idx.index is None  # exact search runs on the feature array itself

    searcher = Searcher(report.index_dir, model=pipe)
    probe = gallery / "cam1" / "003.png"
    (res,) = searcher.search([probe], k=4, scale=1)
    # A gallery image as probe at scale 1 (bicubic x1 = identity) finds itself first, at distance ~0
    # (float32 rounding of |q|^2 + |g|^2 - 2 q.g, as in the evaluation, leaves ~1e-3).
    assert res.matches[0].path == str(probe) and res.matches[0].distance < 0.01 * res.matches[1].distance
    # The ranking and distances are those of a brute-force Euclidean search.
    q = pipe.embed_probes([probe], scale=1).features.numpy()
    g = pipe.embed_gallery([gallery / e.path for e in idx.entries]).numpy()
    d = np.linalg.norm(g - q, axis=1)
    order = np.argsort(d)[:4]
    assert [m.path for m in res.matches] == [str(gallery / idx.entries[i].path) for i in order]
    np.testing.assert_allclose([m.distance for m in res.matches], d[order], atol=1e-3)
    assert [m.rank for m in res.matches] == [1, 2, 3, 4]


def test_incremental_update_embeds_only_new_and_changed_files_and_drops_removed(gallery, pipe):
    counting = CountingPipeline(pipe)
    build_index(gallery, counting, progress=False)
    assert counting.embedded == 10

    counting.embedded = 0
    report = build_index(gallery, counting, progress=False)
    assert counting.embedded == 0 and report.unchanged and report.total == 10

    write_images(gallery, ["cam3/000.png", "cam3/001.png"], seed=5)  # two new
    write_images(gallery, ["cam1/000.png"], seed=6)  # one changed
    os.utime(gallery / "cam1/000.png", ns=(1, 1))  # a new mtime, whatever the file system's resolution
    (gallery / "cam2/004.png").unlink()  # one removed
    counting.embedded = 0
    report = build_index(gallery, counting, progress=False)
    assert counting.embedded == 3
    assert (report.embedded, report.reused, report.removed, report.total) == (3, 8, 1, 11)

    idx = GalleryIndex.load(report.index_dir)
    paths = [e.path for e in idx.entries]
    assert "cam2/004.png" not in paths and "cam3/001.png" in paths and len(paths) == 11
    # reused features are those of a fresh build from scratch
    fresh = build_index(gallery, pipe, out_dir=gallery.parent / "fresh", progress=False)
    np.testing.assert_allclose(np.asarray(idx.features), np.asarray(GalleryIndex.load(fresh.index_dir).features),
                               atol=1e-5)
    # only the files of the current version stay on disk
    assert sorted(p.name.split("-")[0] for p in report.index_dir.iterdir()) == ["entries", "features", "manifest.json"]


def test_index_of_another_model_or_version_raises_mismatch(gallery, pipe, monkeypatch):
    report = build_index(gallery, pipe, progress=False)
    other = tiny_pipeline(seed=1)
    with pytest.raises(IndexMismatchError, match="re-run 'lrreid index'") as err:
        Searcher(report.index_dir, model=other)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(lrreid, "__version__", "99.0")
    with pytest.raises(IndexMismatchError, match="lrreid 99.0"):
        Searcher(report.index_dir, model=pipe)


def test_gallery_file_removed_after_indexing_is_reported_missing(gallery, pipe, caplog):
    report = build_index(gallery, pipe, progress=False)
    probe = gallery / "cam2" / "001.png"
    searcher = Searcher(report.index_dir, model=pipe)
    kept = gallery.parent / "probe.png"
    kept.write_bytes(probe.read_bytes())
    probe.unlink()
    with caplog.at_level(logging.WARNING, logger="lrreid"):
        (res,) = searcher.search([kept], k=10, scale=1)
    first = res.matches[0]
    assert first.path == str(probe) and first.missing
    assert sum(m.missing for m in res.matches) == 1 and searcher.missing_seen == 1
    assert "removed since indexing" in caplog.text
    html = write_html(searcher.search([kept], k=3, scale=1, keep_images=True), gallery.parent / "r.html")
    assert "missing" in html.read_text()


def test_empty_gallery_and_gallery_of_non_images_are_one_line_errors(tmp_path, pipe):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match="no image files found"):
        build_index(tmp_path / "empty", pipe, progress=False)
    with pytest.raises(DatasetLayoutError, match="gallery folder not found"):
        build_index(tmp_path / "nowhere", pipe, progress=False)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_text("not a jpeg")
    with pytest.raises(DatasetLayoutError, match="no readable images"):
        build_index(bad, pipe, progress=False)


def test_unreadable_gallery_files_are_skipped_and_counted(gallery, pipe):
    (gallery / "broken.jpg").write_text("not a jpeg")
    (gallery / "empty.png").write_bytes(b"")
    report = build_index(gallery, pipe, progress=False)
    assert report.total == 10 and report.skipped == {"not_an_image": 1, "empty": 1}
    assert "skipped 2 unreadable" in report.summary()
    with pytest.raises(ImageReadError, match="broken.jpg"):
        build_index(gallery, pipe, out_dir=gallery.parent / "strict", bad_images="raise", progress=False)


def test_probe_that_is_not_an_image_raises_or_is_skipped(gallery, pipe):
    report = build_index(gallery, pipe, progress=False)
    searcher = Searcher(report.index_dir, model=pipe)
    text = gallery.parent / "notes.jpg"
    text.write_text("hello")
    with pytest.raises(ImageReadError, match="notes.jpg"):
        searcher.search([text], k=3)
    results = searcher.search([text, gallery / "cam1/000.png", np.zeros((16, 8, 3), np.uint8)], k=3,
                              bad_images="skip")
    assert [r.probe for r in results] == [str(gallery / "cam1/000.png"), "<image 2>"]
    assert searcher.skipped == {"not_an_image": 1}
    assert json.loads(json.dumps([r.to_dict() for r in results]))[0]["matches"][0]["rank"] == 1


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_and_its_recall_check(gallery, pipe, kind):
    report = build_index(gallery, pipe, kind=kind, check=True, progress=False)
    assert report.recall_at_10 is not None and 0.0 <= report.recall_at_10 <= 1.0
    idx = GalleryIndex.load(report.index_dir)
    assert idx.kind == kind and idx.manifest["recall_at_10"] == report.recall_at_10
    (res,) = Searcher(report.index_dir, model=pipe).search([gallery / "cam1/002.png"], k=3, scale=1)
    assert res.matches[0].path == str(gallery / "cam1/002.png")
    # switching back to exact search rebuilds the faiss index without re-embedding
    again = build_index(gallery, pipe, kind="flat", progress=False)
    assert again.embedded == 0 and GalleryIndex.load(again.index_dir).kind == "flat"


def test_cosine_metric_distances_are_one_minus_cosine(gallery, pipe):
    report = build_index(gallery, pipe, metric="cosine", progress=False)
    searcher = Searcher(report.index_dir, model=pipe)
    probe = np.random.default_rng(3).integers(0, 256, size=(16, 8, 3), dtype=np.uint8)
    (res,) = searcher.search([probe], k=10, scale=2)
    q = pipe.embed_probes([probe], scale=2).features.numpy()[0]
    for m in res.matches:
        g = pipe.embed_gallery([m.path]).numpy()[0]
        cos = q @ g / np.linalg.norm(q) / np.linalg.norm(g)
        assert abs(m.distance - (1 - cos)) < 1e-4


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_blocked_exact_search_equals_faiss_flat_and_the_evaluation_distances(metric):
    from lrreid.evaluation.distance import pairwise_distance

    rng = np.random.default_rng(0)
    g = rng.standard_normal((3000, 32)).astype(np.float32)
    q = rng.standard_normal((20, 32)).astype(np.float32)
    dist, rows = exact_topk(g, q, k=7, metric=metric, block=500)  # several blocks and merges
    raw, faiss_rows = make_faiss_index(prepare_features(g, metric), metric).search(prepare_features(q, metric), 7)
    np.testing.assert_array_equal(rows, faiss_rows)
    np.testing.assert_allclose(dist, to_distances(raw, metric), atol=1e-4)
    full = pairwise_distance(q, g, metric).numpy()
    np.testing.assert_allclose(dist, np.take_along_axis(full, rows, axis=1), atol=1e-4)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_very_large_probe_is_reduced_before_super_resolution(gallery, pipe, tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (2000, 4000), (90, 120, 150)).save(big)  # 8 MP of one colour: cheap to store and read
    searcher = Searcher(build_index(gallery, pipe, progress=False).index_dir, model=pipe)
    seen = []

    def spy(module, args):
        seen.append(tuple(args[0].shape[-2:]))
        assert max(seen[-1]) <= 128, f"SR network called on a {seen[-1]} probe"  # stop early on a full-size one

    handle = pipe.sr_net.register_forward_pre_hook(spy)
    try:
        (result,) = searcher.search([big], k=3, scale=2)
    finally:
        handle.remove()
    assert seen and all(h <= pipe.input_size[0] and w <= pipe.input_size[1] for h, w in seen)
    assert len(result.matches) == 3
