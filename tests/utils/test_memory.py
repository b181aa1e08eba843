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
