"""One model per split (``train.one_model_per_split``, ``lrreid train --each-split``).

Random-split protocols (CAVIAR4REID, MLR-VIPeR...) report mean ± std over 10 splits, each with its
own training and test persons, so the honest number needs one model per split.  A run folder then
holds ``split<i>/`` sub-runs -- each an ordinary run trained on split i's training persons and
evaluated on its test persons -- and the combined ``eval.md`` / ``eval.json``.
"""
from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from lrreid.engine.hooks import write_report
from lrreid.errors import ConfigError
from lrreid.methods.base import EvalReport

SPLIT_RUN = re.compile(r"split(\d+)")


def split_run_dir(run_dir: str | Path, index: int) -> Path:
    """The sub-run folder of split ``index`` in a one-model-per-split run: ``<run>/split<index>``."""
    return Path(run_dir) / f"split{index}"


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
    from lrreid.build import build_method, build_splits, build_trainer
    from lrreid.engine import checkpoint as ckpt_io
    from lrreid.engine import distributed as dist_utils
    from lrreid.engine.trainer import refuse_existing_run, save_run_config

    log = logging.getLogger("lrreid.train")
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
                log.info("%s (%d of %d): finished before (%s exists), skipped", what, n, len(plan), sub / "eval.json")
            continue
        if info.is_main:
            how = "resuming from its last checkpoint" if state == "resume" else "training from scratch"
            log.info("%s (%d of %d): %s -> %s", what, n, len(plan), how, sub)
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


TRAIN_TIME = "train_seconds.json"


def add_train_seconds(run_dir: Path, seconds: float) -> None:
    """Add ``seconds`` of training wall time to ``<run_dir>/train_seconds.json`` (summed over resumes)."""
    import json

    from lrreid.utils.atomic import atomic_write_text

    path = Path(run_dir) / TRAIN_TIME
    try:
        before = float(json.loads(path.read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        before = 0.0
    atomic_write_text(path, json.dumps({"seconds": round(before + seconds, 1)}) + "\n")


def train_seconds(run_dir: Path) -> float | None:
    import json

    try:
        return float(json.loads((Path(run_dir) / TRAIN_TIME).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def combined_report(folder: Path, indices, companions: list[str] = ()) -> EvalReport:
    """The reports ``<folder>/split<i>/eval.json`` combined into mean ± std over splits; the rows of
    each companion run (``split<i>/<name>/eval.json``) are added to their split's report first."""
    import json

    from lrreid.errors import CheckpointError
    from lrreid.methods.base import EvalReport

    def read(path: Path) -> EvalReport:
        try:
            return EvalReport.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path}: unreadable evaluation report ({exc})") from None

    reports = [read(split_run_dir(folder, i) / "eval.json") for i in indices]
    return combine_with_companions(reports, folder, indices, companions)


def combine_with_companions(reports, folder: Path, indices, companions=None) -> EvalReport:
    """Per-split reports combined (mean ± std), after adding each split's companion rows (read from
    ``split<i>/<name>/eval.json``); a note gives the mean training wall time of each kind of sub-run.
    ``companions`` None: the ``split<i>/<name>/`` folders that hold an ``eval.json``."""
    import json

    from lrreid.errors import CheckpointError
    from lrreid.methods.base import EvalReport, combine_split_reports

    out, times = [], {}
    for report, i in zip(reports, indices):
        sub = split_run_dir(folder, i)
        names = companions if companions is not None else sorted(
            p.name for p in sub.iterdir() if p.is_dir() and (p / "eval.json").is_file()) if sub.is_dir() else []
        report = EvalReport.from_dict(report.to_dict())  # a copy: the caller's report stays as it was
        for name in [None, *names]:
            run = sub if name is None else sub / name
            if name is not None:
                path = run / "eval.json"
                try:
                    report.rows.extend(EvalReport.from_dict(json.loads(path.read_text())).rows)
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    raise CheckpointError(f"{path}: unreadable evaluation report ({exc})") from None
            seconds = train_seconds(run)
            if seconds is not None:
                times.setdefault(name or "model", []).append(seconds)
        out.append(report)
    combined = combine_split_reports(out, [f"split{i}" for i in indices])
    if times:
        combined.notes.append("training wall time per split (mean, as measured by --each-split): " + ", ".join(
            f"{name} {sum(v) / len(v):.0f} s ({len(v)} splits)" for name, v in times.items()))
    return combined


def sub_runs(run: str | Path) -> dict[int, Path]:
    """``{i: <run>/split<i>}`` for the sub-run folders present (with a config or checkpoints)."""
    run, found = Path(run), {}
    if run.is_dir():
        for p in run.iterdir():
            m = SPLIT_RUN.fullmatch(p.name)
            if m and p.is_dir() and ((p / "config.yaml").is_file() or (p / "checkpoints").is_dir()):
                found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def is_each_split_run(run: str | Path) -> bool:
    """True for a folder trained with ``--each-split``: it has ``split<i>/`` sub-runs, or its
    ``config.yaml`` says ``train.one_model_per_split: true``."""
    run = Path(run)
    if not run.is_dir() or (run / "checkpoints").is_dir():
        return False
    if sub_runs(run):
        return True
    saved = run / "config.yaml"
    if saved.is_file():
        import yaml

        try:
            raw = yaml.safe_load(saved.read_text()) or {}
        except yaml.YAMLError:
            return False
        train = raw.get("train") if isinstance(raw, dict) else None
        return bool(isinstance(train, dict) and train.get("one_model_per_split"))
    return False


def evaluate_each_split(run: Path, overrides: list[str], output: Path | None = None) -> tuple[EvalReport, Path]:
    """``lrreid evaluate`` of a one-model-per-split folder: each sub-run on its own split, then combined.

    ``eval.splits=[...]`` picks the sub-runs (default: the top-level config's ``eval.splits``, all
    splits when that is None); every other override applies to every sub-run.  Each sub-run's report
    goes to ``<dest>/split<i>/``, the combined one to ``<dest>`` (dest: --output, else the run folder).
    """
    from lrreid.build import build_method, build_splits, config_from_run, evaluation_context
    from lrreid.config import load_config
    from lrreid.engine import checkpoint as ckpt_io
    from lrreid.engine.trainer import run_evaluation
    from lrreid.errors import CheckpointError
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
