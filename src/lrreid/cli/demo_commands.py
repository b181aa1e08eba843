"""``lrreid demo``: train a small PRI end to end on the embedded synthetic dataset and show what it does.

No download and no data folder: the synthetic dataset is rendered into the user cache on first use.
The demo trains both phases (pre-training, then joint training with dynamic soft labels), prints
PRI.md Table 2 (no SR, fixed, size-based, ideal and adaptive scale predictors), one sentence saying
whether P beat the best fixed scale and the no-SR row, a legend of the rows, and writes into the run
folder: ``eval.md`` / ``eval.json``, ``probes.png`` (probes at every scale, P's probabilities, top
gallery), ``scale_histogram.png``, ``losses.png``, the checkpoints and ``losses.csv``.

torch runs on one CPU thread unless ``--threads`` says otherwise: with other counts the float sums
of convolutions and reductions are split differently (a gradient differs by ~1e-6 after one step
between 1, 2, 3, 4 and 8 threads), 16 epochs amplify that, and the table moves by several points.
"""
from __future__ import annotations

import time
from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer

from lrreid.cli import app


def __getattr__(name: str):  # moved to lrreid.workflows; importable from here for one release
    if name in ("training_left", "DEMO_OUTPUTS"):
        import lrreid.workflows

        return getattr(lrreid.workflows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def demo_config_path() -> Path:
    """The embedded demo config (package data ``lrreid/configs/demo.yaml``)."""
    return Path(str(resources.files("lrreid").joinpath("configs/demo.yaml")))


@app.command()
def demo(
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides of the demo config, e.g. schedule.joint_epochs=10."),
    output: Path = typer.Option(Path("runs/demo"), "--output", "-o", help="Run folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="Use this config instead of the embedded demo.yaml."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start afresh: delete an earlier demo's checkpoints and outputs in the run folder."),
    probes: int = typer.Option(3, "--probes", min=1, help="Probes drawn in probes.png."),
    threads: int = typer.Option(1, "--threads", min=0, help="CPU threads for torch. Default 1, pinned: other counts change the order of float sums, and so the trained model and the table (docs/pri.md). 0 = auto."),
) -> None:
    """Train a small PRI on synthetic data (both phases), print Table 2 and draw the pictures.

    Example: lrreid demo --output runs/demo schedule.joint_epochs=8
    """
    from lrreid.config import load_config
    from lrreid.utils.device import configure_threads
    from lrreid.utils.logging import get_logger
    from lrreid.workflows import run_demo

    start = time.perf_counter()
    configure_threads(threads, logger=get_logger("demo"))
    if threads != 1:
        get_logger("demo").warning("--threads %d: the table can differ from the one in docs/pri.md, which 1 thread "
                                   "gives on every machine (float sums are split by thread)", threads)
    cfg = load_config(config or demo_config_path(), [*(overrides or []), f"train.output_dir={output}"])
    _, pictures = run_demo(cfg, overwrite=overwrite, probes=probes, say=typer.echo)
    elapsed = time.perf_counter() - start
    typer.echo(f"wrote {Path(cfg.train.output_dir) / 'eval.md'}, " + ", ".join(str(p) for p in pictures))
    typer.echo(f"demo finished in {int(elapsed // 60)} min {int(elapsed % 60)} s")
