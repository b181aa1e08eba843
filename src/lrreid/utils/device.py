"""Device and dtype are decided here and nowhere else.

``Precision`` bundles the device, whether to run in channels_last, and the autocast context:
bf16 autocast on CPUs with AMX/AVX512-BF16 (several times faster for CNN inference, measured in
benchmarks/inference.py), fp16 AMP on CUDA, plain fp32 otherwise or when asked.
"""
from __future__ import annotations

import contextlib
import functools
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


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
