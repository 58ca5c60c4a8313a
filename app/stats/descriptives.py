"""Per-arm score distributions: what a paper's Table 1 of ratings shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.stats.frames import clean, primary


def arm_descriptives(
    scores: pd.DataFrame, arms: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """n, mean, SD (n-1), median, quartiles and IQR per arm, on first readings.

    Quartiles use numpy's default (linear, R type 7) so they match R's `quantile` and
    `summary`, which is what reviewers will recompute them with.
    """
    rows = primary(scores)
    order = list(arms) if arms is not None else sorted(rows["arm"].unique())
    out: list[dict[str, Any]] = []
    for arm in order:
        values = rows.loc[rows["arm"] == arm, "score"].to_numpy(dtype=float)
        n = int(values.size)
        if n == 0:
            out.append(
                {
                    "arm": arm,
                    "n": 0,
                    "mean": None,
                    "sd": None,
                    "median": None,
                    "q1": None,
                    "q3": None,
                    "iqr": None,
                    "min": None,
                    "max": None,
                }
            )
            continue
        q1, median, q3 = np.percentile(values, [25, 50, 75])
        out.append(
            {
                "arm": arm,
                "n": n,
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if n > 1 else None,
                "median": float(median),
                "q1": float(q1),
                "q3": float(q3),
                "iqr": float(q3 - q1),
                "min": float(values.min()),
                "max": float(values.max()),
            }
        )
    return clean(out)  # type: ignore[no-any-return]


def likert_distribution(
    scores: pd.DataFrame, levels: Sequence[int], arms: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Counts and proportions of each Likert level per arm (the diverging bar plot's data).

    Every level appears even when nobody used it, so the plot and table keep the full scale.
    """
    rows = primary(scores)
    order = list(arms) if arms is not None else sorted(rows["arm"].unique())
    out: list[dict[str, Any]] = []
    for arm in order:
        values = rows.loc[rows["arm"] == arm, "score"]
        counts = values.value_counts()
        total = int(values.size)
        level_counts = {str(lv): int(counts.get(lv, 0)) for lv in levels}
        out.append(
            {
                "arm": arm,
                "n": total,
                "counts": level_counts,
                "proportions": {k: (v / total if total else None) for k, v in level_counts.items()},
            }
        )
    return clean(out)  # type: ignore[no-any-return]
