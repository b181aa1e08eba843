"""build_pri: the networks and training triplets a PRI run config gives."""
from __future__ import annotations

import numpy as np
from PIL import Image

from lrreid.config import load_config
from lrreid.data.records import ImageRecord, relabel
from lrreid.methods.pri import build_pri


def test_classifier_counts_only_identities_that_form_triplets(tmp_path):
    rng = np.random.default_rng(0)

    def image(name, hw):
        Image.fromarray(rng.integers(0, 256, (*hw, 3), dtype=np.uint8)).save(tmp_path / name)
        return str(tmp_path / name)

    records = []
    for pid in range(1, 4):  # three persons with an LR and an HR image
        records += [ImageRecord(image(f"{pid}_hr.png", (32, 16)), pid, 0), ImageRecord(image(f"{pid}_lr.png", (16, 8)), pid, 1, scale=2.0)]
    records += [ImageRecord(image(f"{pid}_hr.png", (32, 16)), pid, 0) for pid in range(4, 9)]  # five HR-only persons
    train, mapping = relabel(records)
    cfg = load_config({"method": "pri", "data": {"input_size": [32, 16]},
                       "model": {"backbone": "resnet18", "pretrained": None, "feat_dim": 16, "predictor_feat_dim": 8,
                                 "sr_args": {"G0": 8, "D": 2, "C": 2, "G": 8}}})
    method = build_pri(cfg, train, len(mapping))
    assert method.reid_net.num_classes == 3  # not 8: five identities never get a triplet
    assert sorted(set(method.train_dataset(method.phases()[0]).pids)) == [0, 1, 2]  # the classifier's targets
