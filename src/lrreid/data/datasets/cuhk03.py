"""CUHK03 (Li et al., CVPR 2014): 1467 people, 5 camera pairs, images only inside a MATLAB file.

Layout (the official ``cuhk03_release.zip``, plus Zhong et al.'s new-protocol files)::

    cuhk03/
        cuhk03_release/cuhk-03.mat                    MATLAB v7.3 (HDF5)
        cuhk03_new_protocol_config_detected.mat       MATLAB v5 (new protocol, optional)
        cuhk03_new_protocol_config_labeled.mat
        images_detected/  images_labeled/             written by lrreid on first use

``cuhk-03.mat`` holds cell arrays ``detected`` and ``labeled`` (one cell per camera pair; inside,
persons x 10 image cells, images 1-5 from the pair's first camera, 6-10 from its second, some
empty) and ``testsets`` (the 20 classic test sets: rows of [pair, person], 1-based).  On first use
the images are extracted once, atomically, into ``images_detected/`` or ``images_labeled/`` as
``{pair}_{person:03d}_{view}_{index:02d}.png`` (``1_001_1_01.png``), the names the new protocol's
``filelist`` uses.  An existing folder of that name (e.g. extracted by torchreid) is used as is.

Conventions:
- ``camid = 2 * (pair - 1) + (view - 1)``: 10 physical cameras, 0..9;
- classic protocol: ``pid`` numbers people across pairs from 1 (pair 1's persons first); the
  persons of ``testsets[split_id]`` are the test set (query = their first-camera images, gallery =
  their second-camera images), the other persons are ``train``;
- new protocol (767/700 identities): ``pid`` is the file's ``labels`` value; ``train_idx``,
  ``query_idx``, ``gallery_idx`` (1-based) give the splits; files named in ``filelist`` but missing
  from the images folder are counted skips (errors with ``strict=True``).

Options: ``labeled`` (hand-drawn boxes instead of detected ones), ``protocol`` ("new" or
"classic"), ``split_id`` (0..19 for classic; new has one split), ``images_dir`` (where the
extracted folders live, default the dataset folder), ``strict``.

Example::

    >>> ds = build_dataset("cuhk03", "data/cuhk03", protocol="new", labeled=False)
    >>> len({r.pid for r in ds.train}), len({r.pid for r in ds.query})
    (767, 700)
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, as_root, check_options, finish, list_images, one_of, pick_split_id, read_mat
from lrreid.data.records import ImageRecord, ReidDataset
from lrreid.errors import ConfigError, DatasetLayoutError
from lrreid.utils.atomic import atomic_dir
from lrreid.utils.logging import get_logger

log = get_logger("data.datasets.cuhk03")

RAW_MAT = "cuhk-03.mat"
NEW_PROTOCOL = "cuhk03_new_protocol_config_{kind}.mat"
IMAGE_NAME = re.compile(r"^(?P<pair>\d+)_(?P<person>\d+)_(?P<view>[12])_(?P<index>\d+)\.png$")
LAYOUT = ("cuhk03_release/cuhk-03.mat (classic protocol, image source) and/or "
          "cuhk03_new_protocol_config_{detected,labeled}.mat with images_{detected,labeled}/")


def camid_of(pair: int, view: int) -> int:
    return 2 * (pair - 1) + (view - 1)


# --------------------------------------------------------------------------- cuhk-03.mat (HDF5)


def _open_raw(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetLayoutError(f"{path}: not a readable MATLAB v7.3 (HDF5) file ({exc}); expected the official cuhk-03.mat") from None


def _pair_cells(mat, kind: str, path: Path) -> list[np.ndarray]:
    """Per camera pair, the persons x 10 array of references to image cells."""
    if kind not in mat:
        raise DatasetLayoutError(f"{path}: no {kind!r} cell array (expected 'detected', 'labeled' and 'testsets')")
    cells = []
    for ref in np.asarray(mat[kind]).ravel():
        persons = np.asarray(mat[ref][()]).T  # MATLAB stores column-major: transpose back to persons x 10
        if persons.ndim != 2:
            raise DatasetLayoutError(f"{path}: a {kind} camera-pair cell has shape {persons.shape}, expected persons x 10")
        cells.append(persons)
    return cells


def _image_of(mat, ref, path: Path) -> np.ndarray | None:
    """H x W x 3 uint8 pixels of one image cell, or None for an empty cell."""
    data = np.asarray(mat[ref][()])
    if data.ndim != 3:  # MATLAB writes an empty cell as a small vector of its (zero) dimensions
        return None
    pixels = data.T  # (3, W, H) on disk -> (H, W, 3)
    if pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise DatasetLayoutError(f"{path}: an image cell has shape {pixels.shape} and type {pixels.dtype}, expected H x W x 3 uint8")
    return pixels


def _save_png(pixels: np.ndarray, target: Path) -> None:
    Image.fromarray(np.ascontiguousarray(pixels)).save(target)


def extract_images(raw_mat: Path, kind: str, target: Path) -> int:
    """Write every ``kind`` image of cuhk-03.mat into ``target`` (atomically); returns the count."""
    count = 0
    with _open_raw(raw_mat) as mat, atomic_dir(target) as tmp:
        pairs = _pair_cells(mat, kind, raw_mat)
        for pair_no, persons in enumerate(pairs, start=1):
            log.info("cuhk03: extracting %s images of camera pair %d/%d into %s", kind, pair_no, len(pairs), target)
            for person_no in range(1, persons.shape[0] + 1):
                for index in range(1, persons.shape[1] + 1):
                    pixels = _image_of(mat, persons[person_no - 1, index - 1], raw_mat)
                    if pixels is None:
                        continue
                    view = 1 if index <= 5 else 2
                    _save_png(pixels, tmp / f"{pair_no}_{person_no:03d}_{view}_{index:02d}.png")
                    count += 1
    return count


def _persons_per_pair(raw_mat: Path, kind: str) -> list[int]:
    with _open_raw(raw_mat) as mat:
        return [cells.shape[0] for cells in _pair_cells(mat, kind, raw_mat)]


def _classic_test_set(raw_mat: Path, split_id: int | None) -> set[tuple[int, int]]:
    with _open_raw(raw_mat) as mat:
        if "testsets" not in mat:
            raise DatasetLayoutError(f"{raw_mat}: no 'testsets' cell array (expected the 20 classic test sets)")
        refs = np.asarray(mat["testsets"]).ravel()
        chosen = pick_split_id(split_id, len(refs), raw_mat, "cuhk03 (classic)")
        rows = np.asarray(mat[refs[chosen]][()]).T  # -> test persons x 2 (pair, person)
    if rows.ndim != 2 or rows.shape[1] != 2:
        raise DatasetLayoutError(f"{raw_mat}: testsets{{{chosen + 1}}} has shape {rows.shape}, expected persons x 2 (pair, person)")
    return {(int(pair), int(person)) for pair, person in rows}


# --------------------------------------------------------------------------- protocols


def _classic_records(images: Path, raw_mat: Path, kind: str, split_id, skips: Skips) -> list[ImageRecord]:
    test = _classic_test_set(raw_mat, split_id)
    counts = _persons_per_pair(raw_mat, kind)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int)
    records = []
    for path in list_images(images):
        match = IMAGE_NAME.match(path.name)
        if match is None:
            skips("unparseable file name", path, "expected {pair}_{person}_{view}_{index}.png")
            continue
        pair, person, view = int(match["pair"]), int(match["person"]), int(match["view"])
        if not (1 <= pair <= len(counts) and 1 <= person <= counts[pair - 1]):
            skips("person not in cuhk-03.mat", path, f"pair {pair} person {person}")
            continue
        if (pair, person) in test:
            split = "query" if view == 1 else "gallery"
        else:
            split = "train"
        records.append(ImageRecord(path=str(path), pid=int(offsets[pair - 1]) + person, camid=camid_of(pair, view), split=split))
    return records


def _mat_strings(values) -> list[str]:
    """A MATLAB cell array of strings, as loadmat returns it, to a list of str."""
    out = []
    for item in np.asarray(values, dtype=object).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size else ""
        out.append(str(item).strip())
    return out


def _new_records(images: Path, config: Path, skips: Skips) -> list[ImageRecord]:
    mat = read_mat(config, ("train_idx", "query_idx", "gallery_idx", "labels", "filelist"), "the new-protocol config")
    labels = np.asarray(mat["labels"]).ravel().astype(np.int64)
    files = _mat_strings(mat["filelist"])
    if len(files) != len(labels):
        raise DatasetLayoutError(f"{config}: filelist has {len(files)} entries but labels {len(labels)}")
    records = []
    for split in ("train", "query", "gallery"):
        indices = np.asarray(mat[f"{split}_idx"]).ravel().astype(np.int64)
        if indices.size and (indices.min() < 1 or indices.max() > len(files)):
            raise DatasetLayoutError(f"{config}: {split}_idx holds {indices.min()}..{indices.max()}, expected 1..{len(files)}")
        for i in indices - 1:
            name, pid = files[i], int(labels[i])
            where = f"{config}: {split}_idx entry {name!r}"
            match = IMAGE_NAME.match(name)
            if match is None:
                skips("unparseable file name", where, "expected {pair}_{person}_{view}_{index}.png")
                continue
            if pid < 1:
                skips("label below 1", where, f"label {pid}")
                continue
            path = images / name
            if not path.is_file():
                skips("listed image missing", where, f"not in {images}")
                continue
            records.append(ImageRecord(path=str(path), pid=pid, camid=camid_of(int(match["pair"]), int(match["view"])), split=split))
    return records


@DATASETS.register("cuhk03")
@check_options
def load_cuhk03(
    root,
    *,
    labeled: bool = False,
    protocol: str = "new",
    split_id: int | None = None,
    images_dir: str | None = None,
    strict: bool = False,
) -> ReidDataset:
    """CUHK03 (see the module docstring); extracts the images from cuhk-03.mat once if needed."""
    one_of(protocol, ("new", "classic"), "protocol", "cuhk03")
    kind = "labeled" if labeled else "detected"
    base = as_root(root, "cuhk03", LAYOUT)
    dataset_dir = next((d for d in (base, base / "cuhk03", base.parent) if (d / "cuhk03_release").is_dir() or any(d.glob("cuhk03_new_protocol_config_*.mat"))), base)
    raw_mat = next((p for p in (dataset_dir / "cuhk03_release" / RAW_MAT, dataset_dir / RAW_MAT) if p.is_file()), None)
    images = Path(images_dir).expanduser().absolute() / f"images_{kind}" if images_dir else dataset_dir / f"images_{kind}"

    if protocol == "classic":
        if raw_mat is None:
            raise DatasetLayoutError(f"{dataset_dir}/cuhk03_release/{RAW_MAT} not found: the classic protocol needs it (expected {LAYOUT})")
        config = None
    else:
        if split_id not in (None, 0):
            raise ConfigError(f"cuhk03: the new protocol has a single split, split_id={split_id} (expected 0)")
        config = next((p for p in (dataset_dir / NEW_PROTOCOL.format(kind=kind), dataset_dir / "cuhk03_release" / NEW_PROTOCOL.format(kind=kind)) if p.is_file()), None)
        if config is None:
            raise DatasetLayoutError(f"{dataset_dir}/{NEW_PROTOCOL.format(kind=kind)} not found: the new protocol needs it (expected {LAYOUT})")

    if not images.is_dir():
        if raw_mat is None:
            raise DatasetLayoutError(f"{images} not found and no {RAW_MAT} to extract it from (expected {LAYOUT})")
        written = extract_images(raw_mat, kind, images)
        log.info("cuhk03: extracted %d %s images into %s", written, kind, images)

    skips = Skips("cuhk03", strict)
    if protocol == "classic":
        records = _classic_records(images, raw_mat, kind, split_id, skips)
    else:
        records = _new_records(images, config, skips)
    return finish("cuhk03", records, skips, root=dataset_dir, layout=LAYOUT)
