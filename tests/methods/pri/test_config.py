"""PRI's config sections: the shipped configs load; bad keys, types and values are one-line errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from lrreid.cli.demo_commands import demo_config_path
from lrreid.config import load_config
from lrreid.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize("name", ["pri_caviar", "pri_caviar_cpu", "pri_mlr_viper", "pri_mlr_viper_cpu",
                                  "pri_mlr_market1501", "pri_mlr_dukemtmc", "pri_mlr_cuhk03"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert cfg.method == "pri" and cfg.model.scales == [1, 2, 3, 4]
    if not name.endswith("_cpu"):  # the paper's settings
        assert (cfg.model.backbone, tuple(cfg.data.input_size), cfg.train.batch_size) == ("resnet50", (384, 128), 16)
        assert cfg.model.sr_args == {"G0": 64, "D": 16, "C": 8, "G": 64}
        assert (cfg.schedule.lr_backbone, cfg.schedule.lr_head) == (0.01, 0.1)
        assert (cfg.loss.alpha, cfg.loss.beta, cfg.loss.margin, cfg.loss.lambda_p) == (1.0, 0.01, 10.0, 1.0)
    epochs = (cfg.schedule.pretrain_epochs, cfg.schedule.joint_epochs)
    if name == "pri_caviar":
        assert epochs == (60, 140)
    elif name.startswith("pri_mlr") and not name.endswith("_cpu"):
        assert epochs == (20, 60)


def test_demo_config_is_package_data():
    cfg = load_config(demo_config_path())
    assert cfg.data.dataset == "synthetic" and cfg.schedule.pretrain_epochs > 0 and cfg.schedule.joint_epochs > 0


def test_unknown_pri_key_names_the_closest_one():
    with pytest.raises(ConfigError, match=r"unknown config key 'loss\.gama' \(did you mean 'loss\.gamma'\?\)"):
        load_config(demo_config_path(), ["loss.gama=3"])
    with pytest.raises(ConfigError, match=r"unknown config key 'schedule\.pretrain'"):
        load_config(demo_config_path(), ["schedule.pretrain=3"])


def test_wrong_type_and_bad_values():
    with pytest.raises(ConfigError, match=r"config key 'loss\.omega' = 'often': expected int"):
        load_config(demo_config_path(), ["loss.omega=often"])
    with pytest.raises(ConfigError, match="gamma must be 0 or a positive odd integer"):
        load_config(demo_config_path(), ["loss.gamma=2"])
    with pytest.raises(ConfigError, match="scales"):
        load_config(demo_config_path(), ["model.scales=[2,1]"])
    with pytest.raises(ConfigError, match="nothing to train"):
        load_config(demo_config_path(), ["schedule.pretrain_epochs=0", "schedule.joint_epochs=0"])
    with pytest.raises(ConfigError, match="inference.size_rule"):
        load_config(demo_config_path(), ["inference.size_rule=area"])
