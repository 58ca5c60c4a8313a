"""Load one image (DICOM, PNG 8/16-bit, JPEG) into a float [0,1] array plus a display rendition.

The format is sniffed from the bytes (DICM preamble, PNG/JPEG magic), never trusted from the
file name, so an upload called ``scan.png`` that is really DICOM still gets the DICOM pipeline
and a renamed executable is refused.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, JpegImagePlugin, PngImagePlugin, UnidentifiedImageError

from ml.data.dicom import decode_dicom
from ml.data.errors import ImageLoadError, ImageTooLargeError, check_pixels
from ml.data.source import DisplaySource, compact_values, robust_window

__all__ = ["LoadedImage", "check_pixels", "load_image", "sniff_format"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass
class LoadedImage:
    """A decoded image. ``array`` is float32 in [0,1], H×W or H×W×3; ``display`` is its uint8."""

    array: np.ndarray
    display: np.ndarray
    window_center: float | None
    window_width: float | None
    modality: str
    meta: dict[str, Any] = field(default_factory=dict)
    source_format: str = "png"
    # The pixels at their real depth (DICOM modality-LUT output, 16-bit PNG values) for the
    # viewer's window/level; None for 8-bit and colour images, whose display is the source.
    source: DisplaySource | None = None


def sniff_format(data: bytes) -> str | None:
    """ "dicom" | "png" | "jpeg" from the leading bytes, or None."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "dicom"
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


_RASTER_READERS: dict[str, Any] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
}


def _decode_raster(
    data: bytes, name: str, fmt: str, max_pixels: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """[0, 1] pixels, plus the stored integer values when the file has more than 8 bits."""
    deep: np.ndarray | None = None
    try:
        # The format's own reader rather than Image.open: it parses the header without
        # Pillow's global bomb check, so our limit (a setting) is the one that speaks.
        with _RASTER_READERS[fmt](io.BytesIO(data)) as im:
            width, height = im.size
            check_pixels(name, width * height, f"{width}×{height}", max_pixels)
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                deep = np.asarray(im, dtype=np.uint16)
                arr = deep.astype(np.float32) / 65535.0
            elif mode == "I":
                raw = np.asarray(im, dtype=np.int64)
                scale = 65535.0 if raw.max(initial=0) > 255 else 255.0
                arr = np.clip(raw.astype(np.float32) / scale, 0.0, 1.0)
                if scale > 255.0:
                    deep = np.clip(raw, 0, 65535).astype(np.uint16)
            elif mode == "F":
                arr = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
            elif _is_gray(im):  # also RGB files whose channels are equal (common for X-rays)
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except ImageLoadError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses in open(), before our check
        limit = (
            f"the limit of {max_pixels:,} pixels" if max_pixels is not None else "Pillow's limit"
        )
        raise ImageTooLargeError(f"{name}: {exc}; above {limit}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: corrupt or unreadable {fmt.upper()} ({exc})") from None
    return arr, deep


def _is_gray(im: Image.Image) -> bool:
    if im.mode in ("1", "L", "LA"):
        return True
    rgb = np.asarray(im.convert("RGB"))
    return bool(
        np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
    )


def load_image(
    source: str | Path | bytes,
    filename: str | None = None,
    frame: int | None = None,
    *,
    max_pixels: int | None = None,
) -> LoadedImage:
    """Decode ``source`` (a path or the file's bytes) into a :class:`LoadedImage`.

    DICOM goes through modality LUT → VOI LUT or default window → MONOCHROME1 inversion.
    Multi-frame DICOM: ``frame=None`` takes the middle frame and records
    ``{"NumberOfFrames": n, "frame": i}`` in ``meta``; ``frame=i`` selects frame i.
    ``max_pixels`` caps the pixel count declared in the header (DICOM: rows × columns ×
    frames), checked before any pixel is decoded; :class:`ImageTooLargeError` names the limit.
    Raises :class:`ImageLoadError` naming the file for anything it cannot decode.
    """
    if isinstance(source, bytes | bytearray):
        data, name = bytes(source), filename or "<bytes>"
    else:
        path = Path(source)
        name = filename or str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ImageLoadError(f"{name}: file not found") from None
        except OSError as exc:
            raise ImageLoadError(f"{name}: cannot read file ({exc.strerror})") from None
    if not data:
        raise ImageLoadError(f"{name}: file is empty")
    fmt = sniff_format(data)
    if fmt == "dicom":
        fields = decode_dicom(data, name, frame, max_pixels=max_pixels)
        arr = fields.pop("array")
    elif fmt in ("png", "jpeg"):
        if frame not in (None, 0):
            raise ImageLoadError(f"{name}: frame {frame} requested but {fmt} has a single frame")
        arr, deep = _decode_raster(data, name, fmt, max_pixels)
        fields = {"window_center": None, "window_width": None, "modality": "OT", "meta": {}}
        if deep is not None:
            fields["source"] = DisplaySource(
                values=compact_values(deep),
                window=robust_window(deep),
                window_source="percentile",
                invert=False,
                units="",
            )
        h, w = arr.shape[:2]
        fields["meta"] = {"Rows": h, "Columns": w, "channels": 1 if arr.ndim == 2 else 3}
    else:
        raise ImageLoadError(
            f"{name}: unsupported image format (expected DICOM with a DICM preamble, PNG or JPEG)"
        )
    arr = np.ascontiguousarray(np.clip(arr, 0.0, 1.0), dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3) or min(arr.shape[:2]) < 1:
        raise ImageLoadError(f"{name}: unexpected pixel array shape {arr.shape}")
    display = np.round(arr * 255.0).astype(np.uint8)
    return LoadedImage(array=arr, display=display, source_format=fmt, **fields)
