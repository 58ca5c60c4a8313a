"""The quality-control part of the analysis (issue 15): practice, flags, catch trials, the
blinding check and the localisation endpoint.

Everything here is researcher-only (arms unblinded). Practice and catch trials and flagged
cases never enter the main statistics (`StudySnapshot.analysed`); this module is where they
are reported instead. The localisation endpoint needs the raw maps, so it reads them from the
data directory (float16 arrays at model resolution) and rasterises each rater's region at
that resolution (app.stats.localisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import SaliencyMap
from app.services.results.snapshot import StudySnapshot, load_snapshot
from app.services.study.spec import saliency_settings
from app.stats.catch import catch_performance
from app.stats.frames import clean
from app.stats.localisation import compare_arms, localisation_metrics, region_mask
from app.stats.preference import blinding_check
from app.storage import Storage


def _first_likert(snap: StudySnapshot) -> str | None:
    likert = snap.likert_items
    return likert[0]["key"] if likert else None


def _pair(scores: dict[str, Any], key: str | None, side: str, fallback: Any) -> float | None:
    if key is not None:
        pair = scores.get(key)
        if isinstance(pair, dict) and pair.get(side) is not None:
            return float(pair[side])
    if fallback is None or (isinstance(fallback, float) and np.isnan(fallback)):
        return None
    return float(fallback)


def catch_frame(snap: StudySnapshot) -> pd.DataFrame:
    """One row per rated, unflagged catch trial in the shape app.stats.catch takes."""
    rated = snap.rated
    rows = rated[rated["catch"].notna() & rated["flag"].isna()]
    key = _first_likert(snap)
    return pd.DataFrame(
        {
            "rater": rows["rater"].astype(str),
            "kind": rows["catch"],
            "real_side": rows["real_side"],
            "score_left": [
                _pair(s, key, "left", f)
                for s, f in zip(rows["scores"], rows["left_score"], strict=True)
            ],
            "score_right": [
                _pair(s, key, "right", f)
                for s, f in zip(rows["scores"], rows["right_score"], strict=True)
            ],
            "preference": rows["preference"].fillna("none"),
        }
    )


def blinding_summary(snap: StudySnapshot) -> list[dict[str, Any]]:
    """Per blinding item: guessing accuracy against chance (50 %) with a Clopper-Pearson CI.

    The item names its model by arm position (`target_arm`, default the second arm: the
    candidate against the reference); only trials showing that arm count, first readings of
    analysed trials only.
    """
    out = []
    rows = snap.analysed
    for item in snap.items:
        if item.get("kind") != "blinding":
            continue
        position = int(item.get("target_arm", 1))
        arms = sorted(snap.arms, key=lambda a: a.position)
        if not 0 <= position < len(arms):
            continue
        target = arms[position].label
        guesses = pd.DataFrame(
            {
                "rater": rows["rater"].astype(str),
                "case": rows["case"].astype(str),
                "left_arm": rows["left_arm"].astype(str),
                "right_arm": rows["right_arm"].astype(str),
                "guess": [(s.get(item["key"]) or {}).get("guess") for s in rows["scores"]],
                "is_repeat": rows["is_repeat"].astype(bool),
            }
        )
        guesses = guesses[guesses["guess"].notna()]
        result = blinding_check(guesses, target) if len(guesses) else None
        out.append(
            {
                "item": item["key"],
                "when": item.get("when", "trial"),
                "question": item.get("question", ""),
                "target_arm": target,
                "chance": 0.5,
                "result": result,
            }
        )
    return clean(out)  # type: ignore[no-any-return]


def flagged_cases(snap: StudySnapshot) -> list[dict[str, Any]]:
    """Every flagged trial: who flagged which case, why (researcher views list them)."""
    files = {c["case"]: c["file"] for c in snap.cases}
    rows = snap.rated[snap.rated["flag"].notna()]
    return [
        {
            "rater": str(t.rater),
            "case": str(t.case),
            "image_file": files.get(str(t.case), ""),
            "position": int(t.position),
            "phase": t.phase,
            "reason": t.flag,
            "note": t.flag_note,
        }
        for t in rows.itertuples(index=False)
    ]


def confidence_summary(snap: StudySnapshot) -> dict[str, Any] | None:
    """Mean confidence (1–5) per rater and overall on analysed trials (None: not asked)."""
    key = next((i["key"] for i in snap.items if i.get("kind") == "confidence"), None)
    if key is None:
        return None
    rows = snap.analysed
    values = pd.DataFrame(
        {
            "rater": rows["rater"].astype(str),
            "value": [(s.get(key) or {}).get("value") for s in rows["scores"]],
        }
    ).dropna()
    values["value"] = values["value"].astype(float)
    per_rater = [
        {"rater": str(r), "n": len(g), "mean": float(g["value"].mean())}
        for r, g in values.groupby("rater", sort=True)
    ]
    return {
        "item": key,
        "n": len(values),
        "mean": float(values["value"].mean()) if len(values) else None,
        "per_rater": per_rater,
    }


def protocol_summary(snap: StudySnapshot) -> dict[str, Any]:
    """Practice, flags, catch-trial performance and the blinding check of one snapshot."""
    trials = snap.trials
    practice = trials[trials["phase"] == "practice"]
    catch = catch_frame(snap)
    has_catch = bool(trials["catch"].notna().any())
    return clean(  # type: ignore[no-any-return]
        {
            "practice": {
                "n_trials": len(practice),
                "n_rated": int(practice["rated"].sum()),
            },
            "flags": flagged_cases(snap),
            "catch": catch_performance(catch) if has_catch else None,
            "blinding": blinding_summary(snap),
            "confidence": confidence_summary(snap),
            "n_analysed": len(snap.analysed),
        }
    )


def localisation_frame(db: Session, data_dir: Path, snap: StudySnapshot) -> pd.DataFrame:
    """rater, case, arm + metrics for each analysed trial's region against both arms' maps."""
    key = next((i["key"] for i in snap.items if i.get("kind") == "localise"), None)
    if key is None:
        return pd.DataFrame()
    rows = snap.analysed
    answered: list[tuple[Any, dict[str, Any]]] = []
    for t in rows.itertuples(index=False):
        region = (t.scores.get(key) or {}).get("region") if isinstance(t.scores, dict) else None
        if isinstance(region, dict):
            answered.append((t, region))
    if not answered:
        return pd.DataFrame()
    target = saliency_settings(snap.study["saliency"]).target
    arm_ids = [a.id for a in snap.arms]
    paths = {
        (arm, image): raw
        for arm, image, raw in db.execute(
            select(SaliencyMap.arm_id, SaliencyMap.image_id, SaliencyMap.raw_path).where(
                SaliencyMap.arm_id.in_(arm_ids), SaliencyMap.target == target
            )
        )
    }
    labels = {a.id: a.label for a in snap.arms}
    store = Storage(data_dir)
    cache: dict[str, np.ndarray] = {}
    out = []
    for t, region in answered:
        for arm_id in (int(t.left_arm_id), int(t.right_arm_id)):
            rel = paths.get((arm_id, int(t.case)))
            if rel is None:
                continue
            if rel not in cache:
                path = store.path(rel)
                if not path.is_file():  # a map file gone missing: that pair is not scored
                    continue
                arr = np.load(path, allow_pickle=False).astype(np.float32)
                cache[rel] = arr.reshape(arr.shape[-2:]) if arr.ndim > 2 else arr
            saliency = cache[rel]
            mask = region_mask(region, *saliency.shape)
            out.append(
                {
                    "rater": str(t.rater),
                    "case": str(t.case),
                    "arm": labels[arm_id],
                    "shape": region.get("shape"),
                    **localisation_metrics(saliency, mask),
                }
            )
    return pd.DataFrame(out)


def localisation_summary(db: Session, data_dir: Path, snap: StudySnapshot) -> dict[str, Any] | None:
    """The localisation endpoint per arm and its paired arm comparisons (None: not asked)."""
    if not any(i.get("kind") == "localise" for i in snap.items):
        return None
    frame = localisation_frame(db, data_dir, snap)
    return compare_arms(frame, snap.arm_labels)


def study_protocol(db: Session, study_id: int) -> dict[str, Any] | None:
    """The study page's quality-control card: catch performance per rater, flagged cases,
    practice progress (None for a study without practice, catch trials or flags)."""
    snap = load_snapshot(db, study_id)
    summary = protocol_summary(snap)
    if not (summary["practice"]["n_trials"] or summary["catch"] or summary["flags"]):
        return None
    return summary
