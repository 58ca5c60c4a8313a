"""Errors raised while reading images and data sets; the message always names the file."""

from __future__ import annotations

__all__ = ["DatasetError", "ImageLoadError", "ImageTooLargeError", "check_pixels"]


class ImageLoadError(ValueError):
    """An image could not be decoded (corrupt, unsupported, no decoder for its compression)."""


class ImageTooLargeError(ImageLoadError):
    """The header declares more pixels than the caller's limit (refused before decoding)."""


class DatasetError(ValueError):
    """A data set folder or CSV is malformed (missing columns, files, classes, splits)."""


def check_pixels(name: str, count: int, shape: str, max_pixels: int | None) -> None:
    """Refuse an image whose header declares more than ``max_pixels`` pixels, before decoding.

    A few hundred bytes of PNG can declare 50,000 × 50,000 pixels (a decompression bomb):
    decoding it would allocate gigabytes, so the count is taken from the header alone.
    """
    if max_pixels is not None and count > max_pixels:
        raise ImageTooLargeError(
            f"{name}: {shape} = {count:,} pixels is above the limit of {max_pixels:,} pixels"
        )
