"""The PNG pictures: probes at every scale with the true match in green, scale histogram, losses."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lrreid.visualize import ProbePanel, plot_loss_curves, plot_probe_panels, plot_scale_histogram

GREEN = np.array([0x1A, 0x9C, 0x3A])


def _green_pixels(path) -> int:
    arr = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int((np.abs(arr - GREEN).sum(axis=2) < 30).sum())


def _panel(match_at: int | None, rng):
    scales = [1, 2, 3]
    gallery = [[rng.random((32, 16, 3)) * 0.5 for _ in range(4)] for _ in scales]
    matches = [[j == match_at for j in range(4)] for _ in scales]
    return ProbePanel(lr=rng.random((8, 4, 3)), scales=scales, sr=[rng.random((8 * s, 4 * s, 3)) for s in scales],
                      probs=[0.2, 0.5, 0.3], gallery=gallery, matches=matches, chosen=1, ideal=2,
                      title="person 7", match_ranks=[1.0, 1.0, 9.0])


def test_probe_figure_marks_the_true_match_in_green(tmp_path):
    rng = np.random.default_rng(0)
    with_match = plot_probe_panels([_panel(0, rng), _panel(2, rng)], tmp_path / "probes.png")
    without = plot_probe_panels([_panel(None, rng)], tmp_path / "no_match.png")
    assert Image.open(with_match).format == "PNG"
    assert _green_pixels(with_match) > 200
    assert _green_pixels(without) < _green_pixels(with_match) / 4  # only the "rank 9" note is green


def test_probe_figure_needs_a_probe(tmp_path):
    with pytest.raises(ValueError, match="no probe"):
        plot_probe_panels([], tmp_path / "x.png")


def test_scale_histogram(tmp_path):
    path = plot_scale_histogram({"adaptive (P)": {1: 2, 2: 10, 3: 1}, "ideal": {1: 4, 2: 5, 3: 4}}, tmp_path / "h.png")
    img = Image.open(path)
    assert img.format == "PNG" and img.width > 300


def test_loss_curves_from_the_engine_history(tmp_path):
    csv = tmp_path / "losses.csv"
    lines = ["phase,epoch,iteration,lr,loss,sr,id,tri,p"]
    for it in range(1, 41):
        phase = "pretrain" if it <= 20 else "joint"
        p = "" if phase == "pretrain" else f"{1.4 - it / 100:.3f}"
        lines.append(f"{phase},{(it - 1) // 10 % 2},{it},0.001,{5 - it / 10:.3f},{0.3 - it / 500:.4f},{2 - it / 40:.3f},{1.0:.1f},{p}")
    csv.write_text("\n".join(lines) + "\n")
    path = plot_loss_curves(csv, tmp_path / "losses.png")
    assert Image.open(path).format == "PNG"
    with pytest.raises(ValueError, match="empty"):
        plot_loss_curves([], tmp_path / "empty.png")
