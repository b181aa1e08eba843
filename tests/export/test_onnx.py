"""ONNX export: the graphs run in onnxruntime and give PyTorch's features and ranking."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency (pip install lrreid[export])")

from lrreid.data.datasets import build_dataset  # noqa: E402
from lrreid.evaluation.metrics import evaluate_features  # noqa: E402
from lrreid.export.onnx import SPEC_FILE, OnnxPipeline, export_onnx  # noqa: E402
from lrreid.inference.pipeline import load_images  # noqa: E402
from lrreid.inference.testing import tiny_pipeline  # noqa: E402


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    ds = build_dataset("synthetic", num_ids=12, images_per_camera=2, cache_dir=tmp_path_factory.mktemp("syn"))
    gallery = [r for r in ds.records if r.camid == 0]
    probes = [r for r in ds.records if r.camid == 1]
    return gallery, probes


def rank1(qf, gf, probes, gallery):
    res = evaluate_features(qf, gf, [r.pid for r in probes], [r.pid for r in gallery],
                            [r.camid for r in probes], [r.camid for r in gallery], max_rank=5)
    return res.rank(1), res.mAP


@pytest.mark.slow  # six ONNX exports: 14-27 s
def test_separate_graphs_match_pytorch_features_and_rank1(synthetic, tmp_path, caplog):
    import logging

    gallery, probes = synthetic
    pipe = tiny_pipeline(seed=0)
    caplog.set_level(logging.INFO, logger="lrreid")
    spec = export_onnx(pipe, tmp_path / "onnx")
    assert sorted(spec["graphs"]) == ["predictor", "reid", "sr_x1", "sr_x2", "sr_x3", "sr_x4"]
    # one progress line per graph (an export takes minutes on a real model)
    exported = sorted(m.split()[1] for m in caplog.messages if m.startswith("exported "))
    assert exported == sorted(g["file"] for g in spec["graphs"].values())
    # docs/search.md lists the graphs that are written, no others (it once listed a reid_gallery.onnx)
    import re

    documented = set(re.findall(r"`([\w{}]+\.onnx)`", (Path(__file__).parents[2] / "docs" / "search.md").read_text()))
    written = {re.sub(r"_x\d+", "_x{s}", g["file"]) for g in spec["graphs"].values()}
    assert documented == written | {"lr_to_features_x{s}.onnx"}  # the --fixed-scale graph: tests/cli/test_search_commands.py
    on_disk = json.loads((tmp_path / "onnx" / SPEC_FILE).read_text())
    assert on_disk["graphs"]["reid"]["input"]["shape"][0] == "batch"
    assert on_disk["scales"] == [1, 2, 3, 4] and on_disk["feature_dim"] == 32

    g_imgs = load_images([r.path for r in gallery])
    p_imgs = load_images([r.path for r in probes])
    ref_g = pipe.embed_gallery(g_imgs)
    ref_p = pipe.embed_probes(p_imgs)

    onnx = OnnxPipeline(tmp_path / "onnx")
    ort_g = torch.from_numpy(onnx.embed_gallery(g_imgs))
    ort_p, ort_scales = onnx.embed_probes(p_imgs)
    assert ort_scales == ref_p.scales
    assert F.cosine_similarity(ort_g, ref_g).min() > 0.999
    assert F.cosine_similarity(torch.from_numpy(ort_p), ref_p.features).min() > 0.999
    assert rank1(ort_p, ort_g, probes, gallery) == pytest.approx(rank1(ref_p.features, ref_g, probes, gallery))


@pytest.mark.slow  # four ONNX exports: 9-24 s
def test_metasr_graph_per_scale_has_a_dynamic_input_size(tmp_path):
    from lrreid.export.onnx import SRGraph, _ort_run, export_graph
    from lrreid.models.sr import build_sr_model

    torch.manual_seed(0)
    sr = build_sr_model("metasr_rdn", G0=8, D=1, C=2, G=8).eval()
    info = export_graph(SRGraph(sr, 2), torch.rand(2, 3, 12, 6), tmp_path / "sr_x2.onnx", "lr_image", "sr_image")
    assert info["input"]["shape"] == ["batch", 3, "height", "width"]
    x = torch.rand(1, 3, 17, 9)  # a size the export never saw
    out = _ort_run(tmp_path / "sr_x2.onnx", "lr_image", x)
    with torch.no_grad():
        ref = sr(x, 2)
    assert out.shape == (1, 3, 34, 18)
    assert float(abs(out - ref.numpy()).max()) < 1e-4


@pytest.mark.slow  # two ONNX exports of a tiny S3-CLIP: 15-30 s
def test_an_s3clip_run_exports_and_its_graphs_give_the_pipelines_features(tmp_path):
    """S3-CLIP through the same export: its SR network S (CARN-M here) as ``sr_x{s}``, its encoder I
    per frame as ``reid``, fed by the same net_input calls as search.  (With SwinIR-S as S the SR
    graph does not export: torch's ONNX decomposition cannot view the window attention's
    transposed heads with a dynamic batch; ``lrreid export`` then stops with one error line.)"""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "methods" / "s3clip"))
    from test_end_to_end import _config

    from lrreid.build import build_method, build_splits
    from lrreid.config import load_config
    from lrreid.inference.loading import pipeline_from_method

    cfg = load_config(_config(tmp_path, sr={"model": "carn_m", "args": {}}))
    method = build_method(cfg, build_splits(cfg)).eval()
    pipe = pipeline_from_method(method, fast=False, device="cpu")
    spec = export_onnx(pipe, tmp_path / "exported")
    assert sorted(spec["graphs"]) == ["reid", "sr_x2"] and spec["lr_size"] == [32, 16]

    onnx_pipe = OnnxPipeline(tmp_path / "exported")
    probes = [torch.rand(3, 16, 8, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    features, scales = onnx_pipe.embed_probes(probes)
    reference = pipe.embed_probes(probes)
    assert scales == reference.scales == [2, 2, 2]
    torch.testing.assert_close(torch.from_numpy(features), reference.features, rtol=0, atol=1e-4)
