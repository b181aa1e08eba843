"""A user's own data, as a folder tree or as a CSV file.

(a) Folder: ``root`` is a folder laid out as::

        <root>/train/<pid>/[<camid>_]name.jpg
        <root>/query/<pid>/...
        <root>/gallery/<pid>/...

    Any of the three split folders may be missing, not all.  ``<pid>`` folders are integers: -1 is
    junk (dropped, counted), 0 a distractor (gallery only).  A file name starting with digits and
    ``_`` gives the camera (``3_0001.jpg`` -> camid 3).  Without that prefix, query images get
    camid 0 and train/gallery images camid 1, so the usual "same person, same camera" filter of the
    evaluation never hides a true match.  Non-integer pid folders and images directly in a split
    folder are counted skips (errors with ``strict=True``).

(b) CSV: ``root`` is a ``.csv`` file with the header ``path,pid,camid[,split][,view][,tracklet]``
    (any column order).  Paths are relative to the CSV's folder (absolute paths also work),
    ``split`` is train/query/gallery or empty (None: the protocol decides), ``view`` free text or
    empty.  With a ``tracklet`` column, rows sharing a tracklet value form one TrackletRecord, frames
    in row order; its rows must agree on pid, camid, split and view.  Every problem is an error
    naming the line and the column: a wrong header, a missing file, a non-integer pid or camid.
    pid -1 rows are dropped as junk (counted); pid 0 is allowed in the gallery or with no split.

Example::

    >>> ds = build_dataset("generic", "my_data/labels.csv")
    >>> ds.query[0]
    ImageRecord(path='/data/my_data/q/001.jpg', pid=12, camid=0, split='query', view=None, scale=1.0)
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, as_root, check_options, finish, list_dirs, list_images
from lrreid.data.records import ImageRecord, ReidDataset, TrackletRecord
from lrreid.errors import DatasetLayoutError

SPLITS = ("train", "query", "gallery")
REQUIRED_COLUMNS = ("path", "pid", "camid")
OPTIONAL_COLUMNS = ("split", "view", "tracklet")
FOLDER_LAYOUT = "<root>/{train,query,gallery}/<pid>/[<camid>_]*.jpg"
CSV_LAYOUT = "a CSV with header path,pid,camid[,split][,view][,tracklet]"


def _camid_prefix(name: str) -> int | None:
    head, sep, _ = name.partition("_")
    return int(head) if sep and head.isdigit() else None


def _load_folder(base: Path, strict: bool) -> ReidDataset:
    splits = [s for s in SPLITS if (base / s).is_dir()]
    if not splits:
        raise DatasetLayoutError(f"{base}: no train/, query/ or gallery/ folder (expected {FOLDER_LAYOUT}, or {CSV_LAYOUT})")
    skips = Skips("generic", strict)
    records = []
    for split in splits:
        folder = base / split
        for stray in list_images(folder):
            skips("image outside a pid folder", stray, f"expected {split}/<pid>/<image>")
        for pid_dir in list_dirs(folder):
            try:
                pid = int(pid_dir.name)
            except ValueError:
                skips("non-integer pid folder", pid_dir, "expected an integer person id")
                continue
            images = list_images(pid_dir)
            if pid == -1:
                skips.by_design("junk (pid -1)", len(images))
                continue
            if pid < -1 or (pid == 0 and split != "gallery"):
                skips("distractor or negative pid outside the gallery", pid_dir, f"pid {pid} in {split}/")
                continue
            default_camid = 0 if split == "query" else 1
            for path in images:
                camid = _camid_prefix(path.name)
                records.append(ImageRecord(path=str(path), pid=pid, camid=default_camid if camid is None else camid, split=split))
    return finish("generic", records, skips, root=base, layout=FOLDER_LAYOUT)


def _int_cell(value: str, where: str, column: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise DatasetLayoutError(f"{where}: column '{column}': expected an integer, got {value!r}") from None


def _load_csv(csv_path: Path, strict: bool) -> ReidDataset:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # -sig: a BOM written by spreadsheet programs
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetLayoutError(f"{csv_path}: cannot read ({exc})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    expected = f"{','.join(REQUIRED_COLUMNS)}[,{'][,'.join(OPTIONAL_COLUMNS)}]"
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or duplicated:
        problem = (f"missing column '{missing[0]}'" if missing else
                   f"unknown column '{unknown[0]}'" if unknown else f"column '{duplicated[0]}' appears twice")
        raise DatasetLayoutError(f"{csv_path}:1: {problem} in header {','.join(header) or '(empty)'} (expected {expected})")
    column = {name: i for i, name in enumerate(header)}
    has_tracklets = "tracklet" in column
    folder = csv_path.parent
    skips = Skips("generic", strict)
    images: list[ImageRecord] = []
    groups: dict[str, tuple[str, list[str], tuple]] = {}  # tracklet -> (first line, frames, (pid, camid, split, view))
    for row in reader:
        line = reader.line_num
        where = f"{csv_path}:{line}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise DatasetLayoutError(f"{where}: {len(row)} columns, expected {len(header)} as in the header ({','.join(header)})")
        cell = {name: row[i].strip() for name, i in column.items()}
        pid = _int_cell(cell["pid"], where, "pid")
        camid = _int_cell(cell["camid"], where, "camid")
        split = cell.get("split") or None
        if split is not None and split not in SPLITS:
            raise DatasetLayoutError(f"{where}: column 'split': {split!r} is not one of train, query, gallery (or empty)")
        if not cell["path"]:
            raise DatasetLayoutError(f"{where}: column 'path' is empty (expected an image path)")
        path = Path(cell["path"])
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise DatasetLayoutError(f"{where}: column 'path': file {path} not found")
        view = cell.get("view") or None
        if pid == -1:
            skips.by_design("junk (pid -1)")
            continue
        if pid < -1 or (pid == 0 and split not in ("gallery", None)):
            raise DatasetLayoutError(f"{where}: column 'pid': {pid} is not allowed in split {split!r} (0 marks gallery distractors, -1 junk)")
        if has_tracklets:
            key = cell["tracklet"]
            if not key:
                raise DatasetLayoutError(f"{where}: column 'tracklet' is empty (every row needs one when the column exists)")
            labels = (pid, camid, split, view)
            first_line, frames, first_labels = groups.setdefault(key, (where, [], labels))
            if labels != first_labels:
                raise DatasetLayoutError(
                    f"{where}: tracklet {key!r} has pid/camid/split/view {labels}, but {first_line} gave {first_labels}"
                )
            frames.append(str(path))
        else:
            images.append(ImageRecord(path=str(path), pid=pid, camid=camid, split=split, view=view))
    if has_tracklets:
        tracklets = [TrackletRecord(frames=tuple(frames), pid=pid, camid=camid, split=split, view=view)
                     for _, frames, (pid, camid, split, view) in groups.values()]
        return finish("generic", tracklets, skips, root=csv_path, layout=CSV_LAYOUT, is_video=True)
    return finish("generic", images, skips, root=csv_path, layout=CSV_LAYOUT)


@DATASETS.register("generic")
@check_options
def load_generic(root, *, strict: bool = False) -> ReidDataset:
    """Your own data: a folder ``{train,query,gallery}/<pid>/...`` or a labels CSV (see the module docstring)."""
    if root is not None and str(root).lower().endswith(".csv"):
        csv_path = Path(os.path.abspath(Path(root).expanduser()))
        if not csv_path.is_file():
            raise DatasetLayoutError(f"{csv_path}: CSV file not found (expected {CSV_LAYOUT})")
        return _load_csv(csv_path, strict)
    return _load_folder(as_root(root, "generic", f"{FOLDER_LAYOUT}, or {CSV_LAYOUT}"), strict)
