"""One logger for the package; the CLI decides its level and format."""
from __future__ import annotations

import logging

logger = logging.getLogger("lrreid")


def get_logger(name: str | None = None) -> logging.Logger:
    return logger if name is None else logger.getChild(name)
