"""DetReIDX / AG-VPReID style aerial-ground video sets: ``<split>/<PID>/<tracklet>/<frame>.jpg``.

Layout::

    <root>/train/0001/C4T0001/F001.jpg ...          split folders: train, query, gallery
    <root>/query/0002/C0T0003/...                   (query/ and gallery/ may also sit in test/,
    <root>/gallery/...                               or in the folder named by option test_dir,
    <root>/metadata.csv  or  metadata.json           e.g. AG-VPReID's case1_aerial_to_ground/)

A flat ``test/<PID>/...`` (no query/gallery inside) gives records with ``split=None``.  PID folders
are integers (an optional letter prefix such as ``P0001`` is allowed); -1 is junk (dropped and
counted), 0 a distractor (kept in the gallery only).

Camera and view of a tracklet, in this order:

1. the metadata file, if present: CSV with a header, or JSON (a list of objects, or an object
   keyed by tracklet).  Key ``tracklet``: the tracklet folder relative to root
   (``train/0001/C4T0001``) or just its name when that is unique; optional ``camid`` (integer,
   used as written) and ``view`` (``aerial``/``ground`` or an alias below).  Other columns
   (altitude, pitch, distance...) are accepted and ignored: records have no field for them.
2. the tracklet folder name, then the first frame's name, searched with ``camera_pattern``
   (default :data:`DEFAULT_CAMERA_PATTERN`, ``C<digits>``: ``C3_aerial`` -> 3, ``C4T0001`` -> 4;
   the number is the camid as written, e.g. AG-VPReID's C0..C5) and ``view_pattern`` (default
   :data:`DEFAULT_VIEW_PATTERN`: a token ``aerial``, ``ground``, ``uav``, ``drone``, ``cctv``, ``A``
   or ``G`` between ``_``/``-``/``.`` separators, e.g. ``C3_aerial``, ``P01_A_03``).  Both are
   regular expressions the user can override; they need the named groups ``camid`` and ``view``.
3. ``aerial_cameras``: camera numbers that are aerial when the name carries no view (AG-VPReID:
   ``aerial_cameras=(4, 5)``, its UAV cameras); the others are then ground.

A tracklet without frames, or with no camera in metadata or name, is a counted skip (an error with
``strict=True``).

Example::

    >>> ds = build_dataset("detreidx", "data/AG-VPReID", test_dir="case1_aerial_to_ground", aerial_cameras=(4, 5))
    >>> ds.query[0].view
    'aerial'
"""
from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Iterable

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, as_root, check_options, finish, list_dirs, list_images
from lrreid.data.records import ReidDataset, TrackletRecord
from lrreid.errors import ConfigError, DatasetLayoutError

DEFAULT_CAMERA_PATTERN = r"C(?P<camid>\d+)"
DEFAULT_VIEW_PATTERN = r"(?i)(?:^|[_\-.])(?P<view>aerial|ground|uav|drone|cctv|a|g)(?=$|[_\-.\d])"
VIEW_ALIASES = {"aerial": "aerial", "uav": "aerial", "drone": "aerial", "a": "aerial",
                "ground": "ground", "cctv": "ground", "g": "ground"}
PID_FOLDER = re.compile(r"^[A-Za-z]*(?P<pid>-?\d+)$")
LAYOUT = "<split>/<PID>/<tracklet>/<frame>.jpg with split in train, query, gallery (or test/), optional metadata.csv|json"


def _compile(pattern: str, group: str, option: str) -> re.Pattern:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"detreidx: option {option}={pattern!r} is not a valid regular expression ({exc})") from None
    if group not in compiled.groupindex:
        raise ConfigError(f"detreidx: option {option}={pattern!r} needs a named group (?P<{group}>...)")
    return compiled


def _view_name(value: str) -> str:
    view = value.strip().lower()
    return VIEW_ALIASES.get(view, view)


def _metadata_rows(path: Path) -> list[tuple[str, dict]]:
    """(where, row) pairs from a metadata CSV or JSON file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetLayoutError(f"{path}: cannot read metadata ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetLayoutError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if isinstance(data, dict):
            data = [{"tracklet": key, **(value if isinstance(value, dict) else {"camid": value})} for key, value in data.items()]
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise DatasetLayoutError(f"{path}: expected a list of objects or an object keyed by tracklet")
        return [(f"{path} entry {i + 1}", item) for i, item in enumerate(data)]
    reader = csv.DictReader(text.splitlines())
    if reader.fieldnames is None or "tracklet" not in [f.strip() for f in reader.fieldnames]:
        raise DatasetLayoutError(f"{path}:1: header {reader.fieldnames} has no 'tracklet' column (expected tracklet[,camid][,view]...)")
    rows = []
    for row in reader:
        rows.append((f"{path}:{reader.line_num}", {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}))
    return rows


def _read_metadata(path: Path) -> dict[str, tuple[int | None, str | None]]:
    """tracklet key -> (camid, view) from the metadata file; keys are relative paths and bare names."""
    table: dict[str, tuple[int | None, str | None]] = {}
    for where, row in _metadata_rows(path):
        key = str(row.get("tracklet", "")).strip().strip("/")
        if not key:
            raise DatasetLayoutError(f"{where}: column 'tracklet' is empty (expected the tracklet folder)")
        camid = row.get("camid")
        if camid in (None, ""):
            camid = None
        else:
            try:
                camid = int(str(camid).strip())
            except ValueError:
                raise DatasetLayoutError(f"{where}: column 'camid': expected an integer, got {camid!r}") from None
        view = row.get("view")
        view = _view_name(str(view)) if view not in (None, "") else None
        table[key] = (camid, view)
    return table


def _split_folders(base: Path, test_dir: str | None) -> list[tuple[str | None, Path]]:
    test_base = base / test_dir if test_dir else base
    if test_dir and not test_base.is_dir():
        raise DatasetLayoutError(f"{test_base} not found (option test_dir={test_dir!r}; expected it to hold query/ and gallery/)")
    found: dict[str, Path] = {}
    if (base / "train").is_dir():
        found["train"] = base / "train"
    for split in ("query", "gallery"):
        for candidate in (test_base / split, base / "test" / split):
            if candidate.is_dir():
                found[split] = candidate
                break
    folders: list[tuple[str | None, Path]] = list(found.items())
    test = base / "test"
    if test.is_dir() and not any((test / s).is_dir() for s in ("query", "gallery")):
        folders.append((None, test))
    if not folders:
        raise DatasetLayoutError(f"{base}: no train/, query/, gallery/ or test/ folder: not a detreidx folder (expected {LAYOUT})")
    return folders


@DATASETS.register("detreidx")
@check_options
def load_detreidx(
    root,
    *,
    metadata: str | None = None,
    camera_pattern: str = DEFAULT_CAMERA_PATTERN,
    view_pattern: str = DEFAULT_VIEW_PATTERN,
    aerial_cameras: Iterable[int] | None = None,
    test_dir: str | None = None,
    strict: bool = False,
) -> ReidDataset:
    """Aerial-ground tracklets from ``<split>/<PID>/<tracklet>/<frames>``; see the module docstring."""
    camera_re = _compile(camera_pattern, "camid", "camera_pattern")
    view_re = _compile(view_pattern, "view", "view_pattern")
    aerial = {int(c) for c in aerial_cameras} if aerial_cameras is not None else None
    base = as_root(root, "detreidx", LAYOUT)
    folders = _split_folders(base, test_dir)

    if metadata is not None:
        meta_path = Path(metadata) if Path(metadata).is_absolute() else base / metadata
        if not meta_path.is_file():
            raise DatasetLayoutError(f"{meta_path}: metadata file not found (option metadata={metadata!r})")
    else:
        meta_path = next((p for p in (base / "metadata.csv", base / "metadata.json") if p.is_file()), None)
    table = _read_metadata(meta_path) if meta_path else {}

    skips = Skips("detreidx", strict)
    records = []
    for split, folder in folders:
        for pid_dir in list_dirs(folder):
            match = PID_FOLDER.match(pid_dir.name)
            if match is None:
                skips("unparseable PID folder", pid_dir, "expected an integer person id")
                continue
            pid = int(match["pid"])
            if pid == -1:
                skips.by_design("junk (pid -1)", len(list_dirs(pid_dir)))
                continue
            if pid < -1 or (pid == 0 and split != "gallery"):
                skips("distractor or negative pid outside the gallery", pid_dir, f"pid {pid} in {folder.name}/")
                continue
            for tracklet_dir in list_dirs(pid_dir):
                frames = list_images(tracklet_dir)
                if not frames:
                    skips("tracklet without frames", tracklet_dir)
                    continue
                rel = tracklet_dir.relative_to(base).as_posix()
                camid, view = table.get(rel) or table.get(tracklet_dir.name) or (None, None)
                names = (tracklet_dir.name, frames[0].stem)
                if camid is None:
                    found = next((m for m in (camera_re.search(n) for n in names) if m), None)
                    if found is None:
                        skips("no camera in metadata or name", tracklet_dir, f"camera_pattern {camera_pattern!r}")
                        continue
                    camid = int(found["camid"])
                if view is None:
                    found = next((m for m in (view_re.search(n) for n in names) if m), None)
                    if found is not None:
                        view = _view_name(found["view"])
                    elif aerial is not None:
                        view = "aerial" if camid in aerial else "ground"
                records.append(TrackletRecord(frames=tuple(str(f) for f in frames), pid=pid, camid=camid, split=split, view=view))
    return finish("detreidx", records, skips, root=base, layout=LAYOUT, is_video=True)
