"""Pictures of what a model does, as PNG files (matplotlib, Agg backend: no display needed).

* :func:`plot_probe_panels`: for a few LR probes, the probe, its super-resolutions at every scale
  with the predictor's probability of each, and the top-ranked gallery at each scale with the true
  match framed in green (PRI.md Figs. 1 and 5).
* :func:`plot_scale_histogram`: how often each scale was chosen, per predictor.
* :func:`plot_loss_curves`: the training losses over iterations, from a run's ``losses.csv``.
"""
from lrreid.visualize.loss_curves import plot_loss_curves
from lrreid.visualize.probe_figure import ProbePanel, plot_probe_panels
from lrreid.visualize.scale_histogram import plot_scale_histogram

__all__ = ["ProbePanel", "plot_probe_panels", "plot_scale_histogram", "plot_loss_curves"]
