"""A toy method (a 2-layer classifier on deterministic random features) that exercises the engine
without PRI: two phases, Adam + a StepLR scheduler, extra state drawn from the epoch context, an
evaluate() with rank-1, and a way to SIGKILL itself after a checkpoint.

Loaded by path, the way a user's plugin is: ``imports: [<this file>]`` in a run config, or
``lrreid.config.import_plugins([TOY_FILE])`` in a test (both give the same module, registered once).
It registers the dataset ``toy_points`` (records with fake paths; the toy never reads pixels) and the
methods ``toy`` and ``toy_b`` (same layout, another name).  While lrreid.data.protocols or
lrreid.data.loading are not written yet, minimal stand-ins are installed for the tests only.
"""
from __future__ import annotations

import os
import signal
import sys
import types
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from lrreid import losses
from lrreid.data.datasets import DATASETS
from lrreid.data.records import ImageRecord, ReidDataset
from lrreid.methods import METHODS, EvalReport, Method, Phase

FEATURE_DIM = 8
KILL_ENV = "LRREID_TOY_KILL_AT"  # "phase:epoch": SIGKILL at the start of that epoch (after the previous checkpoint)
KILL_IN_WRITE_ENV = "LRREID_TOY_KILL_IN_WRITE"  # checkpoint stem: SIGKILL after its tensor file, before its JSON
DUMP_ENV = "LRREID_TOY_DUMP_DIR"  # folder: every rank saves its weights at the start of every epoch


# ------------------------------------------------------------------------------------------------
# stand-ins for modules other engineers are writing (tests only; real ones win when present)
def _install_stand_ins() -> None:
    try:
        import lrreid.data.protocols  # noqa: F401
    except ModuleNotFoundError:
        mod = types.ModuleType("lrreid.data.protocols")

        @dataclass
        class EvalSplit:
            name: str
            train: list
            query: list
            gallery: list

        def genuine_lr_protocol(dataset, num_splits=10, seed=0, **kw):
            pids = dataset.pids
            out = []
            for s in range(num_splits):
                perm = np.random.default_rng(seed + s).permutation(pids)
                train_ids = set(perm[: len(perm) // 2].tolist())
                train = [r for r in dataset.records if r.pid in train_ids]
                test = [r for r in dataset.records if r.pid not in train_ids]
                out.append(EvalSplit(f"split{s}", train, [r for r in test if r.camid == 1], [r for r in test if r.camid == 0]))
            return out

        mod.EvalSplit, mod.genuine_lr_protocol = EvalSplit, genuine_lr_protocol
        mod.__lrreid_stand_in__ = True  # tests only: replaced by the real module once it exists
        sys.modules["lrreid.data.protocols"] = mod
    try:
        from lrreid.data.loading import RandomIdentitySampler  # noqa: F401
    except (ModuleNotFoundError, ImportError):
        mod = sys.modules.get("lrreid.data.loading") or types.ModuleType("lrreid.data.loading")

        class RandomIdentitySampler(torch.utils.data.Sampler):
            """P x K batches; each global batch of ``batch_size`` is split evenly across ranks."""

            def __init__(self, pids, batch_size, num_instances, seed=0, rank=0, world_size=1):
                self.pids, self.batch_size, self.k = list(pids), batch_size, num_instances
                self.seed, self.rank, self.world, self.epoch = seed, rank, world_size, 0
                self.by_pid: dict[int, list[int]] = {}
                for i, p in enumerate(self.pids):
                    self.by_pid.setdefault(p, []).append(i)

            def set_epoch(self, epoch):
                self.epoch = epoch

            def _global(self):
                rng = np.random.default_rng(self.seed + self.epoch)
                chunks = []
                for p in sorted(self.by_pid):
                    idx = rng.permutation(self.by_pid[p]).tolist()
                    while len(idx) < self.k:
                        idx.append(int(rng.choice(self.by_pid[p])))
                    chunks += [idx[i:i + self.k] for i in range(0, len(idx) - self.k + 1, self.k)]
                order = rng.permutation(len(chunks))
                flat = [i for c in order for i in chunks[c]]
                n = len(flat) // self.batch_size * self.batch_size
                return flat[:n]

            def __iter__(self):
                flat, b = self._global(), self.batch_size // self.world
                for start in range(0, len(flat), self.batch_size):
                    yield from flat[start + self.rank * b: start + (self.rank + 1) * b]

            def __len__(self):
                return len(self._global()) // self.world

        mod.RandomIdentitySampler = RandomIdentitySampler
        mod.__lrreid_stand_in__ = True
        sys.modules["lrreid.data.loading"] = mod


_install_stand_ins()


def _install_write_killer() -> None:
    """With LRREID_TOY_KILL_IN_WRITE=<stem>, die between writing <stem>.safetensors and <stem>.json."""
    stem = os.environ.get(KILL_IN_WRITE_ENV)
    if not stem:
        return
    from lrreid.engine import checkpoint as ckpt_io

    original = ckpt_io.atomic_write_json

    def write_or_die(target, obj):
        if os.path.basename(str(target)) == f"{stem}.json":
            os.kill(os.getpid(), signal.SIGKILL)
        original(target, obj)

    ckpt_io.atomic_write_json = write_or_die


_install_write_killer()


# ------------------------------------------------------------------------------------------------
@DATASETS.register("toy_points")
def toy_points(root=None, num_ids: int = 12, images_per_camera: int = 4) -> ReidDataset:
    records = [
        ImageRecord(f"toy/{pid:03d}_c{cam}_{i}.jpg", pid, cam, view=("ground", "aerial")[cam])
        for pid in range(1, num_ids + 1) for cam in (0, 1) for i in range(images_per_camera)
    ]
    return ReidDataset("toy_points", records)


def toy_features(record, noise: float = 0.6) -> torch.Tensor:
    """Deterministic features of a record: its person's centre plus per-image noise."""
    centre = torch.Generator().manual_seed(int(record.pid) * 7919 + 17)
    image = torch.Generator().manual_seed(zlib.crc32(record.path.encode()))
    return torch.randn(FEATURE_DIM, generator=centre) * 1.5 + noise * torch.randn(FEATURE_DIM, generator=image)


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, features: torch.Tensor, pids: list[int]):
        self.features, self.pids = features, pids

    def __len__(self):
        return len(self.pids)

    def __getitem__(self, i):
        return {"x": self.features[i], "pid": self.pids[i], "index": i}


class ToyMethod(Method):
    name = "toy"

    def __init__(self, features, pids, num_classes, hidden=6, warmup_epochs=2, joint_epochs=3, lr=0.05,
                 identity_batches=True):
        super().__init__()
        self.features, self.pids = features, pids
        self.encoder = nn.Linear(FEATURE_DIM, hidden)
        self.classifier = nn.Linear(hidden, num_classes)
        self.lr = lr
        self.weight_decay = 0.0
        self.epochs = (warmup_epochs, joint_epochs)
        self.identity_batches = identity_batches
        self.sample_weights = torch.ones(len(pids))  # extra state, redrawn every epoch from ctx.generator

    def phases(self):
        return [
            Phase("warmup", self.epochs[0], ("classifier",), identity_batches=self.identity_batches),
            Phase("joint", self.epochs[1], ("encoder", "classifier"), identity_batches=self.identity_batches),
        ]

    def make_scheduler(self, phase, optimizer):
        if phase.name == "joint":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return None

    def train_dataset(self, phase):
        return ToyDataset(self.features, self.pids)

    def on_epoch_start(self, phase, epoch, ctx):
        self.sample_weights = 0.5 + torch.rand(len(self.pids), generator=ctx.generator)
        if os.environ.get(DUMP_ENV):
            from safetensors.torch import save_file

            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, os.path.join(os.environ[DUMP_ENV], f"rank{ctx.rank}-{phase.name}-{epoch}.safetensors"))
        if os.environ.get(KILL_ENV) == f"{phase.name}:{epoch}":
            os.kill(os.getpid(), signal.SIGKILL)

    def embed(self, x):
        return torch.relu(self.encoder(x))

    def training_step(self, batch, phase, epoch):
        logits = self.classifier(self.embed(batch["x"]))
        per_sample = nn.functional.cross_entropy(logits, batch["pid"], reduction="none")
        weights = self.sample_weights.to(per_sample.device)[batch["index"]]
        return {"loss": (weights * per_sample).mean(), "ce": losses.cross_entropy(logits, batch["pid"]).detach()}

    def extra_state(self):
        return {"sample_weights": self.sample_weights}

    def load_extra_state(self, state):
        self.sample_weights = state["sample_weights"].clone()

    def signature(self):
        return {"feature_dim": FEATURE_DIM}

    def evaluate(self, splits, ctx):
        report = EvalReport("toy rank-1")
        r1 = []
        for split in splits:
            q = self.embed(torch.stack([toy_features(r) for r in split.query]).to(ctx.device))
            g = self.embed(torch.stack([toy_features(r) for r in split.gallery]).to(ctx.device))
            nearest = torch.cdist(q, g).argmin(dim=1).cpu()
            hits = [split.gallery[j].pid == r.pid for j, r in zip(nearest.tolist(), split.query)]
            r1.append(float(np.mean(hits)))
        report.add("toy", {"rank1": float(np.mean(r1))}, std={"rank1": float(np.std(r1))})
        return report


class ToyMethodB(ToyMethod):
    name = "toy_b"


@dataclass
class ToyModelConfig:
    hidden: int = 6


@dataclass
class ToyScheduleConfig:
    warmup_epochs: int = 2
    joint_epochs: int = 3
    lr: float = 0.05
    identity_batches: bool = True


@dataclass
class ToyConfig:
    model: ToyModelConfig = field(default_factory=ToyModelConfig)
    schedule: ToyScheduleConfig = field(default_factory=ToyScheduleConfig)


def _build(cls):
    def build(cfg, train_records, num_classes):
        features = torch.stack([toy_features(r) for r in train_records])
        s = cfg.schedule
        return cls(features, [r.pid for r in train_records], num_classes, hidden=cfg.model.hidden,
                   warmup_epochs=s.warmup_epochs, joint_epochs=s.joint_epochs, lr=s.lr,
                   identity_batches=s.identity_batches)

    return staticmethod(build)


@METHODS.register("toy")
class ToySpec:
    config_class = ToyConfig
    build = _build(ToyMethod)


@METHODS.register("toy_b")
class ToyBSpec:
    config_class = ToyConfig
    build = _build(ToyMethodB)
