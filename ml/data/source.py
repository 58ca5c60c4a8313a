"""The display source: an image's pixels at their real depth, for the rater's window/level.

The 8-bit display PNG is one fixed windowing of the image; a radiologist reading CT needs to
move between lung and mediastinal windows in Hounsfield units, which 256 grey levels cannot
give back. So beside the PNG radsal keeps the *display source*: the DICOM modality-LUT output
(HU for CT), or a 16-bit PNG's own values, in the smallest exact dtype, with the window the
viewer opens at (the file's own window, the range a VOI LUT covers, or robust percentiles).
8-bit and colour images need no source: their display PNG already holds every level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DisplaySource", "compact_values", "robust_window"]


@dataclass(frozen=True)
class DisplaySource:
    """Pixel values in real units plus how the viewer should first show them."""

    values: np.ndarray  # H×W, int16 / uint16 / float32, modality units (HU for CT)
    window: tuple[float, float]  # (centre, width) the viewer opens at, in the same units
    window_source: str  # "dicom" | "voi_lut" | "percentile"
    invert: bool  # MONOCHROME1: low values are bright
    units: str  # "HU" for CT, "" when the values carry no physical unit


def compact_values(values: np.ndarray) -> np.ndarray:
    """``values`` in the smallest dtype that holds them exactly: int16, uint16, else float32."""
    arr = np.asarray(values)
    if arr.size and np.issubdtype(arr.dtype, np.floating) and not np.array_equal(arr, np.rint(arr)):
        return arr.astype(np.float32)
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    if lo >= -32768 and hi <= 32767:
        return arr.astype(np.int16)
    if lo >= 0 and hi <= 65535:
        return arr.astype(np.uint16)
    return arr.astype(np.float32)


def robust_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(centre, width) spanning the ``low``–``high`` percentiles: a default when a file names
    no window, robust to the few extreme pixels (collimator edges, metal) min–max would use."""
    arr = np.asarray(values, dtype=np.float64)
    if not arr.size:
        return 0.5, 1.0
    lo, hi = (float(v) for v in np.percentile(arr, [low, high]))
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max())
    width = max(hi - lo, 1.0)
    return (lo + hi) / 2.0, width
