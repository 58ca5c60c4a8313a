"""Rendering: one code path turns every arm's map into identical-looking bytes.

Blinding depends on this: nothing about a rendered map (size, mode, PNG chunks, compression)
may depend on which model produced it. Heatmaps are RGBA PNGs whose alpha *is* the map value,
so the browser can overlay them on the display image with a CSS opacity slider; overlays are
composited RGB PNGs for previews and contact sheets. The colormap is a 256-entry lookup table
computed once per name; PNGs carry no metadata chunks and use one fixed compression level.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ml.explain.choices import COLORMAPS

__all__ = [
    "COLORMAPS",
    "PNG_COMPRESS_LEVEL",
    "colorize",
    "encode_png",
    "float16_npy",
    "load_raw_map",
    "raw_map_bytes",
    "render_heatmap_png",
    "render_heatmaps_png",
    "render_overlay_png",
    "resize_map",
    "save_raw_map",
]

# zlib level 1 (fastest): on noisy gradient maps the default 6 is ~3x slower for ~2 % smaller
# files. One level for every arm.
PNG_COMPRESS_LEVEL = 1


@cache
def _lut(name: str) -> np.ndarray:
    """256×3 uint8 table for ``name`` (matplotlib's definitions, sampled once)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; expected one of {COLORMAPS}")
    if name == "gray":
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp, ramp, ramp], axis=1)
    import matplotlib

    rgba = matplotlib.colormaps[name](np.linspace(0.0, 1.0, 256))
    lut = np.round(rgba[:, :3] * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@cache
def _rgba_lut(name: str) -> np.ndarray:
    """256 RGBA pixels packed as uint32 (native byte order): colour of level i, alpha i."""
    table = np.empty((256, 4), dtype=np.uint8)
    table[:, :3] = _lut(name)
    table[:, 3] = np.arange(256, dtype=np.uint8)
    packed = table.view(np.uint32).reshape(256)
    packed.setflags(write=False)
    return packed


def _as_map(map01: np.ndarray | torch.Tensor) -> np.ndarray:
    arr = map01.detach().cpu().numpy() if isinstance(map01, torch.Tensor) else np.asarray(map01)
    if arr.ndim != 2:
        raise ValueError(f"a map must be 2-D (H×W), got shape {arr.shape}")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError("map contains NaN or inf; post-process it first")
    return arr


def resize_map(map01: np.ndarray | torch.Tensor, size: tuple[int, int] | None) -> np.ndarray:
    """Bilinear resize of a float map to ``size`` = (height, width), clipped to [0, 1]."""
    arr = _as_map(map01)
    if size is not None and tuple(size) != arr.shape:
        h, w = int(size[0]), int(size[1])
        if h < 1 or w < 1:
            raise ValueError(f"size must be positive (height, width), got {size}")
        arr = np.asarray(Image.fromarray(arr, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    return np.clip(arr, 0.0, 1.0)


def _quantize(arr: np.ndarray) -> np.ndarray:
    return np.rint(arr * 255.0).astype(np.uint8)


def colorize(map01: np.ndarray | torch.Tensor, colormap: str = "jet") -> np.ndarray:
    """H×W map in [0, 1] → H×W×3 uint8 through the colormap's lookup table."""
    return _lut(colormap)[_quantize(np.clip(_as_map(map01), 0.0, 1.0))]


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE = {3: 2, 4: 6}  # channels → PNG colour type (RGB, RGBA)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(arr: np.ndarray) -> bytes:
    """H×W×3 or H×W×4 uint8 → PNG bytes with exactly IHDR, IDAT and IEND.

    Written by hand rather than through Pillow: filter type 0 on every row and zlib level
    ``PNG_COMPRESS_LEVEL`` is ~2.5× faster than Pillow's adaptive filtering and gives smaller
    files for saliency maps, and the byte layout is fixed by this function alone.
    """
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in _COLOR_TYPE:
        raise ValueError(f"expected H×W×3 or H×W×4 uint8, got {arr.dtype} {arr.shape}")
    h, w, c = arr.shape
    rows = np.empty((h, 1 + w * c), dtype=np.uint8)
    rows[:, 0] = 0  # filter: none
    rows[:, 1:] = arr.reshape(h, w * c)
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[c], 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_COMPRESS_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def render_heatmap_png(
    map01: np.ndarray | torch.Tensor,
    *,
    size: tuple[int, int] | None = None,
    colormap: str = "jet",
) -> bytes:
    """The map alone as an RGBA PNG: colour from the colormap, alpha = map value.

    ``size`` = (height, width) of the display image. The bytes depend only on the map values,
    ``size`` and ``colormap``.
    """
    q = _quantize(resize_map(map01, size))
    # One 4-byte gather per pixel from the packed RGBA table (3x faster than RGB + alpha).
    rgba = _rgba_lut(colormap)[q].view(np.uint8).reshape(*q.shape, 4)
    return encode_png(rgba)


def render_heatmaps_png(
    maps01: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
    *,
    size: tuple[int, int] | Sequence[tuple[int, int]] | None = None,
    colormap: str = "jet",
    workers: int | None = None,
) -> list[bytes]:
    """:func:`render_heatmap_png` for many maps, byte-identical, encoded in parallel.

    ``maps01`` is an N×H×W array/tensor or a list of H×W maps; ``size`` is one (height, width)
    for all or one per map (display images differ in size). zlib releases the GIL, so a small
    thread pool overlaps the per-map compression that dominates rendering; ``workers``
    defaults to the CPU count (at most 8).
    """
    maps = list(maps01)
    if size is None or (len(size) == 2 and isinstance(size[0], int | np.integer)):
        sizes: list[Any] = [size] * len(maps)
    else:
        sizes = list(size)
        if len(sizes) != len(maps):
            raise ValueError(f"got {len(sizes)} sizes for {len(maps)} maps")
    _lut(colormap)  # validate once, before any thread starts
    n_workers = workers or min(8, os.cpu_count() or 1)

    def one(k: int) -> bytes:
        return render_heatmap_png(maps[k], size=sizes[k], colormap=colormap)

    if n_workers <= 1 or len(maps) <= 1:
        return [one(k) for k in range(len(maps))]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(one, range(len(maps))))


def render_overlay_png(
    display: np.ndarray,
    map01: np.ndarray | torch.Tensor,
    *,
    colormap: str = "jet",
    opacity: float = 0.5,
) -> bytes:
    """The map composited on the 8-bit display image (RGB PNG), exactly as the viewer shows it.

    Per-pixel alpha = ``opacity`` × map value, matching the RGBA heatmap under a CSS opacity.
    """
    return encode_png(overlay_array(display, map01, colormap=colormap, opacity=opacity))


def overlay_array(
    display: np.ndarray,
    map01: np.ndarray | torch.Tensor,
    *,
    colormap: str = "jet",
    opacity: float = 0.5,
) -> np.ndarray:
    """H×W×3 uint8 composite (the pixels of :func:`render_overlay_png`)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must lie in [0, 1], got {opacity}")
    disp = np.asarray(display)
    if disp.dtype != np.uint8:
        raise ValueError(f"display must be 8-bit (uint8), got {disp.dtype}")
    if disp.ndim == 2:
        disp = np.repeat(disp[..., None], 3, axis=2)
    elif disp.ndim != 3 or disp.shape[2] not in (3, 4):
        raise ValueError(f"display must be H×W or H×W×3, got shape {disp.shape}")
    disp = disp[..., :3].astype(np.float32)
    q = _quantize(resize_map(map01, disp.shape[:2]))
    color = _lut(colormap)[q].astype(np.float32)
    alpha = (opacity * q.astype(np.float32) / 255.0)[..., None]
    return np.rint(disp * (1.0 - alpha) + color * alpha).astype(np.uint8)


def float16_npy(array: np.ndarray | torch.Tensor) -> bytes:
    """``array`` as float16 ``.npy`` bytes: radsal's one writer of stored float arrays.

    Raw maps and the app's stored model inputs both go through here, so "what a stored float
    array looks like" (dtype, header, no pickle) is decided in one place.
    """
    arr = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    buf = io.BytesIO()
    np.save(buf, arr.astype(np.float16), allow_pickle=False)
    return buf.getvalue()


def raw_map_bytes(map_: np.ndarray | torch.Tensor) -> bytes:
    """A raw (un-post-processed) H×W map as float16 ``.npy`` bytes (half of float32)."""
    arr = map_.detach().cpu().numpy() if isinstance(map_, torch.Tensor) else np.asarray(map_)
    if arr.ndim != 2:
        raise ValueError(f"a raw map must be 2-D (H×W), got shape {arr.shape}")
    return float16_npy(arr)


def save_raw_map(path: str | Path, map_: np.ndarray | torch.Tensor) -> Path:
    """Store a raw map at ``path`` (the bytes of :func:`raw_map_bytes`)."""
    data = raw_map_bytes(map_)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def load_raw_map(path: str | Path) -> np.ndarray:
    """Read a map written by :func:`save_raw_map`; returned as float32 (lossless upcast)."""
    arr = np.load(Path(path), allow_pickle=False)
    if arr.dtype != np.float16 or arr.ndim != 2:
        raise ValueError(f"{path}: not a radsal raw map (float16 H×W), got {arr.dtype} {arr.shape}")
    return arr.astype(np.float32)
