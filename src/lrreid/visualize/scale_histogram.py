"""How often each scale factor was chosen for the probes, one bar group per predictor."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from lrreid.visualize._mpl import pyplot, save

COLOURS = {"adaptive (P)": "#1f5fbf", "ideal": "#1a9c3a", "size-based": "#d08a1e"}


def plot_scale_histogram(counts: Mapping[str, Mapping[int, int]], path: str | Path, title: str | None = None) -> Path:
    """``counts``: predictor name -> {scale: number of probes}; one PNG with grouped bars.

    Example::

        plot_scale_histogram({"adaptive (P)": {1: 3, 2: 40, 3: 12, 4: 5}, "ideal": {1: 9, 2: 20, 3: 16, 4: 15}},
                             "scales.png")
    """
    plt = pyplot()
    if not counts:
        raise ValueError("plot_scale_histogram: nothing to draw")
    scales = sorted({s for c in counts.values() for s in c})
    names = list(counts)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.4 + 1.3 * len(scales), 3.6))
    x = np.arange(len(scales))
    for i, name in enumerate(names):
        total = max(1, sum(counts[name].values()))
        values = [counts[name].get(s, 0) for s in scales]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width * 0.95, label=name,
                      color=COLOURS.get(name))
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{100 * v / total:.0f}%",
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"x{s}" for s in scales])
    ax.set_xlabel("scale factor")
    ax.set_ylabel("number of probes")
    ax.set_title(title or "Scale factor chosen per probe")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, fontsize=9)
    ax.margins(y=0.15)
    return save(fig, path)
