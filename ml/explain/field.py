"""The map field: every map of a study as a quantised scalar field of one fixed size and format.

Raters' browsers colour maps themselves (colormap, opacity, threshold), so what a study stores
and serves per map is the post-processed map, not a picture of it: a ``FIELD_SIZE`` ×
``FIELD_SIZE`` uint8 array (level = ⌊255 · value + ½⌋) covering the image's full extent,
written as ``.npy``. Two reasons for a fixed size rather than the image's own:

* **blinding** — every map of a study has the same byte length and the same header (numpy
  writes an identical 128-byte header for the same shape and dtype, and the payload is
  uncompressed), so nothing about a map's file depends on which model produced it;
* **speed** — one batched ``grid_sample`` resamples a whole batch straight from the model's
  letterboxed square onto the field (no per-image up-sampling to full resolution, no PNG
  encoding), which keeps the pipeline near the raw gradient's speed.

A field cell (i, j) samples the map at the centre of the original image's cell
((i + ½)·H/F, (j + ½)·W/F), so the browser stretches the field over the image exactly as the
server does when it renders a PNG from it (:func:`render_field_png`, with the same 256-entry
colormap table :func:`colormap_table`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ml.data import Letterbox
from ml.explain.render import _lut, render_heatmap_png, resize_map

__all__ = [
    "FIELD_SIZE",
    "colormap_table",
    "field_npy",
    "field_to_map",
    "load_field",
    "map_fields",
    "render_field_png",
]

FIELD_SIZE = 256  # cells per side: above every model input radsal trains (≤ 224 px)


def map_fields(
    maps01: torch.Tensor, boxes: Sequence[Letterbox], size: int = FIELD_SIZE
) -> np.ndarray:
    """N×S×S post-processed maps (model input square) → N×size×size uint8 fields.

    Bilinear sampling of each map at the centres of a size×size grid over the image's own
    extent inside its letterbox (padding excluded), clipped to [0, 1] and rounded to 1/255.
    """
    maps = maps01.detach().to(torch.float32).cpu()
    if maps.ndim != 3 or maps.shape[0] != len(boxes):
        raise ValueError(f"expected N×S×S maps for {len(boxes)} boxes, got {tuple(maps.shape)}")
    if size < 2:
        raise ValueError(f"field size must be at least 2, got {size}")
    # Sample 255·v + ½ (bilinear interpolation commutes with an affine map, and values in
    # [0, 1] interpolate to values in [0, 1]), so truncation gives ⌊255·v + ½⌋ without a pass
    # over the large output: quantisation would otherwise cost more than the resampling.
    scaled = maps.clamp(0.0, 1.0).mul_(255.0).add_(0.5)[:, None]
    out = torch.empty(len(boxes), size, size, dtype=torch.uint8)
    plain = [i for i, b in enumerate(boxes) if b.orig_h == b.orig_w == b.side]
    padded = [i for i, b in enumerate(boxes) if not b.orig_h == b.orig_w == b.side]
    if plain:  # no letterbox padding: the field is a plain resize of the model's square
        up = F.interpolate(scaled[plain], size=(size, size), mode="bilinear", align_corners=False)
        out[plain] = up[:, 0].to(torch.uint8)
    if padded:
        grid = torch.stack([_grid(boxes[i], size) for i in padded])
        sampled = F.grid_sample(
            scaled[padded], grid, mode="bilinear", padding_mode="border", align_corners=False
        )
        out[padded] = sampled[:, 0].to(torch.uint8)
    return out.numpy()


@lru_cache(maxsize=64)
def _axis(pad: int, extent: int, side: int, size: int) -> torch.Tensor:
    """Normalised sampling positions (align_corners=False) of ``size`` cell centres spanning
    ``extent`` pixels from ``pad`` in a letterbox of ``side`` pixels."""
    cells = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    return (2.0 * (pad + cells * extent) / side - 1.0).to(torch.float32)


@lru_cache(maxsize=64)
def _grid(box: Letterbox, size: int) -> torch.Tensor:
    xs = _axis(box.pad_left, box.orig_w, box.side, size)
    ys = _axis(box.pad_top, box.orig_h, box.side, size)
    return torch.stack((xs.expand(size, size), ys[:, None].expand(size, size)), dim=-1).contiguous()


def field_npy(field: np.ndarray) -> bytes:
    """A field as ``.npy`` bytes: same shape → same length and same header, always."""
    arr = np.asarray(field)
    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise ValueError(f"a field is a 2-D uint8 array, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def load_field(data: bytes) -> np.ndarray:
    """Read :func:`field_npy` bytes back (refuses anything that is not a square uint8 field)."""
    arr = np.load(io.BytesIO(data), allow_pickle=False)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"not a radsal map field (square uint8), got {arr.dtype} {arr.shape}")
    return arr


def field_to_map(field: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """The field as a float map in [0, 1], optionally resized (bilinear) to (height, width)."""
    return resize_map(np.asarray(field, dtype=np.float32) / 255.0, size)


def render_field_png(
    field: np.ndarray, *, size: tuple[int, int] | None = None, colormap: str = "jet"
) -> bytes:
    """The field as an RGBA heatmap PNG (colour from the colormap table, alpha = level).

    At ``size=None`` each pixel is exactly ``colormap_table(colormap)[level]`` with alpha =
    level, which is what the browser draws for the same field at 1:1.
    """
    return render_heatmap_png(field_to_map(field, size), colormap=colormap)


def colormap_table(colormap: str) -> list[list[int]]:
    """The 256 RGB entries of ``colormap``: the one table the server and the browser use."""
    return [[int(c) for c in row] for row in _lut(colormap)]
