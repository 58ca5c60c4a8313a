"""The localisation answer's geometry: the one place that decides what a valid region is.

A rater marks "the region that supports the finding" on the plain image as a box, an ellipse
or a freehand polygon, in normalised image coordinates (x right, y down, 0..1 of width and
height), so the answer is independent of the screen and can be drawn at any map's resolution
(app.stats.localisation). Anything that could not be scored honestly is refused with a clear
422 before anything is stored: shapes off the image, degenerate shapes, self-intersecting or
oversized polygons, unknown fields.
"""

from __future__ import annotations

import math
from typing import Any

from app.errors import Invalid

SHAPES = ("box", "ellipse", "polygon")
MAX_POLYGON_POINTS = 200
MIN_EXTENT = 1e-3  # a region thinner than 0.1 % of the image is a slip of the mouse
_FIELDS = {
    "box": {"shape", "x0", "y0", "x1", "y1"},
    "ellipse": {"shape", "cx", "cy", "rx", "ry"},
    "polygon": {"shape", "points"},
}
_EPS = 1e-9


def _number(raw: dict[str, Any], key: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Invalid(f"Region field '{key}' must be a finite number.")
    return float(value)


def _on_image(*values: float) -> None:
    if any(v < -_EPS or v > 1 + _EPS for v in values):
        raise Invalid("The region lies (partly) outside the image.")


def _orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: tuple[float, float], b: tuple[float, float], p: tuple[float, float]) -> bool:
    return (
        min(a[0], b[0]) - _EPS <= p[0] <= max(a[0], b[0]) + _EPS
        and min(a[1], b[1]) - _EPS <= p[1] <= max(a[1], b[1]) + _EPS
    )


def segments_intersect(
    p1: tuple[float, float],
    p2: tuple[float, float],
    q1: tuple[float, float],
    q2: tuple[float, float],
) -> bool:
    """Do the closed segments p1p2 and q1q2 share a point (touching and overlapping count)?"""
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    if ((d1 > _EPS and d2 < -_EPS) or (d1 < -_EPS and d2 > _EPS)) and (
        (d3 > _EPS and d4 < -_EPS) or (d3 < -_EPS and d4 > _EPS)
    ):
        return True
    return (
        (abs(d1) <= _EPS and _on_segment(q1, q2, p1))
        or (abs(d2) <= _EPS and _on_segment(q1, q2, p2))
        or (abs(d3) <= _EPS and _on_segment(p1, p2, q1))
        or (abs(d4) <= _EPS and _on_segment(p1, p2, q2))
    )


def is_simple_polygon(points: list[tuple[float, float]]) -> bool:
    """True when no two non-adjacent edges of the closed polygon meet (O(n²), n ≤ 200)."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):  # neighbours share a vertex
                continue
            if segments_intersect(*edges[i], *edges[j]):
                return False
    return True


def validate_region(raw: object) -> dict[str, Any]:
    """The region as stored (only the shape's own fields, as floats), or Invalid (422)."""
    if not isinstance(raw, dict):
        raise Invalid("A region must be an object with a 'shape'.")
    shape = raw.get("shape")
    if shape not in SHAPES:
        raise Invalid(f"Region shape must be one of: {', '.join(SHAPES)}.")
    extra = set(raw) - _FIELDS[shape]
    if extra:
        raise Invalid(f"Unknown region field(s) for a {shape}: {', '.join(sorted(extra))}.")
    if shape == "box":
        x0, y0, x1, y1 = (_number(raw, k) for k in ("x0", "y0", "x1", "y1"))
        _on_image(x0, y0, x1, y1)
        if x1 - x0 < MIN_EXTENT or y1 - y0 < MIN_EXTENT:
            raise Invalid("A box needs x0 < x1 and y0 < y1 (a region with an area).")
        return {"shape": "box", "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    if shape == "ellipse":
        cx, cy, rx, ry = (_number(raw, k) for k in ("cx", "cy", "rx", "ry"))
        if rx < MIN_EXTENT or ry < MIN_EXTENT:
            raise Invalid("An ellipse needs positive radii.")
        _on_image(cx - rx, cx + rx, cy - ry, cy + ry)
        return {"shape": "ellipse", "cx": cx, "cy": cy, "rx": rx, "ry": ry}
    points_raw = raw.get("points")
    if not isinstance(points_raw, list):
        raise Invalid("A polygon needs a list of [x, y] points.")
    if len(points_raw) > MAX_POLYGON_POINTS:
        raise Invalid(f"A polygon may have at most {MAX_POLYGON_POINTS} points.")
    if len(points_raw) < 3:
        raise Invalid("A polygon needs at least three points.")
    points: list[tuple[float, float]] = []
    for p in points_raw:
        if not isinstance(p, list) or len(p) != 2:
            raise Invalid("Each polygon point must be a pair [x, y].")
        x, y = _number({"x": p[0]}, "x"), _number({"y": p[1]}, "y")
        _on_image(x, y)
        points.append((x, y))
    if not is_simple_polygon(points):
        raise Invalid("The polygon crosses itself; draw its outline without crossings.")
    area = 0.5 * abs(
        sum(
            points[i][0] * points[(i + 1) % len(points)][1]
            - points[(i + 1) % len(points)][0] * points[i][1]
            for i in range(len(points))
        )
    )
    if area < MIN_EXTENT**2:
        raise Invalid("The polygon encloses no area.")
    return {"shape": "polygon", "points": [[x, y] for x, y in points]}
