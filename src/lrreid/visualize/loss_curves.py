"""Training losses over iterations, from the engine's ``losses.csv`` (lrreid.engine.hooks.LossHistoryHook)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lrreid.visualize._mpl import pyplot, save

SKIP = {"phase", "epoch", "iteration", "lr"}
NAMES = {"loss": "total loss L", "sr": "L_sr (SR, L1)", "id": "L_id (identity CE)", "tri": "L_tri (triplet)",
         "p": "L_p (predictor vs soft labels)",
         "p_kl": "KL(soft label || P) = L_p - H(l)", "pred_scale": "mean predicted scale"}


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_loss_curves(history: str | Path | Sequence[dict], path: str | Path, title: str | None = None) -> Path:
    """One small plot per logged quantity, raw (light) and smoothed; phase changes as dashed lines.

    ``history`` is a ``losses.csv`` path or its rows (``read_loss_history``).

    Example::

        plot_loss_curves("runs/demo/losses.csv", "runs/demo/losses.png")
    """
    from lrreid.engine.hooks import read_loss_history

    rows = read_loss_history(history) if isinstance(history, (str, Path)) else list(history)
    if not rows:
        raise ValueError("plot_loss_curves: the loss history is empty")
    keys = []
    for row in rows:
        keys.extend(k for k in row if k not in SKIP and k not in keys)
    keys = [k for k in keys if any(r.get(k) is not None for r in rows)]
    plt = pyplot()
    ncols = min(3, len(keys))
    nrows = (len(keys) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.8 * nrows), squeeze=False)
    iters = np.array([r["iteration"] for r in rows])
    changes = [(rows[i]["iteration"], rows[i]["phase"]) for i in range(len(rows)) if i == 0 or rows[i]["phase"] != rows[i - 1]["phase"]]
    window = max(1, len(rows) // 40)
    for ax, key in zip(axes.flat, keys):
        have = np.array([r.get(key) is not None for r in rows])
        x = iters[have]
        y = np.array([r[key] for r in rows if r.get(key) is not None], dtype=float)
        ax.plot(x, y, color="#9bb7e0", linewidth=0.8)
        ax.plot(x, _smooth(y, window), color="#1f5fbf", linewidth=1.6)
        for it, phase in changes:
            ax.axvline(it, color="#888888", linestyle="--", linewidth=0.8)
            ax.text(it, 1.0, f" {phase}", transform=ax.get_xaxis_transform(), fontsize=7, va="top", color="#555555")
        ax.set_title(NAMES.get(key, key), fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title or "Training losses", fontsize=11)
    fig.tight_layout()
    return save(fig, path)
