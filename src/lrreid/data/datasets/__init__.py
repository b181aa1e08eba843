"""Dataset loaders, one per file, registered by name.

``build_dataset("market1501", root)`` parses the folder a user gets from the dataset's own
download and returns a :class:`~lrreid.data.records.ReidDataset`.
"""
from __future__ import annotations

import importlib

from lrreid.data.records import ReidDataset
from lrreid.registry import Registry

DATASETS: Registry[ReidDataset] = Registry("dataset")

# One module per dataset; importing a module registers its loader(s).
_LOADER_MODULES = (
    "market1501", "dukemtmc", "msmt17", "cuhk03", "caviar", "viper", "prid2011", "grid",
    "mars", "ilidsvid", "detreidx", "generic", "synthetic", "prepared",
)

for _name in _LOADER_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as _exc:  # a loader not written yet adds nothing
        if _exc.name != f"{__name__}.{_name}":
            raise


def build_dataset(name: str, root: str | None = None, **kwargs) -> ReidDataset:
    """Build a registered dataset by name; ``root`` is its folder (unused by ``synthetic``)."""
    return DATASETS.build(name, root, **kwargs)
