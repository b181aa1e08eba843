"""Which probes the demo draws: different people, where the scale matters, covering P's choices."""
from __future__ import annotations

import numpy as np

from lrreid.data.records import ImageRecord
from lrreid.methods.pri.evaluate import SplitDetail
from lrreid.methods.pri.pictures import pick_probes


def test_pick_probes_prefers_scale_sensitive_probes_of_different_people():
    query = [ImageRecord(f"q{i}.png", pid, 1) for i, pid in enumerate([0, 0, 1, 2, 3])]
    ranks = np.array([[1, 9, 1, 2, 1],      # scale x1
                      [1, 1, 1, 5, 1]], float)  # scale x2: probe 1 (9 -> 1) and 3 (2 -> 5) depend on it
    chosen = np.array([0, 1, 0, 0, 1])
    detail = SplitDetail("0", query, [], np.full((5, 2), 0.5), {"adaptive (P)": chosen}, np.zeros((2, 5, 1), int), ranks)
    picked = pick_probes(detail, 3)
    assert picked[:2] == [1, 3]                       # most scale-sensitive first, P's choices 1 and 0 both shown
    assert len({query[i].pid for i in picked}) == 3   # never the same person twice
    assert len(pick_probes(detail, 10)) == 4          # 4 different people in the split
