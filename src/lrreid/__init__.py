"""lrreid: low-resolution person re-identification toolkit."""

__version__ = "0.1.0"

from lrreid.errors import LrreidError  # noqa: E402,F401

_LAZY = {"Searcher": "lrreid.search.searcher"}  # public names imported on first use: `import lrreid` stays light


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lrreid' has no attribute {name!r}")
