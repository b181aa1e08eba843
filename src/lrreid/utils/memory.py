"""Process-level memory settings applied by the ``lrreid`` command.

glibc's malloc serves an allocation above its *mmap threshold* with its own ``mmap`` (returned to
the system on ``free``) and smaller ones from its heaps (kept by the process after ``free``).  The
threshold starts at 128 KiB but rises to the size of every mmapped block freed, up to 32 MiB; a
training step frees hundreds of activation tensors of a few MiB, so after the first steps they
all come from the heaps, and the heaps' free space, fragmented by tensors of other sizes, is
never given back: the resident size grows step after step above what the step needs (issue 12:
PRI's CPU recipe held 3.8 GB between steps that need 0.8 GB; with the threshold fixed, the same
run returns to 0.8 GB after every step).

Allocator modes (``LRREID_MALLOC``, set by the ``lrreid`` command; compared by
``benchmarks/malloc_modes.py`` on an S3-CLIP-shaped step, 2 threads; its first version, in git
history, timed an OSNet-only step, where ``mmap`` cost 2.6x and ``trim`` 1.26x):

* ``trim`` (the default): glibc's defaults and ``malloc_trim`` after every step: the smallest
  resident size between steps (the PRI CPU recipe's peak 2.84 GB, ``benchmarks/pri_memory.py``),
  1.0-1.25x the step time of ``default``.
* ``reuse``: glibc never ``mmap``s (``M_MMAP_MAX`` 0) and never trims on ``free``,
  so a step's activations reuse the pages of the step before; the engine hands the free pages
  back once per epoch (:func:`epoch_done`).  On this project's machines a fresh page costs a
  page fault that is far more expensive than on bare metal: an S3-CLIP step (CARN-M's 256x128
  activations are 100+ MB each, which glibc would otherwise always ``mmap``) spent more time in
  the kernel than computing, and runs 1.6x faster this way.  The price is memory: the heaps keep
  what the largest step needed, fragmented (the PRI CPU recipe's peak 3.07 GB instead of 2.84).
  What the long runs in docs/results.md used (``LRREID_MALLOC=reuse lrreid train ...``).
* ``mmap``: the mmap threshold fixed at 1 MiB (issue 12's first fix): every tensor its own
  mapping, 2.4-2.6x the step time.
* ``default``: glibc as it is (fragmented heaps keep what they held, issue 12: 3.8 GB between
  steps that need 0.8 GB).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
DEFAULT_THRESHOLD = 1 << 20  # 1 MiB: tensors at least this large get their own mapping
ENV = "MALLOC_MMAP_THRESHOLD_"


_libc = None


def _glibc():
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                lib.malloc_trim.restype = ctypes.c_int
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.mallopt.restype = ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):  # not glibc (musl has no malloc_trim / mallopt)
                pass
    return _libc or None


MODES = ("reuse", "trim", "mmap", "default")
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # from glibc's malloc.h
_mode = "default"


def configure_allocator(mode: str | None = None) -> str:
    """Apply an allocator mode (``MODES``; default: ``$LRREID_MALLOC`` or ``trim``); returns the mode in force.

    Off glibc nothing is changed and the mode is ``default``.  A mode other than ``MODES`` is a
    one-line error naming the variable.
    """
    global _mode
    mode = mode or os.environ.get("LRREID_MALLOC") or "trim"
    if mode not in MODES:
        raise ValueError(f"LRREID_MALLOC={mode!r}: expected one of {', '.join(MODES)}")
    libc = _glibc()
    if libc is None:
        _mode = "default"
        return _mode
    if mode == "reuse":
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    elif mode == "mmap":
        fix_malloc_mmap_threshold()
    _mode = mode
    return _mode


def step_done() -> None:
    """Called by the engine after every optimizer step: trims in ``trim`` mode."""
    if _mode == "trim":
        release_freed_memory()


def epoch_done() -> None:
    """Called by the engine after every epoch: the free pages back to the system."""
    if _mode != "default":
        release_freed_memory()


def release_freed_memory() -> bool:
    """Give the free pages of glibc's heaps back to the system (``malloc_trim(0)``); False off glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def fix_malloc_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes; True when set.

    Does nothing (False) off Linux/glibc, or when ``MALLOC_MMAP_THRESHOLD_`` is set in the
    environment (glibc then already uses the user's value).
    """
    libc = _glibc()
    if libc is None or ENV in os.environ:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
