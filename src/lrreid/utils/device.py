"""Device and dtype are decided here and nowhere else.

``Precision`` bundles the device, whether to run in channels_last, and the autocast context:
bf16 autocast on CPUs with AMX/AVX512-BF16 (several times faster for CNN inference, measured in
benchmarks/inference.py), fp16 AMP on CUDA, plain fp32 otherwise or when asked.

bf16 autocast on CPU also routes the convolutions oneDNN's AMX kernel gets wrong to fp32
(:class:`_Bf16ConvGuard`).
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return any(f in flags for f in ("amx_bf16", "avx512_bf16"))


def _conv_out_size(size: int, kernel: int, stride: int, padding, dilation: int) -> int:
    if padding == "same":
        return size
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


def _pair(v, i: int):
    return v if isinstance(v, str) else (v[i] if isinstance(v, (tuple, list)) else v)


def bf16_conv_is_unsafe(x: torch.Tensor, weight: torch.Tensor, stride=1, padding=0, dilation=1) -> bool:
    """Whether a bf16 CPU ``conv2d`` of this shape hits oneDNN's broken AMX kernel.

    oneDNN's ``brg_conv_fwd:avx10_1_512_amx`` (oneDNN 3.12, torch 2.14) gets a convolution whose
    output is one pixel wide and more than one high wrong on every call: the output rows after the
    first mix in memory the kernel did not write for this call (relative errors 0.3 to 1 against
    fp32, or NaN / 1e18 whenever that memory happens to hold such values), so the symptom looks
    like a flaky NaN.  Measured here (Sapphire
    Rapids, 1 or 2 threads alike): 3x3/5x5/7x7 kernels with horizontal stride > 1, input
    channels >= 128 (smaller ones take another kernel), any batch size, NCHW or channels_last,
    e.g. ResNet layer4's first conv on a 64x32 image (4x2 -> 2x1).  The check is broader than
    that (any one-pixel-wide, taller output): such convolutions are tiny and fp32 is exact.
    """
    if x.dim() != 4 or weight.dim() != 4:
        return False
    oh = _conv_out_size(x.shape[-2], weight.shape[-2], _pair(stride, 0), _pair(padding, 0), _pair(dilation, 0))
    ow = _conv_out_size(x.shape[-1], weight.shape[-1], _pair(stride, 1), _pair(padding, 1), _pair(dilation, 1))
    return ow == 1 and oh > 1


class _Bf16ConvGuard(TorchFunctionMode):
    """Inside CPU bf16 autocast: run the ``conv2d`` calls of :func:`bf16_conv_is_unsafe` in fp32.

    The result is cast back to bf16, the dtype autocast would have given, so the layers after it
    see what they always see.  Every other call passes straight through.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.conv2d and torch.is_autocast_enabled("cpu"):
            bound = dict(zip(("input", "weight", "bias", "stride", "padding", "dilation", "groups"), args), **kwargs)
            x, w = bound["input"], bound["weight"]
            if x.device.type == "cpu" and bf16_conv_is_unsafe(
                x, w, bound.get("stride", 1), bound.get("padding", 0), bound.get("dilation", 1)
            ):
                b = bound.get("bias")
                bound.update(input=x.float(), weight=w.float(), bias=None if b is None else b.float())
                with torch.autocast("cpu", enabled=False):
                    return func(**bound).to(torch.bfloat16)
        return func(*args, **kwargs)


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
        if self.mode == "bf16" and self.device.type == "cpu":
            return _cpu_bf16_autocast()
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


@contextlib.contextmanager
def _cpu_bf16_autocast():
    """bf16 autocast on CPU, with the convolutions oneDNN gets wrong in bf16 run in fp32."""
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16), _Bf16ConvGuard():
        yield


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
