"""Fixtures for loader tests: tiny images written in a dataset's original layout under tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_tiny_image(path: Path, size: tuple[int, int] = (8, 16), seed: int = 0) -> Path:
    """Write a small random RGB image (format from the suffix), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def tiny_image():
    """``tiny_image(path, size=(w, h))`` writes a small image and returns its path."""
    return write_tiny_image
