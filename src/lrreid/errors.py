"""Errors a user can act on.

Every error lrreid raises on bad input derives from :class:`LrreidError`; the CLI prints its
message as one line and exits with status 2 instead of showing a traceback.  Messages name the
thing that is wrong and what was expected, e.g. ``"data/x.jpg: not an image (expected JPEG/PNG/BMP)"``.
"""


class LrreidError(Exception):
    """Base class: a problem with the user's input, not a bug in lrreid."""


class ImageReadError(LrreidError):
    """An image file is missing, corrupt, truncated, too small or otherwise unusable.

    ``reason`` is a short key (``truncated``, ``too_small``, ...) by which ``BadImagePolicy`` counts skips.
    """

    def __init__(self, message: str, reason: str = "unreadable", path: str | None = None):
        super().__init__(message)
        self.reason = reason
        self.path = path


class DatasetLayoutError(LrreidError):
    """A dataset folder does not have the layout its loader expects."""


class ProtocolError(LrreidError):
    """An evaluation protocol cannot be built from the data (e.g. no query has a true match)."""


class ConfigError(LrreidError):
    """A config file or override has an unknown key, a wrong type or an invalid value."""


class CheckpointError(LrreidError):
    """A checkpoint or weight file is missing, truncated, or belongs to another model."""


class IndexMismatchError(LrreidError):
    """A search index was written by another model or lrreid version."""
