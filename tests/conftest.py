"""Shared test fixtures: where ../shared lives, and a skip that says why when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LRREID_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared, or skip the test with the reason when it is not on this machine."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not present (real data/weights live in ../shared beside the checkout)")
    return p


@pytest.fixture
def shared():
    return shared_path


def pytest_configure(config):
    # The project's one thread policy, as every lrreid command applies it: on a machine whose load
    # already fills the cores, one thread per process instead of OpenMP threads spinning against
    # each other (tests ran ~4x slower that way here).
    from lrreid.utils.device import configure_threads

    configure_threads(0)
