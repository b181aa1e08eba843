"""``lrreid sr-benchmark``: PSNR/SSIM of an SR model on an SR test set or on person crops."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple

import typer

from lrreid.cli import app
from lrreid.errors import ConfigError


def _parse_scales(text: str) -> list[float]:
    try:
        scales = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--scales {text!r}: expected numbers separated by commas, e.g. 2,3,4") from None
    if not scales or any(s < 1 for s in scales):
        raise ConfigError(f"--scales {text!r}: expected one or more scales >= 1, e.g. 2,3,4")
    return scales


def person_crop_images(dataset_name: str, root: Path) -> list[str]:
    """The HR person crops of a re-ID dataset that the person-crop mode degrades and restores.

    Original-resolution images (``scale == 1``) of the gallery side: the official ``gallery``
    split where there is one; else the near camera where the loader marks views (CAVIAR4REID's
    001-010 images); else camera 0 (VIPeR's cam_a, the HR side of MLR-VIPeR).
    """
    from lrreid.data.datasets import build_dataset

    ds = build_dataset(dataset_name, str(root))
    records = [r for r in ds.records if r.scale == 1.0]
    for choose in (
        lambda r: r.split == "gallery",
        lambda r: r.view == "near",
        lambda r: r.camid == 0,
    ):
        chosen = [r.path for r in records if choose(r)]
        if chosen:
            return sorted(chosen)
    raise ConfigError(f"{dataset_name} at {root}: no original-resolution gallery images to use as HR")


def _spread(items: list, limit: int | None) -> list:
    """At most ``limit`` items, evenly spread over the list (so every identity range is sampled)."""
    if limit is None or limit >= len(items):
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


@app.command("sr-benchmark")
def sr_benchmark_command(
    model: str = typer.Option("bicubic", "--model", "-m", help="SR model: bicubic, carn_m, swinir_s, metasr_rdn."),
    weights: Optional[str] = typer.Option(None, "--weights", "-w", help="Weight file (or hub name) for the model."),
    data: Optional[Path] = typer.Option(
        None, "--data", help="SR test set folder (Set5, Set14 ...): HR/<name>.png and LR_bicubic/X<s>/<name>x<s>.png "
                            "(.bmp too)."
    ),
    person_crops: Optional[Tuple[str, Path]] = typer.Option(
        None, "--person-crops", metavar="DATASET ROOT", help="DATASET ROOT: HR person crops of a re-ID dataset, down-sampled here."
    ),
    scales: str = typer.Option("2,3,4", "--scales", "-s", help="Comma-separated scale factors."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Person-crop mode: at most N images, evenly spread."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, auto ..."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """PSNR/SSIM (Y channel, a border of ceil(scale) px cropped) of an SR model, per scale.

    Examples:
      lrreid sr-benchmark --model carn_m --weights ../shared/weights/carn_m.pth --data ../shared/data/Set5 --scales 2,3,4
      lrreid sr-benchmark --model bicubic --person-crops caviar ../shared/data/CAVIAR4REID --scales 2,3,4
    """
    from rich.console import Console
    from rich.progress import track
    from rich.table import Table

    from lrreid.evaluation.sr_metrics import benchmark_pairs, person_crop_pairs, score_sr
    from lrreid.models.sr import build_sr_model
    from lrreid.utils.device import resolve_device

    if (data is None) == (person_crops is None):
        raise ConfigError("give exactly one of --data SR_TEST_SET or --person-crops DATASET ROOT")
    scale_list = _parse_scales(scales)
    dev = resolve_device(device, "--device")
    net = build_sr_model(model, weights=weights)
    for s in scale_list:
        net.check_scale(s)  # fail before any work
    net = net.to(dev).eval()

    if data is not None:
        source = str(data)
        for s in scale_list:
            if abs(s - round(s)) > 1e-9:
                raise ConfigError(f"--data test sets have LR_bicubic/X<s> folders for integer scales only; got x{s:g}")
    else:
        dataset_name, root = person_crops
        paths = _spread(person_crop_images(dataset_name, root), limit)
        source = f"{dataset_name} person crops ({len(paths)} HR images from {root})"

    rows = []
    for s in scale_list:
        if data is not None:
            pairs = list(benchmark_pairs(data, int(round(s))))
        else:
            pairs = person_crop_pairs(paths, s)
        total = len(pairs) if isinstance(pairs, list) else len(paths)
        score = score_sr(net, track(pairs, total=total, description=f"x{s:g}", transient=True, disable=as_json), s, dev)
        rows.append(score)

    if as_json:
        typer.echo(json.dumps({
            "model": model,
            "weights": weights,
            "source": source,
            "results": [
                {"scale": r.scale, "psnr_y": round(r.psnr, 4), "ssim_y": round(r.ssim, 5), "images": r.images, "skipped": r.skipped}
                for r in rows
            ],
        }, indent=2))
        return
    table = Table(title=f"{model} on {source}")
    for col in ("scale", "PSNR-Y (dB)", "SSIM-Y", "images", "skipped"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(f"x{r.scale:g}", f"{r.psnr:.2f}", f"{r.ssim:.4f}", str(r.images), str(r.skipped))
    Console().print(table)
