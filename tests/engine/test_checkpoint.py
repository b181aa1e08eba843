"""Checkpoints: exact round trip without pickle, interrupted writes, truncation, and refusing to load
a checkpoint of another method, architecture or scale set."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lrreid.config import import_plugins
from lrreid.engine import checkpoint as ckpt_io
from lrreid.engine.checkpoint import TrainPosition, find_last, load_checkpoint, load_into, save_checkpoint
from lrreid.errors import CheckpointError
from lrreid.methods import Method

TOY_FILE = Path(__file__).resolve().parent / "toy_method.py"
(toy,) = import_plugins([str(TOY_FILE)])  # the same module a config's `imports:` loads


def make_toy(cls=None, hidden=6, num_classes=5, n=20):
    cls = cls or toy.ToyMethod
    g = torch.Generator().manual_seed(0)
    return cls(torch.randn(n, toy.FEATURE_DIM, generator=g), [i % num_classes for i in range(n)], num_classes, hidden=hidden)


def trained_optimizer(method):
    opt = torch.optim.Adam(method.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        out = method.training_step({"x": method.features[:8], "pid": torch.tensor(method.pids[:8]), "index": torch.arange(8)}, None, 0)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        sched.step()
    return opt, sched


def test_round_trip_restores_weights_extra_state_optimizer_scheduler_and_rng(tmp_path):
    method = make_toy()
    method.sample_weights = torch.rand(20)
    opt, sched = trained_optimizer(method)
    torch.manual_seed(123)
    save_checkpoint(tmp_path, "p0-warmup-e001", method, position=TrainPosition(0, "warmup", 1, 1, 7),
                    optimizer=opt, scheduler=sched, config={"method": "toy"})
    expected_draw = torch.rand(3)  # what the RNG gives right after the save

    other = make_toy()
    other_opt, other_sched = trained_optimizer(make_toy())  # same structure, different state
    ckpt = load_checkpoint(tmp_path)  # a folder: follows `last`
    load_into(ckpt, other)
    ckpt_io.restore_optimizer(ckpt, other_opt, other_sched)
    ckpt_io.restore_rng(ckpt)
    for (k, a), b in zip(method.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    assert torch.equal(other.sample_weights, method.sample_weights)
    assert sched.state_dict() == other_sched.state_dict()
    for sa, sb in zip(opt.state_dict()["state"].values(), other_opt.state_dict()["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert opt.state_dict()["param_groups"] == other_opt.state_dict()["param_groups"]
    assert torch.equal(torch.rand(3), expected_draw)
    assert ckpt.position == TrainPosition(0, "warmup", 1, 1, 7)
    assert ckpt.meta["config"] == {"method": "toy"}


def test_files_are_safetensors_and_json_no_pickle(tmp_path):
    method = make_toy()
    save_checkpoint(tmp_path, "c", method, position=TrainPosition())
    tensors = load_file(tmp_path / "c.safetensors")  # loads with the plain safetensors reader
    assert "model/encoder.weight" in tensors and "extra/sample_weights" in tensors and "rng/torch" in tensors
    meta = json.loads((tmp_path / "c.json").read_text())
    assert meta["signature"]["method"] == "toy" and meta["signature"]["shapes"]["classifier.weight"] == [5, 6]
    assert (tmp_path / "last").read_text().strip() == "c"


def test_interrupted_write_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    method = make_toy()
    save_checkpoint(tmp_path, "e001", method, position=TrainPosition(0, "warmup", 1, 1, 5))
    before = {k: v.clone() for k, v in method.state_dict().items()}
    with torch.no_grad():
        method.encoder.weight.add_(1.0)

    def crash(*a, **k):  # the process dies between the tensor file and its JSON
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_io, "atomic_write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, "e002", method, position=TrainPosition(0, "warmup", 2, 2, 10))
    monkeypatch.undo()

    assert (tmp_path / "e002.safetensors").exists() and not (tmp_path / "e002.json").exists()
    assert find_last(tmp_path) == tmp_path / "e001"
    (tmp_path / "last").unlink()  # even without the pointer, the incomplete one is ignored
    assert find_last(tmp_path) == tmp_path / "e001"
    restored = make_toy()
    load_into(load_checkpoint(tmp_path), restored)
    assert all(torch.equal(before[k], v) for k, v in restored.state_dict().items())
    with pytest.raises(CheckpointError, match="e002.json missing: the checkpoint write was interrupted"):
        load_checkpoint(tmp_path / "e002.safetensors")


def test_truncated_or_corrupt_tensor_file_is_a_checkpoint_error(tmp_path):
    save_checkpoint(tmp_path, "c", make_toy(), position=TrainPosition())
    path = tmp_path / "c.safetensors"
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated") as exc:
        load_checkpoint(tmp_path / "c")
    assert "\n" not in str(exc.value)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(tmp_path / "c", verify=False)
    path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "c")
    (tmp_path / "c.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable checkpoint metadata"):
        load_checkpoint(tmp_path / "c")


def test_missing_checkpoint_messages(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint found"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.json")


class ScaledToy(toy.ToyMethod):
    def __init__(self, *a, scales=(1, 2, 3, 4), **k):
        super().__init__(*a, **k)
        self.scales = list(scales)

    def signature(self):
        return {"scales": self.scales}


@pytest.mark.parametrize("make_other, message", [
    (lambda: make_toy(toy.ToyMethodB), "checkpoint of method 'toy', this run uses 'toy_b'"),
    (lambda: make_toy(hidden=7), "different architecture: 'encoder.weight' has shape [6, 8] in the checkpoint, [7, 8] in the model"),
    (lambda: make_toy(num_classes=4), "different architecture: 'classifier.weight' has shape [5, 6] in the checkpoint, [4, 6] in the model"),
])
def test_refuses_other_method_or_architecture(tmp_path, make_other, message):
    save_checkpoint(tmp_path, "c", make_toy(), position=TrainPosition())
    with pytest.raises(CheckpointError) as exc:
        load_into(load_checkpoint(tmp_path), make_other())
    assert str(exc.value) == f"{tmp_path / 'c.json'}: {message}"


def test_refuses_other_scale_set_and_extra_modules(tmp_path):
    save_checkpoint(tmp_path, "c", make_toy(ScaledToy), position=TrainPosition())
    other = ScaledToy(torch.randn(20, 8), [i % 5 for i in range(20)], 5, scales=(2, 3, 4))
    with pytest.raises(CheckpointError) as exc:
        load_into(load_checkpoint(tmp_path), other)
    assert str(exc.value).endswith("checkpoint has scales [1, 2, 3, 4], this model has scales [2, 3, 4]")

    bigger = make_toy(ScaledToy)
    bigger.head = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"2 model tensor\(s\) missing \(e.g. 'head.weight'\)"):
        load_into(load_checkpoint(tmp_path), bigger)


def test_default_method_rejects_unexpected_extra_state():
    class Plain(Method):
        name = "plain"

    with pytest.raises(CheckpointError, match="does not use"):
        Plain().load_extra_state({"table": torch.zeros(2)})


def test_last_naming_deleted_files_warns_before_falling_back(tmp_path, caplog):
    method = make_toy()
    save_checkpoint(tmp_path, "e001", method, position=TrainPosition(0, "warmup", 1, 1, 5))
    save_checkpoint(tmp_path, "e002", method, position=TrainPosition(0, "warmup", 2, 2, 10))
    for suffix in (".json", ".safetensors"):
        (tmp_path / f"e002{suffix}").unlink()
    with caplog.at_level("WARNING", logger="lrreid"):
        assert load_checkpoint(tmp_path).path == tmp_path / "e001"
    assert "'last' names e002, whose files are missing; using e001" in caplog.text
