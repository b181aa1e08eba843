"""DukeMTMC-reID (Zheng et al., ICCV 2017): 1404 identities + 408 gallery distractors, 8 cameras.

Same layout as Market-1501 (``DukeMTMC-reID/bounding_box_train|bounding_box_test|query``), file
names ``PPPP_cC_fFFFFFFF.jpg`` (``0005_c2_f0046985.jpg``: person 5, camera 2).  ``camid = C - 1``
(0..7).  Junk (pid -1) is dropped and counted, pid 0 is kept only in the gallery, as for Market.

Example::

    >>> ds = build_dataset("dukemtmc", "data/DukeMTMC-reID")
    >>> len(ds.train), len(ds.query), len(ds.gallery)
    (16522, 2228, 17661)
"""
from __future__ import annotations

from lrreid.data.datasets import DATASETS
from lrreid.data.datasets._common import check_options
from lrreid.data.datasets.market1501 import load_market_style
from lrreid.data.records import ReidDataset


@DATASETS.register("dukemtmc")
@check_options
def load_dukemtmc(root, *, strict: bool = False) -> ReidDataset:
    """DukeMTMC-reID from ``DukeMTMC-reID/`` (or its parent); camid 0..7."""
    return load_market_style(
        root, dataset="dukemtmc", wrappers=("DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmcreid/DukeMTMC-reID"),
        num_cameras=8, strict=strict,
    )
