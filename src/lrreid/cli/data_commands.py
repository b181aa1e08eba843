"""``lrreid prepare`` (write a protocol's dataset copy with its splits) and ``lrreid datasets`` (list loaders)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lrreid.cli import app
from lrreid.errors import ConfigError


def parse_factors(text: str) -> list[float]:
    """``"2,3,4"`` -> ``[2.0, 3.0, 4.0]``; a ConfigError for anything that is not numbers > 1."""
    try:
        factors = [float(f) for f in text.split(",") if f.strip()]
    except ValueError:
        raise ConfigError(f"--factors {text!r}: expected numbers separated by commas, e.g. 2,3,4") from None
    if not factors or any(not f > 1 for f in factors):
        raise ConfigError(f"--factors {text!r}: expected one or more factors > 1, e.g. 2,3,4")
    return factors


@app.command("prepare")
def prepare_command(
    dataset: str = typer.Argument(..., help="A registered dataset name (see 'lrreid datasets'), e.g. viper."),
    root: Path = typer.Argument(..., help="The dataset's folder, as downloaded."),
    out: Path = typer.Argument(..., help="Folder to write (must be new, empty, or this same copy)."),
    protocol: str = typer.Option("mlr", "--protocol", "-p", help="mlr (down-sample one camera per person) or genuine (CAVIAR, GRID)."),
    factors: str = typer.Option("2,3,4", "--factors", help="MLR down-sampling factors, one drawn per image."),
    seed: int = typer.Option(0, "--seed", help="Seed of the LR assignment and of the splits."),
    lr_camera: Optional[str] = typer.Option(
        None, "--lr-camera", show_default=False,
        help="MLR: 'random' (one random camera per person is LR) or a camera id for everybody "
             "(default: the literature's, 0 = cam_a for prid2011, else random)."),
    distractors: Optional[bool] = typer.Option(
        None, "--distractors/--no-distractors", show_default=False,
        help="Add gallery distractors: persons seen only by the HR camera(s) (MLR-PRID's 549) and pid-0 images "
             "(GRID's 775) (default: the literature's, on for prid2011 and grid, else off)."),
    splits: int = typer.Option(10, "--splits", min=1, help="Number of random evaluation splits."),
    test_ids: Optional[int] = typer.Option(None, "--test-ids", min=1, help="Test persons per split (default: the protocol's)."),
    copy: bool = typer.Option(False, "--copy", help="Copy unchanged images instead of hard-linking them."),
    bad_images: str = typer.Option("raise", "--bad-images", help="raise, or skip (and count) unreadable images."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write an evaluation-ready copy of a dataset with its evaluation splits.

    LR images are written at their small size, HR images linked, and manifest.json lists every
    record and the splits.

    Examples:
      lrreid prepare viper ../shared/data/VIPeR out/mlr-viper --protocol mlr
      lrreid prepare caviar ../shared/data/CAVIAR4REID out/caviar --protocol genuine
      lrreid prepare prid2011 data/prid_2011 out/mlr-prid            # MLR-PRID as the literature defines it
      lrreid prepare grid data/underground_reid out/grid --protocol genuine
    """
    from lrreid.data.prepare import prepare_dataset

    protocol_args = {"num_test_ids": test_ids} if test_ids is not None else {}
    if lr_camera is not None and lr_camera != "random":
        try:
            lr_camera = int(lr_camera)
        except ValueError:
            raise ConfigError(f"--lr-camera {lr_camera!r}: expected 'random' or a camera id such as 1") from None
    result = prepare_dataset(
        dataset, root, out, protocol=protocol, factors=parse_factors(factors), seed=seed, num_splits=splits,
        protocol_args=protocol_args, link=not copy, bad_images=bad_images, progress=not quiet, lr_camera=lr_camera,
        distractors=distractors,
    )
    typer.echo(result.summary())


@app.command("datasets")
def datasets_command() -> None:
    """List the registered dataset names (what 'lrreid prepare' and data.dataset accept)."""
    from lrreid.data.datasets import DATASETS

    for name in DATASETS.names():
        typer.echo(name)
