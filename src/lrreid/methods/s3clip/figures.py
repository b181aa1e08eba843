"""Pictures of what S does to tracklets: LR, bilinear, S output and HR side by side, plus flicker maps.

``save_sr_examples`` is called by the evaluation (``<run>/sr_examples.png``).  To compare runs with
and without L_temporal::

    python -m lrreid.methods.s3clip.figures runs/s3clip-syn runs/s3clip-syn-notemporal -o flicker.png

Each row group is one HR tracklet: its bicubic LR copy (shown with nearest-neighbour blocks), the
bilinear up-sampling, S's output, the HR frames, and the absolute frame-to-frame differences
|S(x_t+1) - S(x_t)| and |x^h_t+1 - x^h_t| (flicker shows as change where HR has none).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from lrreid.data.records import TrackletRecord
from lrreid.methods.s3clip.data import hr_frames_and_bicubic_copy, is_lr
from lrreid.methods.s3clip.losses import temporal_consistency_loss
from lrreid.utils.atomic import atomic_path
from lrreid.utils.modules import eval_mode

if TYPE_CHECKING:  # pragma: no cover
    from lrreid.methods.s3clip.model import S3ClipMethod

MAX_COLUMNS = 6


def pick_hr_tracklets(method: "S3ClipMethod", records: Sequence[TrackletRecord], n: int) -> list[TrackletRecord]:
    """Up to ``n`` HR tracklets of different people, in record order."""
    out, seen = [], set()
    for r in records:
        if not is_lr(r, method.cfg.sampling.lr_views) and r.pid not in seen:
            out.append(r)
            seen.add(r.pid)
        if len(out) == n:
            break
    return out


@torch.no_grad()
def sr_panels(method: "S3ClipMethod", record: TrackletRecord, device: torch.device) -> dict[str, torch.Tensor]:
    """``{"LR", "bilinear", "S", "HR"}`` frames ``[T, 3, H, W]`` and the two difference maps ``[T-1, H, W]``."""
    t = min(MAX_COLUMNS, max(2, method.cfg.sampling.eval_frames))
    hr, lr = hr_frames_and_bicubic_copy(record, t, method.input_size, method.lr_size)
    with eval_mode(method):
        sr = method.super_resolve(lr.to(device)).clamp(0, 1).cpu()
    bilinear = method.upsample_bilinear(lr)
    lr_blocks = F.interpolate(lr.flatten(0, 1), size=method.input_size, mode="nearest").reshape_as(hr)
    return {
        "LR": lr_blocks[0], "bilinear": bilinear[0], "S": sr[0], "HR": hr[0],
        "|dS|": (sr[0, 1:] - sr[0, :-1]).abs().mean(1), "|dHR|": (hr[0, 1:] - hr[0, :-1]).abs().mean(1),
        "flicker": temporal_consistency_loss(sr, hr),
    }


def _show(ax, img: torch.Tensor | None, vmax: float) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if img is None:
        ax.axis("off")
    elif img.dim() == 3:
        ax.imshow(img.permute(1, 2, 0).numpy())
    else:
        ax.imshow(img.numpy(), cmap="magma", vmin=0.0, vmax=vmax)


def _draw_columns(axes, column: int, columns: list[tuple[str, torch.Tensor]], vmax: float, title: str) -> None:
    """One column per panel kind, one row per frame (difference maps have one row fewer)."""
    for j, (label, frames) in enumerate(columns):
        for t in range(axes.shape[0]):
            _show(axes[t, column + j], frames[t] if t < frames.shape[0] else None, vmax)
        if j > 0:
            axes[0, column + j].set_title(label, fontsize=6)
    axes[0, column].set_title(f"{title}\n{columns[0][0]}", fontsize=6, loc="left")


def _figure(rows: int, cols: int, input_size: tuple[int, int]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aspect = input_size[0] / input_size[1]
    fig, axes = plt.subplots(rows, cols, figsize=(0.75 * cols, 0.75 * aspect * rows + 0.4), squeeze=False)
    return plt, fig, axes


def _save(plt, fig, path: str | Path) -> Path:
    fig.tight_layout(pad=0.15)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    return path


PANELS = ("LR", "bilinear", "S", "HR", "|dS|", "|dHR|")


def save_sr_examples(method: "S3ClipMethod", records: Sequence[TrackletRecord], path: str | Path,
                     num_tracklets: int = 3, device: torch.device | str = "cpu") -> Path | None:
    """Write the LR / bilinear / S / HR / flicker picture of a few HR tracklets; None if there are none.

    Columns: for each tracklet the six panels; rows: the frames (difference maps: consecutive pairs).
    """
    chosen = pick_hr_tracklets(method, records, num_tracklets)
    if not chosen:
        return None
    panels = [sr_panels(method, r, torch.device(device)) for r in chosen]
    rows = max(p["HR"].shape[0] for p in panels)
    plt, fig, axes = _figure(rows, len(PANELS) * len(panels), method.input_size)
    vmax = max(float(p["|dHR|"].max()) for p in panels) or 1.0
    for k, (record, panel) in enumerate(zip(chosen, panels)):
        columns = [(name, panel[name]) for name in PANELS]
        _draw_columns(axes, k * len(PANELS), columns, vmax,
                      f"person {record.pid}, flicker {float(panel['flicker']):.3f}")
    return _save(plt, fig, path)


def save_flicker_comparison(methods: dict[str, "S3ClipMethod"], records: Sequence[TrackletRecord],
                            path: str | Path, num_tracklets: int = 2, device: torch.device | str = "cpu") -> dict[str, float]:
    """S output and |dS| of several runs (e.g. with and without L_temporal) on the same tracklets.

    Returns each run's mean flicker (L_temporal of its output against HR) over the tracklets shown.
    """
    first = next(iter(methods.values()))
    chosen = pick_hr_tracklets(first, records, num_tracklets)
    per_run = {label: [sr_panels(m, r, torch.device(device)) for r in chosen] for label, m in methods.items()}
    reference = per_run[next(iter(methods))]
    per_tracklet = 2 + 2 * len(methods)
    rows = max(p["HR"].shape[0] for p in reference)
    plt, fig, axes = _figure(rows, per_tracklet * len(chosen), first.input_size)
    vmax = max(float(p["|dHR|"].max()) for ps in per_run.values() for p in ps) or 1.0
    for k, record in enumerate(chosen):
        columns = [("HR", reference[k]["HR"]), ("|dHR|", reference[k]["|dHR|"])]
        for label, ps in per_run.items():
            columns += [(f"S {label}", ps[k]["S"]), (f"|dS| {float(ps[k]['flicker']):.3f}", ps[k]["|dS|"])]
        _draw_columns(axes, k * per_tracklet, columns, vmax, f"person {record.pid}")
    _save(plt, fig, path)
    return {label: float(np.mean([float(p["flicker"]) for p in ps])) for label, ps in per_run.items()}


def main(argv: list[str] | None = None) -> None:
    """Compare the SR output (and flicker) of trained runs on the first split's test tracklets."""
    from lrreid.build import load_trained_method
    from lrreid.methods.s3clip.evaluate import test_tracklets

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("runs", nargs="+", help="run folders (e.g. with and without L_temporal)")
    parser.add_argument("-o", "--output", default="flicker.png")
    parser.add_argument("-n", "--tracklets", type=int, default=2)
    args = parser.parse_args(argv)
    methods, records = {}, None
    for run in args.runs:
        cfg, splits, method, _ = load_trained_method(run)
        method.eval()
        label = Path(run).name
        methods[label] = method
        if records is None:
            records = test_tracklets(splits[0], cfg.sampling.pseudo_tracklets, cfg.sampling.view_map)  # whole tracklets: the figure shows flicker
    flicker = save_flicker_comparison(methods, records, args.output, args.tracklets)
    for label, value in flicker.items():
        print(f"{label}: mean flicker (L_temporal vs HR) {value:.4f}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
