"""PRI.md Figs. 1 and 5 for a few probes: one block of rows per probe, one row per scale.

Each row: the probe super-resolved by that scale (shown at a common height, so the recovered
detail can be compared), P's probability of the scale, then the top-k gallery images ranked with
that scale's feature, the true match framed in green.  The probe itself (at its real pixel size,
enlarged without smoothing) opens the block; P's choice and the ideal scale are marked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from lrreid.visualize._mpl import pyplot, save

GREEN = "#1a9c3a"
GREY = "#b0b0b0"
CHOSEN = "#1f5fbf"


@dataclass
class ProbePanel:
    """Everything drawn for one probe (images are float (H, W, 3) arrays in [0, 1])."""

    lr: np.ndarray
    scales: Sequence[int]
    sr: Sequence[np.ndarray]  # one per scale
    probs: Sequence[float]  # P's probability per scale
    gallery: Sequence[Sequence[np.ndarray]]  # per scale: top-k gallery images
    matches: Sequence[Sequence[bool]]  # per scale: is each of them the probe's identity
    chosen: int  # index of P's scale
    ideal: int | None = None  # index of the ideal scale
    title: str = ""
    match_ranks: Sequence[float] = field(default_factory=list)  # per scale: rank of the first true match


def _frame(ax, colour: str, width: float) -> None:
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(colour)
        spine.set_linewidth(width)


def _show(ax, img: np.ndarray, nearest: bool = False) -> None:
    ax.imshow(np.clip(img, 0, 1), interpolation="nearest" if nearest else "bilinear")
    ax.set_xticks([]); ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_probe_panels(panels: Sequence[ProbePanel], path: str | Path, title: str | None = None) -> Path:
    """Draw the panels into one PNG at ``path``; returns the path.

    Example::

        plot_probe_panels([ProbePanel(lr, [1, 2], [sr1, sr2], [0.3, 0.7], [[g1, g2], [g2, g1]],
                                      [[False, True], [True, False]], chosen=1)], "probes.png")
    """
    plt = pyplot()
    if not panels:
        raise ValueError("plot_probe_panels: no probe to draw")
    topk = max(len(g) for p in panels for g in p.gallery)
    num_rows = sum(len(p.scales) for p in panels)
    # columns: probe | scale label | SR image | probability bar | gap | k gallery images
    widths = [1.0, 0.95, 1.0, 0.9, 0.15] + [1.0] * topk
    first_gallery = 5
    fig = plt.figure(figsize=(1.05 * sum(widths) + 0.4, 1.9 * num_rows + 0.5 * len(panels) + 0.4))
    outer = fig.add_gridspec(len(panels), 1, hspace=0.18, top=0.95, bottom=0.02, left=0.02, right=0.92,
                             height_ratios=[len(p.scales) for p in panels])
    for b, panel in enumerate(panels):
        n = len(panel.scales)
        grid = outer[b].subgridspec(n, len(widths), width_ratios=widths, wspace=0.08, hspace=0.12)
        ax = fig.add_subplot(grid[:, 0])
        _show(ax, panel.lr, nearest=True)
        h, w = panel.lr.shape[:2]
        ax.set_title(f"{panel.title}\nLR probe, {w}x{h} px" if panel.title else f"LR probe, {w}x{h} px", fontsize=9)
        for k, scale in enumerate(panel.scales):
            is_chosen = k == panel.chosen
            marks = (["P's choice"] if is_chosen else []) + (["ideal"] if panel.ideal is not None and k == panel.ideal else [])
            ax = fig.add_subplot(grid[k, 1])
            ax.axis("off")
            ax.text(0.95, 0.5, f"x{scale}" + "".join(f"\n{m}" for m in marks), ha="right", va="center",
                    fontsize=10, color=CHOSEN if is_chosen else "black", fontweight="bold" if is_chosen else "normal",
                    transform=ax.transAxes)
            ax = fig.add_subplot(grid[k, 2])
            _show(ax, panel.sr[k])
            if is_chosen:
                _frame(ax, CHOSEN, 3)
            if k == 0:
                ax.set_title("super-resolved", fontsize=9)
            # P's probability as a horizontal bar.
            ax = fig.add_subplot(grid[k, 3])
            p = float(panel.probs[k])
            ax.barh([0], [p], color=CHOSEN if is_chosen else GREY, height=0.5)
            ax.set_xlim(0, 1.35); ax.set_ylim(-1, 1)
            ax.text(p + 0.04, 0, f"{p:.2f}", va="center", fontsize=9)
            ax.set_yticks([])
            if k == n - 1:
                ax.set_xticks([0, 0.5, 1]); ax.tick_params(labelsize=7)
            else:
                ax.set_xticks([])
            for side in ("top", "right", "left"):
                ax.spines[side].set_visible(False)
            if k == 0:
                ax.set_title("P(scale)", fontsize=9)
            rank = panel.match_ranks[k] if k < len(panel.match_ranks) else None
            for j in range(topk):
                ax = fig.add_subplot(grid[k, first_gallery + j])
                if j < len(panel.gallery[k]):
                    _show(ax, panel.gallery[k][j])
                    hit = bool(panel.matches[k][j])
                    _frame(ax, GREEN if hit else GREY, 4 if hit else 1)
                else:
                    ax.axis("off")
                if k == 0:
                    ax.set_title(f"rank {j + 1}", fontsize=9)
            if rank is not None and np.isfinite(rank) and rank > topk:
                ax.text(1.08, 0.5, f"true match\nat rank {int(rank)}", transform=ax.transAxes, fontsize=8,
                        va="center", color=GREEN)
    fig.suptitle(title or "Probes super-resolved at every scale, P's probabilities, and the top-ranked gallery "
                 "(true match in green)", fontsize=11, y=0.99)
    return save(fig, path)
