"""MSMT17 (Wei et al., CVPR 2018): 4101 identities, 15 cameras, official train/query/gallery lists.

Layouts of the two releases (both with the same four lists)::

    MSMT17_V1/                          MSMT17_V2/
        train/0000/0000_000_01_0303morning_0015_0.jpg    mask_train_v2/...
        test/0000/...                                    mask_test_v2/...
        list_train.txt  list_val.txt  list_query.txt  list_gallery.txt

A list line is ``<path relative to train/ or test/> <pid>``.  The camera is the third ``_`` field of
the file name (``0000_000_01_...`` -> camera 01), ``camid = camera - 1`` (0..14).

MSMT17 numbers train and test identities separately, both from 0.  lrreid keeps them apart and
clear of the distractor id 0: ``pid = list pid + 1`` for train (and val), ``pid = list pid + 1 +
TEST_PID_OFFSET`` for query and gallery.

Options: ``combine_train_val`` adds ``list_val.txt`` (images of the training identities) to the
train split; by default, as in the published protocol, it is left out.  Lines that cannot be
parsed, and listed files that are missing, are counted skips (errors with ``strict=True``).

Example::

    >>> ds = build_dataset("msmt17", "data/MSMT17_V1")
    >>> len(ds.train), len(ds.query), len(ds.gallery)
    (30248, 11659, 82161)
"""
from __future__ import annotations

from pathlib import Path

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, check_options, finish, locate, parse_int
from lrreid.data.records import ImageRecord, ReidDataset
from lrreid.errors import DatasetLayoutError

TEST_PID_OFFSET = 100_000
NUM_CAMERAS = 15
LISTS = ("list_train.txt", "list_val.txt", "list_query.txt", "list_gallery.txt")
VERSIONS = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}
LAYOUT = "MSMT17_V1/{train,test}/ or MSMT17_V2/{mask_train_v2,mask_test_v2}/ with " + ", ".join(LISTS)


def _find(root) -> tuple[Path, str, str]:
    """The release folder and its train/test folder names (V1 or V2)."""
    errors = []
    for version, (train_dir, test_dir) in VERSIONS.items():
        try:
            base = locate(
                root, dataset="msmt17", required=[train_dir, test_dir, *LISTS],
                wrappers=(version, f"msmt17/{version}", f"MSMT17/{version}"), layout=LAYOUT,
            )
            return base, train_dir, test_dir
        except DatasetLayoutError as exc:
            errors.append(exc)
    # Report the V1 problem unless the user's folder looks like V2.
    root_path = Path(root) if root else None
    looks_v2 = root_path is not None and any((root_path / p).exists() for p in ("mask_train_v2", "MSMT17_V2"))
    raise errors[1 if looks_v2 else 0]


def _read_list(list_path: Path, image_dir: Path, split: str, pid_offset: int, skips: Skips) -> list[ImageRecord]:
    records = []
    with open(list_path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{list_path}:{line_no}"
            fields = line.split()
            if len(fields) != 2 or parse_int(fields[1]) is None:
                skips("unparseable list line", where, f"expected '<path> <pid>', got {line.strip()!r}")
                continue
            rel, pid = fields[0], int(fields[1])
            name_fields = Path(rel).name.split("_")
            cam = parse_int(name_fields[2]) if len(name_fields) > 2 else None
            if cam is None or not 1 <= cam <= NUM_CAMERAS:
                skips("unparseable file name", where, f"expected PPPP_SSS_CC_..., camera 01..{NUM_CAMERAS}, in {rel!r}")
                continue
            if pid < 0:
                skips("negative pid", where, f"pid {pid}")
                continue
            path = image_dir / rel
            if not path.is_file():
                skips("listed file missing", where, str(path))
                continue
            records.append(ImageRecord(path=str(path), pid=pid + 1 + pid_offset, camid=cam - 1, split=split))
    return records


@DATASETS.register("msmt17")
@check_options
def load_msmt17(root, *, combine_train_val: bool = False, strict: bool = False) -> ReidDataset:
    """MSMT17 V1 or V2 from the release folder (or its parent); camid 0..14, pids as in the module docstring."""
    base, train_dir, test_dir = _find(root)
    skips = Skips("msmt17", strict)
    records = _read_list(base / "list_train.txt", base / train_dir, "train", 0, skips)
    if combine_train_val:
        records += _read_list(base / "list_val.txt", base / train_dir, "train", 0, skips)
    records += _read_list(base / "list_query.txt", base / test_dir, "query", TEST_PID_OFFSET, skips)
    records += _read_list(base / "list_gallery.txt", base / test_dir, "gallery", TEST_PID_OFFSET, skips)
    return finish("msmt17", records, skips, root=base, layout=LAYOUT)
