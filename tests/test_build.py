"""lrreid.build: config -> splits and method, the one place config values become objects."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lrreid.build import build_splits
from lrreid.config import import_plugins, load_config

TOY = Path(__file__).resolve().parent / "engine" / "toy_method.py"
import_plugins([str(TOY)])  # registers method "toy"


def write_image(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (20, 8, 3), dtype=np.uint8)).save(path)


def test_genuine_protocol_on_grid_is_grids_own_protocol(tmp_path):
    base = tmp_path / "underground_reid"
    for pid in range(1, 9):
        write_image(base / "probe" / f"{pid:04d}_1_1_1_1_1.jpeg", pid)
        write_image(base / "gallery" / f"{pid:04d}_2_1_1_1_1.jpeg", 100 + pid)
    for i in range(3):
        write_image(base / "gallery" / f"0000_{i + 3}_{i}_1_1_1.jpeg", 200 + i)
    cfg = load_config({"method": "toy", "data": {"dataset": "grid", "root": str(tmp_path), "protocol": "genuine",
                                                 "num_splits": 2}})
    for split in build_splits(cfg):
        assert len(split.query) == 4 and all(r.view == "probe" for r in split.query)
        assert len(split.gallery) == 4 + 3 and len({r.pid for r in split.train}) == 4
