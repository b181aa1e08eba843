"""Device and dtype are decided here and nowhere else.

``Precision`` bundles the device, whether to run in channels_last, and the autocast context:
bf16 autocast on CPUs with AMX/AVX512-BF16 (several times faster for CNN inference, measured in
benchmarks/inference.py), fp16 AMP on CUDA, plain fp32 otherwise or when asked.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def available_devices() -> list[str]:
    """The devices lrreid can run on here, e.g. ``["cpu"]`` or ``["cpu", "cuda:0", "cuda:1"]``."""
    out = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        out.append("mps")
    return out


def resolve_device(name: str = "auto", option: str = "device") -> torch.device:
    """``auto`` -> the first GPU if there is one, else the CPU; any other name is checked against
    :func:`available_devices`, so a device this machine lacks is a one-line ConfigError (naming
    ``option``, e.g. ``--device``) instead of a traceback from the first tensor moved there.

    >>> resolve_device("cuda:7", "train.device")   # on a CPU-only machine
    ConfigError: train.device 'cuda:7': not available on this machine (available: cpu)
    """
    from lrreid.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    available = available_devices()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{option} {name!r}: not a device (expected auto, cpu, cuda or cuda:N; "
                          f"available: {', '.join(available)})")
    usable = {"cpu": True, "mps": "mps" in available,
              "cuda": f"cuda:{device.index or 0}" in available}[device.type]
    if not usable:
        raise ConfigError(f"{option} {name!r}: not available on this machine (available: {', '.join(available)})")
    return device


@dataclass(frozen=True)
class Precision:
    device: torch.device
    mode: str = "fp32"  # "fp32" | "bf16" | "fp16"
    channels_last: bool = False

    @classmethod
    def for_inference(cls, device: str | torch.device = "auto", fast: bool = True) -> "Precision":
        dev = resolve_device(device) if isinstance(device, str) else device
        if not fast:
            return cls(dev, "fp32", False)
        if dev.type == "cuda":
            return cls(dev, "fp16", True)
        if cpu_has_fast_bf16():
            return cls(dev, "bf16", True)
        return cls(dev, "fp32", False)

    def autocast(self):
        if self.mode == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.mode == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def choose_num_threads(requested: int = 0, processes: int = 1) -> tuple[int, str]:
    """torch's intra-op thread count for one of ``processes`` processes, and why.

    ``requested`` > 0 is taken as given, then a set ``OMP_NUM_THREADS``.  ``0`` (auto) shares the cores among the processes, and
    uses one thread when the machine's load already fills them: several OpenMP threads per op then
    spin against the other processes (measured here: training steps 3-8x slower, and a PRI
    evaluation of 17 s took 7.5 min, than with one thread).

    >>> choose_num_threads(3)
    (3, 'requested')
    """
    if requested and requested > 0:
        return int(requested), "requested"
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:  # the user's (or torchrun's) explicit choice wins over auto
        return int(env), "OMP_NUM_THREADS"
    cores = available_cores()
    share = max(1, cores // max(1, processes))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if share > 1 and load >= cores:
        return 1, f"machine busy (load {load:.1f} on {cores} cores)"
    return share, f"{cores} cores / {processes} process{'es' if processes != 1 else ''}"


def configure_threads(requested: int = 0, processes: int = 1, logger=None) -> int:
    """Set torch's CPU thread count by :func:`choose_num_threads`; the one place lrreid does so.

    Example::

        configure_threads(cfg.train.num_threads, processes=world_size)
    """
    threads, why = choose_num_threads(requested, processes)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    if logger is not None:
        logger.info("torch CPU threads: %d (%s)", threads, why)
    return threads
