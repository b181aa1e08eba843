"""The pictures of a PRI run: probes at every scale (Figs. 1 and 5), chosen scales, losses.

:func:`write_pictures` draws them from an evaluation (``method.last_evaluation`` or the result of
:func:`~lrreid.methods.pri.evaluate.evaluate_predictors`) into a run folder.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lrreid.methods.pri.data import load_image
from lrreid.methods.pri.evaluate import PRIEvaluation, SplitDetail
from lrreid.utils.logging import get_logger
from lrreid.utils.modules import eval_mode

log = get_logger("methods.pri")


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


def pick_probes(detail: SplitDetail, num: int) -> list[int]:
    """Up to ``num`` probes of different people, where the scale matters most, covering P's choices.

    Probes are ordered by how much the rank of their true match changes across scales; the first
    pass takes one probe per scale P chose, the second fills up with the rest (one per person).
    """
    chosen = detail.choices.get("adaptive (P)", np.zeros(len(detail.query), dtype=int))
    ranks = np.where(np.isfinite(detail.ranks), detail.ranks, len(detail.gallery) + 1)
    spread = ranks.max(axis=0) - ranks.min(axis=0)
    order = sorted(range(len(detail.query)), key=lambda i: (-spread[i], i))
    picked: list[int] = []
    people: set = set()
    for first_pass in (True, False):
        seen_scales = {int(chosen[i]) for i in picked}
        for i in order:
            if len(picked) >= num:
                break
            pid = detail.query[i].pid
            if i in picked or pid in people or (first_pass and int(chosen[i]) in seen_scales):
                continue
            picked.append(i)
            people.add(pid)
            seen_scales.add(int(chosen[i]))
    return picked


@torch.no_grad()
def probe_panels(method, detail: SplitDetail, num_probes: int = 3, topk: int = 5):
    """:class:`~lrreid.visualize.ProbePanel` data for a few probes of one evaluated split."""
    from lrreid.visualize import ProbePanel

    device = next(method.parameters()).device
    g_pids = np.array([r.pid for r in detail.gallery])
    panels = []
    with eval_mode(method):
        for i in pick_probes(detail, num_probes):
            record = detail.query[i]
            lr = load_image(record.path).unsqueeze(0).to(device)
            sr = [_hwc(method.super_resolve(lr, s)[0]) for s in method.scales]
            gallery, matches = [], []
            for k in range(len(method.scales)):
                idx = detail.topk[k, i, :topk]
                gallery.append([_hwc(load_image(detail.gallery[j].path, method.input_size)) for j in idx])
                matches.append([bool(g_pids[j] == record.pid) for j in idx])
            ideal = detail.choices.get("ideal")
            panels.append(ProbePanel(
                lr=_hwc(lr[0]), scales=list(method.scales), sr=sr, probs=[float(p) for p in detail.probs[i]],
                gallery=gallery, matches=matches, chosen=int(detail.choices.get("adaptive (P)", [0] * (i + 1))[i]),
                ideal=int(ideal[i]) if ideal is not None else None, title=f"person {record.pid}",
                match_ranks=[float(r) for r in detail.ranks[:, i]],
            ))
    return panels


def write_pictures(method, evaluation: PRIEvaluation, run_dir: str | Path, num_probes: int = 3) -> list[Path]:
    """``probes.png``, ``scale_histogram.png`` and (if the run has a loss history) ``losses.png``."""
    from lrreid.visualize import plot_loss_curves, plot_probe_panels, plot_scale_histogram

    run_dir = Path(run_dir)
    written = []
    detail = evaluation.details[0]
    panels = probe_panels(method, detail, num_probes=num_probes)
    written.append(plot_probe_panels(panels, run_dir / "probes.png"))
    counts = evaluation.scale_counts()
    if counts:
        n = sum(len(d.query) for d in evaluation.details)
        written.append(plot_scale_histogram(counts, run_dir / "scale_histogram.png",
                                            title=f"Scale factor chosen for each of {n} probes"))
    losses_csv = run_dir / "losses.csv"
    if losses_csv.is_file():
        written.append(plot_loss_curves(losses_csv, run_dir / "losses.png", title="PRI training losses"))
    for path in written:
        log.info("wrote %s", path)
    return written
