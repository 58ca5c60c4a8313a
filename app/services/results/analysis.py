"""The study analysis: snapshot -> statistics (app.stats) + design summary + warnings.

Researcher-only: the result names arms by their unblinded labels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.config import get_settings
from app.services.results.clmm import ClmmMode, clmm_for_item
from app.services.results.formats import stats_frames
from app.services.results.methods import methods_paragraph
from app.services.results.protocol import localisation_summary, protocol_summary
from app.services.results.snapshot import StudySnapshot, load_snapshot
from app.stats.paired import DEFAULT_BOOT, DEFAULT_SEED
from app.stats.reviewer import PAGE_POWER_SIMS, analysis_plan, primary_outcome
from app.stats.summary import analyze

EMPTY_MESSAGE = "No ratings yet: there is nothing to analyse."


def _progress(snap: StudySnapshot) -> list[dict[str, Any]]:
    trials = snap.trials
    rows = []
    for rater in snap.raters:
        mine = trials[trials["rater"] == rater]
        rows.append(
            {
                "rater": rater,
                "done": int(mine["rated"].sum()),
                "total": len(mine),
                "repeats_done": int((mine["rated"] & mine["is_repeat"]).sum()),
            }
        )
    return rows


def _warnings(snap: StudySnapshot, progress: list[dict[str, Any]]) -> list[str]:
    """What a reader of the numbers must know before trusting them."""
    out: list[str] = []
    if snap.rated.empty:
        out.append(EMPTY_MESSAGE)
    for row in progress:
        if row["total"] and row["done"] < row["total"]:
            out.append(
                f"rater {row['rater']} completed {row['done']} of {row['total']} trials; "
                "the analysis uses the trials that were rated."
            )
    if snap.study["status"] not in ("closed",) and not snap.rated.empty:
        out.append(f"the study is {snap.study['status']}: results are provisional.")
    if len(snap.arms) < 2:
        out.append("the study has fewer than two arms: no comparison is possible.")
    return out


def design_summary(snap: StudySnapshot) -> dict[str, Any]:
    """The design facts a methods section needs (unblinded)."""
    return {
        "id": snap.study["id"],
        "name": snap.study["name"],
        "status": snap.study["status"],
        "seed": snap.study["seed"],
        "repeat_fraction": snap.study["repeat_fraction"],
        "analysis_plan": snap.study.get("analysis_plan") or None,
        "saliency": snap.study["saliency"],
        "n_raters": len(snap.raters),
        "n_cases": len(snap.cases),
        "n_trials": len(snap.trials),
        "n_rated": int(snap.trials["rated"].sum()),
        "items": snap.items,
        "arms": [
            {
                "label": a.label,
                "position": a.position,
                "checkpoint": a.checkpoint_name,
                "checkpoint_sha256": a.checkpoint_sha256,
                "bn_route": a.bn_route,
                "method": a.method,
            }
            for a in snap.arms
        ],
    }


SECONDARY_NOTE = (
    "Every other test in this report is secondary: it describes the data and checks the "
    "primary result's robustness, and its p-values are not corrected for multiplicity."
)


def _attach_clmm(
    result: dict[str, Any],
    snap: StudySnapshot,
    scores: Any,
    data_dir: Path | None,
    mode: ClmmMode,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Fill each item's `clmm` section (R, cached; see app.services.results.clmm)."""
    if mode == "off":  # not requested: None, as app.stats.summary leaves it
        return
    scale = {i["key"]: int(i["scale"]) for i in snap.likert_items}
    ref = snap.arm_labels[0] if snap.arm_labels else ""
    for item in result["items"]:
        if not item["n_scores"] or len(snap.arm_labels) < 2:
            continue
        item["clmm"] = clmm_for_item(
            data_dir,
            snap.study["id"],
            scores,
            item=item["key"],
            reference=ref,
            scale=scale.get(item["key"], 5),
            mode=mode,
            progress=_prefixed(progress, item["key"]),
        )


def _prefixed(progress: Callable[[str], None] | None, key: str) -> Callable[[str], None] | None:
    """`progress` with the item key in front of each R step (None stays None)."""
    if progress is None:
        return None
    report = progress

    def step(text: str) -> None:
        report(f"{key}: {text}")

    return step


def _preregistration(result: dict[str, Any], plan: dict[str, Any]) -> dict[str, Any] | None:
    """The primary analysis's number for the plan's item (first Likert item by default)."""
    items = [i for i in result["items"] if i["n_scores"]]
    if not items:
        return None
    item = next((i for i in items if i["key"] == plan.get("item")), items[0])
    return {
        "plan": plan,
        "item": item["key"],
        "outcome": primary_outcome(plan, item, item.get("clmm")),
        "secondary_note": SECONDARY_NOTE,
    }


def analyze_snapshot(
    snap: StudySnapshot,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    data_dir: Path | None = None,
    clmm: ClmmMode = "off",
    power_sims: int = PAGE_POWER_SIMS,
    clmm_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Full analysis of an already-loaded snapshot (the benchmark times this).

    `clmm` decides whether R fits the ordinal mixed model: "off" (the in-app analysis, what
    the benchmark times), "wait" (CLI) or "background" (the page and the API: cached, else
    fitted in a background thread); its results are cached under `data_dir`.
    """
    scores, prefs = stats_frames(snap)
    levels = {i["key"]: list(range(1, int(i["scale"]) + 1)) for i in snap.likert_items}
    plan = analysis_plan(snap.study.get("analysis_plan"))
    result = analyze(
        scores,
        prefs,
        arms=snap.arm_labels,
        levels=levels,
        n_boot=n_boot,
        seed=seed,
        primary_analysis=plan["primary_analysis"],
        alpha=plan["alpha"],
        power_sims=power_sims,
    )
    _attach_clmm(result, snap, scores, data_dir, clmm, clmm_progress)
    result["preregistration"] = _preregistration(result, plan)
    progress = _progress(snap)
    result["study"] = design_summary(snap)
    result["progress"] = progress
    result["warnings"] = _warnings(snap, progress)
    result["empty"] = bool(snap.rated.empty)
    result["message"] = EMPTY_MESSAGE if result["empty"] else None
    result["protocol"] = protocol_summary(snap)
    checks = [b["result"] for b in result["protocol"]["blinding"] if b["result"]]
    result["blinding"] = checks[0] if checks else result["blinding"]
    result["localisation"] = None  # needs the maps: filled in by analyze_study
    result["methods"] = methods_paragraph(result)
    return result


def analyze_study(
    db: Session,
    study_id: int,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    data_dir: Path | None = None,
    clmm: ClmmMode = "off",
    clmm_progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Analyse study `study_id` on the ratings that exist now (JSON-serialisable, stable keys).

    `data_dir` holds the raw maps the localisation endpoint scores and the cached R fits
    (default: the configured one; the web routes pass the app's own). `clmm`: see
    `analyze_snapshot` ("off" unless asked: the page, the API and the CLI ask)."""
    snap = load_snapshot(db, study_id)
    maps_dir = data_dir if data_dir is not None else get_settings().data_dir
    result = analyze_snapshot(
        snap, n_boot=n_boot, seed=seed, data_dir=maps_dir, clmm=clmm, clmm_progress=clmm_progress
    )
    result["localisation"] = localisation_summary(db, maps_dir, snap)
    if result["localisation"] is not None:
        result["methods"] = methods_paragraph(result)  # now with the localisation endpoint
    return result
