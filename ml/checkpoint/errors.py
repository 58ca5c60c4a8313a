"""The one exception checkpoint handling raises, so callers map it to a 4xx in one place."""

from __future__ import annotations

__all__ = ["CheckpointError"]


class CheckpointError(ValueError):
    """A checkpoint was refused; the message says why in words an admin can act on."""
