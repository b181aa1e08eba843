"""Cross-view evaluation: directions, counted skips for queries without a match, the SR picture."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch


from lrreid.data.records import TrackletRecord
from lrreid.methods.s3clip.evaluate import direction_sets, evaluate_cross_view


@dataclass
class Split:
    query: list
    gallery: list
    name: str = "test"


def _rec(pid, view, camid, n=0):
    return TrackletRecord((f"/x/{pid}_{view}_{n}.png",), pid=pid, camid=camid, view=view)


def test_direction_sets_across_views_and_within_a_one_camera_view():
    records = [_rec(1, "aerial", 1), _rec(1, "aerial", 1, 1), _rec(2, "aerial", 1), _rec(1, "ground", 0),
               _rec(2, "ground", 0), _rec(0, "aerial", 1, 2), _rec(0, "ground", 0, 2)]
    q, g, q_cam, g_cam = direction_sets(records, "aerial", "ground")
    assert (q, g) == ([0, 1, 2], [3, 4, 6])  # the distractor (person 0) is gallery only
    assert q_cam.tolist() == [1, 1, 1] and g_cam.tolist() == [0, 0, 0]
    q, g, q_cam, g_cam = direction_sets(records, "aerial", "aerial")
    assert (q, g) == ([0, 2], [1, 5])  # each person's first aerial tracklet queries the others
    assert len(set(q_cam.tolist()) | set(g_cam.tolist())) == 4  # one camera: every tracklet its own


def test_queries_without_a_match_are_skipped_and_counted(video_dataset, train_records, make_method, tiny_config,
                                                         cpu_context, tmp_path):
    cfg = tiny_config()
    cfg.crossview.robustness = None
    cfg.crossview.directions = [["aerial", "ground"], ["ground", "aerial"]]
    method = make_method(train_records, cfg).eval()
    # Evaluation records keep the dataset's own person ids (1..8; 0 would be a distractor).
    aerial = [r for r in video_dataset.records if r.view == "aerial"]
    # People 1 and 2 have no ground tracklet: their aerial queries cannot be matched.
    ground = [r for r in video_dataset.records if r.view == "ground" and r.pid not in (1, 2)]
    ctx = cpu_context(run_dir=tmp_path)
    report = evaluate_cross_view(method, [Split(aerial, ground)], ctx)
    names = [row.name for row in report.rows]
    assert names == ["A->G S3-CLIP", "A->G bilinear", "G->A S3-CLIP", "G->A bilinear"]
    assert any(f"2 of {len(aerial)} queries have no match" in note for note in report.notes), report.notes
    for row in report.rows:
        assert set(row.metrics) == {"R1", "R5", "R10", "mAP"}
        assert all(0.0 <= v <= 1.0 for v in row.metrics.values())
        assert row.metrics["R1"] <= row.metrics["R5"] <= row.metrics["R10"]
    assert (tmp_path / "sr_examples.png").stat().st_size > 1000


def test_a_direction_without_any_match_is_a_note_not_a_crash(video_dataset, train_records, make_method, tiny_config,
                                                             cpu_context):
    cfg = tiny_config()
    cfg.crossview.robustness, cfg.crossview.baseline, cfg.crossview.figure_tracklets = None, False, 0
    cfg.crossview.directions = [["aerial", "ground"], ["aerial", "nadir"]]
    method = make_method(train_records, cfg).eval()
    aerial = [r for r in video_dataset.records if r.view == "aerial" and r.pid <= 4]
    ground = [r for r in video_dataset.records if r.view == "ground" and r.pid > 4]
    report = evaluate_cross_view(method, [Split(aerial, ground)], cpu_context())
    assert report.rows == []
    assert any("no query has a match" in n for n in report.notes)
    assert any("no nadir tracklets" in n for n in report.notes)


def test_without_pre_interpolation_tracklets_reach_s_at_their_own_size(train_records, make_method, tiny_config,
                                                                       cpu_context):
    from lrreid.methods.s3clip.evaluate import extract_features

    cfg = tiny_config()
    cfg.sr.pre_interpolation = "none"
    method = make_method(train_records, cfg).eval()
    seen = []
    sr_forward = method.sr.forward

    def spy(x, scale):
        seen.append((tuple(x.shape[-2:]), scale))
        return sr_forward(x, scale)

    method.sr.forward = spy
    aerial = [r for r in train_records if r.view == "aerial"][:3]
    feats = extract_features(method, aerial, cpu_context(), super_resolve=[True] * 3)
    assert feats.shape[0] == 3 and bool(feats.isfinite().all())
    assert len(seen) == 3  # one tracklet at a time
    assert all(size != method.lr_size and scale == 2 for size, scale in seen)  # native size, S's own x2


class _ColourLayout(torch.nn.Module):
    """An encoder that sees its input: the image's colours on a 4x2 grid, centred."""

    embedding_dim = 24

    def __init__(self):
        super().__init__()
        from lrreid.models.reid.encoder import InputSpec

        self.input_spec = InputSpec(size=(64, 32), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        f = torch.nn.functional.adaptive_avg_pool2d(x, (4, 2)).flatten(1) * self.scale
        return f - f.mean(dim=1, keepdim=True)


class _UpsampleSR(torch.nn.Module):
    """A stand-in S: bilinear up-sampling (``grey=None``), or a flat grey image (destroys everything)."""

    supported_scales = None

    def __init__(self, grey: float | None = None):
        super().__init__()
        self.grey = grey

    def forward(self, x, scale):
        size = (round(x.shape[-2] * scale), round(x.shape[-1] * scale))
        if self.grey is not None:
            return torch.full((x.shape[0], 3, *size), self.grey)
        return torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False)


def test_the_s3clip_row_is_computed_through_s_not_bilinear(video_dataset, train_records, make_method, tiny_config,
                                                          cpu_context, tmp_path):
    """An S that differs from bilinear gives a different S3-CLIP row; an S that *is* bilinear gives the bilinear row."""
    cfg = tiny_config()
    cfg.crossview.robustness = None
    cfg.crossview.directions = [["aerial", "ground"]]
    split = Split([r for r in video_dataset.records if r.view == "aerial"],
                  [r for r in video_dataset.records if r.view == "ground"])
    from lrreid.methods.s3clip.model import S3ClipMethod
    from lrreid.models.reid.video import FrameEncoderVideo

    cfg.loss.v2sce = 0.0
    rows = {}
    for name, sr in (("grey", _UpsampleSR(grey=0.5)), ("bilinear", _UpsampleSR())):
        # I must see its input: random networks (tiny CLIP, OSNet) give nearly one feature for every
        # image, so every query ranks the gallery alike whatever S does; a colour layout does not
        encoder = FrameEncoderVideo(_ColourLayout(), image_size=(64, 32))
        method = S3ClipMethod(sr=sr, image_encoder=encoder, text_encoder=None, train_records=train_records,
                              num_classes=len({r.pid for r in train_records}), config=cfg, input_size=(64, 32)).eval()
        report = evaluate_cross_view(method, [split], cpu_context(run_dir=tmp_path))
        rows[name] = {row.name: row.metrics for row in report.rows}
    assert rows["grey"]["A->G S3-CLIP"] != rows["grey"]["A->G bilinear"]
    assert rows["grey"]["A->G bilinear"] == rows["bilinear"]["A->G bilinear"]
    for metric, value in rows["bilinear"]["A->G S3-CLIP"].items():
        assert value == pytest.approx(rows["bilinear"]["A->G bilinear"][metric], abs=1e-6)


class _NoisySR(_UpsampleSR):
    """Bilinear up-sampling plus fresh noise on every call and frame: an S that flickers."""

    def forward(self, x, scale):
        return (super().forward(x, scale) + 0.05 * torch.randn(x.shape[0], 3, *[round(s * scale) for s in x.shape[-2:]])).clamp(0, 1)


def _colour_method(sr, train_records, tiny_config):
    from lrreid.methods.s3clip.model import S3ClipMethod
    from lrreid.models.reid.video import FrameEncoderVideo

    cfg = tiny_config()
    cfg.loss.v2sce = 0.0
    encoder = FrameEncoderVideo(_ColourLayout(), image_size=(64, 32))
    return S3ClipMethod(sr=sr, image_encoder=encoder, text_encoder=None, train_records=train_records,
                        num_classes=len({r.pid for r in train_records}), config=cfg, input_size=(64, 32)).eval()


def test_flicker_numbers_tell_a_flickering_s_from_a_steady_one(video_dataset, train_records, tiny_config):
    """S = bilinear flickers exactly as much as bilinear; an S that adds per-frame noise flickers more,
    both against HR's own changes and on a still scene."""
    from lrreid.methods.s3clip.evaluate import flicker_numbers

    records = [r for r in video_dataset.records if r.view == "ground"]
    steady = flicker_numbers(_colour_method(_UpsampleSR(), train_records, tiny_config), records, ["aerial"],
                             torch.device("cpu"), max_tracklets=3, frames=4)
    assert steady["S vs HR"] == pytest.approx(steady["bilinear vs HR"], abs=1e-6)
    assert steady["S static"] == pytest.approx(steady["bilinear static"], abs=1e-6) and steady["S static"] > 0
    noisy = flicker_numbers(_colour_method(_NoisySR(), train_records, tiny_config), records, ["aerial"],
                            torch.device("cpu"), max_tracklets=3, frames=4)
    assert noisy["S static"] > 2 * noisy["bilinear static"]
    assert noisy["S vs HR"] > noisy["bilinear vs HR"]
    assert noisy["bilinear static"] == pytest.approx(steady["bilinear static"], abs=1e-6)  # fixed noise seed


def test_eval_tracklet_frames_cuts_test_pseudo_tracklets(tiny_config):
    """sampling.eval_tracklet_frames: 1 makes every image of a pseudo-tracklet its own query/gallery item."""
    from lrreid.data.records import ImageRecord
    from lrreid.methods.s3clip.evaluate import test_tracklets

    images = [ImageRecord(f"/x/{pid}_{cam}_{n:03d}.jpg", pid=pid, camid=cam, view=("far" if cam else "near"))
              for pid in (1, 2) for cam in (0, 1) for n in range(5)]
    split = Split([r for r in images if r.camid == 1], [r for r in images if r.camid == 0])
    whole = test_tracklets(split, True, {"near": "ground", "far": "aerial"})
    assert sorted(len(t.frames) for t in whole) == [5, 5, 5, 5]
    single = test_tracklets(split, True, {"near": "ground", "far": "aerial"}, max_frames=1)
    assert len(single) == 20 and all(len(t.frames) == 1 for t in single)
    assert {t.frames[0] for t in single} == {r.path for r in images}
    from lrreid.methods.s3clip.config import SamplingConfig

    with pytest.raises(ValueError, match="eval_tracklet_frames"):
        SamplingConfig(eval_tracklet_frames=0)
