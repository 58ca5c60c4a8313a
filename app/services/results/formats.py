"""Pure builders for each export format, from a `StudySnapshot` (no database access here)."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from app.config import PROJECT_ROOT
from app.services.study.spec import saliency_settings
from app.stats.clmm_r import render_script

if TYPE_CHECKING:
    from app.services.results.snapshot import StudySnapshot

EXPORT_FORMAT_VERSION = "radsal-export/1"
R_TEMPLATE = PROJECT_ROOT / "r" / "clmm.R"

LONG_COLUMNS = [
    "study_id", "study_name", "seed", "rater", "case", "image_file", "image_sha256", "trial",
    "position", "is_repeat", "repeat_of", "item", "arm", "arm_id", "arm_position", "side",
    "score", "preference", "preferred", "comment", "checkpoint_name", "checkpoint_sha256",
    "bn_route", "saliency_method", "saliency_target", "active_ms", "total_ms", "revision",
    "first_shown_at", "rated_at", "updated_at", "phase", "trial_kind", "analysed", "flag",
    "confidence", "blinding_guess",
]  # fmt: skip


# A spreadsheet runs a cell that starts with one of these as a formula (`=HYPERLINK(…)`,
# `+cmd|…`, DDE): a rater's comment must never execute on the researcher's machine.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(value: Any) -> Any:
    """Text that a spreadsheet would evaluate, made inert with a leading apostrophe (OWASP).

    Only text cells change; numbers (a negative score, a bias of -0.5) stay numbers. The JSON
    export keeps the exact text: this is a CSV-only defence.
    """
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV with a header, no index, ISO timestamps already as text, formulas inert."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    safe.columns = [neutralise_formula(str(c)) for c in safe.columns]
    buf = io.StringIO()
    safe.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue().encode("utf-8")


def _score(scores: dict[str, Any], item: str, side: str, fallback: Any) -> int | None:
    pair = scores.get(item)
    if isinstance(pair, dict) and pair.get(side) is not None:
        return int(pair[side])
    if fallback is not None and not (isinstance(fallback, float) and math.isnan(fallback)):
        return int(fallback)
    return None


def _primary_score(trial: Any, side: str) -> Any:
    """The legacy left/right_score columns: the primary item when `scores` lacks it."""
    return trial.left_score if side == "left" else trial.right_score


def _side_of(trial: Any, arm_id: int) -> str | None:
    if arm_id == trial.left_arm_id:
        return "left"
    return "right" if arm_id == trial.right_arm_id else None


def _preferred_arm_id(trial: Any) -> int | None:
    if trial.preference == "left":
        return int(trial.left_arm_id)
    if trial.preference == "right":
        return int(trial.right_arm_id)
    return None


def _label_columns(snap: StudySnapshot) -> list[str]:
    names: list[str] = []
    for case in snap.cases:
        names.extend(k for k in case["labels"] if k not in names)
    return names


def _item_scores(rated: pd.DataFrame, item: str, side: str, primary: bool) -> list[int | None]:
    fallback = rated[f"{side}_score"] if primary else [None] * len(rated)
    return [_score(s, item, side, fb) for s, fb in zip(rated["scores"], fallback, strict=True)]


def tidy_long(snap: StudySnapshot) -> pd.DataFrame:
    """One row per rated trial x Likert item x arm, with everything a reviewer may ask for.

    A missing optional score is an empty cell (the row stays, so the trial's preference and
    times are not lost). Image labels become `label_<class>` columns. Built column-wise: the
    6-rater x 2,000-case study has 24,000 rows and the analysis builds this frame too.
    """
    rated = snap.rated.reset_index(drop=True)
    label_names = _label_columns(snap)
    likert = [i["key"] for i in snap.likert_items]
    columns = LONG_COLUMNS + [f"label_{n}" for n in label_names]
    if rated.empty or not likert:
        return pd.DataFrame(columns=columns)
    arms = pd.DataFrame(
        [
            {"arm_id": a.id, "arm": a.label, "arm_position": a.position,
             "checkpoint_name": a.checkpoint_name, "checkpoint_sha256": a.checkpoint_sha256,
             "bn_route": a.bn_route, "saliency_method": a.method}
            for a in snap.arms
        ]
    ).set_index("arm_id")  # fmt: skip
    cases = pd.DataFrame(
        [
            {"case": c["case"], "image_file": c["file"], "image_sha256": c["sha256"],
             **{f"label_{n}": c["labels"].get(n) for n in label_names}}
            for c in snap.cases
        ]
    ).set_index("case")  # fmt: skip
    pref = rated["preference"]
    confidence = _kind_answers(snap, rated, "confidence", "value")
    guess = _kind_answers(snap, rated, "blinding", "guess")
    preferred_id = np.where(
        pref == "left", rated["left_arm_id"], np.where(pref == "right", rated["right_arm_id"], -1)
    )
    parts = []
    for order, item in enumerate(likert):
        for side in ("left", "right"):
            arm_id = rated[f"{side}_arm_id"].to_numpy()
            part = pd.DataFrame(
                {
                    "rater": rated["rater"],
                    "case": rated["case"],
                    "trial": rated["trial"],
                    "position": rated["position"],
                    "is_repeat": rated["is_repeat"].astype(bool),
                    "repeat_of": rated["repeat_of"],
                    "item": item,
                    "arm_id": arm_id,
                    "side": side,
                    "score": _item_scores(rated, item, side, order == 0),
                    "preference": pref,
                    "preferred": pd.Series(preferred_id == arm_id, dtype="boolean").where(
                        pref.notna().to_numpy(), pd.NA
                    ),
                    "comment": rated["comment"],
                    "active_ms": rated["active_ms"],
                    "total_ms": rated["total_ms"],
                    "revision": rated["revision"],
                    "first_shown_at": rated["first_shown_at"],
                    "rated_at": rated["rated_at"],
                    "updated_at": rated["updated_at"],
                    "phase": rated["phase"],
                    "trial_kind": rated["trial_kind"],
                    "analysed": rated["analysed"].astype(bool),
                    "flag": rated["flag"],
                    "confidence": confidence,
                    "blinding_guess": guess,
                    "_row": np.arange(len(rated)) * 2 * len(likert) + 2 * order + (side == "right"),
                }
            )
            parts.append(part)
    long = pd.concat(parts, ignore_index=True).sort_values("_row", kind="stable")
    long = _catch_arms(long, rated, arms)
    long = long.join(arms, on="arm_id").join(cases, on="case")
    long["study_id"] = snap.study["id"]
    long["study_name"] = snap.study["name"]
    long["seed"] = snap.study["seed"]
    long["saliency_target"] = saliency_settings(snap.study["saliency"]).target
    shown = long.pop("_shown_arm")
    long["arm"] = shown.where(shown.notna(), long["arm"])
    long = long[columns].reset_index(drop=True)
    for col in ("score", "repeat_of", "active_ms", "total_ms", "revision", "confidence"):
        long[col] = long[col].astype("Int64")
    return long


def _kind_answers(snap: StudySnapshot, rated: pd.DataFrame, kind: str, field: str) -> list[Any]:
    """The answer to the study's first item of `kind` per rated trial (None if not asked)."""
    key = next((i["key"] for i in snap.items if i.get("kind") == kind), None)
    if key is None:
        return [None] * len(rated)
    return [(s.get(key) or {}).get(field) if isinstance(s, dict) else None for s in rated["scores"]]


RANDOMISED_SUFFIX = " [randomised weights]"


def _catch_arms(long: pd.DataFrame, rated: pd.DataFrame, arms: pd.DataFrame) -> pd.DataFrame:
    """Catch rows name the map actually shown: the catch arm on both sides of a `same` trial,
    and that arm's randomised-weights map on the other side of a `randomised` one."""
    by_trial = rated.set_index("trial")
    catch = long["trial"].map(by_trial["catch"])
    catch_arm = long["trial"].map(by_trial["catch_arm_id"])
    real_side = long["trial"].map(by_trial["real_side"])
    is_catch = catch.notna().to_numpy()
    out = long.copy()
    out.loc[is_catch, "arm_id"] = catch_arm[is_catch].astype(int)
    labels = arms["arm"]
    shown = pd.Series([None] * len(out), index=out.index, dtype=object)
    fake = is_catch & (catch == "randomised").to_numpy() & (out["side"] != real_side).to_numpy()
    shown[fake] = out.loc[fake, "arm_id"].map(labels) + RANDOMISED_SUFFIX
    out["_shown_arm"] = shown
    return out


def preferences_from_trials(rated: pd.DataFrame) -> pd.DataFrame:
    """The one-row-per-trial preference frame `app.stats` takes."""
    rows = rated[rated["preference"].notna()]
    return pd.DataFrame(
        {
            "rater": rows["rater"].astype(str),
            "case": rows["case"].astype(str),
            "left_arm": rows["left_arm"].astype(str),
            "right_arm": rows["right_arm"].astype(str),
            "preference": rows["preference"].astype(str),
            "is_repeat": rows["is_repeat"].astype(bool),
        }
    ).reset_index(drop=True)


def wide(snap: StudySnapshot) -> pd.DataFrame:
    """One row per rated trial with readable column names, for spreadsheets."""
    likert = snap.likert_items
    cases = {c["case"]: c for c in snap.cases}
    labels = {a.id: a.label for a in snap.arms}
    rows = []
    for t in snap.rated.itertuples(index=False):
        pref = t.preference
        row: dict[str, Any] = {
            "Rater": t.rater,
            "Case": t.case,
            "Image file": cases.get(t.case, {}).get("file", ""),
            "Trial": t.trial,
            "Position in sequence": int(t.position) + 1,
            "Repeat": "yes" if t.is_repeat else "no",
            "Trial kind": t.trial_kind,
            "Flag": t.flag or "",
            "Map A (left) arm": labels[t.left_arm_id],
            "Map B (right) arm": labels[t.right_arm_id],
        }
        for item in likert:
            for arm in snap.arms:
                side = _side_of(t, arm.id)
                value = None
                if side is not None:
                    fallback = _primary_score(t, side) if item is likert[0] else None
                    value = _score(t.scores, item["key"], side, fallback)
                row[f"{item['key']} score: {arm.label}"] = value
        row["Preferred map"] = {
            "left": "A (left)",
            "right": "B (right)",
            "none": "no preference",
        }.get(pref or "", "")
        preferred = _preferred_arm_id(t)
        row["Preferred arm"] = labels[preferred] if preferred is not None else (pref or "")
        row["Comment"] = t.comment
        row["Active time (s)"] = None if pd.isna(t.active_ms) else round(t.active_ms / 1000.0, 3)
        row["Total time (s)"] = None if pd.isna(t.total_ms) else round(t.total_ms / 1000.0, 3)
        row["Rated at (UTC)"] = t.updated_at
        rows.append(row)
    return pd.DataFrame(rows)


def mrmc(snap: StudySnapshot) -> pd.DataFrame:
    """reader, case, modality, score for the primary item, first readings only.

    This is the long layout iMRMC and R's MRMCaov read (modality = arm).
    """
    long = tidy_long(snap)
    likert = snap.likert_items
    if not likert:
        return pd.DataFrame(columns=["reader", "case", "modality", "score"])
    rows = long[
        (long["item"] == likert[0]["key"])
        & ~long["is_repeat"]
        & long["analysed"]
        & long["score"].notna()
    ]
    return pd.DataFrame(
        {
            "reader": rows["rater"],
            "case": rows["case"],
            "modality": rows["arm"],
            "score": rows["score"],
        }
    ).reset_index(drop=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def _int_or_none(value: Any) -> int | None:
    """Counts stay integers in JSON: a column with a gap is float in pandas (`24.0`)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def design_json(snap: StudySnapshot) -> dict[str, Any]:
    """The study design plus every trial and its answer, keyed by arm (researcher view)."""
    labels = {a.id: a.label for a in snap.arms}
    trials = []
    for t in snap.trials.itertuples(index=False):
        answer = None
        if t.rated:
            scores = {}
            for i, item in enumerate(snap.likert_items):
                scores[item["key"]] = {
                    labels[arm_id]: _score(
                        t.scores, item["key"], side, _primary_score(t, side) if i == 0 else None
                    )
                    for side, arm_id in (("left", t.left_arm_id), ("right", t.right_arm_id))
                }
            pref = t.preference
            answer = {
                "scores": scores,
                "preference": pref,
                "preferred_arm": labels.get(_preferred_arm_id(t) or -1),
                "comment": t.comment,
                "answers": {
                    k: v
                    for k, v in (t.scores or {}).items()
                    if k not in {i["key"] for i in snap.likert_items}
                },
                "active_ms": _int_or_none(t.active_ms),
                "total_ms": _int_or_none(t.total_ms),
                "revision": _int_or_none(t.revision),
                "rated_at": t.rated_at,
                "updated_at": t.updated_at,
            }
        trials.append(
            {
                "trial": t.trial,
                "rater": t.rater,
                "case": t.case,
                "position": _int_or_none(t.position),
                "is_repeat": bool(t.is_repeat),
                "repeat_of": _int_or_none(t.repeat_of),
                "left_arm": labels[t.left_arm_id],
                "right_arm": labels[t.right_arm_id],
                "first_shown_at": t.first_shown_at,
                "phase": t.phase,
                "trial_kind": t.trial_kind,
                "catch_arm": labels.get(_int_or_none(t.catch_arm_id) or -1),
                "real_side": t.real_side,
                "flag": t.flag,
                "rating": answer,
            }
        )
    return _jsonable(  # type: ignore[no-any-return]
        {
            "format": EXPORT_FORMAT_VERSION,
            "exported_at": snap.exported_at.isoformat(),
            "study": {**snap.study, "items": snap.items},
            "arms": [
                {
                    "label": a.label,
                    "id": a.id,
                    "position": a.position,
                    "checkpoint": {
                        "id": a.checkpoint_id,
                        "name": a.checkpoint_name,
                        "sha256": a.checkpoint_sha256,
                    },
                    "bn_route": a.bn_route,
                    "method": a.method,
                    "params": a.params,
                }
                for a in snap.arms
            ],
            "raters": snap.raters,
            "cases": snap.cases,
            "trials": trials,
        }
    )


def r_script(snap: StudySnapshot, csv_name: str) -> str:
    """The CLMM script (`r/clmm.R`) filled in with this study's file, item, arms and scale.

    The pre-registered item when there is one, else the first Likert item. `render_script`
    escapes the values, so a study or arm name cannot break out of an R string or comment.
    """
    likert = snap.likert_items
    planned = (snap.study.get("analysis_plan") or {}).get("item")
    item = next((i for i in likert if i["key"] == planned), likert[0] if likert else None)
    item = item or {"key": "", "scale": 5}
    ref = snap.arms[0].label if snap.arms else ""
    return render_script(
        {
            "STUDY_NAME": snap.study["name"],
            "STUDY_ID": str(snap.study["id"]),
            "CSV_FILE": csv_name,
            "ITEM": item["key"],
            "SCALE": str(item["scale"]),
            "REFERENCE_ARM": ref,
            "EXPORTED_AT": snap.exported_at.isoformat(timespec="seconds"),
        }
    )


def stats_frames(snap: StudySnapshot) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores, preferences) frames as `app.stats` takes them."""
    long = tidy_long(snap)
    scores = long[long["score"].notna() & long["analysed"].astype(bool)]
    return scores, preferences_from_trials(snap.analysed)
