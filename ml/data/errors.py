"""Errors raised while reading images and data sets; the message always names the file."""

from __future__ import annotations

__all__ = ["DatasetError", "ImageLoadError"]


class ImageLoadError(ValueError):
    """An image could not be decoded (corrupt, unsupported, no decoder for its compression)."""


class DatasetError(ValueError):
    """A data set folder or CSV is malformed (missing columns, files, classes, splits)."""
