"""Process-level memory settings applied by the ``lrreid`` command.

glibc's malloc serves an allocation above its *mmap threshold* with its own ``mmap`` (returned to
the system on ``free``) and smaller ones from its heaps (kept by the process after ``free``).  The
threshold starts at 128 KiB but rises to the size of every mmapped block freed, up to 32 MiB; a
training step frees hundreds of activation tensors of a few MiB, so after the first steps they
all come from the heaps, and the heaps' free space, fragmented by tensors of other sizes, is
never given back: the resident size grows step after step above what the step needs (issue 12:
PRI's CPU recipe held 3.8 GB between steps that need 0.8 GB; with the threshold fixed, the same
run returns to 0.8 GB after every step).

Two remedies, measured against each other by ``benchmarks/malloc_modes.py`` (a 0277 training step
on 2 threads):

* :func:`release_freed_memory` (what the engine does after every optimizer step): ``malloc_trim``
  hands the heaps' free pages back once per step.  About 1.2x the plain step time, resident size
  back to what the step holds.
* :func:`fix_malloc_mmap_threshold` (what the CLI did first): every tensor of 1 MiB or more gets
  its own ``mmap``, so each one costs a system call and fresh zeroed pages: 2.4-2.6x the plain
  step time, most of it kernel time.  Kept for ``LRREID_MALLOC=mmap`` (and
  ``MALLOC_MMAP_THRESHOLD_`` works as glibc documents).
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
                _libc = lib
            except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
                pass
    return _libc or None


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
    if not sys.platform.startswith("linux") or ENV in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
