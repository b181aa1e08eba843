"""A tiny S3-CLIP run through the engine on synthetic_video: all phases, checkpoints, resume, then
``evaluate`` from the run folder (what ``lrreid train`` / ``lrreid evaluate`` do)."""
from __future__ import annotations

import pytest
import torch

from lrreid.build import build_method, build_splits, build_trainer, evaluation_context, load_trained_method
from lrreid.config import load_config
from lrreid.engine.hooks import read_loss_history
from lrreid.engine.trainer import run_evaluation
from lrreid.workflows import train_run
from lrreid.errors import ConfigError


def _config(tmp_path, **extra) -> dict:
    raw = {
        "method": "s3clip",
        "seed": 0,
        "data": {"dataset": "synthetic_video", "root": str(tmp_path / "cache"), "protocol": "cross_view",
                 "num_splits": 1, "input_size": [64, 32],
                 "dataset_args": {"num_ids": 6, "tracklets_per_camera": 2, "frames_per_tracklet": 3}},
        "model": {"clip": "tiny", "adapter_dim": 8},
        "sr": {"model": "swinir_s", "args": {"embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4}},
        "sampling": {"num_frames": 2, "eval_frames": 2},
        "phases": {"prompt": {"epochs": 1, "lr": 0.01}, "sr": {"epochs": 1, "lr": 0.001},
                   "reid": {"epochs": 2, "lr": 0.001}},
        "crossview": {"robustness": "blur", "figure_tracklets": 2},
        "train": {"batch_size": 4, "num_instances": 2, "output_dir": str(tmp_path / "run"), "progress": False,
                  "tensorboard": False, "max_iters_per_epoch": 2},
        "eval": {"at_end": False, "batch_size": 4},
    }
    for key, value in extra.items():
        raw.setdefault(key, {}).update(value)
    return raw


def test_tiny_train_then_evaluate_on_synthetic_video(tmp_path):
    cfg = load_config(_config(tmp_path, train={"keep_checkpoints": "all"}))  # to see one checkpoint per phase
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    trainer = build_trainer(cfg, method, splits)
    trainer.train()
    ckpts = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("*.json"))
    assert any("prompt" in c for c in ckpts) and any("sr" in c for c in ckpts) and any("reid" in c for c in ckpts)
    by_phase: dict[str, set] = {}
    for row in read_loss_history(tmp_path / "run" / "losses.csv"):
        by_phase.setdefault(row["phase"], set()).update(k for k, v in row.items() if v not in (None, ""))
    assert {"i2t", "t2i"} <= by_phase["prompt"]
    assert {"pixel", "tdp", "temporal"} <= by_phase["sr"]
    assert {"id", "triplet", "v2sce"} <= by_phase["reid"]

    # `lrreid evaluate RUN`: rebuild from the checkpoint and evaluate.
    cfg2, splits2, restored, _ = load_trained_method(tmp_path / "run")
    for (name, a), b in zip(method.state_dict().items(), restored.state_dict().values()):
        assert torch.equal(a, b), name
    ctx = evaluation_context(cfg2, tmp_path / "run")
    ctx.progress = lambda it, total=None, desc=None: it
    report = run_evaluation(restored, splits2, ctx)
    names = [r.name for r in report.rows]
    for direction in ("A->G", "G->A", "A->A"):
        assert f"{direction} S3-CLIP" in names and f"{direction} bilinear" in names
        assert f"{direction} S3-CLIP, blur query" in names
    assert (tmp_path / "run" / "sr_examples.png").exists()

    # The run folder alone, with its tracklets gone: the same networks, the same features.
    import shutil

    from lrreid.build import load_trained

    shutil.rmtree(tmp_path / "cache")
    shutil.copytree(tmp_path / "run", tmp_path / "copied")
    _, alone, _ = load_trained(tmp_path / "copied")
    assert alone.num_classes == restored.num_classes
    frames = torch.rand(2, 2, 3, 64, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(alone.eval().embed(frames), restored.eval().embed(frames))


def test_resume_continues_where_the_run_stopped(tmp_path):
    raw = _config(tmp_path, phases={"reid": {"epochs": 1, "lr": 0.001}}, train={"max_iters_per_epoch": 1})
    cfg = load_config(raw)
    splits = build_splits(cfg)
    build_trainer(cfg, build_method(cfg, splits), splits).train()
    # A longer schedule for the last phase resumes after the saved epochs instead of starting over.
    raw["phases"]["reid"]["epochs"] = 2
    cfg = load_config(raw)
    with pytest.raises(ConfigError, match="resume"):  # a fresh start is refused by the workflow that starts runs
        train_run(cfg)
    trainer = build_trainer(cfg, build_method(cfg, splits), splits)
    trainer.train(resume=True)
    assert trainer.global_epoch == 4  # prompt 1 + sr 1 + reid 2, of which 3 were loaded


def test_a_reid_encoder_file_serves_as_i_with_tdp_through_it(tmp_path):
    """model.encoder: a re-ID network (here a random OSNet x0.25 saved as torchreid does) is I:
    its file's weights are loaded, L_TDP is computed through it, phase 2 fine-tunes it, evaluation runs."""
    from lrreid.models.reid import build_encoder

    torch.manual_seed(1)
    weights = tmp_path / "osnet_x0_25.pth"
    source = build_encoder("osnet_x0_25", num_classes=11)
    torch.save(source.state_dict(), weights)
    cfg = load_config(_config(tmp_path, model={"encoder": "osnet_x0_25", "pretrained": str(weights)},
                              phases={"prompt": {"epochs": 0}}, loss={"v2sce": 0.0}))
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    loaded = method.image_encoder.encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    assert method.text_encoder is None and [p.name for p in method.phases()] == ["sr", "reid"]
    build_trainer(cfg, method, splits).train()
    by_phase: dict[str, set] = {}
    for row in read_loss_history(tmp_path / "run" / "losses.csv"):
        by_phase.setdefault(row["phase"], set()).update(k for k, v in row.items() if v not in (None, ""))
    assert {"pixel", "tdp", "temporal"} <= by_phase["sr"]
    assert {"id", "triplet"} <= by_phase["reid"]
    tuned = method.image_encoder.encoder.state_dict()
    assert not torch.equal(tuned["conv1.conv.weight"], source.state_dict()["conv1.conv.weight"])  # fine-tuned in phase 2
    ctx = evaluation_context(cfg, tmp_path / "run")
    ctx.progress = lambda it, total=None, desc=None: it
    report = run_evaluation(method, splits, ctx)
    assert "A->G S3-CLIP" in [r.name for r in report.rows]


def test_a_reid_encoder_as_i_refuses_the_text_losses(tmp_path):
    cfg = load_config(_config(tmp_path, model={"encoder": "osnet_x0_25", "pretrained": None},
                              phases={"prompt": {"epochs": 0}}))
    with pytest.raises(ConfigError, match=r"loss\.v2sce needs CLIP's text tower"):
        build_method(cfg, build_splits(cfg))


def test_an_s3clip_run_indexes_and_searches_with_a_folder_as_one_tracklet(tmp_path, capsys):
    """S3-CLIP through the inference protocol: the pipeline's tracklet features are the method's own,
    and `lrreid index/search` take its run, a probe folder being one tracklet."""
    import json

    import numpy as np
    from PIL import Image

    from lrreid.build import load_trained
    from lrreid.cli import run as cli
    from lrreid.inference.loading import load_pipeline

    raw = _config(tmp_path, phases={"reid": {"epochs": 1, "lr": 0.001}}, train={"max_iters_per_epoch": 1})
    cfg = load_config(raw)
    splits = build_splits(cfg)
    build_trainer(cfg, build_method(cfg, splits), splits).train()
    _, method, _ = load_trained(tmp_path / "run")
    method.eval()
    pipe = load_pipeline(tmp_path / "run", fast=False, device="cpu")
    assert pipe.video and pipe.scales == (method.scale,)

    frames = torch.rand(3, 3, *method.lr_size, generator=torch.Generator().manual_seed(0))
    got = pipe.embed_tracklets([list(frames)])
    with torch.no_grad():
        ref = method.embed_tracklets(frames[None], low_resolution=True)
    torch.testing.assert_close(got.features, torch.nn.functional.normalize(ref, dim=1), atol=1e-4, rtol=1e-4)

    rng = np.random.default_rng(0)
    gallery, probe = tmp_path / "gallery", tmp_path / "probe"
    for folder, n, size in ((gallery, 4, (64, 32)), (probe, 3, (32, 16))):
        folder.mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    assert cli(["index", str(gallery), "--model", str(tmp_path / "run"), "--out", str(tmp_path / "idx")]) == 0
    capsys.readouterr()
    assert cli(["search", str(probe), "--index", str(tmp_path / "idx"), "--json", "-k", "2"]) == 0
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["probe"] for r in results] == [str(probe)]  # the folder: one probe
    assert len(results[0]["matches"]) == 2 and results[0]["scale"] == method.scale
