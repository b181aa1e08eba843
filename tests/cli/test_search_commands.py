"""``lrreid index`` / ``search`` / ``export`` end to end, with tiny random-weight models."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import lrreid.cli.search_commands as commands
from lrreid.cli import main
from lrreid.inference.testing import tiny_pipeline

_PIPES = {}
REAL_LOAD = commands._load


def fake_load(model, fast=True, device="auto", batch_size=32):
    """Model "A" and "B" are two different tiny random networks (the CLI normally loads a run)."""
    if model not in _PIPES:
        _PIPES[model] = tiny_pipeline(seed={"A": 0, "B": 1}[str(model)])
        _PIPES[model].source = {"path": str(model)}
    return _PIPES[model]


@pytest.fixture(autouse=True)
def tiny_models(monkeypatch):
    monkeypatch.setattr(commands, "_load", fake_load)


def run(capsys, *argv):
    try:
        main(list(map(str, argv)))
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gallery(tmp_path):
    rng = np.random.default_rng(0)
    g = tmp_path / "gallery"
    for i in range(8):
        (g / f"p{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, size=(64, 32, 3), dtype=np.uint8)).save(g / f"p{i % 2}" / f"{i}.jpg")
    probes = tmp_path / "probes"
    probes.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, size=(16, 8, 3), dtype=np.uint8)).save(probes / f"q{i}.png")
    return g, probes


def test_index_then_search_json_and_html(capsys, gallery, tmp_path):
    g, probes = gallery
    index = tmp_path / "idx"
    code, out, err = run(capsys, "index", g, "--model", "A", "--out", index)
    assert code == 0, err
    assert "8 images indexed" in out and "8 embedded" in out
    code, out, _ = run(capsys, "index", g, "--model", "A", "--out", index)
    assert code == 0 and "already up to date" in out

    code, out, err = run(capsys, "search", probes / "q0.png", probes / "q1.png", "--index", index, "-k", "3",
                         "--json", "--html", tmp_path / "r.html")
    assert code == 0, err
    data = json.loads(out)  # stdout holds only the JSON
    assert [r["probe"] for r in data["results"]] == [str(probes / "q0.png"), str(probes / "q1.png")]
    for r in data["results"]:
        assert [m["rank"] for m in r["matches"]] == [1, 2, 3]
        assert r["scale"] in (1, 2, 3, 4)
        distances = [m["distance"] for m in r["matches"]]
        assert distances == sorted(distances)
    page = (tmp_path / "r.html").read_text()
    # per probe: the probe, its SR output and 3 gallery thumbnails, all inline
    assert page.count("data:image/jpeg;base64,") == 2 * (2 + 3)
    assert "SR x" in page

    assert "2 probes, top 3" in page
    code, _, err = run(capsys, "search", probes / "q0.png", "--index", index, "--html", tmp_path / "one.html")
    assert code == 0, err
    assert "1 probe, top 10" in (tmp_path / "one.html").read_text()

    # a folder of probes, a fixed scale, the rich table
    code, out, err = run(capsys, "search", probes, "--index", index, "-k", "2", "--scale", "2")
    assert code == 0, err
    assert out.count("SR x2") == 2 and "rank" in out


def test_bad_probe_index_of_another_model_and_empty_gallery_are_one_line_errors(capsys, gallery, tmp_path):
    g, probes = gallery
    index = tmp_path / "idx"
    assert run(capsys, "index", g, "--model", "A", "--out", index)[0] == 0
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")

    code, out, err = run(capsys, "search", bad, "--index", index)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and "notes.jpg" in err
    code, out, err = run(capsys, "search", bad, probes / "q0.png", "--index", index, "--skip-bad", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 1 and "skipped 1 unreadable" in err

    code, _, err = run(capsys, "search", probes / "q0.png", "--index", index, "--model", "B")
    assert code == 2 and "error: " in err and "re-run 'lrreid index'" in err and err.count("\n") == 1

    (tmp_path / "empty").mkdir()
    code, _, err = run(capsys, "index", tmp_path / "empty", "--model", "A")
    assert code == 2 and "no image files found" in err and err.count("\n") == 1


def test_missing_gallery_file_is_shown_not_a_crash(capsys, gallery, tmp_path):
    g, probes = gallery
    index = tmp_path / "idx"
    assert run(capsys, "index", g, "--model", "A", "--out", index)[0] == 0
    for p in (g / "p0").iterdir():
        p.unlink()
    code, out, err = run(capsys, "search", probes / "q0.png", "--index", index, "-k", "8", "--json")
    assert code == 0
    matches = json.loads(out)["results"][0]["matches"]
    assert sum(m["missing"] for m in matches) == 4 and json.loads(out)["missing"] == 4
    assert "missing since indexing" in err


@pytest.mark.slow  # two ONNX exports: 12 s
def test_export_fused_graph_for_a_fixed_scale(capsys, gallery, tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is an optional dependency (pip install lrreid[export])")
    import torch
    import torch.nn.functional as F

    from lrreid.export.onnx import OnnxPipeline
    from lrreid.inference.pipeline import load_images

    code, out, err = run(capsys, "export", "A", "--format", "onnx", "--out", tmp_path / "onnx", "--fixed-scale", "2")
    assert code == 0, err
    spec = json.loads((tmp_path / "onnx" / "lrreid_onnx.json").read_text())
    assert sorted(spec["graphs"]) == ["lr_to_features_x2", "reid"]
    assert "BICUBIC" in spec["gallery_preprocess"]
    # the fused graph gives the pipeline's probe features at x2, reid(PIL-resized image) its gallery features
    g, probes = gallery
    p_imgs, g_imgs = load_images(sorted(probes.iterdir())), load_images(sorted(g.rglob("*.jpg"))[:3])
    onnx = OnnxPipeline(tmp_path / "onnx")
    feats, scales = onnx.embed_probes(p_imgs)
    assert scales == [2, 2]
    pipe = fake_load("A")
    assert F.cosine_similarity(torch.from_numpy(feats), pipe.embed_probes(p_imgs, scale=2).features).min() > 0.999
    assert F.cosine_similarity(torch.from_numpy(onnx.embed_gallery(g_imgs)), pipe.embed_gallery(g_imgs)).min() > 0.999

    code, _, err = run(capsys, "export", "A", "--format", "tflite")
    assert code == 2 and "only onnx" in err


def test_search_of_an_empty_probe_folder_is_a_one_line_error(capsys, gallery, tmp_path):
    g, _ = gallery
    index = tmp_path / "idx"
    assert run(capsys, "index", g, "--model", "A", "--out", index)[0] == 0
    (tmp_path / "no-probes").mkdir()
    (tmp_path / "no-probes" / "notes.txt").write_text("not an image")
    code, out, err = run(capsys, "search", tmp_path / "no-probes", "--index", index)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "no-probes: no image files found" in err and out == ""


def test_probes_too_small_to_super_resolve_are_refused_or_skipped(capsys, gallery, tmp_path):
    g, probes = gallery
    index = tmp_path / "idx"
    assert run(capsys, "index", g, "--model", "A", "--out", index)[0] == 0
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    Image.new("RGB", (3, 7)).save(tmp_path / "sliver.png")
    code, out, err = run(capsys, "search", tmp_path / "dot.png", "--index", index)
    assert code == 2 and err.count("\n") == 1 and "dot.png: probe is 1x1 px, below the minimum side of 4 px" in err
    code, out, err = run(capsys, "search", tmp_path / "sliver.png", tmp_path / "dot.png", probes / "q0.png",
                         "--index", index, "--skip-bad", "--json")
    assert code == 0 and [r["probe"] for r in json.loads(out)["results"]] == [str(probes / "q0.png")]
    assert json.loads(out)["skipped"] == {"too_small": 2} and "skipped 2 unreadable probe(s): too_small 2" in err


@pytest.mark.parametrize("device", ["banana", "cuda:99"])
def test_index_and_search_on_a_device_this_machine_lacks_are_one_line_errors(capsys, gallery, tmp_path, device):
    g, probes = gallery
    code, _, err = run(capsys, "index", g, "--model", "A", "--out", tmp_path / "idx", "--device", device)
    assert code == 2 and err.count("\n") == 1 and f"--device {device!r}" in err and "available: cpu" in err
    assert run(capsys, "index", g, "--model", "A", "--out", tmp_path / "idx")[0] == 0
    code, _, err = run(capsys, "search", probes / "q0.png", "--index", tmp_path / "idx", "--device", device)
    assert code == 2 and err.count("\n") == 1 and f"--device {device!r}" in err and "available: cpu" in err


def test_index_with_a_model_file_that_is_not_a_run_says_what_it_is(capsys, gallery, tmp_path, monkeypatch):
    monkeypatch.setattr(commands, "_load", REAL_LOAD)
    g, _ = gallery
    notes = tmp_path / "model.pth"
    notes.write_text("just some notes")
    code, _, err = run(capsys, "index", g, "--model", notes)
    assert code == 2 and err.count("\n") == 1 and "not found" not in err
    assert f"error: {notes}: a 15-byte file, not an lrreid run, checkpoint or re-ID weight file (expected" in err


def test_loading_the_model_is_announced_on_stderr(capsys, caplog, gallery, tmp_path, monkeypatch):
    """Loading a run takes seconds: a spinner on a terminal, a log line otherwise; stdout stays clean."""
    import logging

    g, _ = gallery
    caplog.set_level(logging.INFO, logger="lrreid")
    code, out, err = run(capsys, "index", g, "--model", "A", "--out", tmp_path / "idx")
    assert code == 0, err
    assert "loading the model of A ..." in caplog.messages and "loading the model" not in out

    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stderr as a terminal: the spinner
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    caplog.clear()
    code, out, err = run(capsys, "index", g, "--model", "A", "--out", tmp_path / "idx")
    assert code == 0, err
    assert "loading the model of A" in err and not caplog.messages.count("loading the model of A ...")


@pytest.mark.parametrize("scale", ["5", "0", "-1"])
def test_a_scale_outside_the_models_set_is_one_error_line_naming_the_allowed_ones(capsys, gallery, tmp_path, scale):
    g, probes = gallery
    index = tmp_path / "idx"
    assert run(capsys, "index", g, "--model", "A", "--out", index)[0] == 0
    code, out, err = run(capsys, "search", probes / "q0.png", "--index", index, "--scale", scale)
    assert code == 2 and "SR x" not in out
    assert err == f"error: scale {scale}: this model's scales are 1, 2, 3, 4 (or auto)\n"
