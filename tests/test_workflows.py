"""lrreid.workflows, the orchestration between the CLI and the engine: a run folder is checked
once, before anything is written, and the engine imports nothing above it."""
import ast
import pkgutil
from pathlib import Path

import pytest

import lrreid.engine
from lrreid.config import import_plugins, load_config
from lrreid.errors import ConfigError

TOY_FILE = str(Path(__file__).resolve().parent / "engine" / "toy_method.py")
import_plugins([TOY_FILE])

ABOVE_THE_ENGINE = ("lrreid.build", "lrreid.cli", "lrreid.workflows")


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names in a file, at any depth (lazy imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            # relative imports of an engine module: one dot is lrreid.engine, two are lrreid
            base = ".".join(filter(None, [*["lrreid", "engine"][: 3 - node.level] * (node.level > 0), node.module]))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def test_the_engine_imports_nothing_above_it():
    modules = [m for m in pkgutil.walk_packages(lrreid.engine.__path__, "lrreid.engine.")]
    files = [Path(lrreid.engine.__file__)] + [Path(lrreid.engine.__path__[0], *m.name.split(".")[2:]).with_suffix(".py")
                                              for m in modules if not m.ispkg]
    assert len(files) >= 7 and all(f.is_file() for f in files), files
    upward = {}
    for path in files:
        bad = sorted(n for n in imported_modules(path) if n.startswith(ABOVE_THE_ENGINE))
        if bad:
            upward[path.name] = bad
    assert upward == {}, f"engine modules importing from above the engine: {upward}"


def test_the_import_check_sees_a_lazy_upward_import(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    from lrreid.build import build_method\n    import lrreid.workflows\n"
                    "    from .. import cli\n")
    assert {"lrreid.build", "lrreid.workflows", "lrreid.cli"} <= imported_modules(path)


def toy_config(run_dir: Path, *overrides: str):
    base = {
        "method": "toy", "imports": [TOY_FILE], "seed": 0,
        "data": {"dataset": "toy_points", "protocol": "genuine", "num_splits": 2},
        "train": {"batch_size": 8, "num_instances": 2, "output_dir": str(run_dir), "progress": False,
                  "tensorboard": False, "device": "cpu"},
        "schedule": {"warmup_epochs": 1, "joint_epochs": 0},
    }
    return load_config(base, list(overrides))


def test_a_fresh_run_in_a_trained_folder_is_refused_once_before_anything_is_written(tmp_path, monkeypatch):
    from lrreid import workflows

    run = tmp_path / "run"
    workflows.train_run(toy_config(run))
    saved = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(saved + "# marker\n")

    calls = []
    real = workflows.refuse_existing_run
    monkeypatch.setattr(workflows, "refuse_existing_run", lambda d: (calls.append(Path(d)), real(d))[1])
    built = []
    monkeypatch.setattr(workflows, "build_splits", lambda cfg: built.append(cfg) or [])
    with pytest.raises(ConfigError, match="already has checkpoints; pass --resume"):
        workflows.train_run(toy_config(run))
    assert calls == [run] and built == []  # checked once, before the dataset is read
    assert (run / "config.yaml").read_text().endswith("# marker\n")  # nothing written


def test_a_run_is_checked_once(tmp_path, monkeypatch):
    """One fresh run checks its folder once: the workflow does, the engine's loop does not again."""
    from lrreid import workflows

    calls = []
    real = workflows.refuse_existing_run
    monkeypatch.setattr(workflows, "refuse_existing_run", lambda d: (calls.append(Path(d)), real(d))[1])
    workflows.train_run(toy_config(tmp_path / "run"))
    assert calls == [tmp_path / "run"]
    assert (tmp_path / "run" / "config.yaml").is_file()
