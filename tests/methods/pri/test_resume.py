"""A PRI run interrupted in the joint phase and resumed equals an uninterrupted one: the weights of
all three networks and the soft-label table (which the checkpoint carries as extra state).

omega = 2, so joint epoch 1 (where the run is interrupted and resumed) re-measures no label: its
L_p uses the table of epoch 0 as it was saved.  A resume that dropped the table (a no-op
``PRIMethod.load_extra_state``) would measure every image afresh with the current F and G, and the
labels, P's weights and the table differ.
"""
from __future__ import annotations

import pytest
import torch

from lrreid.build import trainer_from_config
from lrreid.config import load_config
from lrreid.engine import Hook

pytestmark = pytest.mark.slow  # three short trainings: ~15 s


def pri_config(run_dir, cache_dir, *overrides):
    base = {
        "method": "pri", "seed": 0,
        "data": {"dataset": "synthetic", "protocol": "genuine", "num_splits": 1, "input_size": [32, 16],
                 "dataset_args": {"num_ids": 12, "images_per_camera": 2, "cache_dir": str(cache_dir)}},
        "model": {"backbone": "resnet18", "pretrained": None, "feat_dim": 16, "predictor_feat_dim": 8,
                  "sr_args": {"G0": 8, "D": 2, "C": 2, "G": 8}},
        "loss": {"omega": 2, "label_norm": "mean", "label_temperature": 0.1},
        "triplets": {"holdout": 0.2},
        "schedule": {"pretrain_epochs": 1, "joint_epochs": 3, "lr_backbone": 1e-3, "lr_head": 1e-3},
        "train": {"batch_size": 8, "num_instances": 2, "max_iters_per_epoch": 2, "output_dir": str(run_dir),
                  "progress": False, "tensorboard": False, "num_threads": 1},
    }
    return load_config(base, list(overrides))


class InterruptInJointEpoch(Hook):
    """Stops the run after the first step of joint epoch ``epoch`` (0-based), as a kill would."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def after_step(self, losses):
        if self.trainer.phase.name == "joint" and self.trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def make_trainer(run_dir, cache_dir, *overrides, hooks=()):
    return trainer_from_config(pri_config(run_dir, cache_dir, *overrides), hooks)


def test_interrupted_joint_phase_resumes_to_the_same_weights_and_soft_labels(tmp_path):
    torch.set_num_threads(1)
    cache = tmp_path / "cache"
    reference = make_trainer(tmp_path / "ref", cache).train()
    # triplets.holdout 0.2: 1 of the 6 training persons measure P every joint epoch, and train nothing
    assert reference.training_summary["heldout_identities"] == 1
    stats = reference.on_epoch_end(reference.phases()[1], 2, None)
    assert {"label_entropy", "label_max_prob", "heldout_p_label", "heldout_p_best", "heldout_label_best"} <= set(stats)
    assert 0.0 <= stats["heldout_p_label"] <= 1.0 and stats["label_max_prob"] >= 0.25
    # the most frequent best-ranking scale of 4 is that for at least a quarter of the images
    assert 0.25 <= stats["heldout_best_constant"] <= 1.0

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run, cache, hooks=[InterruptInJointEpoch(1)]).train()
    resumed = make_trainer(run, cache, "train.resume=true")
    # the resumed process starts with a fresh, unmeasured table: only the checkpoint can restore it
    assert not resumed.method.soft_labels.measured.any()
    resumed = resumed.train(resume=True)

    assert reference.soft_labels.measured.any()
    assert torch.equal(reference.soft_labels.measured, resumed.soft_labels.measured)
    torch.testing.assert_close(resumed.soft_labels.labels, reference.soft_labels.labels, rtol=0, atol=1e-6)
    assert int(resumed.soft_labels.refresh_count) == int(reference.soft_labels.refresh_count) == 2
    ref_state = reference.state_dict()
    for key, value in resumed.state_dict().items():
        torch.testing.assert_close(value, ref_state[key], rtol=0, atol=1e-6, msg=key)
