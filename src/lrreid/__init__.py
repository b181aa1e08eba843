"""lrreid: low-resolution person re-identification toolkit."""

__version__ = "0.1.0"

from lrreid.errors import LrreidError  # noqa: E402,F401
