"""Market-1501 (Zheng et al., ICCV 2015): 1501 identities, 6 cameras, official train/query/gallery.

Layout of the official archive (``Market-1501-v15.09.15.zip``)::

    Market-1501-v15.09.15/
        bounding_box_train/0002_c1s1_000451_03.jpg   -> train
        bounding_box_test/...                        -> gallery (pid 0000 = distractor, -1 = junk)
        query/...                                    -> query
        gt_bbox/, gt_query/                          (optional, not used)

File name ``PPPP_cCsS_FFFFFF_BB.jpg``: person PPPP, camera C (1-based), sequence S, frame, box.
``camid = C - 1`` (0..5).  Junk boxes (pid -1) are dropped and counted; distractors (pid 0) stay in
the gallery; a pid 0 or -1 outside the gallery is counted as a skip.

Example::

    >>> ds = build_dataset("market1501", "data/Market-1501-v15.09.15")
    >>> len(ds.query), ds.skipped
    (3368, {'junk (pid -1)': 2793})
"""
from __future__ import annotations

import re

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, check_options, finish, list_images, locate
from lrreid.data.records import ImageRecord, ReidDataset

# Market: 0002_c1s1_000451_03.jpg; DukeMTMC-reID: 0005_c2_f0046985.jpg.  Both start "PPPP_cC".
MARKET_STYLE_NAME = re.compile(r"^(?P<pid>-?\d+)_c(?P<cam>\d+)")

SPLIT_FOLDERS = (("bounding_box_train", "train"), ("query", "query"), ("bounding_box_test", "gallery"))


def load_market_style(
    root,
    *,
    dataset: str,
    wrappers: tuple[str, ...],
    num_cameras: int,
    strict: bool,
) -> ReidDataset:
    """Parse a Market-1501-style folder (``bounding_box_train/``, ``query/``, ``bounding_box_test/``)."""
    layout = "bounding_box_train/, bounding_box_test/ and query/ with files PPPP_cC*.jpg"
    base = locate(root, dataset=dataset, required=[folder for folder, _ in SPLIT_FOLDERS], wrappers=wrappers, layout=layout)
    skips = Skips(dataset, strict)
    records: list[ImageRecord] = []
    for folder, split in SPLIT_FOLDERS:
        for path in list_images(base / folder):
            match = MARKET_STYLE_NAME.match(path.name)
            if match is None:
                skips("unparseable file name", path, "expected PPPP_cC...")
                continue
            pid, cam = int(match["pid"]), int(match["cam"])
            if not 1 <= cam <= num_cameras:
                skips("camera out of range", path, f"camera {cam}, expected 1..{num_cameras}")
                continue
            if pid == -1:
                skips.by_design("junk (pid -1)")
                continue
            if pid < -1 or (pid == 0 and split != "gallery"):
                skips("distractor or negative pid outside the gallery", path, f"pid {pid} in {folder}/")
                continue
            records.append(ImageRecord(path=str(path), pid=pid, camid=cam - 1, split=split))
    return finish(dataset, records, skips, root=base, layout=layout)


@DATASETS.register("market1501")
@check_options
def load_market1501(root, *, strict: bool = False) -> ReidDataset:
    """Market-1501 from ``Market-1501-v15.09.15/`` (or its parent); camid 0..5, see the module docstring."""
    return load_market_style(
        root, dataset="market1501", wrappers=("Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15", "market1501"),
        num_cameras=6, strict=strict,
    )
