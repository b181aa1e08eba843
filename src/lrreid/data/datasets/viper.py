"""VIPeR (Gray et al., PETS 2007): 632 people, one 48x128 image in each of two cameras.

Layout (``VIPeR.v1.0.zip``)::

    VIPeR/cam_a/NNN_AAA.bmp
    VIPeR/cam_b/NNN_AAA.bmp        (root may be VIPeR/ or its parent)

NNN is the person, AAA the viewing angle in degrees (not part of the identity).  Cameras are paired
by NNN; ``camid`` is 0 for cam_a, 1 for cam_b.  VIPeR numbers people from 000, so
``pid = NNN + 1``: no real person gets the distractor id 0.  ``split`` is None: the protocol draws
the usual 316/316 split.

A person with no image, or more than one, in either camera is left out and counted (an error
with ``strict=True``), as are names that are not ``NNN_AAA``.

Example::

    >>> ds = build_dataset("viper", "../shared/data/VIPeR")
    >>> len(ds), len(ds.pids)
    (1264, 632)
"""
from __future__ import annotations

import re
from collections import defaultdict

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import Skips, check_options, finish, list_images, locate
from lrreid.data.records import ImageRecord, ReidDataset

NAME = re.compile(r"^(?P<person>\d+)_(?P<angle>\d+)\.[A-Za-z]+$")
CAMERAS = (("cam_a", 0), ("cam_b", 1))
LAYOUT = "cam_a/NNN_AAA.bmp and cam_b/NNN_AAA.bmp (NNN person, AAA angle), one image per person per camera"


@DATASETS.register("viper")
@check_options
def load_viper(root, *, strict: bool = False) -> ReidDataset:
    """VIPeR from ``VIPeR/`` (or its parent); camid 0 = cam_a, 1 = cam_b, pid = NNN + 1."""
    base = locate(root, dataset="viper", required=["cam_a", "cam_b"], wrappers=("VIPeR", "viper/VIPeR"), layout=LAYOUT)
    skips = Skips("viper", strict)
    by_person: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for folder, camid in CAMERAS:
        for path in list_images(base / folder):
            match = NAME.match(path.name)
            if match is None:
                skips("unparseable file name", path, "expected NNN_AAA.bmp")
                continue
            by_person[int(match["person"])][camid].append(path)
    records = []
    for person in sorted(by_person):
        cams = by_person[person]
        counts = [len(cams.get(camid, [])) for _, camid in CAMERAS]
        if counts != [1, 1]:
            reason = "person missing from one camera" if 0 in counts else "several images of a person in one camera"
            paths = [p for _, camid in CAMERAS for p in cams.get(camid, [])]
            skips(reason, paths[0], f"person {person:03d} has {counts[0]} image(s) in cam_a and {counts[1]} in cam_b, expected 1 and 1")
            continue
        for _, camid in CAMERAS:
            records.append(ImageRecord(path=str(cams[camid][0]), pid=person + 1, camid=camid, split=None))
    return finish("viper", records, skips, root=base, layout=LAYOUT)
