"""DICOM pixel pipeline: stored values → modality LUT → VOI LUT / window → MONOCHROME1 inversion.

This is the order the standard prescribes (PS3.3 C.11) and the order a PACS viewer uses, so the
8-bit display rendition matches what a radiologist expects. Only a whitelist of PHI-free header
fields leaves this module.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from ml.data.errors import ImageLoadError, check_pixels
from ml.data.source import DisplaySource, compact_values, robust_window

__all__ = ["META_WHITELIST", "decode_dicom"]

# Header fields that may reach the database and the UI: acquisition geometry and technique,
# never identifiers, dates, institutions or study/series/instance UIDs.
META_WHITELIST = (
    "Modality",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "ViewPosition",
    "BodyPartExamined",
    "NumberOfFrames",
    "Manufacturer",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "SliceThickness",
)


def _plain(value: Any) -> Any:
    """DICOM values (MultiValue, DSfloat, IS, PersonName…) → JSON-friendly Python values."""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _first(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    return None if value is None else float(value)


def _window(arr: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """Map modality values to [0,1] with the DICOM window (PS3.3 C.11.2.1.2)."""
    width = max(width, 1.0)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (arr - center) / width))
    if function == "LINEAR_EXACT":
        return np.clip((arr - (center - width / 2.0)) / width, 0.0, 1.0)
    # LINEAR (default): centre and width offsets by 0.5 / 1 as the standard defines.
    return (
        np.clip((arr - (center - 0.5)) / (width - 1.0) + 0.5, 0.0, 1.0)
        if width > 1
        else ((arr >= center).astype(np.float64))
    )


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(np.min(arr)), float(np.max(arr))
    return np.zeros_like(arr, dtype=np.float64) if hi <= lo else (arr - lo) / (hi - lo)


def _voi_lut_window(ds: Dataset) -> tuple[float, float] | None:
    """(centre, width) of the input range the first VOI LUT covers (PS3.3 C.11.2.1.1)."""
    try:
        entries, first = (int(v) for v in ds.VOILUTSequence[0].LUTDescriptor[:2])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None
    entries = entries or 65536  # 0 means 2^16 entries
    return first + entries / 2.0, float(entries)


def _display_source(
    ds: Dataset, values: np.ndarray, center: float | None, width: float | None, photometric: str
) -> DisplaySource:
    """The modality-LUT output at its real depth and the window the viewer opens at."""
    window: tuple[float, float] | None = None
    origin = "dicom"
    if center is not None and width is not None and width > 0:
        window = (center, width)
    elif "VOILUTSequence" in ds:
        window, origin = _voi_lut_window(ds), "voi_lut"
    if window is None:
        window, origin = robust_window(values), "percentile"
    modality = str(getattr(ds, "Modality", "") or "").upper()
    return DisplaySource(
        values=compact_values(values),
        window=(float(window[0]), float(window[1])),
        window_source=origin,
        invert=photometric == "MONOCHROME1",
        units="HU" if modality == "CT" else "",
    )


def decode_dicom(
    data: bytes, name: str, frame: int | None, *, max_pixels: int | None = None
) -> dict[str, Any]:
    """Decode DICOM bytes into the fields of :class:`~ml.data.image_io.LoadedImage`.

    ``max_pixels`` bounds rows × columns × frames as declared in the header; pydicom decodes
    every frame at once, so the check comes before ``pixel_array``.
    """
    try:
        ds: Dataset = pydicom.dcmread(io.BytesIO(data), force=False)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, OSError) as exc:
        raise ImageLoadError(f"{name}: corrupt DICOM file ({type(exc).__name__}: {exc})") from None
    if "PixelData" not in ds:
        raise ImageLoadError(f"{name}: DICOM file has no pixel data (not an image object)")
    tsuid = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    try:
        rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        raise ImageLoadError(
            f"{name}: corrupt DICOM header (Rows/Columns/NumberOfFrames)"
        ) from None
    check_pixels(name, rows * cols * frames, f"{cols}×{rows}×{frames} frames", max_pixels)
    try:
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        ts_name = getattr(getattr(ds.file_meta, "TransferSyntaxUID", None), "name", tsuid)
        raise ImageLoadError(
            f"{name}: cannot decode DICOM pixel data with transfer syntax {ts_name} ({tsuid}): "
            f"no working decoder installed ({str(exc).splitlines()[0][:200]})"
        ) from None
    except Exception as exc:
        raise ImageLoadError(
            f"{name}: corrupt DICOM pixel data ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None

    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    spp = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    meta: dict[str, Any] = {k: _plain(ds[k].value) for k in META_WHITELIST if k in ds}
    meta["TransferSyntaxUID"] = tsuid
    if n_frames > 1:
        idx = n_frames // 2 if frame is None else frame
        if not 0 <= idx < n_frames:
            raise ImageLoadError(f"{name}: frame {idx} out of range (file has {n_frames} frames)")
        pixels = pixels[idx]
        meta["NumberOfFrames"] = n_frames
        meta["frame"] = idx
    elif frame not in (None, 0):
        raise ImageLoadError(f"{name}: frame {frame} requested but the file has a single frame")

    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    center = _first(ds["WindowCenter"].value) if "WindowCenter" in ds else None
    width = _first(ds["WindowWidth"].value) if "WindowWidth" in ds else None
    source: DisplaySource | None = None
    if spp == 3 or pixels.ndim == 3:
        bits = int(getattr(ds, "BitsStored", 8) or 8)
        arr = np.clip(pixels.astype(np.float64) / float(2**bits - 1), 0.0, 1.0)
    else:
        values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
        source = _display_source(ds, values, center, width, photometric)
        if "VOILUTSequence" in ds:
            arr = _minmax(np.asarray(apply_voi_lut(values, ds, index=0), dtype=np.float64))
        elif center is not None and width is not None:
            function = str(getattr(ds, "VOILUTFunction", "LINEAR") or "LINEAR").upper()
            arr = _window(values, center, width, function)
        else:
            arr = _minmax(values)
        if photometric == "MONOCHROME1":
            arr = 1.0 - arr
    return {
        "array": arr.astype(np.float32),
        "window_center": center,
        "window_width": width,
        "modality": str(getattr(ds, "Modality", "OT") or "OT"),
        "meta": meta,
        "source": source,
    }
