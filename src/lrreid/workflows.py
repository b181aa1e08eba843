"""What ``lrreid train``, ``evaluate`` and ``demo`` do, between the CLI and the engine.

The CLI (lrreid.cli) parses arguments and prints; lrreid.build turns a config into objects; the
engine runs one training loop.  This module holds the steps in between: refuse or resume a run
folder, save its config, train one run or one model per split, evaluate a trained run (or each
sub-run of an ``--each-split`` run) and write its report, and the demo's flow.  The engine imports
nothing from here (tests/test_workflows.py).

Example::

    cfg = load_config("configs/pri_caviar.yaml", ["train.max_iters_per_epoch=5"])
    train_run(cfg)                                   # checkpoints and config.yaml in train.output_dir
    report, folder = evaluate_run(cfg.train.output_dir)
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Callable, Sequence

from lrreid.build import (
    build_method,
    build_splits,
    build_trainer,
    config_from_run,
    evaluation_context,
    load_trained_method,
    select_splits,
)
from lrreid.engine import checkpoint as ckpt_io
from lrreid.engine import distributed as dist_utils
from lrreid.engine.each_split import add_train_seconds, is_each_split_run, split_run_dir, sub_runs, train_seconds
from lrreid.engine.hooks import write_report
from lrreid.engine.trainer import run_evaluation
from lrreid.errors import CheckpointError, ConfigError
from lrreid.methods.base import EvalReport, combine_split_reports
from lrreid.utils.logging import get_logger

log = get_logger("train")


# --------------------------------------------------------------------------------------------
# The run folder
# --------------------------------------------------------------------------------------------
def refuse_existing_run(run_dir: str | Path) -> None:
    """ConfigError if ``run_dir`` already holds checkpoints: a fresh run never overwrites another.

    Checked once per run folder, by the workflow that starts it, before anything is built or written
    (on every process of a DDP group, so all stop together).
    """
    run_dir = Path(run_dir)
    if ckpt_io.find_last(run_dir / "checkpoints") is not None:
        raise ConfigError(
            f"run folder {run_dir} already has checkpoints; pass --resume (train.resume=true) to "
            f"continue it, or choose another train.output_dir"
        )


def save_run_config(cfg, run_dir: Path) -> None:
    """Write the resolved config to ``<run_dir>/config.yaml`` (atomically); warn when a resume changed it."""
    import yaml

    from lrreid.config import config_to_yaml
    from lrreid.utils.atomic import atomic_write_text

    def without_resume(raw):  # train.resume itself always differs between a start and its resume
        raw = dict(raw or {})
        raw["train"] = {k: v for k, v in dict(raw.get("train") or {}).items() if k != "resume"}
        return raw

    text = config_to_yaml(cfg)
    saved = Path(run_dir) / "config.yaml"
    if cfg.train.resume and saved.is_file():
        try:
            before = yaml.safe_load(saved.read_text())
        except yaml.YAMLError:
            before = None
        if not isinstance(before, dict) or without_resume(before) != without_resume(yaml.safe_load(text)):
            log.warning("config differs from the one %s was started with; saving the new one", run_dir)
    atomic_write_text(saved, text)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------
def train_run(cfg, info: dist_utils.DistInfo | None = None) -> None:
    """Train the run of ``cfg`` into ``train.output_dir`` (resuming with ``train.resume``).

    A fresh run in a folder with checkpoints is refused before anything is built or written; the
    config is saved only once everything was built (a run that fails to start leaves nothing).
    """
    info = info or dist_utils.current()
    run_dir = Path(cfg.train.output_dir)
    if not cfg.train.resume:
        refuse_existing_run(run_dir)
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    trainer = build_trainer(cfg, method, splits, dist_info=info)
    if info.is_main:
        save_run_config(cfg, run_dir)
    trainer.train(resume=cfg.train.resume)


def split_run_config(cfg, index: int, resume: bool, changes: dict | None = None, output_dir: Path | None = None):
    """The config of split ``index``'s sub-run: a normal run trained on that split, evaluated on it at the end.

    ``changes`` (sections -> keys -> values) are applied on top, for a companion run (``output_dir``).

    Example: ``split_run_config(cfg, 3, resume=False).data.split_for_training == 3``
    """
    from lrreid.config import config_from_dict

    raw = cfg.to_dict()
    for section, values in (changes or {}).items():
        raw[section] = {**dict(raw.get(section) or {}), **values}
    raw["data"]["split_for_training"] = index
    raw["eval"]["splits"] = [index]
    raw["eval"]["at_end"] = True
    raw["train"]["output_dir"] = str(output_dir or split_run_dir(cfg.train.output_dir, index))
    raw["train"]["one_model_per_split"] = False  # a sub-run is an ordinary run (`lrreid evaluate runs/x/split3` works)
    raw["train"]["resume"] = resume
    return config_from_dict(raw)


def split_indices(cfg, num_splits: int) -> list[int]:
    """The splits a one-model-per-split run trains: ``eval.splits``, or all ``num_splits`` when None."""
    if cfg.eval.splits is None:
        return list(range(num_splits))
    indices = list(cfg.eval.splits)
    bad = [i for i in indices if not 0 <= i < num_splits]
    if bad:
        raise ConfigError(f"eval.splits={indices}: split {bad[0]} does not exist (there are {num_splits})")
    if len(set(indices)) != len(indices):
        raise ConfigError(f"eval.splits={indices}: a split is listed twice (one model per split)")
    if not indices:
        raise ConfigError("eval.splits=[]: no split to train (one model per split)")
    return indices


def train_each_split(cfg, info) -> EvalReport | None:
    """Train one model per split into ``<output_dir>/split<i>/``, then write the combined report.

    Returns the combined report on the main process (None on the others).

    Every process of a DDP group runs this loop, so each split is trained by all of them in turn.
    With ``train.resume`` a split whose sub-run has ``eval.json`` is skipped, one with checkpoints
    resumes from its last one, the others start fresh; without it an existing run is refused.
    """
    out = Path(cfg.train.output_dir)
    splits = build_splits(cfg)  # the same for every sub-run: they differ only in split_for_training
    indices = split_indices(cfg, len(splits))
    if not cfg.train.resume:  # nothing is written before every folder involved has been checked
        refuse_existing_run(out)
        for i in indices:
            refuse_existing_run(split_run_dir(out, i))
    companions = companion_runs(cfg)  # e.g. PRI's "fine-tuned, no SR" baseline, in split<i>/<name>/
    plan = []  # (index, companion name or None, "done" | "resume" | "fresh"), decided before any process writes
    for i in indices:
        for name in [None, *companions]:
            sub = split_run_dir(out, i) if name is None else split_run_dir(out, i) / name
            if cfg.train.resume and (sub / "eval.json").is_file():
                plan.append((i, name, "done"))
            elif cfg.train.resume and ckpt_io.find_last(sub / "checkpoints") is not None:
                plan.append((i, name, "resume"))
            else:
                plan.append((i, name, "fresh"))
    dist_utils.barrier()
    saved_top = False  # <out>/config.yaml is written once the first sub-run has been built

    for n, (i, name, state) in enumerate(plan, start=1):
        sub = split_run_dir(out, i) if name is None else split_run_dir(out, i) / name
        what = f"split {i}" + (f" {name}" if name else "")
        if state == "done":
            if info.is_main:
                log.info("%s (run %d of %d): finished before (%s exists), skipped", what, n, len(plan), sub / "eval.json")
            continue
        if info.is_main:
            how = "resuming from its last checkpoint" if state == "resume" else "training from scratch"
            log.info("%s (run %d of %d): %s -> %s", what, n, len(plan), how, sub)
        sub_cfg = split_run_config(cfg, i, resume=state == "resume", changes=companions.get(name), output_dir=sub)
        method = build_method(sub_cfg, splits)
        trainer = build_trainer(sub_cfg, method, splits, dist_info=info)
        if info.is_main:  # once built: a run that fails to start leaves no config.yaml
            if not saved_top:
                save_run_config(cfg, out)
                saved_top = True
            save_run_config(sub_cfg, sub)
        started = time.perf_counter()
        trainer.train(resume=sub_cfg.train.resume)
        if info.is_main:
            add_train_seconds(sub, time.perf_counter() - started)
        del method, trainer

    if not info.is_main:
        return None
    report = combined_report(out, indices, list(companions))
    write_report(report, out)
    return report


def companion_runs(cfg) -> dict[str, dict]:
    """``{name: config changes}`` of the runs a method trains beside each split's model (its spec's
    ``companion_runs(cfg)``, e.g. PRI's ``finetune`` baseline); each is trained in ``split<i>/<name>/``
    and its rows join the split's table."""
    from lrreid.methods.base import METHODS

    spec = METHODS.get(cfg.method)
    fn = getattr(spec, "companion_runs", None)
    return dict(fn(cfg)) if fn is not None else {}


def _read_report(path: Path) -> EvalReport:
    try:
        return EvalReport.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: unreadable evaluation report ({exc})") from None


def combined_report(folder: Path, indices, companions: Sequence[str] = ()) -> EvalReport:
    """The reports ``<folder>/split<i>/eval.json`` combined into mean ± std over splits; the rows of
    each companion run (``split<i>/<name>/eval.json``) are added to their split's report first."""
    reports = [_read_report(split_run_dir(folder, i) / "eval.json") for i in indices]
    return combine_with_companions(reports, folder, indices, list(companions))


def combine_with_companions(reports, folder: Path, indices, companions=None) -> EvalReport:
    """Per-split reports combined (mean ± std), after adding each split's companion rows (read from
    ``split<i>/<name>/eval.json``); a note gives the mean training wall time of each kind of sub-run.
    ``companions`` None: the ``split<i>/<name>/`` folders that hold an ``eval.json``."""
    out, times = [], {}
    for report, i in zip(reports, indices):
        sub = split_run_dir(folder, i)
        names = companions if companions is not None else sorted(
            p.name for p in sub.iterdir() if p.is_dir() and (p / "eval.json").is_file()) if sub.is_dir() else []
        report = EvalReport.from_dict(report.to_dict())  # a copy: the caller's report stays as it was
        for name in [None, *names]:
            run = sub if name is None else sub / name
            if name is not None:
                report.rows.extend(_read_report(run / "eval.json").rows)
            seconds = train_seconds(run)
            if seconds is not None:
                times.setdefault(name or "model", []).append(seconds)
        out.append(report)
    combined = combine_split_reports(out, [f"split{i}" for i in indices])
    if times:
        combined.notes.append("training wall time per split (mean, as measured by --each-split): " + ", ".join(
            f"{name} {sum(v) / len(v):.0f} s ({len(v)} splits)" for name, v in times.items()))
    return combined


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
def evaluate_run(run: str | Path, overrides: Sequence[str] = (), output: str | Path | None = None,
                 loading: Callable | None = None) -> tuple[EvalReport, Path]:
    """``lrreid evaluate RUN``: the trained run's newest checkpoint on its protocol's splits.

    The report is written as ``eval.md`` / ``eval.json`` to ``output`` (default: the run folder);
    a one-model-per-split folder is evaluated by :func:`evaluate_each_split`.  ``loading(text)``,
    when given, is a context manager shown while the model and the splits load (the CLI's spinner).
    Returns ``(report, folder written to)``.
    """
    import contextlib

    from lrreid.utils.device import configure_threads

    if is_each_split_run(run):
        return evaluate_each_split(Path(run), list(overrides), output)
    with (loading or (lambda text: contextlib.nullcontext()))(f"loading the model of {run} and its dataset splits"):
        cfg, splits, method, ckpt = load_trained_method(run, list(overrides))
    configure_threads(cfg.train.num_threads, logger=logging.getLogger("lrreid.evaluate"))
    folder = Path(output) if output is not None else (
        ckpt.path.parent.parent if ckpt.path.parent.name == "checkpoints" else ckpt.path.parent)
    ctx = evaluation_context(cfg, folder)
    method.to(ctx.device)
    report = run_evaluation(method, select_splits(cfg, splits), ctx)
    if not report.rows:
        raise ConfigError(f"method {cfg.method!r} returned an empty evaluation report")
    write_report(report, folder)
    return report, folder


def evaluate_each_split(run: Path, overrides: list[str], output: Path | None = None) -> tuple[EvalReport, Path]:
    """``lrreid evaluate`` of a one-model-per-split folder: each sub-run on its own split, then combined.

    ``eval.splits=[...]`` picks the sub-runs (default: the top-level config's ``eval.splits``, all
    splits when that is None); every other override applies to every sub-run.  Each sub-run's report
    goes to ``<dest>/split<i>/``, the combined one to ``<dest>`` (dest: --output, else the run folder).
    """
    from lrreid.config import load_config
    from lrreid.utils.device import configure_threads

    log = logging.getLogger("lrreid.evaluate")
    run = Path(run)
    keys = {item.partition("=")[0].strip(): item for item in overrides}
    if "data.split_for_training" in keys:
        raise ConfigError(f"{keys['data.split_for_training']!r}: each sub-run of {run} was trained on its own split; "
                          "pick sub-runs with eval.splits=[...]")
    per_run = [item for key, item in keys.items() if key != "eval.splits"]
    subs = sub_runs(run)
    saved = run / "config.yaml"
    top = load_config(saved, overrides) if saved.is_file() else None

    def splits_key(cfg) -> str:  # sub-runs differ only in split_for_training, which does not change the splits
        data = {k: v for k, v in cfg.to_dict()["data"].items() if k != "split_for_training"}
        return repr((cfg.seed, data))

    cache: dict[str, list] = {}
    if top is not None and top.eval.splits is None:
        cache[splits_key(top)] = build_splits(top)
        indices = split_indices(top, len(cache[splits_key(top)]))
    elif top is not None:
        indices = list(dict.fromkeys(top.eval.splits))
    else:
        indices = list(subs)
    missing = [i for i in indices if i not in subs or ckpt_io.find_last(subs[i] / "checkpoints") is None]
    if missing:
        raise CheckpointError(
            f"{split_run_dir(run, missing[0])}: no trained model for split {missing[0]} "
            f"({len(missing)} of {len(indices)} splits missing; finish with `lrreid train {saved} --resume`, "
            f"or pick trained splits with eval.splits=[...])"
        )
    if not indices:
        raise CheckpointError(f"{run}: no split<i>/ sub-runs to evaluate")

    dest = Path(output) if output is not None else run
    reports = []
    for i in indices:
        cfg, stem = config_from_run(subs[i], [*per_run, f"eval.splits=[{i}]"])
        if cfg.data.split_for_training != i:
            raise ConfigError(f"{subs[i]}: trained on split {cfg.data.split_for_training}, expected split {i}")
        if not reports:
            configure_threads(cfg.train.num_threads, logger=log)
        key = splits_key(cfg)
        if key not in cache:  # built once, not once per sub-run
            cache[key] = build_splits(cfg)
        splits = cache[key]
        if i >= len(splits):
            raise ConfigError(f"{subs[i]}: split {i} does not exist in its protocol (there are {len(splits)})")
        method = build_method(cfg, splits)
        ckpt_io.load_into(ckpt_io.load_checkpoint(stem), method)
        folder = split_run_dir(dest, i)
        folder.mkdir(parents=True, exist_ok=True)
        ctx = evaluation_context(cfg, folder)
        method.to(ctx.device)
        report = run_evaluation(method, [splits[i]], ctx)
        if not report.rows:
            raise ConfigError(f"method {cfg.method!r} returned an empty evaluation report for split {i}")
        write_report(report, folder)
        log.info("split %d: evaluated %s -> %s", i, stem.name, folder / "eval.json")
        reports.append(report)

    # companion runs (PRI's fine-tuned baseline) keep the rows of their own eval.json
    report = combine_with_companions(reports, run, indices)
    write_report(report, dest)
    return report, dest


# --------------------------------------------------------------------------------------------
# The demo
# --------------------------------------------------------------------------------------------
DEMO_OUTPUTS = ("checkpoints", "losses.csv", "eval.md", "eval.json", "eval_history.json", "config.yaml",
                "probes.png", "scale_histogram.png", "losses.png", "tensorboard")


def training_left(checkpoint_stem: Path | None, phases) -> str:
    """What training a demo run still needs: "all", "some" (a killed run) or "none" (finished).

    Read from the newest checkpoint's position against the method's phases, so a second
    ``lrreid demo`` can say that it reuses the trained run instead of announcing training.
    """
    if checkpoint_stem is None:
        return "all"
    pos = json.loads(checkpoint_stem.with_suffix(".json").read_text())["position"]
    last = len(phases) - 1
    finished = pos["phase_index"] > last or (pos["phase_index"] == last and pos["epochs_done"] >= phases[last].epochs)
    return "none" if finished else "some"


def run_demo(cfg, overwrite: bool = False, probes: int = 3, say: Callable[[str], None] = print) -> tuple[EvalReport, list]:
    """``lrreid demo``: train PRI on ``cfg`` (continuing or reusing the run in ``train.output_dir``),
    evaluate its scale predictors (PRI.md Table 2), write the report and the pictures.

    ``overwrite`` deletes an earlier demo's outputs first; ``say`` prints the three step lines.
    Returns the report and the paths of the pictures.
    """
    from lrreid.methods.pri.evaluate import ROW_LEGEND, evaluate_predictors, verdict
    from lrreid.methods.pri.pictures import write_pictures

    if cfg.method != "pri":
        raise ConfigError(f"lrreid demo runs PRI; the config names method {cfg.method!r}")
    run_dir = Path(cfg.train.output_dir)
    if overwrite:
        for name in DEMO_OUTPUTS:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    last = ckpt_io.find_last(run_dir / "checkpoints")
    save_run_config(cfg, run_dir)

    say(f"[1/3] data: {cfg.data.dataset} (genuine LR protocol) ...")
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    epochs = f"{cfg.schedule.pretrain_epochs} pre-training + {cfg.schedule.joint_epochs} joint epochs"
    left = training_left(last, method.phases())
    if left == "none":
        say(f"[2/3] reusing the trained PRI in {run_dir} ({epochs}, nothing to train; --overwrite retrains it)")
    elif left == "some":
        say(f"[2/3] training PRI: continuing {run_dir} from checkpoint {last.name} ({epochs} in all; "
            "--overwrite starts afresh)")
    else:
        say(f"[2/3] training PRI: {epochs} -> {run_dir}")
    trainer = build_trainer(cfg, method, splits)
    trainer.train(resume=last is not None)

    say("[3/3] evaluating the scale predictors (PRI.md Table 2) ...")
    ctx = evaluation_context(cfg, run_dir)
    method.to(ctx.device)
    result = evaluate_predictors(method, select_splits(cfg, splits), ctx)
    report = result.report()
    sentence = verdict(report)  # did P beat the best fixed scale and the no-SR row, in one sentence
    report.notes.extend(([sentence] if sentence else []) + [ROW_LEGEND])
    report.print()
    write_report(report, run_dir)
    return report, write_pictures(method, result, run_dir, num_probes=probes)
