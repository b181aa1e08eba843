"""What every dataset loader does the same way: find the dataset folder, count skips, refuse empty results.

Loaders stay small and readable by leaning on these helpers:

- :func:`locate` accepts the folder a user points at, or its usual parent (archives often add a
  level), and checks the expected layout before anything is parsed;
- :class:`Skips` counts files that cannot be parsed inside a valid layout (and logs each one), or
  raises with ``strict=True``;
- :func:`finish` refuses an empty result and builds the :class:`ReidDataset`;
- :func:`check_options` turns an unknown keyword option into a :class:`ConfigError` that lists the
  known ones, instead of a ``TypeError`` traceback.
"""
from __future__ import annotations

import functools
import inspect
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Sequence

from lrreid.data.records import ReidDataset, Record
from lrreid.errors import ConfigError, DatasetLayoutError
from lrreid.utils.logging import get_logger

log = get_logger("data.datasets")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def is_image_file(path: str | os.PathLike) -> bool:
    name = os.path.basename(path)
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def natural_key(name: str) -> list:
    """Sort key that puts ``F2.jpg`` before ``F10.jpg`` (frame order in a tracklet)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """Entries named like images directly inside ``folder``, in natural order; other files (Thumbs.db,
    .txt) are ignored.  A broken link or other non-file named like an image is listed, so that reading
    it fails (or is counted as a skip) instead of it vanishing unnoticed."""
    return sorted((p for p in folder.iterdir() if not p.is_dir() and is_image_file(p)), key=lambda p: natural_key(p.name))


def list_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def as_root(root: str | os.PathLike | None, dataset: str, layout: str) -> Path:
    """The user's ``root`` as an existing absolute folder, or a DatasetLayoutError saying what was expected."""
    if root is None or str(root) == "":
        raise DatasetLayoutError(f"dataset {dataset!r} needs a root folder (expected {layout})")
    path = Path(os.path.abspath(Path(root).expanduser()))  # records keep working after a chdir
    if not path.exists():
        raise DatasetLayoutError(f"{path}: folder not found (expected the {dataset} folder: {layout})")
    if not path.is_dir():
        raise DatasetLayoutError(f"{path}: not a folder (expected the {dataset} folder: {layout})")
    return path


def locate(
    root: str | os.PathLike | None,
    *,
    dataset: str,
    required: Sequence[str],
    wrappers: Sequence[str] = (),
    layout: str,
) -> Path:
    """Return the folder holding every entry in ``required``: ``root`` itself or ``root/<wrapper>``.

    ``wrappers`` are the extra levels the official archive (or a common tool) adds, e.g.
    ``"Market-1501-v15.09.15"``.  When no candidate has the full layout, the error names the
    candidate that came closest and the entries it lacks.

    Example::

        >>> locate("data/market", dataset="market1501", required=["bounding_box_train", "query"],
        ...        wrappers=["Market-1501-v15.09.15"], layout="bounding_box_train/, query/")
        PosixPath('data/market/Market-1501-v15.09.15')
    """
    base = as_root(root, dataset, layout)
    best: tuple[int, Path, list[str]] | None = None
    for wrapper in ("", *wrappers):
        candidate = base / wrapper if wrapper else base
        if not candidate.is_dir():
            continue
        missing = [entry for entry in required if not (candidate / entry).exists()]
        if not missing:
            return candidate
        found = len(required) - len(missing)
        if best is None or found > best[0]:
            best = (found, candidate, missing)
    assert best is not None  # base itself is a folder
    _, candidate, missing = best
    where = f"{candidate}/{missing[0]}" if len(missing) == 1 else f"{candidate}: {', '.join(missing)}"
    raise DatasetLayoutError(f"{where} not found: not a {dataset} folder (expected {layout})")


class Skips:
    """Counts entries a loader leaves out, by reason; with ``strict=True`` the first one raises.

    Each skip is logged at DEBUG level with its path; :func:`finish` logs the totals as a WARNING.

    Example::

        >>> skips = Skips("market1501", strict=False)
        >>> skips("unparseable file name", "query/abc.jpg", "expected PPPP_cC...")
        >>> skips.counts
        {'unparseable file name': 1}
    """

    def __init__(self, dataset: str, strict: bool = False):
        self.dataset = dataset
        self.strict = strict
        self.counts: dict[str, int] = {}

    def __call__(self, reason: str, where: str | os.PathLike, detail: str = "") -> None:
        message = f"{where}: {reason}" + (f" ({detail})" if detail else "")
        if self.strict:
            raise DatasetLayoutError(f"{message}; strict=True refuses to skip it")
        self.counts[reason] = self.counts.get(reason, 0) + 1
        log.debug("%s: skipping %s", self.dataset, message)

    def by_design(self, reason: str, count: int = 1) -> None:
        """Count entries the dataset itself marks for removal (e.g. junk pid -1); never an error, even strict."""
        self.counts[reason] = self.counts.get(reason, 0) + count

    def add(self, reason: str, count: int) -> None:
        """Count ``count`` entries at once (already logged by the caller); strict mode still raises."""
        if count <= 0:
            return
        if self.strict:
            raise DatasetLayoutError(f"{self.dataset}: {count} entries skipped: {reason}; strict=True refuses to skip them")
        self.counts[reason] = self.counts.get(reason, 0) + count


def finish(
    dataset: str,
    records: list[Record],
    skips: Skips,
    *,
    root: Path,
    layout: str,
    is_video: bool = False,
) -> ReidDataset:
    """Build the ReidDataset; an empty result is a layout error, skips are logged as one warning."""
    if skips.counts:
        parts = ", ".join(f"{reason}: {count}" for reason, count in sorted(skips.counts.items()))
        log.warning("%s (%s): skipped %d entries (%s)", dataset, root, sum(skips.counts.values()), parts)
    if not records:
        skipped = f" ({sum(skips.counts.values())} entries skipped: {', '.join(sorted(skips.counts))})" if skips.counts else ""
        raise DatasetLayoutError(f"{root}: no usable {'tracklets' if is_video else 'images'} found for {dataset}{skipped} (expected {layout})")
    return ReidDataset(name=dataset, records=records, is_video=is_video, skipped=dict(skips.counts))


def check_options(fn: Callable) -> Callable:
    """Wrap a loader ``fn(root, *, opt=...)`` so an unknown option is a ConfigError listing the known ones.

    Example::

        >>> @DATASETS.register("market1501")
        ... @check_options
        ... def load_market1501(root, *, strict=False): ...
        >>> load_market1501("x", strictt=True)
        ConfigError: dataset option 'strictt' is not known to market1501 (known: strict)
    """
    params = inspect.signature(fn).parameters
    known = [name for name, p in params.items() if p.kind == inspect.Parameter.KEYWORD_ONLY]

    @functools.wraps(fn)
    def wrapper(root, **options):
        unknown = sorted(set(options) - set(known))
        if unknown:
            dataset = fn.__name__.removeprefix("load_")
            raise ConfigError(
                f"dataset option {unknown[0]!r} is not known to {dataset} (known: {', '.join(known) or 'none'})"
            )
        return fn(root, **options)

    return wrapper


def parse_int(text: str) -> int | None:
    """``int(text)`` or None, for file-name fields."""
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def pick_split_id(split_id: int | None, available: int, where: Path, dataset: str) -> int:
    """Validate ``split_id`` against the number of splits a file holds (None means split 0)."""
    chosen = 0 if split_id is None else split_id
    if not isinstance(chosen, int) or isinstance(chosen, bool) or not 0 <= chosen < available:
        raise ConfigError(f"{dataset}: split_id={split_id!r} is out of range for {where} (expected 0..{available - 1})")
    return chosen


def one_of(value, allowed: Iterable, option: str, dataset: str):
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConfigError(f"{dataset}: option {option}={value!r} is not one of {', '.join(map(repr, allowed))}")
    return value


def read_mat(path: Path, required: Sequence[str] = (), expected: str = "") -> dict:
    """A MATLAB file's variables; a one-line DatasetLayoutError if it cannot be read or lacks one of ``required``.

    Example::

        mat = read_mat(root / "info" / "tracks_test_info.mat", ["track_test_info"], "MARS's test tracks")
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:  # scipy raises several types for a damaged file
        raise DatasetLayoutError(f"{path}: cannot read MATLAB file ({type(exc).__name__}: {exc})") from None
    missing = [k for k in required if k not in mat]
    if missing:
        found = ", ".join(k for k in mat if not k.startswith("__")) or "none"
        what = f"expected {expected}; " if expected else ""
        raise DatasetLayoutError(f"{path}: no variable {', '.join(repr(k) for k in missing)} ({what}found: {found})")
    return mat

