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


def write_viper(root: Path, num_people: int = 8, *, colour_per_person: bool = False) -> Path:
    """A VIPeR-layout folder (``cam_a``/``cam_b``, one 64x24 ``NNN_000.bmp`` per person and camera).

    ``colour_per_person``: each person one base colour (noise per camera), so a network can tell
    people apart; otherwise every image is noise.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for cam in ("cam_a", "cam_b"):
        (root / cam).mkdir(parents=True)
    for person in range(num_people):
        base = rng.integers(0, 256, (1, 1, 3))
        for cam in ("cam_a", "cam_b"):
            if colour_per_person:
                pixels = np.clip(base + rng.integers(-20, 20, (64, 24, 3)), 0, 255)
            else:
                pixels = rng.integers(0, 256, (64, 24, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(root / cam / f"{person:03d}_000.bmp")
    return root


@pytest.fixture(scope="session")
def viper_writer():
    """:func:`write_viper` for tests (test modules are not a package, so helpers come as fixtures)."""
    return write_viper
