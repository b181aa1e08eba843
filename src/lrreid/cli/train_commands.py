"""``lrreid train`` and ``lrreid evaluate``: run a config, evaluate a trained run."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional

import typer

from lrreid.cli import app
from lrreid.errors import ConfigError


@app.command()
def train(
    config: Path = typer.Argument(..., help="Run config (YAML)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides, e.g. train.batch_size=8."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in the run folder."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (overrides train.output_dir)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes (one per GPU, or CPU processes with gloo); launches torchrun."),
) -> None:
    """Train the method of CONFIG; checkpoints, losses and TensorBoard logs go to the run folder.

    Example: lrreid train configs/pri_caviar.yaml train.batch_size=8 --output runs/pri-caviar
    """
    overrides = list(overrides or [])
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from lrreid.config import load_config
        from lrreid.engine.distributed import launch_torchrun

        load_config(config, overrides)  # config mistakes: one line here, not N tracebacks from torchrun
        args = ["train", str(config), *overrides]
        if resume:
            args.append("--resume")
        if output is not None:
            args += ["--output", str(output)]
        raise typer.Exit(launch_torchrun(nproc, args))

    from lrreid.build import build_method, build_splits, build_trainer
    from lrreid.config import config_to_yaml, load_config
    from lrreid.engine.distributed import cleanup_distributed, setup_distributed
    from lrreid.engine.trainer import refuse_existing_run
    from lrreid.utils.device import configure_threads
    from lrreid.utils.atomic import atomic_write_text

    if output is not None:
        overrides.append(f"train.output_dir={output}")
    if resume:
        overrides.append("train.resume=true")
    cfg = load_config(config, overrides)
    info = setup_distributed(cfg.train.device)
    configure_threads(cfg.train.num_threads, processes=info.world_size, logger=logging.getLogger("lrreid.train") if info.is_main else None)
    finished = False
    if not info.is_main:
        logging.getLogger("lrreid").setLevel(logging.WARNING)
    try:
        run_dir = Path(cfg.train.output_dir)
        if not cfg.train.resume:  # before anything is written into another run's folder
            refuse_existing_run(run_dir)
        if info.is_main:
            text = config_to_yaml(cfg)
            saved = run_dir / "config.yaml"
            if cfg.train.resume and saved.is_file() and saved.read_text() != text:
                logging.getLogger("lrreid").warning("config differs from the one %s was started with; saving the new one", run_dir)
            atomic_write_text(saved, text)
        splits = build_splits(cfg)
        method = build_method(cfg, splits)
        trainer = build_trainer(cfg, method, splits, dist_info=info)
        trainer.train(resume=cfg.train.resume)
        if info.is_main:
            typer.echo(f"trained {cfg.method} -> {run_dir / 'checkpoints'}")
        finished = True
    finally:
        cleanup_distributed(synchronize=finished)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder or checkpoint (.json/.safetensors)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides of the saved config, e.g. eval.splits=[0]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for eval.md / eval.json (default: the run folder)."),
) -> None:
    """Evaluate a trained run on its protocol's splits; print the table, write eval.md and eval.json.

    Example: lrreid evaluate runs/pri-caviar eval.splits=[0,1]
    """
    from lrreid.build import evaluation_context, load_trained_method, select_splits
    from lrreid.engine.hooks import write_report
    from lrreid.engine.trainer import run_evaluation

    from lrreid.utils.device import configure_threads

    cfg, splits, method, ckpt = load_trained_method(run, list(overrides or []))
    configure_threads(cfg.train.num_threads, logger=logging.getLogger("lrreid.evaluate"))
    folder = output or (ckpt.path.parent.parent if ckpt.path.parent.name == "checkpoints" else ckpt.path.parent)
    ctx = evaluation_context(cfg, folder)
    method.to(ctx.device)
    report = run_evaluation(method, select_splits(cfg, splits), ctx)
    if not report.rows:
        raise ConfigError(f"method {cfg.method!r} returned an empty evaluation report")
    report.print()
    write_report(report, folder)
    typer.echo(f"wrote {Path(folder) / 'eval.md'} and eval.json")
