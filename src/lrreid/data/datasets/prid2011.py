"""PRID 2011 (Hirzer et al., SCIA 2011): two static cameras; single-shot images and multi-shot tracklets.

Layout of ``prid_2011.zip``::

    prid_2011/single_shot/cam_a/person_0001.png       -> "prid2011"        (ImageRecords)
    prid_2011/single_shot/cam_b/person_0001.png
    prid_2011/multi_shot/cam_a/person_0001/0001.png   -> "prid2011_video"  (TrackletRecords)
    prid_2011/multi_shot/cam_b/person_0001/...

``camid`` is 0 for cam_a and 1 for cam_b; ``pid`` is the NNNN of ``person_NNNN``.  cam_a shows 385
people and cam_b 749; only persons 0001..0200 appear in both cameras, the others are seen once
(in the usual protocol cam_b's extra people act as gallery distractors).  ``split`` is None: the
protocol draws the split.

Unparseable names, and person folders without frames, are counted skips (errors with ``strict``).

Example::

    >>> build_dataset("prid2011", "data/prid_2011").pids[:3]
    [1, 2, 3]
    >>> len(build_dataset("prid2011_video", "data/prid_2011"))
    1134
"""
from __future__ import annotations

import re

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, check_options, finish, list_dirs, list_images, locate
from lrreid.data.records import ImageRecord, ReidDataset, TrackletRecord

PERSON = re.compile(r"^person_(?P<pid>\d+)$")
CAMERAS = (("cam_a", 0), ("cam_b", 1))
WRAPPERS = ("prid_2011", "prid2011/prid_2011")
IMAGE_LAYOUT = "single_shot/cam_a/person_NNNN.png and single_shot/cam_b/person_NNNN.png"
VIDEO_LAYOUT = "multi_shot/cam_a/person_NNNN/*.png and multi_shot/cam_b/person_NNNN/*.png"


@DATASETS.register("prid2011")
@check_options
def load_prid2011(root, *, strict: bool = False) -> ReidDataset:
    """Single-shot PRID 2011 from ``prid_2011/`` (or its parent); camid 0 = cam_a, 1 = cam_b."""
    base = locate(root, dataset="prid2011", required=["single_shot/cam_a", "single_shot/cam_b"], wrappers=WRAPPERS, layout=IMAGE_LAYOUT)
    skips = Skips("prid2011", strict)
    records = []
    for folder, camid in CAMERAS:
        for path in list_images(base / "single_shot" / folder):
            match = PERSON.match(path.stem)
            if match is None or int(match["pid"]) == 0:
                skips("unparseable file name", path, "expected person_NNNN.png with NNNN >= 1")
                continue
            records.append(ImageRecord(path=str(path), pid=int(match["pid"]), camid=camid, split=None))
    return finish("prid2011", records, skips, root=base, layout=IMAGE_LAYOUT)


@DATASETS.register("prid2011_video")
@check_options
def load_prid2011_video(root, *, strict: bool = False) -> ReidDataset:
    """Multi-shot PRID 2011: one tracklet per person folder; camid 0 = cam_a, 1 = cam_b."""
    base = locate(root, dataset="prid2011_video", required=["multi_shot/cam_a", "multi_shot/cam_b"], wrappers=WRAPPERS, layout=VIDEO_LAYOUT)
    skips = Skips("prid2011_video", strict)
    records = []
    for folder, camid in CAMERAS:
        for person_dir in list_dirs(base / "multi_shot" / folder):
            match = PERSON.match(person_dir.name)
            if match is None or int(match["pid"]) == 0:
                skips("unparseable folder name", person_dir, "expected person_NNNN with NNNN >= 1")
                continue
            frames = list_images(person_dir)
            if not frames:
                skips("tracklet without frames", person_dir)
                continue
            records.append(TrackletRecord(frames=tuple(str(f) for f in frames), pid=int(match["pid"]), camid=camid, split=None))
    return finish("prid2011_video", records, skips, root=base, layout=VIDEO_LAYOUT, is_video=True)
