"""lrreid.utils.memory: the malloc setting the CLI applies (issue 12)."""
import sys

import pytest

from lrreid.utils import memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_threshold_is_set_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv(memory.ENV, raising=False)
    assert memory.fix_malloc_mmap_threshold() is True
    monkeypatch.setenv(memory.ENV, "65536")
    assert memory.fix_malloc_mmap_threshold() is False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_freed_memory_returns_heap_pages():
    """Freed small blocks stay in glibc's heap until trimmed; the trim gives the pages back."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: no automatic trim on free, as after glibc raises it

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    blocks = [libc.malloc(64 * 1024) for _ in range(4000)]  # 256 MB below the mmap threshold: heap
    for b in blocks:
        ctypes.memset(b, 1, 64 * 1024)
    keep = blocks[-1]  # keeps the top of the heap in use, so free() alone cannot shrink it
    for b in blocks[:-1]:
        libc.free(b)
    before = resident()
    assert memory.release_freed_memory() is True
    after = resident()
    libc.free(keep)
    libc.mallopt(-1, 128 * 1024)
    assert before - after > 100e6, (before, after)


def test_engine_trims_after_every_step_in_trim_mode(monkeypatch, tmp_path):
    """In ``trim`` mode (the default) the free pages go back after every optimizer step (the memory
    fix of issue 12 without the mmap threshold's 2.5x slow-down); in ``reuse`` mode only after
    every epoch."""
    from tests.engine.test_trainer import EPOCHS, make_trainer

    calls = []
    monkeypatch.setattr(memory, "release_freed_memory", lambda: calls.append(1) or True)
    monkeypatch.setattr(memory, "_mode", "trim")
    run = make_trainer(tmp_path / "run")
    run.train()
    epochs = sum(EPOCHS.values())
    assert len(calls) == run.iteration + epochs and run.iteration > 0
    calls.clear()
    monkeypatch.setattr(memory, "_mode", "reuse")
    run = make_trainer(tmp_path / "run2")
    run.train()
    assert len(calls) == epochs


def test_unknown_allocator_mode_is_a_one_line_error():
    with pytest.raises(ValueError, match="LRREID_MALLOC='fast': expected one of reuse, trim, mmap, default"):
        memory.configure_allocator("fast")
