"""The training loop: phases -> epochs -> iterations, with hooks around it.

The :class:`Trainer` runs a :class:`~lrreid.methods.base.Method`'s phases.  For each phase it
freezes what the phase does not train, builds the method's optimizer and scheduler, wraps the
method in DistributedDataParallel when several processes run, and iterates over a DataLoader of
``method.train_dataset(phase)``.  One iteration is ``method(batch, phase, epoch)`` -> backward ->
(clip) -> optimizer step; the scheduler steps once per epoch.  Checkpoints, logging, progress bars
and evaluation are :class:`Hook`s (lrreid.engine.hooks) called at fixed points of the loop.

Example::

    trainer = Trainer(method, run_dir="runs/toy", batch_size=16, seed=0,
                      hooks=[CheckpointHook(), ProgressHook()])
    trainer.train()                 # or trainer.train(resume=True) after an interruption
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from lrreid.engine import checkpoint as ckpt_io
from lrreid.engine import distributed as dist_utils
from lrreid.engine.seeding import epoch_seeds, seed_everything
from lrreid.errors import ConfigError, LrreidError
from lrreid.methods.base import EpochContext, Method, Phase
from lrreid.utils.atomic import remove_leftover_temporaries
from lrreid.utils.device import Precision, resolve_device
from lrreid.utils.logging import get_logger
from lrreid.utils import memory
from lrreid.utils.modules import eval_mode


log = get_logger("engine")


class TrainingDivergedError(LrreidError):
    """The loss became NaN or infinite (lower the learning rate, or resume from the last checkpoint)."""


class Hook:
    """Called by the Trainer around the loop; ``self.trainer`` is set when the trainer is built.

    Order of calls: before_train, then per phase before_phase, per epoch before_epoch,
    after_step (per iteration, with the rank-averaged loss floats), after_epoch; after_phase;
    finally after_train.  ``on_resume(ckpt)`` is called once when a run continues from a checkpoint.
    """

    trainer: "Trainer"
    # Hooks run in ascending ``order`` (ties: in registration order).  CheckpointHook runs last:
    # a checkpoint marks its epoch done, so what other hooks write for the epoch must be on disk first.
    order: int = 0

    def before_train(self) -> None: ...
    def on_resume(self, ckpt: ckpt_io.Checkpoint) -> None: ...
    def before_phase(self) -> None: ...
    def before_epoch(self) -> None: ...
    def after_step(self, losses: dict[str, float]) -> None: ...
    def after_epoch(self) -> None: ...
    def after_phase(self) -> None: ...
    def after_train(self) -> None: ...


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors in (nested) dicts/lists/tuples moved to ``device``; other values unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


class Trainer:
    """Runs a method's phases.  All settings are explicit arguments (lrreid.build maps a config here).

    ``batch_size`` is the global batch: with N processes each takes ``batch_size // N``, so a run
    gives the same updates whatever N (for losses that are means over independent samples).
    ``max_iters_per_epoch`` cuts epochs short for quick runs.  ``config`` (a plain dict) is stored in
    every checkpoint so ``lrreid evaluate`` can rebuild the method.
    """

    def __init__(
        self,
        method: Method,
        *,
        run_dir: str | Path,
        batch_size: int = 16,
        num_instances: int = 4,
        num_workers: int = 0,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        seed: int = 0,
        max_iters_per_epoch: int | None = None,
        grad_clip: float | None = None,
        log_every: int = 10,
        hooks: Sequence[Hook] = (),
        dist_info: dist_utils.DistInfo | None = None,
        config: dict | None = None,
    ):
        self.method = method
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.dist = dist_info or dist_utils.current()
        if batch_size % self.dist.world_size:
            raise ConfigError(f"train.batch_size={batch_size} is not divisible by the {self.dist.world_size} processes")
        self.batch_size = batch_size
        self.batch_per_rank = batch_size // self.dist.world_size
        self.num_instances = num_instances
        self.num_workers = num_workers
        self.seed = seed
        self.max_iters_per_epoch = max_iters_per_epoch
        self.grad_clip = grad_clip
        self.log_every = max(1, log_every)
        self.config = config

        device = resolve_device(device, "train.device") if isinstance(device, str) else device
        if device.type == "cuda" and self.dist.enabled:
            device = torch.device("cuda", self.dist.local_rank)
        if precision not in ("fp32", "bf16", "fp16"):
            raise ConfigError(f"train.precision={precision!r}: expected fp32, bf16 or fp16")
        if precision == "fp16" and device.type != "cuda":
            raise ConfigError("train.precision=fp16 needs a CUDA device (use bf16 on CPU)")
        self.precision = Precision(device, precision)
        self.device = device
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")

        self.hooks: list[Hook] = []
        for hook in hooks:
            self.register_hook(hook)

        # Position and per-phase objects; hooks read these.
        self.phases: list[Phase] = []
        self.phase: Phase | None = None
        self.phase_index = 0
        self.epoch = 0  # epoch within the phase (0-based) currently running / last run
        self.global_epoch = 0  # epochs completed over all phases
        self.iteration = 0  # optimizer steps over all phases
        self.epoch_iter = 0
        self.iters_per_epoch = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.model: torch.nn.Module = method  # the DDP wrapper while one is active
        self.context: EpochContext | None = None
        self.last_losses: dict[str, float] = {}
        self.epoch_scalars: dict[str, float] = {}  # scalars hooks report for TensorBoard (e.g. eval)
        self.resumed_from: ckpt_io.Checkpoint | None = None

    # ------------------------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def register_hook(self, hook: Hook) -> None:
        hook.trainer = self
        self.hooks.append(hook)
        self.hooks.sort(key=lambda h: h.order)  # stable: equal orders keep registration order

    def position(self) -> ckpt_io.TrainPosition:
        return ckpt_io.TrainPosition(
            phase_index=self.phase_index, phase_name=self.phase.name if self.phase else "",
            epochs_done=self.epoch + 1, global_epoch=self.global_epoch, iteration=self.iteration,
        )

    def _call(self, name: str, *args) -> None:
        for hook in self.hooks:
            getattr(hook, name)(*args)

    # ------------------------------------------------------------------------------------------
    def train(self, resume: bool | str | Path = False) -> Method:
        """Run every phase (from the last checkpoint with ``resume=True`` or a checkpoint path); return the method."""
        seed_everything(self.seed)
        self.method.to(self.device)
        self.phases = list(self.method.phases())
        if not self.phases:
            raise ConfigError(f"method {self.method.name!r} defines no training phases")
        start_phase, start_epoch, ckpt = 0, 0, None
        if self.is_main:  # what killed writes left behind: this run's folder is ours alone
            for folder in (self.run_dir, self.checkpoint_dir):
                removed = remove_leftover_temporaries(folder)
                if removed:
                    log.info("removed %d temporary file(s) of interrupted writes in %s", len(removed), folder)
        if resume:  # a fresh start in a folder with checkpoints is refused before (lrreid.workflows)
            ckpt = self._load_resume_checkpoint(resume)
        if ckpt is not None:
            start_phase, start_epoch = self._apply_resume(ckpt)

        self._call("before_train")
        if ckpt is not None:
            self._call("on_resume", ckpt)
        for phase_index in range(start_phase, len(self.phases)):
            self._run_phase(phase_index, start_epoch if phase_index == start_phase else 0, ckpt)
            ckpt = None
        self._check_ranks_in_sync()
        self._call("after_train")
        return self.method

    def _load_resume_checkpoint(self, resume) -> ckpt_io.Checkpoint | None:
        if resume is True:  # the newest checkpoint that loads
            ckpt = ckpt_io.load_for_resume(self.checkpoint_dir)
            if ckpt is None:
                log.warning("nothing to resume in %s: starting from scratch", self.checkpoint_dir)
                return None
        else:
            ckpt = ckpt_io.load_checkpoint(Path(resume))
        ckpt_io.load_into(ckpt, self.method)
        self.method.to(self.device)
        return ckpt

    def _apply_resume(self, ckpt: ckpt_io.Checkpoint) -> tuple[int, int]:
        pos = ckpt.position
        if pos.phase_index >= len(self.phases) or self.phases[pos.phase_index].name != pos.phase_name:
            raise ckpt_io.CheckpointError(
                f"{ckpt.path}.json: saved in phase {pos.phase_index} {pos.phase_name!r}, which this "
                f"method's schedule ({[p.name for p in self.phases]}) does not have there"
            )
        ckpt_io.restore_rng(ckpt)
        self.global_epoch, self.iteration = pos.global_epoch, pos.iteration
        self.resumed_from = ckpt
        phase_len = self.phases[pos.phase_index].epochs
        log.info("resuming from %s (phase %r, %d/%d epochs done)", ckpt.path.name, pos.phase_name, pos.epochs_done, phase_len)
        if pos.epochs_done >= phase_len:
            return pos.phase_index + 1, 0
        return pos.phase_index, pos.epochs_done

    # ------------------------------------------------------------------------------------------
    def _run_phase(self, phase_index: int, start_epoch: int, ckpt: ckpt_io.Checkpoint | None) -> None:
        phase = self.phases[phase_index]
        self.phase, self.phase_index = phase, phase_index
        self.method.train()
        self.method.apply_phase(phase)
        self.optimizer = self.method.make_optimizer(phase)
        self.scheduler = self.method.make_scheduler(phase, self.optimizer)
        if ckpt is not None and start_epoch > 0:  # resuming inside this phase: same optimizer state
            ckpt_io.restore_optimizer(ckpt, self.optimizer, self.scheduler, self.scaler)
        self.model = self._wrap_ddp(self.method)
        dataset = self.method.train_dataset(phase)
        self._call("before_phase")
        for epoch in range(start_epoch, phase.epochs):
            self.epoch = epoch
            self._run_epoch(phase, phase_index, epoch, dataset)
        self._call("after_phase")
        self.model = self.method

    def _wrap_ddp(self, method: Method) -> torch.nn.Module:
        # Re-wrapped every phase: DDP registers gradient hooks only for parameters that require grad.
        if not self.dist.enabled:
            return method
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            method,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=getattr(method, "find_unused_parameters", False),
        )

    def _make_loader(self, phase: Phase, dataset, sampler_seed: int, epoch: int, loader_seed: int) -> DataLoader:
        if phase.identity_batches:
            sampler = self._identity_sampler(dataset, sampler_seed)
        else:
            sampler = DistributedSampler(
                dataset, num_replicas=self.dist.world_size, rank=self.dist.rank,
                shuffle=True, seed=sampler_seed, drop_last=True,
            )
        sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(loader_seed)  # worker seeds derive from it
        return DataLoader(
            dataset, batch_size=self.batch_per_rank, sampler=sampler, drop_last=True,
            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
            generator=generator, persistent_workers=False,
            collate_fn=getattr(self.method, "collate_fn", None),
        )

    def _identity_sampler(self, dataset, seed: int):
        from lrreid.data.loading import RandomIdentitySampler

        pids = getattr(dataset, "pids", None)
        if pids is None:
            pids = [int(dataset[i]["pid"]) for i in range(len(dataset))]
        if self.batch_per_rank % self.num_instances:
            raise ConfigError(
                f"train.num_instances={self.num_instances} must divide the per-process batch {self.batch_per_rank}"
            )
        # Contract with lrreid.data.loading: batch_size is the GLOBAL batch; rank r yields its
        # contiguous share (batch_size / world_size) of every global P x K batch, reshuffled by set_epoch.
        return RandomIdentitySampler(
            list(pids), self.batch_size, self.num_instances, seed=seed,
            rank=self.dist.rank, world_size=self.dist.world_size,
        )

    def _run_epoch(self, phase: Phase, phase_index: int, epoch: int, dataset) -> None:
        seeds = epoch_seeds(self.seed, phase_index, epoch, self.dist.rank)
        seed_everything(seeds["global"])
        self.method.train()
        self.method.apply_phase(phase)
        self.context = self.make_context(phase, epoch, seeds["context"])
        self.method.on_epoch_start(phase, epoch, self.context)
        loader = self._make_loader(phase, dataset, seeds["sampler"], epoch, seeds["global"])
        self.iters_per_epoch = len(loader)
        if self.max_iters_per_epoch is not None:
            self.iters_per_epoch = min(self.iters_per_epoch, self.max_iters_per_epoch)
        if self.iters_per_epoch == 0:
            raise ConfigError(
                f"phase {phase.name!r}: {len(dataset)} training items give no full batch of {self.batch_per_rank} "
                f"per process (lower train.batch_size or train.num_instances)"
            )
        self.epoch_scalars = {}
        self._call("before_epoch")
        for self.epoch_iter, batch in enumerate(loader):
            if self.epoch_iter >= self.iters_per_epoch:
                break
            losses = self._step(phase, epoch, batch)
            self.iteration += 1
            self.last_losses = losses
            memory.step_done()  # the allocator's per-step work (lrreid.utils.memory)
            self._call("after_step", losses)
        stats = self.method.on_epoch_end(phase, epoch, self.context)
        if stats:
            self.epoch_scalars.update({f"method/{k}": float(v) for k, v in stats.items()})
            if self.is_main:
                log.info("%s epoch %d/%d %s: %s", phase.name, epoch + 1, phase.epochs, self.method.name,
                         " ".join(f"{k}={v:.4g}" for k, v in stats.items()))
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_epoch += 1
        memory.epoch_done()
        self._call("after_epoch")

    def _step(self, phase: Phase, epoch: int, batch) -> dict[str, float]:
        batch = move_to_device(batch, self.device)
        with self.precision.autocast():
            out = self.model(batch, phase, epoch)
        if "loss" not in out:
            raise KeyError(f"{type(self.method).__name__}.training_step must return a dict with 'loss'")
        # Reduce the logged values first: a NaN on any rank stops every rank before the weights change.
        names = list(out)
        values = torch.stack([out[k].detach().float().reshape(()) for k in names])
        values = dist_utils.all_reduce_mean(values)  # the logged loss is the mean over processes
        floats = dict(zip(names, values.tolist()))
        if not math.isfinite(floats["loss"]):
            raise TrainingDivergedError(
                f"loss is {floats['loss']} in phase {phase.name!r}, epoch {epoch}, iteration {self.iteration + 1} "
                f"(lower the learning rate, or resume from {self.checkpoint_dir}/last)"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(out["loss"]).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return floats

    def make_context(self, phase: Phase | None, epoch: int, seed: int | None = None) -> EpochContext:
        """The EpochContext handed to the method (also used for evaluation)."""
        from lrreid.engine.hooks import ProgressHook, progress_factory

        seed = self.seed if seed is None else seed
        # train.progress=false (a ProgressHook switched off) also silences the method's own bars
        bars = self.is_main and all(h.enabled for h in self.hooks if isinstance(h, ProgressHook))
        return EpochContext(
            device=self.device, precision=self.precision, rank=self.dist.rank, world_size=self.dist.world_size,
            phase=phase, epoch=epoch, generator=torch.Generator().manual_seed(seed),
            rng=np.random.default_rng(seed), progress=progress_factory(bars), logger=log,
            run_dir=self.run_dir, batch_size=self.batch_per_rank, num_workers=self.num_workers,
        )

    def current_lrs(self) -> dict[str, float]:
        if self.optimizer is None:
            return {}
        out = {}
        for i, group in enumerate(self.optimizer.param_groups):
            out[str(group.get("name", i))] = float(group["lr"])
        return out

    def _check_ranks_in_sync(self) -> None:
        """With DDP every rank must end with the same weights; a cheap checksum catches divergence."""
        if not self.dist.enabled:
            return
        with torch.no_grad():
            checksum = float(sum(p.double().sum().item() + (p.double() ** 2).sum().item() for p in self.method.parameters()))
        sums = dist_utils.all_gather_floats(checksum, self.device)
        if max(sums) - min(sums) > 1e-6 * max(1.0, abs(sums[0])):
            raise RuntimeError(f"DDP ranks ended with different weights (checksums {sums})")
        self.rank_checksums = sums
        log.info("all %d processes hold identical weights (checksum %.10g)", len(sums), sums[0])


def run_evaluation(method: Method, splits: Iterable, ctx: EpochContext):
    """``method.evaluate`` in eval mode without gradients, restoring the training mode after."""
    with eval_mode(method), torch.no_grad():
        return method.evaluate(list(splits), ctx)
