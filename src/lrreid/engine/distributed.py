"""Multi-process data-parallel training, set up once by a launcher.

Two ways to start N processes (one per GPU, or N CPU processes with gloo):

* ``torchrun --standalone --nproc_per_node 2 -m lrreid.cli train CONFIG ...``: torchrun sets
  RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT for every process;
* ``lrreid train CONFIG --nproc 2``: the CLI re-launches itself under torchrun
  (:func:`launch_torchrun`).

Each process calls :func:`setup_distributed` once (the ``train`` command does); it initialises the
process group with nccl on CUDA and gloo on CPU and returns a :class:`DistInfo`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from lrreid.utils.logging import get_logger

log = get_logger("engine.distributed")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_distributed(device: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Initialise the process group from torchrun's environment (idempotent); a no-op for one process.

    The backend is nccl when training on CUDA, gloo otherwise.  On CUDA each process is pinned to
    GPU ``LOCAL_RANK``.

    Example::

        info = setup_distributed("auto")   # in every process started by torchrun
        trainer = Trainer(method, ..., dist_info=info)
    """
    world_size = env_world_size()
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu" and not device.startswith("cpu")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        from datetime import timedelta

        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
        log.info("process group ready: rank %d of %d (%s)", rank, world_size, backend)
    return DistInfo(rank, world_size, local_rank, dist.get_backend())


def current() -> DistInfo:
    """The DistInfo of an already initialised process group (rank 0 of 1 without one)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def cleanup_distributed(synchronize: bool = True) -> None:
    """Tear the process group down.

    With ``synchronize`` every rank first waits at a barrier: otherwise the first rank to finish
    closes its gloo sockets while a slower one is still tearing down its own pair threads, and
    that one dies with "terminate called without an active exception" (SIGABRT) after a run that
    trained correctly.  After an exception pass ``synchronize=False``: the other ranks may never
    reach the barrier.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if synchronize:
        try:
            dist.barrier()
        except Exception as exc:  # a peer already gone; tearing down is all that is left to do
            log.warning("barrier before teardown failed: %s", exc)
    dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over all processes (the tensor itself without DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / dist.get_world_size()


def all_gather_floats(value: float, device: torch.device) -> list[float]:
    """One float from each rank, in rank order (``[value]`` without DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [value]
    t = torch.tensor([value], dtype=torch.float64, device=device)
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t)
    return [float(x.item()) for x in out]


def torchrun_command(nproc: int, cli_args: Sequence[str]) -> list[str]:
    """The command that runs ``lrreid <cli_args>`` in ``nproc`` processes under torchrun."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
        "-m", "lrreid.cli", *cli_args,
    ]


def launch_torchrun(nproc: int, cli_args: Sequence[str]) -> int:
    """Run ``lrreid <cli_args>`` under torchrun with ``nproc`` processes; return its exit status.

    ``--standalone`` picks a free local port, so several runs on one machine do not collide.
    Threads per process are limited (OMP_NUM_THREADS) so N processes share the cores instead of
    oversubscribing them.
    """
    from lrreid.utils.device import available_cores

    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:  # the workers' train.num_threads (auto) then shares the cores the same way
        env["OMP_NUM_THREADS"] = str(max(1, available_cores() // nproc))
    return subprocess.call(torchrun_command(nproc, cli_args), env=env)
