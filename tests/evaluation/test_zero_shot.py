"""The zero-shot table is the network's own ranking: checked against the OpenVINO runtime on real data."""
from __future__ import annotations

import numpy as np
import pytest

from lrreid.evaluation.zero_shot import evaluate_encoders


@pytest.mark.shared
@pytest.mark.slow
def test_zero_shot_rank1_on_caviar_equals_the_openvino_runtimes(shared, tmp_path):
    ov = pytest.importorskip("openvino")
    from PIL import Image

    from lrreid.cli import run
    from lrreid.data.protocols import load_prepared_splits

    xml = shared("weights", "omz", "person-reidentification-retail-0288", "FP32", "person-reidentification-retail-0288.xml")
    prepared = tmp_path / "caviar"
    assert run(["prepare", "caviar", str(shared("data", "CAVIAR4REID")), str(prepared), "--protocol", "genuine",
                "--splits", "2", "-q"]) == 0
    splits = load_prepared_splits(prepared)
    report = evaluate_encoders([xml], splits)

    # the same evaluation, written independently: OpenVINO on BGR 0-255, PIL bicubic, cosine, rank of the first match
    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    cache: dict[str, np.ndarray] = {}

    def embed(path: str) -> np.ndarray:
        if path not in cache:
            rgb = np.asarray(Image.open(path).convert("RGB").resize((128, 256), Image.BICUBIC), dtype=np.float32)
            v = compiled(rgb[..., ::-1].transpose(2, 0, 1)[None].copy())[0][0]
            cache[path] = v / np.linalg.norm(v)
        return cache[path]

    rank1 = []
    for split in splits:
        g = np.stack([embed(r.path) for r in split.gallery])
        g_pids = np.array([r.pid for r in split.gallery])
        hits = [g_pids[np.argmax(g @ embed(r.path))] == r.pid for r in split.query]
        rank1.append(100.0 * np.mean(hits))
    assert report.rows[0].metrics["Rank-1"] == pytest.approx(np.mean(rank1), abs=0.5)
