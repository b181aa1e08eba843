"""Run configs: YAML -> dataclasses, _base_ inheritance, overrides, and one-line errors for every mistake."""
from pathlib import Path

import pytest
import yaml

from lrreid.config import RunConfig, TrainConfig, config_from_dict, import_plugins, load_config, save_config
from lrreid.errors import ConfigError

TOY = Path(__file__).resolve().parent / "engine" / "toy_method.py"
import_plugins([str(TOY)])  # registers method "toy" (sections model, schedule)


def write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg, msg
    return msg


def test_minimal_config_gets_defaults_and_method_sections():
    cfg = config_from_dict({"method": "toy"})
    assert isinstance(cfg, RunConfig)
    assert cfg.train.batch_size == TrainConfig().batch_size
    assert cfg.data.input_size == (384, 128)
    assert cfg.model.hidden == 6  # the toy's own section, via cfg.method_config
    assert cfg.schedule.lr == 0.05


def test_yaml_values_are_typed(tmp_path):
    cfg = load_config(write(tmp_path / "a.yaml", {
        "method": "toy", "seed": 3,
        "data": {"input_size": [256, 128], "protocol_args": {"scales": [2, 3]}},
        "train": {"batch_size": 8, "grad_clip": 5, "max_iters_per_epoch": None},
        "schedule": {"lr": "1e-4"},  # YAML reads 1e-4 as a string; a float field accepts it
    }))
    assert cfg.seed == 3 and cfg.data.input_size == (256, 128)
    assert cfg.train.grad_clip == 5.0 and isinstance(cfg.train.grad_clip, float)
    assert cfg.schedule.lr == pytest.approx(1e-4)
    assert cfg.data.protocol_args == {"scales": [2, 3]}


def test_base_inheritance_merges_sections_and_lists_of_bases(tmp_path):
    write(tmp_path / "base.yaml", {"method": "toy", "train": {"batch_size": 32, "num_workers": 2}, "model": {"hidden": 9}})
    write(tmp_path / "extra.yaml", {"train": {"num_workers": 4}, "seed": 7})
    (tmp_path / "sub").mkdir()
    child = write(tmp_path / "sub" / "child.yaml", {"_base_": ["../base.yaml", "../extra.yaml"], "train": {"batch_size": 8}})
    cfg = load_config(child)
    assert cfg.train.batch_size == 8  # the child wins
    assert cfg.train.num_workers == 4  # later base wins over earlier
    assert cfg.model.hidden == 9 and cfg.seed == 7  # untouched keys inherited


def test_dotted_overrides_are_yaml_parsed(tmp_path):
    path = write(tmp_path / "a.yaml", {"method": "toy"})
    cfg = load_config(path, ["train.batch_size=8", "data.input_size=[64, 32]", "train.max_iters_per_epoch=null",
                             "train.resume=true", "model.hidden=11", "data.dataset_args.num_ids=5"])
    assert cfg.train.batch_size == 8 and cfg.data.input_size == (64, 32)
    assert cfg.train.max_iters_per_epoch is None and cfg.train.resume is True
    assert cfg.model.hidden == 11 and cfg.data.dataset_args == {"num_ids": 5}


def test_saved_config_loads_back_equal(tmp_path):
    cfg = load_config(write(tmp_path / "a.yaml", {"method": "toy", "data": {"input_size": [64, 32]}}), ["model.hidden=3"])
    save_config(cfg, tmp_path / "run" / "config.yaml")
    again = load_config(tmp_path / "run" / "config.yaml")
    assert again.to_dict() == cfg.to_dict()
    assert again.model.hidden == 3


@pytest.mark.parametrize("raw, override, expected", [
    ({"method": "toy", "train": {"batchsize": 8}}, None, "unknown config key 'train.batchsize' (did you mean 'train.batch_size'?)"),
    ({"method": "toy"}, "train.batchsize=8", "unknown config key 'train.batchsize' (did you mean 'train.batch_size'?)"),
    ({"method": "toy", "modle": {}}, None, "unknown config key 'modle' (did you mean 'model'?)"),
    ({"method": "toy", "model": {"hiden": 3}}, None, "unknown config key 'model.hiden' (did you mean 'model.hidden'?)"),
    ({"method": "toy", "zzz": 1}, None, "unknown config key 'zzz' (known: "),
])
def test_unknown_keys_at_any_depth_suggest_the_close_one(tmp_path, raw, override, expected):
    path = write(tmp_path / "a.yaml", raw)
    with pytest.raises(ConfigError) as exc:
        load_config(path, [override] if override else [])
    assert one_line_error(exc).startswith(expected)


@pytest.mark.parametrize("override, expected", [
    ("train.batch_size=abc", "config key 'train.batch_size' = 'abc': expected int"),
    ("train.batch_size=2.5", "config key 'train.batch_size' = 2.5: expected int"),
    ("train.resume=1", "config key 'train.resume' = 1: expected bool"),
    ("data.input_size=128", "config key 'data.input_size' = 128: expected list of 2 (int, int)"),
    ("data.input_size=[1, 2, 3]", "config key 'data.input_size' = [1, 2, 3]: expected list of 2 (int, int)"),
    ("eval.ranks=[1, x]", "config key 'eval.ranks[1]' = 'x': expected int"),
    ("train.precision=fp8", "config key 'train.precision' = 'fp8': expected one of 'fp32', 'bf16', 'fp16'"),
    ("train.grad_clip=big", "config key 'train.grad_clip' = 'big': expected float or null"),
    ("train=3", "config key 'train' = 3: expected a section (mapping of keys)"),
    ("seed=abc", "config key 'seed' = 'abc': expected int"),
    ("data.input_size=[0,0]", "config section 'data': data.input_size=[0, 0]: expected a height and width >= 1 px"),
    ("data.input_size=[256,-1]", "config section 'data': data.input_size=[256, -1]: expected a height and width >= 1 px"),
])
def test_wrong_types_name_key_value_and_expected_type(tmp_path, override, expected):
    path = write(tmp_path / "a.yaml", {"method": "toy"})
    with pytest.raises(ConfigError) as exc:
        load_config(path, [override])
    assert one_line_error(exc) == expected


def test_file_problems_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert one_line_error(exc) == f"config file '{tmp_path / 'nope.yaml'}' not found"

    bad = write(tmp_path / "bad.yaml", "method: toy\ntrain: {batch_size: 8\n")
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    assert one_line_error(exc).startswith(f"{bad}:") and "not valid YAML" in str(exc.value)

    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path / "list.yaml", "- a\n- b\n"))
    assert "must be a mapping" in one_line_error(exc)

    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path / "child.yaml", {"_base_": "missing.yaml", "method": "toy"}))
    assert one_line_error(exc) == f"config file '{tmp_path / 'missing.yaml'}' not found"


def test_base_cycle_and_missing_method_and_unknown_method(tmp_path):
    write(tmp_path / "a.yaml", {"_base_": "b.yaml"})
    write(tmp_path / "b.yaml", {"_base_": "a.yaml"})
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "a.yaml")
    assert "_base_ inheritance loops" in one_line_error(exc)

    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path / "m.yaml", {"seed": 1}))
    assert one_line_error(exc).startswith("missing config key 'method'")

    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path / "u.yaml", {"method": "tyo"}))
    assert "unknown method 'tyo'" in one_line_error(exc) and "toy" in str(exc.value)


@pytest.mark.parametrize("override", ["train.batch_size", "=3", "train..x=1", "model.hidden.deeper=2"])
def test_malformed_overrides(tmp_path, override):
    path = write(tmp_path / "a.yaml", {"method": "toy"})
    with pytest.raises(ConfigError) as exc:
        load_config(path, [override])
    msg = one_line_error(exc)
    assert override in msg or "model.hidden" in msg


def test_imports_of_a_missing_module_or_file(tmp_path):
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"method": "toy", "imports": ["no_such_module_xyz"]})
    assert "cannot import module 'no_such_module_xyz'" in one_line_error(exc)
    with pytest.raises(ConfigError) as exc:
        config_from_dict({"method": "toy", "imports": [str(tmp_path / "gone.py")]})
    assert "not found" in one_line_error(exc)


def test_weight_paths_in_a_config_file_are_relative_to_that_file(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "bases").mkdir()
    write(tmp_path / "bases" / "sr.yaml", {"model": {"sr_weights": "w/carn_m.pth"}})
    config = write(tmp_path / "configs" / "run.yaml", {
        "_base_": "../bases/sr.yaml", "method": "pri",
        "model": {"pretrained": "../shared/weights/mobilenet.pt", "predictor_pretrained": "timm"},
        "data": {"root": "../shared/data/CAVIAR4REID"}})
    monkeypatch.chdir(tmp_path / "bases")  # anywhere but the config's folder
    cfg = load_config(config)
    assert cfg.model.pretrained == str(tmp_path / "shared" / "weights" / "mobilenet.pt")
    assert cfg.model.sr_weights == str(tmp_path / "bases" / "w" / "carn_m.pth")  # the base's own folder
    assert cfg.model.predictor_pretrained == "timm"  # a word, not a file
    assert cfg.data.root == "../shared/data/CAVIAR4REID"  # data paths stay relative to the working folder
    # a value typed on the command line is the user's, relative to where they are
    assert load_config(config, ["model.pretrained=mine.pt"]).model.pretrained == "mine.pt"
    assert load_config(config, ["model.pretrained=/abs/w.pt"]).model.pretrained == "/abs/w.pt"
