"""The folder layout of a one-model-per-split run (``lrreid train --each-split``).

Random-split protocols (CAVIAR4REID, MLR-VIPeR...) report mean ± std over 10 splits, each with its
own training and test persons, so the honest number needs one model per split.  A run folder then
holds ``split<i>/`` sub-runs -- each an ordinary run trained on split i's training persons and
evaluated on its test persons -- and the combined ``eval.md`` / ``eval.json``.  Training and
evaluating such a run is orchestration: lrreid.workflows (``train_each_split``, ``evaluate_each_split``).
"""
from __future__ import annotations

import re
from pathlib import Path

SPLIT_RUN = re.compile(r"split(\d+)")


def split_run_dir(run_dir: str | Path, index: int) -> Path:
    """The sub-run folder of split ``index`` in a one-model-per-split run: ``<run>/split<index>``."""
    return Path(run_dir) / f"split{index}"


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
    """The training wall time recorded by :func:`add_train_seconds`, or None."""
    import json

    try:
        return float(json.loads((Path(run_dir) / TRAIN_TIME).read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
