"""The input frames every statistic takes, and the small helpers that shape them.

Tidy long scores (one row per rater x case x arm x item of one trial):
    rater (str), case (str), arm (str), item (str), score (int), side ('left'|'right'),
    position (int), is_repeat (bool), trial (int)
Preferences (one row per trial):
    rater, case, left_arm, right_arm, preference ('left'|'right'|'none'), is_repeat

Repeats exist only to measure intra-rater reliability, so every primary analysis drops them
(`primary`) and `agreement.intra_rater_agreement` is the only consumer of the repeat rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SCORE_COLUMNS: tuple[str, ...] = (
    "rater",
    "case",
    "arm",
    "item",
    "score",
    "side",
    "position",
    "is_repeat",
    "trial",
)
PREFERENCE_COLUMNS: tuple[str, ...] = (
    "rater",
    "case",
    "left_arm",
    "right_arm",
    "preference",
    "is_repeat",
)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns: {', '.join(missing)}")


def validate_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Check the columns and normalise dtypes, so ids compare equal whatever their source."""
    _require(scores, ("rater", "case", "arm", "item", "score"), "scores")
    out = scores.copy()
    for col in ("rater", "case", "arm", "item"):
        out[col] = out[col].astype(str)
    out = out[out["score"].notna()]
    out["score"] = out["score"].astype(int)
    if "is_repeat" not in out.columns:
        out["is_repeat"] = False
    out["is_repeat"] = out["is_repeat"].astype(bool)
    return out


def validate_preferences(prefs: pd.DataFrame) -> pd.DataFrame:
    """Same as `validate_scores` for the one-row-per-trial preference frame."""
    _require(prefs, ("rater", "case", "left_arm", "right_arm", "preference"), "preferences")
    out = prefs.copy()
    for col in ("rater", "case", "left_arm", "right_arm"):
        out[col] = out[col].astype(str)
    out = out[out["preference"].isin(["left", "right", "none"])]
    if "is_repeat" not in out.columns:
        out["is_repeat"] = False
    out["is_repeat"] = out["is_repeat"].astype(bool)
    return out


def primary(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of first readings only: repeats would count a rater's opinion twice."""
    if "is_repeat" not in frame.columns:
        return frame
    return frame[~frame["is_repeat"].astype(bool)]


def paired_differences(scores: pd.DataFrame, arm_a: str, arm_b: str) -> pd.DataFrame:
    """Per-(rater, case) score of `arm_b` minus `arm_a` on first readings.

    Returns columns rater, case, a, b, diff. A rater x case without both arms is dropped (it
    carries no paired information); duplicates, which the design never makes, are averaged.
    """
    rows = primary(scores)
    rows = rows[rows["arm"].isin([arm_a, arm_b])]
    wide = rows.pivot_table(
        index=["rater", "case"], columns="arm", values="score", aggfunc="mean", observed=True
    )
    if arm_a not in wide.columns or arm_b not in wide.columns:
        return pd.DataFrame(columns=["rater", "case", "a", "b", "diff"])
    wide = wide[[arm_a, arm_b]].dropna().reset_index()
    wide.columns = pd.Index(["rater", "case", "a", "b"])
    wide["diff"] = wide["b"] - wide["a"]
    return wide


def clean_number(value: Any) -> Any:
    """NaN/inf become None and numpy scalars become Python ones, so results are valid JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def clean(obj: Any) -> Any:
    """Recursively apply `clean_number` to dicts, lists and tuples."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return clean_number(obj)


def preferences_from_tidy(long: pd.DataFrame) -> pd.DataFrame:
    """Rebuild the one-row-per-trial preference frame from the tidy long export.

    Lets an analysis run from the exported CSV alone (the round trip the paper's reviewers
    can repeat): each trial's left/right arms come from its rows' `side` column.
    """
    rows = long[long["preference"].notna()]
    if rows.empty:
        return pd.DataFrame(columns=list(PREFERENCE_COLUMNS))
    rows = rows.drop_duplicates(subset=["trial", "side"])
    sides = rows.pivot(index="trial", columns="side", values="arm")
    first = rows.drop_duplicates(subset=["trial"]).set_index("trial")
    out = pd.DataFrame(
        {
            "rater": first["rater"].astype(str),
            "case": first["case"].astype(str),
            "left_arm": sides["left"].astype(str),
            "right_arm": sides["right"].astype(str),
            "preference": first["preference"].astype(str),
            "is_repeat": first["is_repeat"].astype(bool),
        }
    )
    return out.reset_index(drop=True)
