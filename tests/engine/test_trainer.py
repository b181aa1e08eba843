"""The training loop on the toy method: phases freeze what they should, hooks write the run folder,
identity batches, seeding, resume after an interruption, and the guards a user meets."""
import json
from pathlib import Path

import pytest
import torch

from lrreid.build import trainer_from_config
from lrreid.config import import_plugins, load_config
from lrreid.engine import Hook, TrainingDivergedError, read_loss_history
from lrreid.engine import checkpoint as ckpt_io
from lrreid.engine import distributed as dist_utils
from lrreid.engine.checkpoint import find_last, load_checkpoint
from lrreid.errors import ConfigError

TOY_FILE = str(Path(__file__).resolve().parent / "toy_method.py")
(toy,) = import_plugins([TOY_FILE])

ITERS_PER_EPOCH = 6  # 6 training identities x 8 images, batches of 8
EPOCHS = {"warmup": 2, "joint": 3}


def toy_config(run_dir: Path, *overrides: str):
    base = {
        "method": "toy", "imports": [TOY_FILE], "seed": 0,
        "data": {"dataset": "toy_points", "protocol": "genuine", "num_splits": 2},
        "train": {"batch_size": 8, "num_instances": 2, "output_dir": str(run_dir), "progress": False,
                  "tensorboard": False},
    }
    return load_config(base, list(overrides))


def make_trainer(run_dir: Path, *overrides: str, hooks=()):
    return trainer_from_config(toy_config(run_dir, *overrides), hooks)


def params(method):
    return {k: v.detach().clone() for k, v in method.state_dict().items()}


def test_training_writes_checkpoints_losses_and_tensorboard(tmp_path):
    run = tmp_path / "run"
    # every checkpoint kept, to look at the warm-up's (the default keeps the newest and the best)
    trainer = make_trainer(run, "train.tensorboard=true", "train.progress=true", "eval.at_end=true",
                           "train.keep_checkpoints=all")
    initial = params(trainer.method)
    trainer.train()

    stems = sorted(p.stem for p in (run / "checkpoints").glob("*.json"))
    assert stems == ["p0-warmup-e001", "p0-warmup-e002", "p1-joint-e001", "p1-joint-e002", "p1-joint-e003"]
    assert find_last(run / "checkpoints") == run / "checkpoints" / "p1-joint-e003"

    rows = read_loss_history(run / "losses.csv")
    assert len(rows) == ITERS_PER_EPOCH * sum(EPOCHS.values())
    assert [r["iteration"] for r in rows] == list(range(1, len(rows) + 1))
    joint_lrs = sorted({(r["epoch"], r["lr"]) for r in rows if r["phase"] == "joint"})
    assert [lr for _, lr in joint_lrs] == pytest.approx([0.05, 0.025, 0.0125])  # StepLR stepped per epoch
    first, last = rows[:ITERS_PER_EPOCH], rows[-ITERS_PER_EPOCH:]
    assert sum(r["ce"] for r in last) < 0.5 * sum(r["ce"] for r in first)

    # warmup trains only the classifier: the encoder leaves warmup untouched, and changes in joint
    warm = load_checkpoint(run / "checkpoints" / "p0-warmup-e002").model_state
    assert torch.equal(warm["encoder.weight"], initial["encoder.weight"])
    assert not torch.equal(warm["classifier.weight"], initial["classifier.weight"])
    assert not torch.equal(trainer.method.encoder.weight.detach(), initial["encoder.weight"])

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/loss", "loss/ce", "lr/classifier", "lr/encoder", "epoch/loss"} <= tags

    report = json.loads((run / "eval.json").read_text())
    assert report["rows"][0]["metrics"]["rank1"] > 0.5  # 6 test identities: chance is ~1/6
    assert "| toy |" in (run / "eval.md").read_text()


def test_identity_batches_hold_p_identities_of_k_images(tmp_path):
    seen = []

    class Spy(Hook):
        def after_step(self, losses):
            seen.append(self.trainer.method.last_pids)

    trainer = make_trainer(tmp_path / "run", "train.num_instances=4", "schedule.warmup_epochs=1", "schedule.joint_epochs=0")
    original = trainer.method.training_step

    def recording_step(batch, phase, epoch):
        trainer.method.last_pids = batch["pid"].tolist()
        return original(batch, phase, epoch)

    trainer.method.training_step = recording_step
    trainer.register_hook(Spy())
    trainer.train()
    assert len(seen) == ITERS_PER_EPOCH
    for pids in seen:
        counts = {p: pids.count(p) for p in set(pids)}
        assert sorted(counts.values()) == [4, 4], pids  # P = 8 / 4 identities, K = 4 each


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    a = make_trainer(tmp_path / "a", "schedule.joint_epochs=1").train()
    b = make_trainer(tmp_path / "b", "schedule.joint_epochs=1").train()
    c = make_trainer(tmp_path / "c", "schedule.joint_epochs=1", "seed=1").train()
    for k, v in params(a).items():
        assert torch.equal(v, params(b)[k]), k
    assert not torch.equal(params(a)["encoder.weight"], params(c)["encoder.weight"])


class StopAt(Hook):
    """Interrupts training at the start of an epoch, after the previous epoch's checkpoint exists."""

    def __init__(self, phase, epoch):
        self.at = (phase, epoch)

    def before_epoch(self):
        if (self.trainer.phase.name, self.trainer.epoch) == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("stop", [("joint", 1), ("joint", 0)])  # inside a phase, and at a phase boundary
def test_resume_continues_exactly(tmp_path, stop):
    reference = make_trainer(tmp_path / "ref")
    reference.train()

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run, hooks=[StopAt(*stop)]).train()
    resumed = make_trainer(run, "train.resume=true")
    resumed.train(resume=True)

    for k, v in params(reference.method).items():
        assert torch.equal(v, params(resumed.method)[k]), k
    assert torch.equal(reference.method.sample_weights, resumed.method.sample_weights)
    ref_rows, rows = read_loss_history(tmp_path / "ref" / "losses.csv"), read_loss_history(run / "losses.csv")
    assert rows == ref_rows  # no duplicated or missing iterations, same values


def test_resume_without_checkpoint_starts_from_scratch(tmp_path):
    trainer = make_trainer(tmp_path / "run", "schedule.joint_epochs=0")
    trainer.train(resume=True)
    assert find_last(tmp_path / "run" / "checkpoints") is not None


def test_max_iters_checkpoint_every_and_keep(tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(run, "train.max_iters_per_epoch=2", "train.checkpoint_every=2",
                           "train.keep_checkpoints=1", "schedule.warmup_epochs=5", "schedule.joint_epochs=1")
    trainer.train()
    assert trainer.iteration == 2 * 6
    stems = sorted(p.stem for p in (run / "checkpoints").glob("*.json"))
    # every 2 epochs (e002, e004; only the newest kept) plus the end of each phase
    assert stems == ["p0-warmup-e004", "p0-warmup-e005", "p1-joint-e001"]
    assert not list((run / "checkpoints").glob("p0-warmup-e002*"))


def test_keep_counts_checkpoints_from_before_a_resume(tmp_path):
    run = tmp_path / "run"
    args = ("train.max_iters_per_epoch=1", "train.keep_checkpoints=2", "schedule.warmup_epochs=6", "schedule.joint_epochs=0")
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run, *args, hooks=[StopAt("warmup", 3)]).train()
    make_trainer(run, *args).train(resume=True)
    stems = sorted(p.stem for p in (run / "checkpoints").glob("*.json"))
    assert stems == ["p0-warmup-e004", "p0-warmup-e005", "p0-warmup-e006"]


def checkpoint_stems(run: Path) -> list[str]:
    folder = run / "checkpoints"
    stems = sorted(p.stem for p in folder.glob("*.json"))
    assert stems == sorted(p.stem for p in folder.glob("*.safetensors"))  # no half-removed pair
    return stems


def test_by_default_only_the_newest_checkpoint_stays(tmp_path):
    """The demo left 271 MB of checkpoints (one per phase end); by default only the newest stays."""
    run = tmp_path / "run"
    make_trainer(run).train()
    assert checkpoint_stems(run) == ["p1-joint-e003"]
    assert find_last(run / "checkpoints") == run / "checkpoints" / "p1-joint-e003"


def test_by_default_the_best_evaluated_checkpoint_stays_too(tmp_path, monkeypatch):
    """With evaluations during training, the checkpoint of the best one is kept beside the newest."""
    from lrreid.engine import hooks

    rank1 = iter([0.5, 0.9, 0.6, 0.7, 0.8])  # global epochs 1..5: the second (p0-warmup-e002) is best
    original = hooks.run_evaluation

    def scripted(method, splits, ctx):
        report = original(method, splits, ctx)
        report.rows[-1].metrics["rank1"] = next(rank1)
        return report

    monkeypatch.setattr(hooks, "run_evaluation", scripted)
    run = tmp_path / "run"
    make_trainer(run, "eval.every=1").train()
    assert checkpoint_stems(run) == ["p0-warmup-e002", "p1-joint-e003"]

    # the same across an interruption: the evaluations before it are read back from eval_history.json
    rank1 = iter([0.5, 0.9, 0.6, 0.7, 0.8])
    run = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run, "eval.every=1", hooks=[StopAt("joint", 1)]).train()
    make_trainer(run, "eval.every=1").train(resume=True)
    assert checkpoint_stems(run) == ["p0-warmup-e002", "p1-joint-e003"]
    history = json.loads((run / "eval_history.json").read_text())
    assert [h["global_epoch"] for h in history] == [1, 2, 3, 4, 5]


def test_default_keeps_a_checkpoint_to_resume_from_and_resumes_exactly(tmp_path):
    reference = make_trainer(tmp_path / "ref")
    reference.train()
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run, hooks=[StopAt("joint", 2)]).train()
    assert checkpoint_stems(run) == ["p1-joint-e002"]  # the older ones went once a newer one was complete
    resumed = make_trainer(run)
    resumed.train(resume=True)
    assert checkpoint_stems(run) == ["p1-joint-e003"]
    for key, value in reference.method.state_dict().items():
        torch.testing.assert_close(resumed.method.state_dict()[key], value)


def test_keep_checkpoints_must_be_last_all_or_a_positive_number(tmp_path):
    assert toy_config(tmp_path, "train.keep_checkpoints=all").train.keep_checkpoints == "all"
    for bad in ("0", "best", "true"):
        with pytest.raises(ConfigError, match="keep_checkpoints"):
            toy_config(tmp_path, f"train.keep_checkpoints={bad}")


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    original = trainer.method.training_step

    def exploding_step(batch, phase, epoch):
        out = original(batch, phase, epoch)
        if phase.name == "joint":
            out["loss"] = out["loss"] * float("nan")
        return out

    trainer.method.training_step = exploding_step
    with pytest.raises(TrainingDivergedError, match=r"loss is nan in phase 'joint', epoch 0, iteration 13 ") as exc:
        trainer.train()
    assert "\n" not in str(exc.value)
    assert find_last(tmp_path / "run" / "checkpoints").name == "p0-warmup-e002"  # the last good state stays


def test_eval_hook_every_epoch(tmp_path):
    run = tmp_path / "run"
    make_trainer(run, "eval.every=2", "schedule.warmup_epochs=2", "schedule.joint_epochs=2").train()
    history = json.loads((run / "eval_history.json").read_text())
    assert [h["global_epoch"] for h in history] == [2, 4]
    assert history[-1]["report"]["rows"][0]["metrics"]["rank1"] >= 0.0


def test_batch_size_must_fit_processes_and_identities(tmp_path):
    with pytest.raises(ConfigError, match="must divide the per-process batch 8"):
        make_trainer(tmp_path / "a", "train.num_instances=3").train()
    with pytest.raises(ConfigError, match="give no full batch"):
        make_trainer(tmp_path / "b", "train.batch_size=400", "train.num_instances=4").train()
    with pytest.raises(ConfigError, match="not divisible by the 3 processes"):
        from lrreid.engine import Trainer

        Trainer(toy.ToyMethod(torch.zeros(4, 8), [0, 1, 0, 1], 2), run_dir=tmp_path / "c", batch_size=8,
                dist_info=dist_utils.DistInfo(0, 3))


def test_rank_divergence_is_detected(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path / "run")
    trainer.dist = dist_utils.DistInfo(0, 2)
    monkeypatch.setattr(dist_utils, "all_gather_floats", lambda v, d: [v, v + 1.0])
    with pytest.raises(RuntimeError, match="DDP ranks ended with different weights"):
        trainer._check_ranks_in_sync()


def test_bf16_autocast_trains_on_cpu_and_fp16_needs_cuda(tmp_path):
    trainer = make_trainer(tmp_path / "a", "train.precision=bf16", "train.max_iters_per_epoch=2",
                           "schedule.warmup_epochs=1", "schedule.joint_epochs=1", "train.device=cpu")
    trainer.train()
    assert trainer.iteration == 4 and trainer.method.encoder.weight.dtype == torch.float32
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        make_trainer(tmp_path / "b", "train.precision=fp16", "train.device=cpu")


def test_run_killed_between_a_checkpoint_and_its_loss_rows_resumes_with_every_row(tmp_path, monkeypatch):
    reference = make_trainer(tmp_path / "ref")
    reference.train()
    run = tmp_path / "run"
    real_save = ckpt_io.save_checkpoint

    def save_then_die(directory, stem, *args, **kwargs):  # the process dies right after this checkpoint
        path = real_save(directory, stem, *args, **kwargs)
        if stem == "p1-joint-e001":
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(ckpt_io, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run).train()
    monkeypatch.undo()
    make_trainer(run, "train.resume=true").train(resume=True)
    rows = read_loss_history(run / "losses.csv")
    assert [r["iteration"] for r in rows] == list(range(1, ITERS_PER_EPOCH * sum(EPOCHS.values()) + 1))
    assert rows == read_loss_history(tmp_path / "ref" / "losses.csv")


def test_resume_removes_temporary_files_left_by_writes_killed_midway(tmp_path):
    import tempfile

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        make_trainer(run, hooks=[StopAt("joint", 1)]).train()
    # what SIGKILL inside atomic_path leaves: hidden temporaries beside the checkpoint and the loss log
    leftovers = [Path(tempfile.mkstemp(prefix=".p1-joint-e002.safetensors.", suffix=".tmp", dir=run / "checkpoints")[1]),
                 Path(tempfile.mkstemp(prefix=".losses.csv.", suffix=".tmp", dir=run)[1])]
    make_trainer(run, "train.resume=true").train(resume=True)
    assert not any(p.exists() for p in leftovers)
    assert not list(run.rglob("*.tmp"))


def test_truncated_newest_checkpoint_resumes_from_the_newest_complete_one(tmp_path, caplog):
    reference = make_trainer(tmp_path / "ref")
    reference.train()
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # every checkpoint kept, so an older complete one exists
        make_trainer(run, "train.keep_checkpoints=all", hooks=[StopAt("joint", 2)]).train()
    newest = run / "checkpoints" / "p1-joint-e002.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # e.g. a disk that filled up
    with caplog.at_level("WARNING", logger="lrreid"):
        resumed = make_trainer(run, "train.resume=true", "train.keep_checkpoints=all")
        resumed.train(resume=True)
    assert "p1-joint-e002" in caplog.text and "truncated" in caplog.text
    assert "resuming from p1-joint-e001 instead" in caplog.text
    for k, v in params(reference.method).items():
        assert torch.equal(v, params(resumed.method)[k]), k
    assert read_loss_history(run / "losses.csv") == read_loss_history(tmp_path / "ref" / "losses.csv")
