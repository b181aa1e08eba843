"""``lrreid prepare``: write a protocol's dataset copy once (e.g. MLR-VIPeR), with its splits, atomically.

* ``protocol="mlr"`` (MLR-VIPeR, MLR-CUHK03, MLR-Market1501, MLR-DukeMTMC-reID, MLR-PRID): the
  images that :func:`~lrreid.data.protocols.mlr_assign_factors` makes LR are down-sampled with
  :func:`~lrreid.data.degradations.bicubic_downsample` and stored at their small size as PNG (no
  second lossy encoding); the other images are hard-linked (or copied) unchanged, after one full
  decode each (a truncated file fails here, not epochs into training).  Splits: the
  single-shot LR protocol (:func:`~lrreid.data.protocols.lr_single_shot_protocol`).
* ``protocol="genuine"`` (CAVIAR4REID, GRID): no image changes (all linked or copied); splits of
  :func:`~lrreid.data.protocols.genuine_lr_protocol` (GRID: :func:`~lrreid.data.protocols.grid_protocol`).

Where a dataset's protocol is defined in the literature differently from the general rule, the
options left unset (``lr_camera``, ``distractors``) take the literature's values
(:data:`LITERATURE_DEFAULTS`): MLR-PRID makes cam_a LR and puts the cam_b-only persons in the
gallery; GRID keeps its 775 distractors in every gallery.  docs/protocols.md lists them.

The output folder is built in a hidden temporary sibling and renamed into place when complete
(``manifest.json`` is its last file), so an interrupted run leaves nothing that loads as a
prepared dataset.  Running again with the same parameters does nothing ("already prepared");
an existing folder with other parameters is never overwritten.

Example::

    >>> result = prepare_dataset("viper", "../shared/data/VIPeR", "out/mlr-viper", protocol="mlr")
    >>> result.num_lr, len(load_prepared_splits("out/mlr-viper"))
    (632, 10)
"""
from __future__ import annotations

import inspect
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from lrreid.data.datasets.prepared import (
    FORMAT, FORMAT_VERSION, MANIFEST, load_prepared_splits, read_manifest,  # noqa: F401 (re-exported)
)
from lrreid.data.degradations import bicubic_downsample
from lrreid.data.imageio import BadImagePolicy, read_image
from lrreid.data.protocols import MLR_FACTORS, genuine_protocol_for, lr_single_shot_protocol, mlr_assign_factors
from lrreid.data.records import Record, ReidDataset, TrackletRecord
from lrreid.errors import ConfigError, DatasetLayoutError, ImageReadError
from lrreid.utils.atomic import atomic_dir, atomic_write_json
from lrreid.utils.logging import get_logger

log = get_logger("data.prepare")

PROTOCOLS = ("mlr", "genuine")

# (dataset, protocol) -> the literature's values of the options a caller leaves unset (None).
LITERATURE_DEFAULTS: dict[tuple[str, str], dict] = {
    # MLR-PRID (Jiao et al. 2018 and the LR re-ID papers after it): cam_a down-sampled, the 549
    # cam_b-only persons as gallery distractors, 100 of the 200 two-camera persons tested.
    ("prid2011", "mlr"): {"lr_camera": 0, "distractors": True},
    ("grid", "mlr"): {"distractors": True},  # the 775 pid-0 gallery images stay distractors
    ("grid", "genuine"): {"distractors": True},
}
OPTION_FALLBACKS = {"lr_camera": "random", "distractors": False}  # elsewhere


@dataclass
class PrepareResult:
    """What :func:`prepare_dataset` did: ``already`` is True when an identical copy was there."""

    out: Path
    already: bool
    num_records: int = 0
    num_lr: int = 0
    num_splits: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # the first split's protocol notes

    def summary(self) -> str:
        if self.already:
            return f"{self.out}: already prepared (same dataset and parameters), nothing to do"
        skipped = sum(self.skipped.values())
        extra = f", {skipped} skipped ({', '.join(f'{k} {v}' for k, v in sorted(self.skipped.items()))})" if skipped else ""
        notes = "".join(f"\n  {note}" for note in self.notes)
        return (f"{self.out}: {self.num_records} records ({self.num_lr} down-sampled), "
                f"{self.num_splits} evaluation splits{extra}{notes}")


def _parameters(dataset: str, root: str | os.PathLike, protocol: str, factors: Sequence[float], seed: int,
                num_splits: int, protocol_args: dict, lr_camera: str | int = "random", distractors: bool = False) -> dict:
    """The parameters that make two prepared copies the same (stored in, and compared with, the manifest)."""
    return {
        "dataset": dataset.lower(),
        "source_root": os.path.abspath(os.fspath(root)) if root is not None else None,
        "protocol": protocol,
        "factors": [float(f) for f in factors] if protocol == "mlr" else None,
        "lr_camera": lr_camera if protocol == "mlr" else None,
        "distractors": bool(distractors),
        "seed": int(seed),
        "num_splits": int(num_splits),
        "protocol_args": dict(protocol_args),
    }


def _differences(manifest: dict, params: dict) -> list[str]:
    # A manifest written before "lr_camera" / "distractors" existed used the random rule, no distractors.
    defaults = {"lr_camera": "random" if manifest.get("protocol") == "mlr" else None, "distractors": False}
    return [f"{key}={manifest.get(key, defaults.get(key))!r} there, {value!r} asked" for key, value in params.items()
            if manifest.get(key, defaults.get(key)) != value]


def _existing(out: Path, params: dict) -> bool:
    """True when ``out`` already holds this exact copy; False when it is free; else a one-line error."""
    if not out.exists():
        return False
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()  # an empty folder the user made for us
        return False
    if not (out / MANIFEST).is_file():
        raise DatasetLayoutError(f"{out}: exists and is not a prepared dataset (no {MANIFEST}); "
                                 f"choose a new or empty folder")
    manifest = read_manifest(out)
    diff = _differences(manifest, params)
    if diff:
        raise DatasetLayoutError(f"{out}: holds a different prepared dataset ({'; '.join(diff)}); "
                                 f"refusing to overwrite it, choose another folder or delete it")
    return True


def _relative_names(records: Sequence[Record]) -> tuple[str, dict[str, str]]:
    """Common source folder, and every source file's path relative to it."""
    paths = [p for r in records for p in (r.frames if isinstance(r, TrackletRecord) else (r.path,))]
    base = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in paths])
    return base, {p: os.path.relpath(os.path.abspath(p), base) for p in paths}


def _place(src: str, dst: Path, link: bool) -> None:
    """Hard-link ``src`` to ``dst`` (same bytes, no space), or copy it where linking is impossible."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:  # another file system, or links not supported: copy instead
            pass
    shutil.copy2(src, dst)


def _write_record(record: Record, factor: float, names: dict[str, str], tmp: Path, link: bool) -> list[str]:
    """Write one record's file(s) under ``tmp/images``; returns their paths relative to ``tmp``."""
    frames = record.frames if isinstance(record, TrackletRecord) else (record.path,)
    out = []
    for src in frames:
        rel = Path("images") / names[src]
        if factor > 1:
            rel = rel.with_suffix(".png")  # lossless: the only degradation is the down-sampling
            image = read_image(src)
            if min(image.size) < factor:  # it would stay (nearly) as is, yet be recorded as reduced
                raise ImageReadError(
                    f"{src}: image is {image.width}x{image.height} pixels, too small to down-sample by x{factor:g} "
                    f"(expected sides of at least {math.ceil(factor)} px)", reason="too_small", path=src)
            small = bicubic_downsample(image, factor)
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            small.save(tmp / rel)
        else:
            read_image(src)  # decoded once here, so a truncated file fails now instead of in training
            _place(src, tmp / rel, link)
        out.append(rel.as_posix())
    return out


def prepare_dataset(dataset: str, root: str | os.PathLike | None, out: str | os.PathLike, *, protocol: str = "mlr",
                    factors: Sequence[float] = MLR_FACTORS, seed: int = 0, num_splits: int = 10,
                    protocol_args: dict | None = None, link: bool = True, bad_images: str = "raise",
                    progress: bool = True, dataset_args: dict | None = None,
                    lr_camera: str | int | None = None, distractors: bool | None = None) -> PrepareResult:
    """Write the ``protocol`` copy of ``dataset`` (loaded from ``root``) to ``out``; see the module docstring.

    ``lr_camera`` (MLR only): ``"random"`` = one random camera per person becomes LR (the general
    rule), a camera id = that camera for everybody; see :func:`~lrreid.data.protocols.mlr_assign_factors`.
    ``distractors``: add the gallery distractors of the split protocol.  Both default (None) to
    the dataset's literature protocol (:data:`LITERATURE_DEFAULTS`), else ``"random"`` / False.
    ``protocol_args`` go to the split protocol (e.g. ``{"num_test_ids": 100}``); ``bad_images="skip"``
    leaves out (and counts) records whose images cannot be read; ``link=False`` copies HR files
    instead of hard-linking them.

    >>> prepare_dataset("caviar", "../shared/data/CAVIAR4REID", "out/caviar", protocol="genuine").num_splits
    10
    """
    if protocol not in PROTOCOLS:
        raise ConfigError(f"prepare protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    protocol_args = dict(protocol_args or {})
    literature = LITERATURE_DEFAULTS.get((dataset.lower(), protocol), {})
    if lr_camera is None:
        lr_camera = literature.get("lr_camera", OPTION_FALLBACKS["lr_camera"])
    if distractors is None:
        distractors = literature.get("distractors", OPTION_FALLBACKS["distractors"])
    if isinstance(lr_camera, bool) or not (lr_camera == "random" or isinstance(lr_camera, int)):
        raise ConfigError(f"lr_camera {lr_camera!r}: expected 'random' or a camera id")
    split_protocol = lr_single_shot_protocol if protocol == "mlr" else genuine_protocol_for(dataset)
    takes_distractors = "distractors" in inspect.signature(split_protocol).parameters
    if "distractors" in protocol_args:
        raise ConfigError("protocol_args: give distractors as the distractors option (--distractors/--no-distractors)")
    if distractors and not takes_distractors:
        raise ConfigError(f"distractors: the {protocol!r} splits of {dataset} have no distractors (use --no-distractors)")
    if takes_distractors:
        protocol_args["distractors"] = bool(distractors)
    try:  # check the protocol's options before any image is written
        inspect.signature(split_protocol).bind(None, num_splits=num_splits, seed=seed, **protocol_args)
    except TypeError as exc:
        raise ConfigError(f"protocol_args {protocol_args}: {exc} (for the {protocol!r} splits)") from None
    out = Path(os.path.abspath(out))
    stored_args = {k: v for k, v in protocol_args.items() if k != "distractors"}  # stored on its own
    params = _parameters(dataset, root, protocol, factors, seed, num_splits, stored_args, lr_camera, distractors)
    if _existing(out, params):
        return PrepareResult(out, already=True)

    from lrreid import __version__
    from lrreid.data.datasets import build_dataset

    source = build_dataset(dataset, os.fspath(root) if root is not None else None, **(dataset_args or {}))
    records = list(source.records)
    if not records:
        raise DatasetLayoutError(f"{dataset} at {root}: no records to prepare")
    if protocol == "mlr":
        plan = mlr_assign_factors(records, factors=factors, seed=seed, lr_camera=lr_camera)
    else:
        plan = [1.0] * len(records)
    base, names = _relative_names(records)
    if len(set(names.values())) != len(names):
        raise DatasetLayoutError(f"{base}: two source files map to the same name in the copy")
    policy = BadImagePolicy(bad_images)

    from tqdm import tqdm

    try:
        with atomic_dir(out) as tmp:
            entries, kept, num_lr = [], [], 0
            for record, factor in tqdm(list(zip(records, plan)), desc=f"prepare {dataset} ({protocol})",
                                       unit="img", disable=not progress):
                try:
                    paths = _write_record(record, factor, names, tmp, link)
                except ImageReadError as exc:
                    policy.handle(exc)  # raises unless bad_images="skip"
                    continue
                scale = float(factor) * float(record.scale)
                new = record.with_(frames=tuple(str(tmp / p) for p in paths), scale=scale) \
                    if isinstance(record, TrackletRecord) else record.with_(path=str(tmp / paths[0]), scale=scale)
                kept.append(new)
                num_lr += factor > 1
                entry = {"pid": record.pid, "camid": record.camid, "view": record.view, "scale": scale,
                         "split": record.split}
                entry.update({"frames": paths} if isinstance(record, TrackletRecord) else {"path": paths[0]})
                entries.append(entry)
            policy.log_summary()
            splits = split_protocol(ReidDataset(source.name, kept, official_train_ids=source.official_train_ids),
                                    num_splits=num_splits, seed=seed, **protocol_args)
            index = {id(r): i for i, r in enumerate(kept)}
            skipped = dict(source.skipped)
            for reason, count in policy.skipped.items():
                skipped[f"unreadable: {reason}"] = skipped.get(f"unreadable: {reason}", 0) + count
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "lrreid_version": __version__,
                **params, "source_folder": base, "skipped": skipped, "records": entries,
                "splits": [{"name": s.name, **{part: [index[id(r)] for r in getattr(s, part)]
                                               for part in ("train", "query", "gallery")}, "notes": list(s.notes)}
                           for s in splits],
            }
            atomic_write_json(tmp / MANIFEST, manifest)  # last: a folder without it is incomplete
    except OSError:
        # Another run finished the same folder first (the rename found it taken): fine if identical.
        if _existing(out, params):
            return PrepareResult(out, already=True)
        raise
    return PrepareResult(out, already=False, num_records=len(entries), num_lr=num_lr, num_splits=len(splits),
                         skipped=skipped, notes=list(splits[0].notes))
