"""``lrreid index``, ``lrreid search`` and ``lrreid export``: use a trained model on your own images."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from lrreid.cli import app, loading_status
from lrreid.errors import ConfigError


def _load(model: str, fast: bool, device: str, batch_size: int = 32):
    """The pipeline of a run folder / checkpoint (a hook tests replace with a tiny model)."""
    from lrreid.inference.loading import load_pipeline
    from lrreid.utils.device import configure_threads

    configure_threads(0)
    return load_pipeline(model, fast=fast, device=device, batch_size=batch_size)


def _load_with_status(model: str, fast: bool, device: str, batch_size: int = 32):
    with loading_status(f"loading the model of {model}"):
        return _load(model, fast, device, batch_size)


@app.command("index")
def index_command(
    gallery_dir: Path = typer.Argument(..., help="Folder of gallery images (searched recursively)."),
    model: str = typer.Option(..., "--model", "-m", help="Trained run folder or checkpoint."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Index folder (default: GALLERY_DIR.lrreid-index beside it)."),
    approx: str = typer.Option("flat", "--approx", help="flat (exact), ivf or hnsw (approximate, for large galleries)."),
    check: bool = typer.Option(False, "--check", help="Report the recall@10 of an approximate index against exact search."),
    metric: str = typer.Option("euclidean", "--metric", help="euclidean (as the evaluation ranks) or cosine."),
    nlist: Optional[int] = typer.Option(None, "--nlist", help="IVF: number of lists (default ~4 sqrt(N))."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", help="IVF: lists searched per query."),
    hnsw_m: Optional[int] = typer.Option(None, "--hnsw-m", help="HNSW: links per node (default 32)."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="HNSW: search breadth (default 64)."),
    strict: bool = typer.Option(False, "--strict", help="Stop at the first unreadable image instead of skipping it."),
    fast: bool = typer.Option(True, "--fast/--fp32", help="Fast path (bf16/fp16 autocast) or plain fp32."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 ..."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Gallery images embedded at once (lower it if memory runs out)."),
) -> None:
    """Embed GALLERY_DIR into a search index; re-running embeds only new or changed files.

    Example: lrreid index photos/gallery --model runs/demo --approx ivf --check
    """
    from lrreid.search.index import build_index
    from lrreid.utils.device import resolve_device

    if approx not in ("flat", "ivf", "hnsw"):
        raise ConfigError(f"--approx {approx!r}: expected flat, ivf or hnsw")
    resolve_device(device, "--device")  # before the model is loaded
    params = {k: v for k, v in {"nlist": nlist, "nprobe": nprobe, "M": hnsw_m, "efSearch": ef_search}.items()
              if v is not None}
    pipe = _load_with_status(model, fast, device, batch_size)
    report = build_index(gallery_dir, pipe, out, metric=metric, kind=approx, params=params, check=check,
                         bad_images="raise" if strict else "skip", progress=True)
    typer.echo(report.summary())


def _expand_probes(probes: list[Path], tracklets: bool = False) -> list:
    """Probe paths, with folders replaced by the image files inside them (sorted); an empty folder is an error.

    With ``tracklets`` (a video model) a folder is one probe: the list of its frames.
    """
    from lrreid.errors import DatasetLayoutError
    from lrreid.search.index import scan_gallery
    from lrreid.search.searcher import Tracklet

    out = []
    for p in probes:
        if p.is_dir():
            found = scan_gallery(p)[0]
            if not found:
                raise DatasetLayoutError(f"{p}: no image files found (expected a folder of probe images)")
            frames = [p / e.path for e in found]
            if tracklets:
                out.append(Tracklet(p, frames))
            else:
                out.extend(frames)
        else:
            out.append(p)
    return out


@app.command("search")
def search_command(
    probes: List[Path] = typer.Argument(..., help="Probe images, or folders of them (with a video model such as S3-CLIP, a folder is one tracklet)."),
    index: Path = typer.Option(..., "--index", "-i", help="Index folder written by 'lrreid index'."),
    k: int = typer.Option(10, "-k", "--top-k", min=1, help="Gallery images per probe."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for machines) instead of tables."),
    html: Optional[Path] = typer.Option(None, "--html", help="Also write a self-contained HTML page of the results."),
    scale: str = typer.Option("auto", "--scale", help="auto (the model's own choice: its predictor, or its one trained scale) or one of its scale factors."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip unreadable probes (counted) instead of stopping."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Run folder / checkpoint (default: the index's model)."),
    nprobe: Optional[int] = typer.Option(None, "--nprobe", help="IVF: lists searched per query."),
    ef_search: Optional[int] = typer.Option(None, "--ef-search", help="HNSW: search breadth."),
    fast: bool = typer.Option(True, "--fast/--fp32", help="Fast path (bf16/fp16 autocast) or plain fp32."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1 ..."),
) -> None:
    """Find the gallery images nearest to each probe: predicted scale -> SR -> features -> top-k.

    Example: lrreid search probe1.jpg probe2.jpg --index photos/gallery.lrreid-index -k 5 --html out.html
    """
    from lrreid.search.html import write_html
    from lrreid.search.index import GalleryIndex
    from lrreid.search.searcher import Searcher
    from lrreid.utils.device import resolve_device

    if scale != "auto":
        try:
            scale_value: int | None = int(scale)
        except ValueError:
            raise ConfigError(f"--scale {scale!r}: expected auto or an integer scale factor") from None
        # refused with the model's scale set once the model is loaded: "scale 5: this model's scales are 1, 2, 3, 4"
    else:
        scale_value = None  # the model's own choice: its predictor, or its one scale (S3-CLIP)
    resolve_device(device, "--device")  # before the model is loaded
    source = model or GalleryIndex.load(index).manifest["model"].get("source")
    if not source:
        raise ConfigError(f"{index}: the index does not record its model; pass --model")
    pipe = _load_with_status(source, fast, device)
    searcher = Searcher(index, model=pipe, nprobe=nprobe, ef_search=ef_search)
    results = searcher.search(_expand_probes(list(probes), tracklets=pipe.video), k=k, scale=scale_value, keep_images=html is not None,
                              bad_images="skip" if skip_bad else "raise")
    missing = sum(m.missing for r in results for m in r.matches)
    if html is not None:
        write_html(results, html, meta=f"index {index} - model {searcher.index.manifest['model']['identity'][:12]}"
                   f" - {len(results)} probe{'' if len(results) == 1 else 's'}, top {k}")
    if as_json:
        typer.echo(json.dumps({
            "index": str(index), "model": searcher.index.manifest["model"]["identity"], "k": k,
            "metric": searcher.index.metric, "results": [r.to_dict() for r in results],
            "skipped": searcher.skipped, "missing": missing,
        }, indent=2))
    else:
        _print_tables(results, searcher.index.metric)
    if html is not None:
        typer.echo(f"wrote {html}", err=as_json)
    if searcher.skipped:
        typer.echo(f"skipped {sum(searcher.skipped.values())} unreadable probe(s): "
                   + ", ".join(f"{r} {n}" for r, n in sorted(searcher.skipped.items())), err=True)
    if missing:
        typer.echo(f"warning: {missing} result(s) are gallery files missing since indexing", err=True)


def _print_tables(results, metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for r in results:
        console.print(f"[bold]{r.probe}[/bold]  (SR x{r.scale})", soft_wrap=True, highlight=False)
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("distance" if metric == "euclidean" else "1 - cosine", justify="right")
        table.add_column("gallery image", overflow="fold")  # full paths, folded rather than cut
        for m in r.matches:
            note = " [red](missing)[/red]" if m.missing else (" [yellow](changed)[/yellow]" if m.changed else "")
            table.add_row(str(m.rank), f"{m.distance:.4f}", f"{m.path}{note}")
        console.print(table)


@app.command("export")
def export_command(
    run: str = typer.Argument(..., help="Trained run folder or checkpoint."),
    fmt: str = typer.Option("onnx", "--format", help="Export format (onnx)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: RUN/export-onnx)."),
    fixed_scale: Optional[int] = typer.Option(None, "--fixed-scale", help="One fused graph LR -> features at this scale."),
    opset: int = typer.Option(18, "--opset", help="ONNX opset (18: the first with antialiased Resize)."),
) -> None:
    """Export the predictor, SR and re-ID networks as ONNX graphs (or one fused graph for a fixed scale).

    Example: lrreid export runs/demo --format onnx --out exported/
    """
    from lrreid.export.onnx import export_onnx

    if fmt != "onnx":
        raise ConfigError(f"--format {fmt!r}: only onnx is supported")
    pipe = _load_with_status(run, fast=False, device="cpu")
    run_path = Path(run)
    out = out or ((run_path if run_path.is_dir() else run_path.parent) / "export-onnx")
    spec = export_onnx(pipe, out, fixed_scale=fixed_scale, opset=opset)
    typer.echo(f"wrote {len(spec['graphs'])} ONNX graph(s) and {Path(out) / 'lrreid_onnx.json'}")
