"""``lrreid train`` and ``lrreid evaluate``: run a config, evaluate a trained run."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Optional

import typer

from lrreid.cli import app, loading_status
from lrreid.errors import ConfigError


@app.command()
def train(
    config: Path = typer.Argument(..., help="Run config (YAML)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides, e.g. train.batch_size=8."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in the run folder."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Run folder (overrides train.output_dir)."),
    nproc: int = typer.Option(1, "--nproc", min=1, help="Processes (one per GPU, or CPU processes with gloo); launches torchrun."),
    each_split: bool = typer.Option(
        False, "--each-split",
        help="One model per split of eval.splits (all when unset), each in <output>/split<i>/, then the mean ± std report "
             "(sets train.one_model_per_split=true)."),
) -> None:
    """Train the method of CONFIG; checkpoints, losses and TensorBoard logs go to the run folder.

    With --each-split (random-split protocols: CAVIAR, MLR-VIPeR...) one model is trained per split,
    on that split's training persons and evaluated on its test persons; the run folder then holds
    split<i>/ sub-runs and the combined eval.md and eval.json.

    Example: lrreid train configs/pri_caviar.yaml train.batch_size=8 --output runs/pri-caviar
    Example: lrreid train configs/pri_caviar_cpu.yaml --each-split
    """
    from lrreid.utils.device import resolve_device

    overrides = list(overrides or [])
    if each_split:
        overrides.append("train.one_model_per_split=true")
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from lrreid.config import load_config
        from lrreid.engine.distributed import launch_torchrun

        cfg = load_config(config, overrides)  # config mistakes: one line here, not N tracebacks from torchrun
        resolve_device(cfg.train.device, "train.device")
        args = ["train", str(config), *overrides]  # --each-split travels as train.one_model_per_split=true
        if resume:
            args.append("--resume")
        if output is not None:
            args += ["--output", str(output)]
        raise typer.Exit(launch_torchrun(nproc, args))

    from lrreid.config import load_config
    from lrreid.engine.distributed import cleanup_distributed, setup_distributed
    from lrreid.utils.device import configure_threads
    from lrreid.workflows import train_each_split, train_run

    if output is not None:
        overrides.append(f"train.output_dir={output}")
    if resume:
        overrides.append("train.resume=true")
    cfg = load_config(config, overrides)
    resolve_device(cfg.train.device, "train.device")  # before anything is built or written
    info = setup_distributed(cfg.train.device)
    configure_threads(cfg.train.num_threads, processes=info.world_size, logger=logging.getLogger("lrreid.train") if info.is_main else None)
    finished = False
    if not info.is_main:
        logging.getLogger("lrreid").setLevel(logging.WARNING)
    try:
        if cfg.train.one_model_per_split:
            report = train_each_split(cfg, info)
            if report is not None:
                report.print()
                typer.echo(f"trained {cfg.method}, one model per split -> {cfg.train.output_dir}; wrote eval.md and eval.json")
        else:
            train_run(cfg, info)
            if info.is_main:
                typer.echo(f"trained {cfg.method} -> {Path(cfg.train.output_dir) / 'checkpoints'}")
        finished = True
    finally:
        cleanup_distributed(synchronize=finished)


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run folder or checkpoint (.json/.safetensors); with --model, a prepared dataset folder."),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE overrides of the saved config, e.g. eval.splits=[0]."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for eval.md / eval.json (default: the run folder; with --model, none)."),
    model: Optional[List[str]] = typer.Option(None, "--model", "-m", help="A re-ID weight file (OpenVINO IR .xml, torchreid .pth) to evaluate with no training on the prepared dataset RUN; repeat for a table of several."),
) -> None:
    """Evaluate a trained run on its protocol's splits; print the table, write eval.md and eval.json.

    A folder trained with --each-split is evaluated one sub-run at a time, each on its own
    split (the overrides apply to every sub-run; eval.splits picks the sub-runs), and the
    combined mean ± std report is written.

    With --model, RUN is a folder written by lrreid prepare and each named network is evaluated
    as it is, with no training, on every split of it (the zero-shot baseline of docs/results.md).

    Example: lrreid evaluate runs/pri-caviar eval.splits=[0,1]
    Example: lrreid evaluate --model 0277.xml --model osnet_x0_25_msmt17.pth out/caviar
    """
    if model:
        _evaluate_encoders(model, run, output, list(overrides or []))
        return
    from lrreid.engine.each_split import is_each_split_run
    from lrreid.workflows import evaluate_run

    each_split = is_each_split_run(run)
    report, folder = evaluate_run(run, list(overrides or []), output, loading=loading_status)
    report.print()
    typer.echo(f"wrote {folder / 'eval.md'} and eval.json" + (" (one model per split)" if each_split else ""))


def _evaluate_encoders(models: list[str], data: Path, output: Optional[Path], overrides: list[str]) -> None:
    """``lrreid evaluate --model ...``: networks with no training on a prepared dataset's splits."""
    from lrreid.data.protocols import load_prepared_splits
    from lrreid.engine.hooks import write_report
    from lrreid.evaluation.zero_shot import evaluate_encoders
    from lrreid.utils.device import configure_threads

    if overrides:
        raise ConfigError(f"{overrides[0]!r}: with --model there is no run config to override; "
                          "evaluation uses every split of the prepared dataset")
    if not data.is_dir():
        raise ConfigError(f"{data}: with --model, expected a prepared dataset folder (written by `lrreid prepare`)")
    configure_threads(0, logger=logging.getLogger("lrreid.evaluate"))
    splits = load_prepared_splits(data)
    report = evaluate_encoders(models, splits, title=f"{data.name}, no training",
                               on_model=lambda m: typer.echo(f"embedding with {m} ...", err=True))
    report.print()
    if output is not None:  # the prepared folder may be shared or read-only: written only when asked
        write_report(report, output)
        typer.echo(f"wrote {Path(output) / 'eval.md'} and eval.json")
