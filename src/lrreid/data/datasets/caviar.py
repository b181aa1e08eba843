"""CAVIAR4REID (Cheng et al., BMVC 2011): 72 people in a shopping centre, two cameras, genuinely low resolution.

Layout::

    CAVIAR4REID/CAVIARa/PPPPIII.jpg      (root may be CAVIAR4REID/ or CAVIARa/ itself)

PPPP is the person (0001..0072), III the image index: 001..010 come from the closer camera
(``camid 0``, ``view "near"``), 011..020 from the farther, lower-resolution camera (``camid 1``,
``view "far"``).  All 72 people appear in the near camera, 50 of them also in the far one (1220
images).  ``split`` is None: CAVIAR4REID has no official split, the protocol draws one.

Names that do not match ``PPPPIII.jpg``, or an index outside 1..20, are counted skips (errors with
``strict=True``).

Example::

    >>> ds = build_dataset("caviar", "../shared/data/CAVIAR4REID")
    >>> len(ds), len(ds.pids)
    (1220, 72)
"""
from __future__ import annotations

import re

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, as_root, check_options, finish, list_images
from lrreid.data.records import ImageRecord, ReidDataset
from lrreid.errors import DatasetLayoutError

NAME = re.compile(r"^(?P<pid>\d{4})(?P<index>\d{3})\.[A-Za-z]+$")
NEAR_INDICES = range(1, 11)
FAR_INDICES = range(11, 21)
LAYOUT = "CAVIARa/PPPPIII.jpg (PPPP person, III 001-010 near camera, 011-020 far camera)"


@DATASETS.register("caviar")
@check_options
def load_caviar(root, *, strict: bool = False) -> ReidDataset:
    """CAVIAR4REID from ``CAVIAR4REID/`` or ``CAVIARa/``; camid 0 = near camera, 1 = far camera."""
    base = as_root(root, "caviar", LAYOUT)
    folder = next((c for c in (base / "CAVIARa", base / "CAVIAR4REID" / "CAVIARa") if c.is_dir()), base)
    if folder is base and not any(NAME.match(p.name) for p in list_images(base)):
        raise DatasetLayoutError(f"{base}/CAVIARa not found and {base} holds no PPPPIII.jpg images: not a caviar folder (expected {LAYOUT})")
    skips = Skips("caviar", strict)
    records = []
    for path in list_images(folder):
        match = NAME.match(path.name)
        if match is None:
            skips("unparseable file name", path, "expected PPPPIII.jpg")
            continue
        pid, index = int(match["pid"]), int(match["index"])
        if pid == 0:
            skips("person 0000", path, "CAVIAR4REID numbers people from 0001")
            continue
        if index in NEAR_INDICES:
            camid, view = 0, "near"
        elif index in FAR_INDICES:
            camid, view = 1, "far"
        else:
            skips("image index out of range", path, f"index {index}, expected 1..20")
            continue
        records.append(ImageRecord(path=str(path), pid=pid, camid=camid, split=None, view=view))
    return finish("caviar", records, skips, root=folder, layout=LAYOUT)
