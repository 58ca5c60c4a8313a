"""How well each map agrees with the region a rater marked: the reader-grounded endpoint.

A rater's localisation answer is a shape on the plain image in normalised coordinates (x to the
right, y down, both 0..1 of the image's width and height), so it can be drawn at any map's
resolution without knowing the display size. Three standard metrics, each per (rater, case, arm):

* **energy inside**: the share of the map's (absolute) mass that falls in the region. A map
  spread uniformly scores the region's area fraction, which is reported beside it as chance.
* **pointing game**: 1 when the map's maximum lies in the region (ties: any tied maximum), else
  0; undefined for a constant map.
* **IoU of the top-k %**: the map's k % highest pixels taken as its region, against the rater's.

Arms are then compared with the same paired tests as the scores (`paired.paired_comparison`),
one rater × case difference per trial. Pure numpy/pandas; nothing here touches the app.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.stats.frames import clean
from app.stats.paired import paired_comparison

METRICS: tuple[str, ...] = ("energy_inside", "pointing_hit", "iou_top_k")
DEFAULT_TOP_PERCENT = 10.0


def _points_in_polygon(xs: np.ndarray, ys: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over pixels (a loop over the polygon's edges only)."""
    inside = np.zeros(xs.shape, dtype=bool)
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if y1 == y2:
            continue
        crosses = (y1 > ys) != (y2 > ys)
        x_at = x1 + (ys - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (xs < x_at)
    return inside


def region_mask(geometry: Mapping[str, Any], height: int, width: int) -> np.ndarray:
    """The shape rasterised at `height` × `width` (pixel centres), never empty.

    A region smaller than one pixel of a coarse map still marks the pixel under its centre,
    so every answer yields a defined metric.
    """
    ys, xs = np.mgrid[0:height, 0:width].astype(float)
    xs = (xs + 0.5) / width
    ys = (ys + 0.5) / height
    shape = geometry["shape"]
    if shape == "box":
        x0, y0, x1, y1 = (float(geometry[k]) for k in ("x0", "y0", "x1", "y1"))
        mask = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    elif shape == "ellipse":
        cx, cy, rx, ry = (float(geometry[k]) for k in ("cx", "cy", "rx", "ry"))
        mask = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
        centre = (cx, cy)
    elif shape == "polygon":
        poly = np.asarray(geometry["points"], dtype=float)
        mask = _points_in_polygon(xs, ys, poly)
        centre = (float(poly[:, 0].mean()), float(poly[:, 1].mean()))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    if not mask.any():
        row = min(height - 1, max(0, int(centre[1] * height)))
        col = min(width - 1, max(0, int(centre[0] * width)))
        mask[row, col] = True
    return mask


def localisation_metrics(
    saliency: np.ndarray, mask: np.ndarray, *, top_percent: float = DEFAULT_TOP_PERCENT
) -> dict[str, Any]:
    """Energy inside, pointing game and top-k % IoU of one map against one region mask."""
    values = np.abs(np.asarray(saliency, dtype=float))
    if values.ndim != 2 or values.shape != mask.shape:
        raise ValueError("map and mask must be 2-D arrays of the same shape")
    values = np.where(np.isfinite(values), values, 0.0)
    total = float(values.sum())
    area = float(mask.mean())
    energy = float(values[mask].sum() / total) if total > 0 else None
    peak = float(values.max())
    constant = peak == float(values.min())
    pointing = None if constant else int(bool(mask[values == peak].any()))
    k = max(1, round(values.size * top_percent / 100.0))
    flat_top = np.zeros(values.size, dtype=bool)
    flat_top[np.argsort(values, axis=None, kind="stable")[-k:]] = True
    top = flat_top.reshape(values.shape)
    union = int((top | mask).sum())
    iou = float((top & mask).sum() / union) if union else None
    return clean(  # type: ignore[no-any-return]
        {
            "energy_inside": energy,
            "area_fraction": area,
            "pointing_hit": pointing,
            "iou_top_k": iou,
            "top_percent": top_percent,
        }
    )


def compare_arms(metrics: pd.DataFrame, arms: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-arm means and paired arm comparisons of each localisation metric.

    `metrics` has one row per rater × case × arm (first readings) with columns rater, case,
    arm and the METRICS; a missing value (a constant map has no pointing-game result) drops
    that pair from that metric only. Comparisons are every pair of arms in the order given
    (difference = second − first), with the paired tests used for the scores.
    """
    if metrics.empty:
        return {"n_answers": 0, "per_arm": [], "comparisons": []}
    frame = metrics.copy()
    for col in ("rater", "case", "arm"):
        frame[col] = frame[col].astype(str)
    order = [str(a) for a in arms] if arms is not None else sorted(frame["arm"].unique())
    per_arm = []
    for arm in order:
        rows = frame[frame["arm"] == arm]
        entry: dict[str, Any] = {"arm": arm, "n": len(rows)}
        for metric in (*METRICS, "area_fraction"):
            if metric in rows.columns:
                col = pd.to_numeric(rows[metric], errors="coerce").dropna()
                entry[metric] = float(col.mean()) if len(col) else None
        per_arm.append(entry)
    comparisons = []
    for arm_a, arm_b in itertools.combinations(order, 2):
        for metric in METRICS:
            if metric not in frame.columns:
                continue
            scores = frame[["rater", "case", "arm", metric]].rename(columns={metric: "score"})
            scores = scores[pd.to_numeric(scores["score"], errors="coerce").notna()]
            scores = scores.assign(score=scores["score"].astype(float))
            comparisons.append(
                {"metric": metric, **paired_comparison(scores, arm_a, arm_b, n_boot=500)}
            )
    return clean(  # type: ignore[no-any-return]
        {
            "n_answers": int(frame[["rater", "case"]].drop_duplicates().shape[0]),
            "per_arm": per_arm,
            "comparisons": comparisons,
        }
    )
