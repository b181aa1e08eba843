"""Table 2 of PRI: the fixed, size-based, ideal and adaptive scale predictors."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image

from lrreid.data.records import ImageRecord
from lrreid.errors import ImageReadError, ProtocolError
from lrreid.evaluation import evaluate_rank
from lrreid.methods.pri.config import PRIInferenceConfig
from lrreid.methods.pri.evaluate import (
    evaluate_predictors,
    first_match_rank_and_ap,
    ideal_choice,
    size_based_choice,
)


@dataclass
class Split:
    name: str
    train: list
    query: list
    gallery: list


def test_size_based_uses_the_side_ratio_by_default():
    hr_area = 128 * 64
    # probes 2x, 3x and 4x smaller per side
    areas = np.array([64 * 32, 43 * 21, 32 * 16], dtype=float)
    assert size_based_choice(areas, hr_area, [1, 2, 3, 4]).tolist() == [1, 2, 3]
    # the literal area ratio R / r (4, 9, 16) saturates at the largest scale
    assert size_based_choice(areas, hr_area, [1, 2, 3, 4], rule="ratio").tolist() == [3, 3, 3]
    # a probe as large as the HR images keeps x1
    assert size_based_choice(np.array([float(hr_area)]), hr_area, [1, 2, 3, 4]).tolist() == [0]


def test_rank_and_ap_agree_with_evaluate_rank():
    rng = np.random.default_rng(0)
    dist = rng.random((12, 20))
    q_pids, g_pids = rng.integers(0, 6, 12), np.arange(20) % 6
    q_cams, g_cams = np.zeros(12, int), np.ones(20, int)
    ranks, aps = first_match_rank_and_ap(dist, q_pids, g_pids, q_cams, g_cams)
    ref = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, max_rank=20)
    assert ref.rank(1) == pytest.approx(np.mean(ranks == 1))
    assert ref.rank(5) == pytest.approx(np.mean(ranks <= 5))
    assert ref.mAP == pytest.approx(aps.mean())


def test_ideal_is_at_least_as_good_as_every_fixed_scale():
    rng = np.random.default_rng(1)
    num_scales, q, g = 4, 30, 15
    q_pids, g_pids = np.arange(q) % g, np.arange(g)
    q_cams, g_cams = np.zeros(q, int), np.ones(g, int)
    dists = rng.random((num_scales, q, g))
    # make each scale good for a different third of the probes
    for k in range(num_scales):
        rows = np.arange(q)[np.arange(q) % num_scales == k]
        dists[k, rows, q_pids[rows]] = 0.0
    ranks_aps = [first_match_rank_and_ap(d, q_pids, g_pids, q_cams, g_cams) for d in dists]
    choice = ideal_choice(np.stack([r for r, _ in ranks_aps]), np.stack([a for _, a in ranks_aps]))
    ideal = evaluate_rank(dists[choice, np.arange(q)], q_pids, g_pids, q_cams, g_cams, max_rank=g)
    assert ideal.rank(1) == 1.0
    for k in range(num_scales):
        fixed = evaluate_rank(dists[k], q_pids, g_pids, q_cams, g_cams, max_rank=g)
        assert np.all(ideal.cmc >= fixed.cmc - 1e-12)
        assert ideal.rank(1) > fixed.rank(1)


def test_ideal_breaks_rank_ties_by_ap():
    ranks = np.array([[1.0], [1.0]])
    aps = np.array([[0.6], [0.9]])
    assert ideal_choice(ranks, aps).tolist() == [1]


def _write(path, hw, colour):
    img = Image.new("RGB", (hw[1], hw[0]), colour)
    img.save(path)
    return str(path)


def _toy_split(tmp_path, num_ids=10, probe_hw=(8, 4), name="0"):
    rng = np.random.default_rng(0)
    query, gallery = [], []
    for pid in range(num_ids):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        gallery.append(ImageRecord(_write(tmp_path / f"g{name}_{pid}.png", (32, 16), colour), pid, 0))
        query.append(ImageRecord(_write(tmp_path / f"q{name}_{pid}.png", probe_hw, colour), pid, 1))
    return Split(name, [], query, gallery)


def _ctx():
    from lrreid.methods.base import EpochContext

    return EpochContext(device=torch.device("cpu"), batch_size=8)


@pytest.fixture
def m(shared_tiny_pri):
    method = shared_tiny_pri
    method.inference = PRIInferenceConfig()
    method.train_paths = frozenset()
    return method


def test_table2_rows_on_a_toy_split(m, tmp_path):
    split = _toy_split(tmp_path)
    result = evaluate_predictors(m, [split], _ctx())
    report = result.report()
    names = [r.name for r in report.rows]
    assert names == ["no SR", "fixed x1", "fixed x2", "fixed x3", "fixed x4", "size-based", "ideal", "adaptive (P)"]
    for row in report.rows:
        assert set(row.metrics) == {"Rank-1", "Rank-5", "Rank-10", "mAP"}
        assert all(0.0 <= v <= 1.0 for v in row.metrics.values())
    best_fixed = max(r.metrics["Rank-1"] for r in report.rows if r.name.startswith("fixed"))
    assert report.rows[names.index("ideal")].metrics["Rank-1"] >= best_fixed
    # every probe was embedded at every scale once
    detail = result.details[0]
    assert detail.topk.shape == (4, 10, 10) and detail.probs.shape == (10, 4)
    # a 8x4 probe against 32x16 HR images: sqrt(512 / 32) = 4 -> x4
    assert set(detail.choices["size-based"].tolist()) == {3}
    assert m.training  # evaluation restores the mode


def test_too_small_probes_error_or_are_skipped(m, tmp_path):
    split = _toy_split(tmp_path, probe_hw=(8, 4))
    small = ImageRecord(_write(tmp_path / "tiny.png", (3, 2), (9, 9, 9)), 0, 1)
    split.query.append(small)
    with pytest.raises(ImageReadError, match="tiny.png: probe is 2x3 px, below the minimum side of 4 px"):
        evaluate_predictors(m, [split], _ctx())
    m.inference = PRIInferenceConfig(small_probes="skip")
    result = evaluate_predictors(m, [split], _ctx())
    assert result.details[0].skipped_probes == 1 and len(result.details[0].query) == 10
    assert any("skipped 1 probe" in n for n in result.report().notes)


def test_splits_that_contain_training_images_are_skipped(m, tmp_path):
    clean = _toy_split(tmp_path, name="0")
    leaking = _toy_split(tmp_path, name="1")
    m.train_paths = frozenset(r.path for r in leaking.gallery[:3])
    result = evaluate_predictors(m, [clean, leaking], _ctx())
    assert [d.name for d in result.details] == ["0"]
    assert any("skipped 1 split" in n for n in result.notes)
    m.inference.overlapping_splits = "error"
    with pytest.raises(ProtocolError, match="split '1'"):
        evaluate_predictors(m, [clean, leaking], _ctx())


def test_ideal_breaks_remaining_ties_by_margin():
    # both scales rank the true match first with AP 1; scale 1 separates it better
    dists = np.array([[[0.5, 0.6]], [[0.2, 0.9]]])  # [scale, probe, gallery]
    per_scale = [first_match_rank_and_ap(d, [0], [0, 1], [1], [0, 0], with_margin=True) for d in dists]
    ranks, aps, margins = (np.stack([s[j] for s in per_scale]) for j in range(3))
    assert margins[:, 0].tolist() == pytest.approx([0.1, 0.7])
    assert ideal_choice(ranks, aps, margins).tolist() == [1]


def test_ideal_agreement_counts_ties_and_ignores_probes_without_a_match():
    from lrreid.methods.pri.evaluate import PRIEvaluation, SplitDetail

    ranks = np.array([[1.0, 3.0, 2.0, np.inf],
                      [1.0, 1.0, 5.0, np.inf]])  # [scales, probes]
    choices = {"fixed x1": np.array([0, 0, 0, 0]), "fixed x2": np.array([1, 1, 1, 1]),
               "ideal": np.array([0, 1, 0, 0]), "adaptive (P)": np.array([1, 0, 1, 1])}
    detail = SplitDetail("s", [], [], np.zeros((4, 2)), choices, np.zeros((2, 4, 1), dtype=int), ranks)
    ev = PRIEvaluation([1, 2], details=[detail])
    got = ev.ideal_agreement()
    assert got == {"fixed x1": 2 / 3, "fixed x2": 2 / 3, "ideal": 1.0, "adaptive (P)": 1 / 3}


def test_no_sr_row_is_f_on_the_probe_resized_bicubically_with_no_g(m, tmp_path):
    from lrreid.methods.pri.data import load_image

    split = _toy_split(tmp_path, name="nosr")
    calls = []
    handle = m.sr_net.register_forward_hook(lambda *a: calls.append(1))
    m.inference = PRIInferenceConfig(predictors=["nosr"])
    try:
        result = evaluate_predictors(m, [split], _ctx())
    finally:
        handle.remove()
    assert calls == []  # G never ran
    assert list(result.results) == ["no SR"]
    q = m.embed(torch.stack([load_image(r.path, m.input_size) for r in split.query]))
    g = m.embed(torch.stack([load_image(r.path, m.input_size) for r in split.gallery]))
    expected = evaluate_rank(torch.cdist(q, g).numpy(), [r.pid for r in split.query], [r.pid for r in split.gallery],
                             [r.camid for r in split.query], [r.camid for r in split.gallery], max_rank=10)
    got = result.results["no SR"][0]
    assert got.rank(1) == pytest.approx(expected.rank(1)) and got.mAP == pytest.approx(expected.mAP)


def test_nosr_net_row_is_f_on_the_probe_at_its_own_size_with_no_g(m, tmp_path):
    """The second no-SR row: F's own input resize (bilinear, as in training), not PIL's bicubic."""
    from lrreid.methods.pri.data import load_image

    split = _toy_split(tmp_path, name="nosr_net", probe_hw=(9, 5))
    for i, r in enumerate(split.query):  # probes with texture, so that the two resizes differ
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (9, 5, 3), dtype=np.uint8)).save(r.path)
    calls = []
    handle = m.sr_net.register_forward_hook(lambda *a: calls.append(1))
    m.inference = PRIInferenceConfig(predictors=["nosr", "nosr_net"])
    try:
        result = evaluate_predictors(m, [split], _ctx())
    finally:
        handle.remove()
    assert calls == []  # G never ran
    assert list(result.results) == ["no SR", "no SR, F's resize"]
    g = m.embed(torch.stack([load_image(r.path, m.input_size) for r in split.gallery]))
    q_net = m.embed(torch.stack([load_image(r.path) for r in split.query]))  # own size: F's resize
    q_pil = m.embed(torch.stack([load_image(r.path, m.input_size) for r in split.query]))
    assert not torch.allclose(q_net, q_pil, atol=1e-4)  # the two rows measure different inputs
    args = ([r.pid for r in split.query], [r.pid for r in split.gallery],
            [r.camid for r in split.query], [r.camid for r in split.gallery])
    expected = evaluate_rank(torch.cdist(q_net, g).numpy(), *args, max_rank=10)
    got = result.results["no SR, F's resize"][0]
    assert got.mAP == pytest.approx(expected.mAP) and got.rank(1) == pytest.approx(expected.rank(1))
    other = evaluate_rank(torch.cdist(q_pil, g).numpy(), *args, max_rank=10)
    assert other.mAP != pytest.approx(expected.mAP)  # else this test could not tell the rows apart


def test_the_finetuned_baseline_gets_both_no_sr_rows_and_nothing_else(m, tmp_path):
    import dataclasses

    split = _toy_split(tmp_path, name="ft")
    schedule = m.schedule
    m.schedule = dataclasses.replace(schedule, mode="finetune")
    m.inference = PRIInferenceConfig(predictors=["nosr", "nosr_net", "fixed", "adaptive"])
    try:
        result = evaluate_predictors(m, [split], _ctx())
    finally:
        m.schedule = schedule
    assert list(result.results) == ["fine-tuned, no SR", "fine-tuned, no SR, F's resize"]


def test_unknown_predictor_names_are_a_config_error():
    with pytest.raises(ValueError, match="unknown 'adaptve'"):
        PRIInferenceConfig(predictors=["nosr", "adaptve"])


def _noise_split(tmp_path, num_ids=12, seed=1):
    """Gallery images of random pixels (not mirror-symmetric, unlike _toy_split's plain colours); each
    probe is its person's gallery image, mirrored for every other person: those only the mirror finds."""
    rng = np.random.default_rng(seed)
    query, gallery = [], []
    for pid in range(num_ids):
        hr = rng.integers(0, 255, (32, 16, 3), dtype=np.uint8)
        Image.fromarray(hr).save(tmp_path / f"gn_{pid}.png")
        Image.fromarray(np.ascontiguousarray(hr[:, ::-1] if pid % 2 else hr)).save(tmp_path / f"qn_{pid}.png")
        gallery.append(ImageRecord(str(tmp_path / f"gn_{pid}.png"), pid, 0))
        query.append(ImageRecord(str(tmp_path / f"qn_{pid}.png"), pid, 1))
    return Split("n", [], query, gallery)


def test_mirror_oracle_picks_per_probe_between_the_best_fixed_scale_and_the_mirrored_probe(m, tmp_path):
    from lrreid.methods.pri.data import load_image
    from lrreid.utils.modules import eval_mode

    split = _noise_split(tmp_path)
    m.inference = PRIInferenceConfig(predictors=["fixed", "mirror"])
    result = evaluate_predictors(m, [split], _ctx())
    report = result.report()
    rows = {r.name: r.metrics["Rank-1"] for r in report.rows}
    best = max(range(len(m.scales)), key=lambda k: (rows[f"fixed x{m.scales[k]}"], -k))
    scale = m.scales[best]
    assert result.mirror_scales == [scale] and any(f"best fixed scale (x{scale})" in n for n in report.notes)
    # independently: a probe is first at rank 1 in the oracle when it is so unmirrored or mirrored
    images = torch.stack([load_image(r.path) for r in split.query])
    g = m.embed(torch.stack([load_image(r.path, m.input_size) for r in split.gallery]))
    pids = torch.tensor([r.pid for r in split.query])
    gp = torch.tensor([r.pid for r in split.gallery])

    def first(x):
        nearest = torch.cdist(m.embed(m.super_resolve(x, scale)), g).argmin(dim=1)
        return gp[nearest] == pids

    with torch.no_grad(), eval_mode(m):
        plain, mirrored = first(images), first(images.flip(-1))
    assert (mirrored & ~plain).any(), "the split must have a probe that only its mirror image finds (else no test)"
    assert rows["mirror oracle"] == pytest.approx(float((plain | mirrored).float().mean()))
    assert rows["fixed x%d" % scale] == pytest.approx(float(plain.float().mean()))


def test_mirror_oracle_mirrors_the_fixed_scale_with_the_highest_rank1():
    from lrreid.methods.pri.evaluate import best_fixed_index

    ranks = np.array([[1, 2, 1, 4], [1, 1, 1, 3], [2, 1, 1, 1]])  # Rank-1: 2/4, 3/4, 3/4
    assert best_fixed_index(ranks) == 1  # the smaller scale of the tie
    assert best_fixed_index(ranks[[0, 2]]) == 1


def test_fused_rows_average_the_scales_and_the_p_weighted_one_follows_p(m, tmp_path, monkeypatch):
    from lrreid.methods.pri.data import load_image
    from lrreid.methods.pri.evaluate import retrieval_metric
    from lrreid.utils.modules import eval_mode

    split = _noise_split(tmp_path)
    pick = 2  # P made certain of one scale: its weighted fusion must be exactly that fixed scale's row
    monkeypatch.setattr(m, "predict_scales", lambda x: torch.nn.functional.one_hot(
        torch.full((len(x),), pick), len(m.scales)).float())
    m.inference = PRIInferenceConfig(predictors=["fixed", "fused"])
    report = evaluate_predictors(m, [split], _ctx()).report()
    rows = {r.name: r.metrics for r in report.rows}
    assert rows["fused, P-weighted"] == pytest.approx(rows[f"fixed x{m.scales[pick]}"])
    # independently: the mean over scales of (normalised, for cosine) features, ranked by that metric
    images = torch.stack([load_image(r.path) for r in split.query])
    with torch.no_grad(), eval_mode(m):
        g = m.embed(torch.stack([load_image(r.path, m.input_size) for r in split.gallery]))
        per_scale = torch.stack([m.embed(m.super_resolve(images, s)) for s in m.scales])
    metric = retrieval_metric(m)
    if metric == "cosine":
        per_scale, g = (torch.nn.functional.normalize(t, dim=-1) for t in (per_scale, g))
    # (Euclidean on normalised features ranks as cosine does)
    dist = torch.cdist(per_scale.mean(0), g).numpy()
    expected = evaluate_rank(dist, [r.pid for r in split.query], [r.pid for r in split.gallery],
                             [r.camid for r in split.query], [r.camid for r in split.gallery])
    assert rows["fused, mean of scales"]["mAP"] == pytest.approx(expected.mAP)
    assert rows["fused, mean of scales"]["Rank-1"] == pytest.approx(float(expected.cmc[0]))
    singles = {round(rows[f"fixed x{s}"]["mAP"], 6) for s in m.scales}
    assert len(singles) > 1 and round(expected.mAP, 6) not in singles, \
        "the fused mean must differ from every single scale on this split (else the test proves nothing)"


def test_fuse_scales_normalises_each_scale_for_cosine_and_weights_per_probe():
    from lrreid.methods.pri.evaluate import fuse_scales

    feats = torch.tensor([[[10., 0.], [0., 1.]], [[0., 1.], [3., 0.]]])  # [scales, probes, dim]
    # cosine: a long feature at one scale must not outweigh the other scale
    assert fuse_scales(feats, metric="cosine").tolist() == [[0.5, 0.5], [0.5, 0.5]]
    assert fuse_scales(feats).tolist() == [[5.0, 0.5], [1.5, 0.5]]
    weights = torch.tensor([[1., 0.], [0.25, 0.75]])  # probe 0 all on scale 0, probe 1 mostly on scale 1
    assert fuse_scales(feats, weights).tolist() == [[10.0, 0.0], [2.25, 0.25]]


def test_the_mirror_pass_does_not_run_p_again(m, tmp_path, monkeypatch):
    split = _noise_split(tmp_path)
    calls = []
    real = m.predict_scales
    monkeypatch.setattr(m, "predict_scales", lambda x: calls.append(len(x)) or real(x))
    counts = []
    for predictors in (["fixed", "adaptive"], ["fixed", "adaptive", "mirror"]):
        calls.clear()
        m.inference = PRIInferenceConfig(predictors=predictors)
        evaluate_predictors(m, [split], _ctx())
        counts.append(sum(calls))
    assert counts[0] == len(split.query) and counts[1] == counts[0]
