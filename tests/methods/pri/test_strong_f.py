"""PRI on a pretrained re-ID network: before any training, its no-SR row is that network's own ranking."""
from __future__ import annotations

import pytest


@pytest.mark.shared
@pytest.mark.slow
def test_untrained_pri_no_sr_row_equals_the_networks_zero_shot_ranking(shared, monkeypatch):
    """F = Intel 0277 with no training: PRI's "no SR" row must be `lrreid evaluate --model 0277` on the
    same split (same resize, same cosine distance). It was not while PRI ranked with Euclidean distance."""
    from pathlib import Path

    from lrreid.build import build_method, build_splits, evaluation_context
    from lrreid.config import load_config
    from lrreid.engine.trainer import run_evaluation
    from lrreid.evaluation.zero_shot import evaluate_encoders

    shared("weights", "omz", "person-reidentification-retail-0277")
    shared("data", "CAVIAR4REID")
    repo = Path(__file__).resolve().parents[3]
    monkeypatch.chdir(repo)  # the config's data.root is relative to the working folder
    cfg = load_config(repo / "configs" / "pri_caviar_0277.yaml",
                      ["eval.splits=[0]", "inference.predictors=[nosr]", "data.num_splits=1"])
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    ctx = evaluation_context(cfg)
    ctx.progress = lambda it, total=None, desc=None: it
    pri = {row.name: row.metrics for row in run_evaluation(method, [splits[0]], ctx).rows}["no SR"]
    xml = Path(method.reid_net.backbone.weights_source)
    zero_shot = evaluate_encoders([xml], [splits[0]]).rows[0].metrics
    assert 100 * pri["Rank-1"] == pytest.approx(zero_shot["Rank-1"], abs=1e-6)
    assert 100 * pri["mAP"] == pytest.approx(zero_shot["mAP"], abs=1e-3)
