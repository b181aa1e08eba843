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

import shutil
import time
from importlib import resources
from pathlib import Path
from typing import List, Optional

import typer

from lrreid.cli import app

DEMO_OUTPUTS = ("checkpoints", "losses.csv", "eval.md", "eval.json", "eval_history.json", "config.yaml",
                "probes.png", "scale_histogram.png", "losses.png", "tensorboard")


def training_left(checkpoint_stem: Path | None, phases) -> str:
    """What training a demo run still needs: "all", "some" (a killed run) or "none" (finished).

    Read from the newest checkpoint's position against the method's phases, so a second
    ``lrreid demo`` can say that it reuses the trained run instead of announcing training.
    """
    import json

    if checkpoint_stem is None:
        return "all"
    pos = json.loads(checkpoint_stem.with_suffix(".json").read_text())["position"]
    last = len(phases) - 1
    finished = pos["phase_index"] > last or (pos["phase_index"] == last and pos["epochs_done"] >= phases[last].epochs)
    return "none" if finished else "some"


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
    from lrreid.build import build_method, build_splits, build_trainer, evaluation_context, select_splits
    from lrreid.config import config_to_yaml, load_config
    from lrreid.engine import checkpoint as ckpt_io
    from lrreid.engine.hooks import write_report
    from lrreid.methods.pri.evaluate import ROW_LEGEND, evaluate_predictors, verdict
    from lrreid.methods.pri.pictures import write_pictures
    from lrreid.utils.atomic import atomic_write_text
    from lrreid.utils.device import configure_threads
    from lrreid.utils.logging import get_logger

    log = get_logger("demo")
    start = time.perf_counter()
    configure_threads(threads, logger=log)
    if threads != 1:
        log.warning("--threads %d: the table can differ from the one in docs/pri.md, which 1 thread gives on "
                    "every machine (float sums are split by thread)", threads)
    cfg = load_config(config or demo_config_path(), [*(overrides or []), f"train.output_dir={output}"])
    if cfg.method != "pri":
        from lrreid.errors import ConfigError

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
    resume = last is not None
    atomic_write_text(run_dir / "config.yaml", config_to_yaml(cfg))

    typer.echo(f"[1/3] data: {cfg.data.dataset} (genuine LR protocol) ...")
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    epochs = f"{cfg.schedule.pretrain_epochs} pre-training + {cfg.schedule.joint_epochs} joint epochs"
    left = training_left(last, method.phases())
    if left == "none":
        typer.echo(f"[2/3] reusing the trained PRI in {run_dir} ({epochs}, nothing to train; --overwrite retrains it)")
    elif left == "some":
        typer.echo(f"[2/3] training PRI: continuing {run_dir} from checkpoint {last.name} ({epochs} in all; "
                   "--overwrite starts afresh)")
    else:
        typer.echo(f"[2/3] training PRI: {epochs} -> {run_dir}")
    trainer = build_trainer(cfg, method, splits)
    trainer.train(resume=resume)

    typer.echo("[3/3] evaluating the scale predictors (PRI.md Table 2) ...")
    ctx = evaluation_context(cfg, run_dir)
    method.to(ctx.device)
    result = evaluate_predictors(method, select_splits(cfg, splits), ctx)
    report = result.report()
    sentence = verdict(report)
    report.notes.extend(([sentence] if sentence else []) + [ROW_LEGEND])
    report.print()
    write_report(report, run_dir)
    pictures = write_pictures(method, result, run_dir, num_probes=probes)
    elapsed = time.perf_counter() - start
    typer.echo(f"wrote {run_dir / 'eval.md'}, " + ", ".join(str(p) for p in pictures))
    typer.echo(f"demo finished in {int(elapsed // 60)} min {int(elapsed % 60)} s")
