"""One run seed -> every random number generator, per epoch, so interrupted runs resume exactly.

Each epoch starts from generator states derived from ``(seed, phase_index, epoch)``: python's
``random``, numpy's global RNG and torch's (CPU and CUDA) are re-seeded, and the sampler and the
method's :class:`~lrreid.methods.base.EpochContext` generators are seeded from the same numbers.
A run resumed at epoch k therefore draws exactly what the uninterrupted run drew from epoch k on.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (``derive_seed(seed, phase, epoch)``)."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) with one number."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seeds(seed: int, phase_index: int, epoch: int, rank: int) -> dict[str, int]:
    """Seeds for one epoch: ``global`` differs per rank (augmentation, dropout); the others are shared."""
    return {
        "global": derive_seed(seed, phase_index, epoch, rank, 1),
        "context": derive_seed(seed, phase_index, epoch, 2),  # same on every rank
        "sampler": derive_seed(seed, phase_index, 3),  # the sampler adds the epoch itself (set_epoch)
    }
