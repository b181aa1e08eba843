"""What a training method is, as the engine sees it.

The engine (lrreid.engine) owns the loop: phases -> epochs -> iterations, the optimizer step,
checkpoints, DDP and logging.  A :class:`Method` owns its sub-modules, its losses and its training
step; it never copies the loop.  A method is registered by name in :data:`METHODS` through a
:class:`MethodSpec`, which validates the method's own config sections and builds the method.

Example (a complete, if tiny, method)::

    class Linear(Method):
        name = "linear"

        def __init__(self, features, pids, num_classes):
            super().__init__()
            self.features, self.pids = features, pids
            self.classifier = nn.Linear(features.shape[1], num_classes)

        def phases(self):
            return [Phase("train", epochs=2, trainable=("classifier",))]

        def train_dataset(self, phase):
            return [{"x": x, "pid": int(p)} for x, p in zip(self.features, self.pids)]

        def training_step(self, batch, phase, epoch):
            loss = losses.cross_entropy(self.classifier(batch["x"]), batch["pid"])
            return {"loss": loss}
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from lrreid.errors import CheckpointError
from lrreid.evaluation.summary import mean_std
from lrreid.registry import Registry

if TYPE_CHECKING:  # pragma: no cover - typing only
    from lrreid.config import RunConfig
    from lrreid.data.protocols import EvalSplit
    from lrreid.data.records import Record
    from lrreid.engine.checkpoint import Checkpoint
    from lrreid.utils.device import Precision


@dataclass(frozen=True)
class Phase:
    """One stage of a method's training schedule.

    ``trainable`` names sub-modules (attributes of the method) trained in this phase; all other
    parameters are frozen (``requires_grad=False``).  With ``frozen_eval`` the frozen sub-modules
    are also put in eval mode, so their BatchNorm statistics and dropout stay fixed.
    ``identity_batches`` asks the engine for P x K batches (RandomIdentitySampler): P identities,
    K images each, as the triplet loss needs; otherwise batches are a seeded random shuffle.
    """

    name: str
    epochs: int
    trainable: tuple[str, ...]
    identity_batches: bool = True
    frozen_eval: bool = True

    def __post_init__(self):
        object.__setattr__(self, "trainable", tuple(self.trainable))


@dataclass
class EpochContext:
    """What the engine hands a method at the start of an epoch and for evaluation.

    ``generator`` and ``rng`` are seeded from the run seed, the phase and the epoch, so anything a
    method draws from them is identical in a resumed run.  ``progress(iterable, total=, desc=)``
    wraps an iterable in a progress bar (silent on ranks other than 0).
    """

    device: torch.device
    precision: "Precision | None" = None
    rank: int = 0
    world_size: int = 1
    phase: Phase | None = None
    epoch: int = 0
    generator: torch.Generator = field(default_factory=torch.Generator)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    progress: Callable[..., Iterable] = field(default=lambda it, total=None, desc=None: it)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("lrreid"))
    run_dir: Path | None = None
    batch_size: int = 64
    num_workers: int = 0

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints (rank 0)."""
        return self.rank == 0

    def all_gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's copy of ``tensor`` (same shape on all ranks), ordered by rank; ``[tensor]`` without DDP."""
        if self.world_size == 1 or not torch.distributed.is_initialized():
            return [tensor]
        out = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(out, tensor.contiguous())
        return out


@dataclass
class InferenceParts:
    """One inference protocol for every method: preprocess, predict a scale, super-resolve, embed.

    For a probe (LR): resize to ``lr_size`` if set, ``scale`` from ``predictor`` (the argmax of its
    logits over ``scales`` on the preprocessed probe) or ``fixed_scale``, ``sr(x, scale)``, then the
    gallery path.  For a gallery image (HR): preprocess (resize to ``input_size``, ``(x - mean) /
    std``), ``embedder`` -> features, L2-normalised when ``normalize_features``.

    ``embedder`` takes ``[B, 3, H, W]`` (and, where ``video``, tracklets ``[B, T, 3, H, W]``: the
    frames of one person pooled into one feature).  ``sr`` is ``forward(x, scale)`` on images in
    [0, 1] or None (no SR); ``predictor`` maps preprocessed images to ``[B, len(scales)]`` logits.
    """

    embedder: nn.Module
    input_size: tuple[int, int]
    sr: nn.Module | None = None
    predictor: nn.Module | None = None
    scales: tuple[int, ...] = (1,)
    fixed_scale: int | None = None
    lr_size: tuple[int, int] | None = None
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    normalize_features: bool = False
    min_probe_side: int = 4
    video: bool = False


class Method(nn.Module):
    """Owns sub-modules (attributes), its losses and its training step.

    The engine calls ``forward(batch, phase, epoch)``, which equals :meth:`training_step`, so that
    DistributedDataParallel's gradient hooks see the step.  Defaults here cover the common case;
    a method overrides :meth:`phases`, :meth:`train_dataset`, :meth:`training_step` and usually
    :meth:`evaluate` and :meth:`embed`.
    """

    name: str = "method"
    lr: float = 3.5e-4  # used by the default param_groups / make_optimizer
    weight_decay: float = 5e-4
    # DDP: set True only if some trainable parameter gets no gradient in a step (e.g. a branch
    # taken by some batches only); it costs a graph traversal per step (docs/training.md).
    find_unused_parameters: bool = False
    collate_fn = None  # DataLoader collate function; None: torch's default (dicts of tensors/ints)
    # Paths of the training images: an evaluation skips splits that test on them.  Set by the
    # builder, or from the run's training split when a trained run is evaluated.
    train_paths: frozenset = frozenset()

    # -- schedule and optimisation ------------------------------------------------------------
    def phases(self) -> list[Phase]:
        raise NotImplementedError(f"{type(self).__name__}.phases()")

    def param_groups(self, phase: Phase) -> list[dict]:
        """One torch.optim param group per trainable sub-module: ``{"params", "lr", "name"}``."""
        groups = []
        for module_name in phase.trainable:
            params = [p for p in self._submodule(module_name).parameters() if p.requires_grad]
            if params:
                groups.append({"params": params, "lr": self.lr, "name": module_name})
        return groups

    def make_optimizer(self, phase: Phase) -> torch.optim.Optimizer:
        """Adam over :meth:`param_groups` (override for SGD, AdamW, ...)."""
        return torch.optim.Adam(self.param_groups(phase), lr=self.lr, weight_decay=self.weight_decay)

    def make_scheduler(
        self, phase: Phase, optimizer: torch.optim.Optimizer
    ) -> torch.optim.lr_scheduler.LRScheduler | None:
        """Per-epoch LR scheduler (stepped by the engine after every epoch); None keeps the LR fixed."""
        return None

    def apply_phase(self, phase: Phase) -> None:
        """Freeze everything outside ``phase.trainable``; the engine calls this after ``train()``."""
        trainable = {name: self._submodule(name) for name in phase.trainable}
        trainable_ids = {id(p) for m in trainable.values() for p in m.parameters()}
        for p in self.parameters():
            p.requires_grad_(id(p) in trainable_ids)
        if phase.frozen_eval:
            for name, child in self.named_children():
                if name not in trainable:
                    child.eval()

    # -- data and step ------------------------------------------------------------------------
    def train_dataset(self, phase: Phase) -> torch.utils.data.Dataset:
        """Training items of this phase: dicts of tensors/ints, each with an int ``"pid"``.

        Give the dataset a ``pids`` attribute (one int per item) so the identity sampler does not
        have to load every item to learn its identity.
        """
        raise NotImplementedError(f"{type(self).__name__}.train_dataset()")

    def training_step(self, batch: dict, phase: Phase, epoch: int) -> dict[str, torch.Tensor]:
        """Losses of one batch: must contain ``"loss"`` (backpropagated); other entries are logged."""
        raise NotImplementedError(f"{type(self).__name__}.training_step()")

    def forward(self, batch: dict, phase: Phase, epoch: int) -> dict[str, torch.Tensor]:
        return self.training_step(batch, phase, epoch)

    def on_epoch_start(self, phase: Phase, epoch: int, ctx: EpochContext) -> None:
        """Hook before each epoch (PRI refreshes its dynamic soft labels here)."""

    def on_epoch_end(self, phase: Phase, epoch: int, ctx: EpochContext) -> dict[str, float] | None:
        """Hook after each epoch's last step, before its checkpoint: scalars to log for the epoch
        (the engine prints them in one line and sends them to TensorBoard as ``method/<name>``)."""
        return None

    # -- checkpoint ---------------------------------------------------------------------------
    def extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors saved in checkpoints beside the weights (e.g. PRI's soft-label table)."""
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise CheckpointError(
                f"checkpoint has extra state {sorted(state)} that method {self.name!r} does not use"
            )

    def signature(self) -> dict[str, Any]:
        """JSON-able facts a checkpoint must match beyond parameter shapes (e.g. ``{"scales": [1, 2, 3, 4]}``)."""
        return {}

    def derived_settings(self) -> dict[str, Any]:
        """JSON-able numbers the builder read off the training data (classes, canvas sizes, ...).

        Saved in every checkpoint; ``MethodSpec.build_trained`` reads them back, so a trained run
        is rebuilt from its config and checkpoint alone, with no dataset.
        """
        return {}

    # -- evaluation and inference -------------------------------------------------------------
    def evaluate(self, splits: Sequence["EvalSplit"], ctx: EpochContext) -> "EvalReport":
        raise NotImplementedError(f"{type(self).__name__}.evaluate()")

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Re-ID features of a batch of images (used by search and export)."""
        raise NotImplementedError(f"{type(self).__name__}.embed()")

    def inference_parts(self) -> "InferenceParts":
        """The trained model's inference path as networks and settings (search, index, export).

        :class:`~lrreid.inference.pipeline.LRReIDPipeline` runs exactly these, adding batching and
        precision; ONNX export traces the same modules.
        """
        raise NotImplementedError(f"{type(self).__name__}.inference_parts(): method {self.name!r} cannot be searched with")

    def _submodule(self, name: str) -> nn.Module:
        module = getattr(self, name, None)
        if not isinstance(module, nn.Module):
            raise ValueError(f"{type(self).__name__} has no sub-module {name!r} (named in a Phase.trainable)")
        return module


# ----------------------------------------------------------------------------------------------
@dataclass
class EvalRow:
    """One line of a report: a name (e.g. "predicted scale") and metric -> mean (and std over splits)."""

    name: str
    metrics: dict[str, float]
    std: dict[str, float] = field(default_factory=dict)


@dataclass
class EvalReport:
    """Rows of metrics, printable as a rich table and writable as Markdown/JSON.

    With ``percent`` (default) metric values are fractions in [0, 1] shown as percentages.

    Example::

        report = EvalReport("CAVIAR, 10 splits")
        report.add("x2", {"rank1": 0.41, "mAP": 0.52}, std={"rank1": 0.03})
        report.print()
        Path("eval.md").write_text(report.to_markdown())
    """

    title: str = "evaluation"
    rows: list[EvalRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    percent: bool = True
    # what was counted -> label -> count, e.g. {"probes per scale picked by adaptive (P)": {"x1": 12}};
    # shown as lines before the notes, and summed (not averaged) when split reports are combined
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, name: str, metrics: dict[str, float], std: dict[str, float] | None = None) -> EvalRow:
        row = EvalRow(name, {k: float(v) for k, v in metrics.items()}, {k: float(v) for k, v in (std or {}).items()})
        self.rows.append(row)
        return row

    def columns(self) -> list[str]:
        """Metric names in first-seen order across rows."""
        cols: list[str] = []
        for row in self.rows:
            cols.extend(k for k in row.metrics if k not in cols)
        return cols

    def cell(self, row: EvalRow, col: str) -> str:
        if col not in row.metrics or not math.isfinite(row.metrics[col]):
            return "-"
        factor = 100.0 if self.percent else 1.0
        text = f"{row.metrics[col] * factor:.1f}" if self.percent else f"{row.metrics[col]:.4g}"
        if col in row.std:
            text += f" ± {row.std[col] * factor:.1f}" if self.percent else f" ± {row.std[col]:.2g}"
        return text

    def to_table(self):
        """A ``rich.table.Table`` of the rows."""
        from rich.table import Table

        table = Table(title=self.title)
        table.add_column("")
        for col in self.columns():
            table.add_column(col + (" (%)" if self.percent else ""), justify="right")
        for row in self.rows:
            table.add_row(row.name, *(self.cell(row, c) for c in self.columns()))
        return table

    def print(self, console=None) -> None:
        from rich.console import Console

        console = console or Console()
        console.print(self.to_table())
        for line in self.text_lines():
            console.print(line)

    def text_lines(self) -> list[str]:
        """The lines under the table: the counts (``what: label count, ...``), then the notes."""
        counted = [f"{what}: " + ", ".join(f"{label} {n}" for label, n in by_label.items())
                   for what, by_label in self.counts.items()]
        return counted + list(self.notes)

    def to_markdown(self) -> str:
        cols = self.columns()
        head = [""] + [c + (" (%)" if self.percent else "") for c in cols]
        lines = [f"## {self.title}", "", "| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        for row in self.rows:
            lines.append("| " + " | ".join([row.name] + [self.cell(row, c) for c in cols]) + " |")
        extra = self.text_lines()
        lines.extend([""] + extra if extra else [])
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "percent": self.percent,
            "rows": [{"name": r.name, "metrics": r.metrics, "std": r.std} for r in self.rows],
            "notes": list(self.notes),
            "counts": {what: dict(by_label) for what, by_label in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "EvalReport":
        report = cls(d.get("title", "evaluation"), notes=list(d.get("notes", [])), percent=d.get("percent", True),
                     counts={str(w): {str(k): int(v) for k, v in c.items()} for w, c in (d.get("counts") or {}).items()})
        for r in d.get("rows", []):
            report.add(r["name"], r["metrics"], r.get("std"))
        return report



_SPLIT_COUNT_IN_TITLE = re.compile(r",?\s*\b\d+\s+splits?\s*$")


def combine_split_reports(reports: Sequence[EvalReport], names: Sequence[str]) -> EvalReport:
    """One report from per-split reports of one model per split: per row, mean and std over splits.

    Each report counts as one sample (its std, if any, is replaced); ``std`` is the population
    standard deviation (ddof=0, :func:`lrreid.evaluation.summary.mean_std`).  A row or metric missing
    in some splits is combined over the splits that have it, and a note says which are missing.
    ``counts`` (such as PRI's scale histogram) are summed over the splits; every note is kept,
    prefixed by its split's name.

    Example::

        >>> a, b = EvalReport("toy, 1 split"), EvalReport("toy, 1 split")
        >>> _ = a.add("x2", {"rank1": 0.4}); _ = b.add("x2", {"rank1": 0.6})
        >>> a.counts["picked"] = {"x1": 3, "x2": 1}; b.counts["picked"] = {"x1": 2, "x2": 2}
        >>> both = combine_split_reports([a, b], ["split0", "split1"])
        >>> both.title, round(both.rows[0].metrics["rank1"], 6), round(both.rows[0].std["rank1"], 6)
        ('toy, 2 splits, one model per split', 0.5, 0.1)
        >>> both.counts
        {'picked (sum over 2 splits)': {'x1': 5, 'x2': 3}}
    """
    from lrreid.errors import ProtocolError

    reports, names = list(reports), [str(n) for n in names]
    if not reports:
        raise ProtocolError("combine_split_reports: no split reports given (expected one per split)")
    if len(names) != len(reports):
        raise ValueError(f"combine_split_reports: {len(reports)} reports but {len(names)} names")
    percents = {r.percent for r in reports}
    if len(percents) > 1:
        raise ProtocolError("combine_split_reports: some split reports are in percent and some are not")

    n = len(reports)
    base = _SPLIT_COUNT_IN_TITLE.sub("", reports[0].title).strip() or "evaluation"
    out = EvalReport(f"{base}, {n} split{'s' if n != 1 else ''}, one model per split", percent=reports[0].percent)

    row_names: list[str] = []
    for report in reports:
        row_names.extend(r.name for r in report.rows if r.name not in row_names)
    missing_notes: list[str] = []
    for row_name in row_names:
        present = [(name, next(r for r in report.rows if r.name == row_name)) for name, report in zip(names, reports)
                   if any(r.name == row_name for r in report.rows)]
        if len(present) < n:
            absent = [name for name in names if name not in {p for p, _ in present}]
            missing_notes.append(f"row {row_name!r} is missing in {', '.join(absent)}: "
                                 f"its numbers are over the other {len(present)} split(s)")
        metric_names: list[str] = []
        for _, row in present:
            metric_names.extend(m for m in row.metrics if m not in metric_names)
        means, stds = {}, {}
        for metric in metric_names:
            values = [row.metrics[metric] for _, row in present if metric in row.metrics]
            if len(values) < len(present):
                absent = [name for name, row in present if metric not in row.metrics]
                missing_notes.append(f"{row_name!r} has no {metric} in {', '.join(absent)}: "
                                     f"its {metric} is over the other {len(values)} split(s)")
            means[metric], stds[metric] = mean_std(values)
        out.add(row_name, means, std=stds)

    kept: list[str] = []
    for name, report in zip(names, reports):
        for what, by_label in report.counts.items():
            summed = out.counts.setdefault(f"{what} (sum over {n} splits)", {})
            for label, count in by_label.items():
                summed[label] = summed.get(label, 0) + int(count)
        kept.extend(f"{name}: {note}" for note in report.notes)
    out.notes.extend(missing_notes)
    out.notes.extend(kept)
    return out


# ----------------------------------------------------------------------------------------------
class MethodSpec(Protocol):
    """How a method is registered: ``METHODS.register("pri")(PRIMethodSpec)``.

    ``config_class`` is a dataclass whose fields are the method's own top-level config sections
    (e.g. ``model``, ``loss``, ``schedule``), each itself a dataclass; lrreid.config validates those
    sections against it.  ``build`` and ``build_trained`` are staticmethods/classmethods (or the
    spec is an instance).

    ``build`` makes a method to train from the training records; ``build_trained`` makes the same
    networks for a checkpoint's weights from the config and ``checkpoint.meta["derived"]`` (what
    ``Method.derived_settings`` saved) alone: no dataset, no pretrained weight files.
    """

    config_class: type

    def build(self, cfg: "RunConfig", train_records: "list[Record]", num_classes: int) -> Method: ...

    def build_trained(self, cfg: "RunConfig", checkpoint: "Checkpoint") -> Method: ...


METHODS: Registry[MethodSpec] = Registry("method")
