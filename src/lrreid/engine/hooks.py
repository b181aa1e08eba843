"""Hooks around the training loop: checkpoints, TensorBoard, progress bars, loss history, evaluation.

Only rank 0 writes files or shows bars; every hook is safe to register on every rank.
"""
from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Sequence

from lrreid.engine import checkpoint as ckpt_io
from lrreid.engine import distributed as dist_utils
from lrreid.engine.trainer import Hook, run_evaluation
from lrreid.utils.atomic import atomic_write_json, atomic_write_text
from lrreid.utils.logging import get_logger

log = get_logger("engine")


def progress_factory(enabled: bool):
    """``progress(iterable, total=None, desc=None)``: a tqdm bar on rank 0, the bare iterable elsewhere."""

    def progress(iterable, total=None, desc=None):
        if not enabled:
            return iterable
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)

    return progress


def checkpoint_stem(phase_index: int, phase_name: str, epochs_done: int) -> str:
    """File name of a checkpoint: ``p0-pretrain-e003`` = phase 0 after 3 of its epochs."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in phase_name)
    return f"p{phase_index}-{safe}-e{epochs_done:03d}"


class CheckpointHook(Hook):
    """Save every ``every`` epochs and at the end of each phase (atomically; ``last`` names the newest).

    ``keep`` says which stay:

    * ``"last"``: the newest complete checkpoint (what ``--resume`` and loading use) and the best
      evaluated one, when an :class:`EvalHook` evaluates during training; older ones are removed
      only after a newer one is completely written, so an interrupted run always has one to resume.
      "Best" is the highest Rank-1 (else the first metric) of the last row of the evaluation report
      (PRI: ``adaptive (P)``, the model as search uses it).
    * ``"all"`` or ``None``: every checkpoint.
    * ``N``: the ``N`` newest per-epoch checkpoints (oldest removed first) and the end of every phase.

    It runs after every other hook (``order``), so that the loss rows and evaluations of an epoch
    are written before the checkpoint that ends it.
    """

    order = 100

    def __init__(self, every: int = 1, keep: int | str | None = "last"):
        self.every = max(1, every)
        self.keep = None if keep == "all" else keep
        self._saved: list[str] = []

    def on_resume(self, ckpt) -> None:
        if self.keep == "last":  # the folder itself says what is there (see _keep_last_and_best)
            return
        # Per-epoch checkpoints written before the interruption count towards `keep` too.
        found = []
        for js in self.trainer.checkpoint_dir.glob("*.json"):
            try:
                pos = ckpt_io.TrainPosition(**json.loads(js.read_text())["position"])
            except (ValueError, KeyError, TypeError, OSError):
                continue
            phases = self.trainer.phases
            phase_end = pos.phase_index < len(phases) and pos.epochs_done == phases[pos.phase_index].epochs
            if not phase_end and pos.iteration <= ckpt.position.iteration:
                found.append((pos.iteration, js.stem))
        self._saved = [stem for _, stem in sorted(found)]

    def after_epoch(self) -> None:
        t = self.trainer
        phase_end = t.epoch + 1 == t.phase.epochs
        if not (phase_end or (t.epoch + 1) % self.every == 0):
            return
        if t.is_main:
            stem = checkpoint_stem(t.phase_index, t.phase.name, t.epoch + 1)
            ckpt_io.save_checkpoint(
                t.checkpoint_dir, stem, t.method, position=t.position(), optimizer=t.optimizer,
                scheduler=t.scheduler, scaler=t.scaler, config=t.config,
            )
            log.debug("saved checkpoint %s", stem)
            if self.keep == "last":
                self._keep_last_and_best()
            elif not phase_end:
                self._saved.append(stem)
                self._prune()
        dist_utils.barrier()  # nobody races ahead (or exits) before the checkpoint exists

    def after_train(self) -> None:
        # the last epoch's evaluation runs after its checkpoint: it may have changed which one is best
        if self.keep == "last" and self.trainer.is_main:
            self._keep_last_and_best()

    def _keep_last_and_best(self) -> None:
        folder = self.trainer.checkpoint_dir
        newest = ckpt_io.find_last(folder)
        if newest is None:
            return
        iterations = {}
        for js in folder.glob("*.json"):
            if not js.with_suffix(".safetensors").is_file():
                continue  # an interrupted write: not a checkpoint (and rewritten when training gets there)
            try:
                iterations[js.stem] = int(json.loads(js.read_text())["position"]["iteration"])
            except (ValueError, KeyError, TypeError, OSError):
                continue  # not one of ours: leave it alone
        keep = {newest.name, *self._best(iterations)}
        for stem in sorted(set(iterations) - keep):
            for suffix in (".json", ".safetensors"):  # JSON first: a lone tensor file is ignored
                (folder / f"{stem}{suffix}").unlink(missing_ok=True)
            log.debug("removed checkpoint %s (train.keep_checkpoints=last)", stem)

    def _best(self, iterations: dict[str, int]) -> list[str]:
        """The stem of the best evaluated checkpoint (``[]`` when no checkpoint was evaluated)."""
        scores = {}
        for hook in self.trainer.hooks:
            for entry in getattr(hook, "history", []) if isinstance(hook, EvalHook) else []:
                score = eval_score(entry["report"])
                if score is not None:
                    scores[entry["iteration"]] = score
        evaluated = [(scores[it], it, stem) for stem, it in iterations.items() if it in scores]
        return [max(evaluated)[2]] if evaluated else []

    def _prune(self) -> None:
        if self.keep is None:
            return
        while len(self._saved) > self.keep:
            stem = self._saved.pop(0)
            for suffix in (".json", ".safetensors"):  # JSON first: a lone tensor file is ignored
                (self.trainer.checkpoint_dir / f"{stem}{suffix}").unlink(missing_ok=True)


class LossHistoryHook(Hook):
    """Every iteration's losses and learning rates, in ``<run>/losses.csv`` (rewritten each epoch).

    Columns: phase, epoch (within the phase), iteration (global), lr (first param group), then one
    column per loss entry (empty where a phase does not report it).  Read it back with
    :func:`read_loss_history`.  On resume, rows after the checkpoint are dropped.
    """

    FILE = "losses.csv"
    FIXED = ["phase", "epoch", "iteration", "lr"]

    def __init__(self):
        self.rows: list[dict] = []

    @property
    def path(self) -> Path:
        return self.trainer.run_dir / self.FILE

    def on_resume(self, ckpt) -> None:
        if self.path.is_file():
            keep = ckpt.position.iteration
            self.rows = [r for r in read_loss_history(self.path) if r["iteration"] <= keep]

    def after_step(self, losses: dict[str, float]) -> None:
        t = self.trainer
        lrs = t.current_lrs()
        row = {"phase": t.phase.name, "epoch": t.epoch, "iteration": t.iteration,
               "lr": next(iter(lrs.values()), float("nan"))}
        row.update(losses)
        self.rows.append(row)

    def after_epoch(self) -> None:
        self.flush()

    def after_train(self) -> None:
        self.flush()

    def flush(self) -> None:
        if not self.trainer.is_main or not self.rows:
            return
        columns = list(self.FIXED)
        for row in self.rows:
            columns.extend(k for k in row if k not in columns)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


def read_loss_history(path: str | Path) -> list[dict]:
    """Rows of a ``losses.csv``: ``phase`` str, ``epoch``/``iteration`` int, every other column float (None if empty).

    Example::

        rows = read_loss_history("runs/pri-caviar/losses.csv")
        plt.plot([r["iteration"] for r in rows], [r["loss"] for r in rows])
    """
    rows = []
    with open(path, newline="") as fh:
        for raw in csv.DictReader(fh):
            row: dict = {}
            for key, value in raw.items():
                if key == "phase":
                    row[key] = value
                elif key in ("epoch", "iteration"):
                    row[key] = int(value)
                else:
                    row[key] = float(value) if value not in ("", None) else None
            rows.append(row)
    return rows


class TensorBoardHook(Hook):
    """Scalars for TensorBoard in ``<run>/tensorboard``: every loss entry and learning rate every
    ``log_every`` iterations, epoch means, and whatever other hooks put in ``trainer.epoch_scalars``."""

    def __init__(self, log_every: int | None = None):
        self.log_every = log_every
        self.writer = None
        self._sums: dict[str, float] = {}
        self._count = 0

    def before_train(self) -> None:
        if not self.trainer.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops events a killed run wrote after its last checkpoint.
        purge = self.trainer.iteration + 1 if self.trainer.resumed_from is not None else None
        self.writer = SummaryWriter(str(self.trainer.run_dir / "tensorboard"), purge_step=purge)

    def before_epoch(self) -> None:
        self._sums, self._count = {}, 0

    def after_step(self, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        every = self.log_every or self.trainer.log_every
        if self.writer is None or self.trainer.iteration % every:
            return
        step = self.trainer.iteration
        for k, v in losses.items():
            self.writer.add_scalar(f"loss/{k}", v, step)
        for name, lr in self.trainer.current_lrs().items():
            self.writer.add_scalar(f"lr/{name}", lr, step)

    def after_epoch(self) -> None:
        if self.writer is None:
            return
        step = self.trainer.iteration
        for k, v in self._sums.items():
            self.writer.add_scalar(f"epoch/{k}", v / max(1, self._count), step)
        for k, v in self.trainer.epoch_scalars.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def after_train(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class ProgressHook(Hook):
    """A tqdm bar per epoch with the running losses as postfix, and one log line per epoch (rank 0)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.bar = None
        self._sums: dict[str, float] = {}
        self._count = 0
        self._t0 = 0.0

    def before_epoch(self) -> None:
        t = self.trainer
        self._sums, self._count, self._t0 = {}, 0, time.perf_counter()
        if self.enabled and t.is_main:
            from tqdm.auto import tqdm

            desc = f"{t.phase.name} {t.epoch + 1}/{t.phase.epochs}"
            self.bar = tqdm(total=t.iters_per_epoch, desc=desc, leave=False, dynamic_ncols=True)

    def after_step(self, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self._sums[k] = self._sums.get(k, 0.0) + v
        self._count += 1
        if self.bar is not None:
            self.bar.update(1)
            if self._count % max(1, min(self.trainer.log_every, 10)) == 0 or self._count == 1:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()}, refresh=False)

    def after_epoch(self) -> None:
        t = self.trainer
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if t.is_main:
            means = " ".join(f"{k}={v / max(1, self._count):.4g}" for k, v in self._sums.items())
            log.info("%s epoch %d/%d: %s (%.1f s)", t.phase.name, t.epoch + 1, t.phase.epochs, means,
                     time.perf_counter() - self._t0)


def eval_score(report: dict) -> float | None:
    """What "best" means for checkpoints: Rank-1 (else the first metric) of the report's last row."""
    rows = report.get("rows") or []
    if not rows or not rows[-1].get("metrics"):
        return None
    metrics = rows[-1]["metrics"]
    value = metrics.get("rank1", next(iter(metrics.values())))
    return float(value) if value == value else None  # NaN: not comparable


class EvalHook(Hook):
    """``method.evaluate(splits)`` every ``every`` epochs (counted over all phases) and/or at the end.

    Runs on rank 0 only (the others wait).  Each report is printed, its numbers go to TensorBoard
    as ``eval/<row>/<metric>``, and all reports accumulate in ``<run>/eval_history.json``; the final
    one (``at_end``) is also written as ``eval.md`` / ``eval.json``.
    """

    def __init__(self, splits: Sequence, every: int = 0, at_end: bool = False, batch_size: int = 64):
        self.splits = list(splits)
        self.every = every
        self.at_end = at_end
        self.batch_size = batch_size
        self.history: list[dict] = []
        self.last_report = None

    def on_resume(self, ckpt) -> None:
        # the evaluations before the interruption stay in eval_history.json (and count for the best checkpoint)
        path = self.trainer.run_dir / "eval_history.json"
        try:
            earlier = json.loads(path.read_text()) if path.is_file() else []
        except (OSError, ValueError):
            earlier = []
        self.history = [h for h in earlier if isinstance(h, dict) and h.get("iteration", 1 << 62) <= ckpt.position.iteration]

    def after_epoch(self) -> None:
        t = self.trainer
        if self.every > 0 and t.global_epoch % self.every == 0:
            self._evaluate(f"{t.phase.name} epoch {t.epoch + 1}")

    def after_train(self) -> None:
        if self.at_end:
            report = self._evaluate("final")
            if report is not None and self.trainer.is_main:
                write_report(report, self.trainer.run_dir)

    def _evaluate(self, label: str):
        t = self.trainer
        report = None
        if t.is_main:
            ctx = t.make_context(t.phase, t.epoch)
            ctx.batch_size = self.batch_size
            report = run_evaluation(t.method, self.splits, ctx)
            report.print()
            for row in report.rows:
                for metric, value in row.metrics.items():
                    t.epoch_scalars[f"eval/{row.name}/{metric}"] = value
            self.history.append({"label": label, "global_epoch": t.global_epoch, "iteration": t.iteration,
                                 "report": report.to_dict()})
            atomic_write_json(t.run_dir / "eval_history.json", self.history)
        self.last_report = report
        dist_utils.barrier()
        return report


def write_report(report, folder: str | Path) -> None:
    """``eval.md`` and ``eval.json`` of a report in ``folder``."""
    folder = Path(folder)
    atomic_write_text(folder / "eval.md", report.to_markdown())
    atomic_write_text(folder / "eval.json", json.dumps(report.to_dict(), indent=2) + "\n")
