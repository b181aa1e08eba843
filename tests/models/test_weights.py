"""Weight files: every published format reads, bad files fail in one line, loading reports what it skipped."""
import logging
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from lrreid.errors import CheckpointError, ConfigError
from lrreid.models.weights import (
    IMPORTERS,
    guess_importer,
    load_weights,
    read_state_dict,
    resolve_weights,
)


class Tiny(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3)
        self.bn1 = nn.BatchNorm2d(width)
        self.head = nn.Linear(width, 2)

    def forward(self, x):
        return self.head(self.bn1(self.conv1(x)).mean((2, 3)))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def state():
    torch.manual_seed(0)
    return Tiny().state_dict()


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"params": sd},
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer": {"lr": 0.1}},
    lambda sd: {"model": {"state_dict": sd}},
    lambda sd: {f"module.{k}": v for k, v in sd.items()},
])
def test_wrapped_and_ddp_state_dicts_read_back_unchanged(tmp_path, state, wrap):
    path = tmp_path / "w.pth"
    torch.save(wrap(state), path)
    assert same(read_state_dict(path), state)


def test_params_ema_is_preferred_and_key_picks_the_other(tmp_path, state):
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    path = tmp_path / "basicsr.pth"
    torch.save({"params": state, "params_ema": ema}, path)
    assert same(read_state_dict(path), ema)
    assert same(read_state_dict(path, key="params"), state)
    with pytest.raises(CheckpointError, match="no entry 'net'") as exc:
        read_state_dict(path, key="net")
    one_line(exc)


def test_safetensors_and_legacy_torch_files_read(tmp_path, state):
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    assert same(read_state_dict(tmp_path / "w.safetensors"), state)
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert same(read_state_dict(tmp_path / "legacy.pt"), state)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")
def test_torchscript_archive_reads_its_state_dict(tmp_path):
    # OpenAI's CLIP ViT-B-16.pt is such an archive; torch.load(weights_only=True) cannot read it.
    scripted = torch.jit.script(Tiny().eval())
    scripted.save(str(tmp_path / "scripted.pt"))
    assert same(read_state_dict(tmp_path / "scripted.pt"), dict(scripted.state_dict()))


def test_missing_truncated_and_foreign_files_fail_in_one_line_naming_the_file(tmp_path, state):
    with pytest.raises(CheckpointError, match="no such weight file") as exc:
        read_state_dict(tmp_path / "nope.pth")
    assert "nope.pth" in one_line(exc)

    good = tmp_path / "good.pth"
    torch.save(state, good)
    data = good.read_bytes()
    for name, payload, why in [
        ("cut.pth", data[: len(data) // 2], "truncated or damaged"),
        ("text.pth", b"just some text, not a checkpoint", "not a PyTorch"),
        ("empty.pth", b"", "empty file"),
    ]:
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(CheckpointError, match=why) as exc:
            read_state_dict(tmp_path / name)
        assert name in one_line(exc)

    (tmp_path / "w.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
    with pytest.raises(CheckpointError, match="safetensors") as exc:
        read_state_dict(tmp_path / "w.safetensors")
    one_line(exc)


class NotATensor:
    pass


def test_a_file_needing_full_unpickling_is_refused_with_the_reason(tmp_path, state):
    path = tmp_path / "pickled.pth"
    torch.save({"state_dict": state, "config": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="unpickling") as exc:
        read_state_dict(path)
    assert "NotATensor" in one_line(exc) and "pickled.pth" in str(exc.value)


def test_numpy_scalars_beside_the_weights_are_fine(tmp_path, state):
    import numpy as np

    torch.save({"state_dict": state, "rank1": np.float64(0.83), "epoch": np.int64(60)}, tmp_path / "ckpt.pth")
    assert same(read_state_dict(tmp_path / "ckpt.pth"), state)


def test_a_checkpoint_without_tensors_is_refused(tmp_path):
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match="no state dict found") as exc:
        read_state_dict(tmp_path / "meta.pth")
    assert "epoch" in one_line(exc)


# ----------------------------------------------------------------------------- loading


def test_strict_load_copies_every_tensor(tmp_path, state):
    torch.save(state, tmp_path / "w.pth")
    model = Tiny()
    report = load_weights(model, tmp_path / "w.pth")
    assert report.ok and sorted(report.loaded) == sorted(state)
    assert same(model.state_dict(), state)


def test_strict_load_names_missing_unexpected_and_mismatched_keys_and_loads_nothing(state):
    bad = dict(state)
    del bad["head.weight"], bad["head.bias"], bad["bn1.running_mean"]
    bad["extra.weight"] = torch.zeros(1)
    bad["conv1.weight"] = torch.zeros(4, 3, 5, 5)
    model = Tiny(width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as exc:
        load_weights(model, bad)
    msg = one_line(exc)
    assert "3 missing keys (bn1.running_mean, head.weight, head.bias)" in msg  # model order
    assert "1 unexpected key (extra.weight)" in msg
    assert "1 shape mismatch (conv1.weight: file [4,3,5,5] vs model [4,3,3,3])" in msg
    assert same(model.state_dict(), before)


def test_non_strict_load_takes_what_fits_and_reports_the_rest(state, caplog):
    bad = dict(state)
    bad["head.weight"] = torch.zeros(3, 4)
    bad["old.bias"] = torch.zeros(2)
    model = Tiny()
    with caplog.at_level(logging.WARNING, logger="lrreid"):
        report = load_weights(model, bad, strict=False)
    assert sorted(report.skipped) == ["head.weight", "old.bias"]
    assert report.mismatched == [("head.weight", (3, 4), (2, 4))]
    assert torch.equal(model.conv1.weight, state["conv1.weight"])
    assert "old.bias" in caplog.text


def test_missing_batchnorm_counters_are_not_an_error(state):
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert load_weights(Tiny(), old).ok


def test_key_map_by_callable_and_by_importer_name(state):
    renamed = {f"backbone.{k}": v for k, v in state.items()}
    model = Tiny()
    load_weights(model, renamed, key_map=lambda sd: {k.removeprefix("backbone."): v for k, v in sd.items()})
    assert same(model.state_dict(), state)
    with pytest.raises(ConfigError, match="unknown weight importer 'nope'"):
        load_weights(model, state, key_map="nope")
    assert {"identity", "torchvision_resnet", "timm", "mobilenetv2_port", "metasr_release",
            "swinir_release", "carn_release"} <= set(IMPORTERS.names())


def test_an_importer_refuses_a_file_of_another_layout(state):
    with pytest.raises(CheckpointError, match="not a CARN release file") as exc:
        load_weights(Tiny(), state, key_map="carn_release")
    one_line(exc)


def test_guess_importer_recognises_layouts():
    assert guess_importer({"features.1.conv.0.weight": torch.zeros(1)}) == "mobilenetv2_port"
    assert guess_importer({"P2W.meta_block.0.weight": torch.zeros(1)}) == "metasr_release"
    assert guess_importer({"conv1.weight": torch.zeros(1)}) == "identity"


# ----------------------------------------------------------------------------- naming weights


def test_resolve_weights_accepts_a_local_path_and_names_a_missing_one(tmp_path):
    (tmp_path / "w.pth").write_bytes(b"x")
    assert resolve_weights(str(tmp_path / "w.pth")) == tmp_path / "w.pth"
    with pytest.raises(CheckpointError, match="no such weight file") as exc:
        resolve_weights(tmp_path / "missing.pth")
    assert "timm:" in one_line(exc)  # tells how else weights can be named


@pytest.mark.parametrize("spec", ["timm:resnet18.a1_in1k", "open_clip:ViT-B-16/openai"])
def test_hub_names_fail_fast_offline_asking_for_a_local_file(spec, monkeypatch, tmp_path):
    monkeypatch.setenv("LRREID_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="local path") as exc:
        resolve_weights(spec)
    assert time.monotonic() - start < 10
    assert spec in one_line(exc)


def test_unknown_hub_names_are_config_errors():
    with pytest.raises(ConfigError, match="no pretrained weights named"):
        resolve_weights("timm:not_a_model_xyz")
    with pytest.raises(ConfigError, match="open_clip:<model>/<tag>"):
        resolve_weights("open_clip:ViT-B-16")
