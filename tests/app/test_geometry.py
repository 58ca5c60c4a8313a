"""The localisation answer's geometry rules (app.services.reading.geometry): what is refused."""

from __future__ import annotations

import pytest

from app.errors import Invalid
from app.services.reading.geometry import MAX_POLYGON_POINTS, validate_region


def test_valid_regions_are_normalised() -> None:
    assert validate_region({"shape": "box", "x0": 0, "y0": 0.1, "x1": 1, "y1": 0.5}) == {
        "shape": "box",
        "x0": 0.0,
        "y0": 0.1,
        "x1": 1.0,
        "y1": 0.5,
    }
    assert (
        validate_region({"shape": "ellipse", "cx": 0.5, "cy": 0.5, "rx": 0.5, "ry": 0.1})["rx"]
        == 0.5
    )
    concave = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.5], [0.5, 0.5], [0.5, 0.9], [0.1, 0.9]]
    assert validate_region({"shape": "polygon", "points": concave})["points"] == concave


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ("box", "object"),
        ({"shape": "star"}, "shape must be"),
        ({"shape": "box", "x0": 0, "y0": 0, "x1": 1.2, "y1": 1}, "outside the image"),
        ({"shape": "box", "x0": -0.1, "y0": 0, "x1": 1, "y1": 1}, "outside the image"),
        ({"shape": "box", "x0": 0.5, "y0": 0, "x1": 0.2, "y1": 1}, "x0 < x1"),
        ({"shape": "box", "x0": 0, "y0": 0, "x1": 1, "y1": "1"}, "finite number"),
        ({"shape": "box", "x0": 0, "y0": 0, "x1": 1, "y1": float("nan")}, "finite number"),
        ({"shape": "box", "x0": 0, "y0": 0, "x1": 1, "y1": 1, "arm": 3}, "Unknown region"),
        ({"shape": "ellipse", "cx": 0.9, "cy": 0.5, "rx": 0.2, "ry": 0.1}, "outside the image"),
        ({"shape": "ellipse", "cx": 0.5, "cy": 0.5, "rx": 0, "ry": 0.1}, "positive radii"),
        ({"shape": "polygon", "points": [[0, 0], [1, 1]]}, "at least three"),
        ({"shape": "polygon", "points": [[0, 0], [1, 0], [2, 1]]}, "outside the image"),
        ({"shape": "polygon", "points": [[0, 0], [0.5, 0.5], [1, 1]]}, "no area"),
        ({"shape": "polygon", "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}, "crosses itself"),
        ({"shape": "polygon", "points": [[0, 0], [1, 0], [0.5]]}, "pair"),
        ({"shape": "polygon", "points": "0,0 1,0 1,1"}, "list"),
    ],
)
def test_bad_regions_are_refused_with_a_clear_422(region: object, message: str) -> None:
    with pytest.raises(Invalid, match=message) as info:
        validate_region(region)
    assert info.value.status_code == 422


def test_too_many_points_are_refused() -> None:
    import math

    n = MAX_POLYGON_POINTS + 1
    circle = [
        [0.5 + 0.4 * math.cos(2 * math.pi * i / n), 0.5 + 0.4 * math.sin(2 * math.pi * i / n)]
        for i in range(n)
    ]
    with pytest.raises(Invalid, match="at most"):
        validate_region({"shape": "polygon", "points": circle})
    assert len(validate_region({"shape": "polygon", "points": circle[:-1]})["points"]) == n - 1
