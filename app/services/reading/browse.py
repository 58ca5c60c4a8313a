"""The researcher's trial browser: every trial of a study with its answer, unblinded, filtered
by rater, case, arm, item and flag, a page at a time.

Researchers use it to answer "what did reader 3 say about case 41?" or "which trials have
comments?" without exporting, and to jump from a trial to its preview (the rater's view).
One query per page, whatever the study's size.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.errors import Invalid, NotFound
from app.models import Image, Rating, Study, Trial, User
from app.services.catalog.names import original_name
from app.services.study.arm_labels import unique_arm_labels

PAGE_SIZE = 100
FLAGS: dict[str, str] = {
    "": "all trials",
    "rated": "rated",
    "unrated": "not rated yet",
    "repeat": "repeats",
    "commented": "with a comment",
    "no_preference": "no preference",
}


@dataclass(frozen=True)
class TrialFilter:
    """Empty fields match everything. `case` is an image id; `arm` an arm id (either side);
    `item` a Likert item key (keeps the trials whose answer scores it)."""

    rater: str = ""
    case: int | None = None
    arm: int | None = None
    item: str = ""
    flag: str = ""


Preference = Literal["left", "right", "none"]


@dataclass(frozen=True)
class BrowsedTrial:
    """One trial in the researcher's trial browser, unblinded (arm labels, not sides only): the
    row of the page and of the JSON API alike."""

    id: int
    rater: str
    case: int
    image_file: str
    position: int
    is_repeat: bool
    repeat_of: int | None
    left_arm: str
    right_arm: str
    rated: bool
    scores: dict[str, dict[str, int | None]]  # item → arm label → score
    preference: Preference | None
    preferred_arm: str | None
    comment: str
    revision: int | None
    rated_at: dt.datetime | None
    preview_url: str


@dataclass(frozen=True)
class TrialPage:
    trials: list[BrowsedTrial]
    page: int
    pages: int
    total: int
    raters: list[str]
    arms: dict[int, str]  # arm id → label
    items: list[str]  # Likert item keys


def _likert_keys(study: Study) -> list[str]:
    return [str(i["key"]) for i in study.items or [] if i.get("kind", "likert") == "likert"]


def _filtered(stmt: Any, flt: TrialFilter, items: list[str]) -> Any:
    if flt.rater:
        stmt = stmt.where(User.username == flt.rater)
    if flt.case is not None:
        stmt = stmt.where(Trial.image_id == flt.case)
    if flt.arm is not None:
        stmt = stmt.where(or_(Trial.left_arm_id == flt.arm, Trial.right_arm_id == flt.arm))
    if flt.flag == "rated":
        stmt = stmt.where(Rating.id.is_not(None))
    elif flt.flag == "unrated":
        stmt = stmt.where(Rating.id.is_(None))
    elif flt.flag == "repeat":
        stmt = stmt.where(Trial.is_repeat.is_(True))
    elif flt.flag == "commented":
        stmt = stmt.where(func.length(func.trim(func.coalesce(Rating.comment, ""))) > 0)
    elif flt.flag == "no_preference":
        stmt = stmt.where(Rating.preference == "none")
    elif flt.flag:
        raise Invalid(f"Unknown flag {flt.flag!r}: use one of {', '.join(f for f in FLAGS if f)}.")
    if flt.item and flt.item not in items:
        raise Invalid(f"This study has no rating item {flt.item!r}.")
    if flt.item:
        stmt = stmt.where(Rating.id.is_not(None))
    return stmt


def _score(scores: dict[str, Any], item: str, side: str, fallback: int | None) -> int | None:
    value = (scores.get(item) or {}).get(side)
    return int(value) if isinstance(value, int) else fallback


def browse_trials(db: Session, study_id: int, flt: TrialFilter, page: int = 1) -> TrialPage:
    study = db.get(Study, study_id)
    if study is None:
        raise NotFound("No such study.")
    labels = unique_arm_labels(study.arms)  # the export's labels
    if flt.arm is not None and flt.arm not in labels:
        raise Invalid("That arm is not part of this study.")
    items = _likert_keys(study)
    base = (
        select(Trial, User.username, Image.source_filename, Rating)
        .join(User, User.id == Trial.rater_id)
        .join(Image, Image.id == Trial.image_id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Trial.study_id == study.id)
    )
    stmt = _filtered(base, flt, items)
    total = int(db.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = db.execute(
        stmt.order_by(User.username, Trial.position).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    shown_items = [flt.item] if flt.item else items
    trials = []
    for trial, username, source, rating in rows:
        left, right = labels[trial.left_arm_id], labels[trial.right_arm_id]
        scores: dict[str, dict[str, int | None]] = {}
        # The column's CHECK constraint holds it to the three answers.
        pref = cast(Preference | None, rating.preference if rating is not None else None)
        if rating is not None:
            stored = dict(rating.scores or {})
            for n, key in enumerate(shown_items):
                primary = n == 0 and key == (items[0] if items else "")
                scores[key] = {
                    left: _score(stored, key, "left", rating.left_score if primary else None),
                    right: _score(stored, key, "right", rating.right_score if primary else None),
                }
        trials.append(
            BrowsedTrial(
                id=trial.id,
                rater=username,
                case=trial.image_id,
                image_file=original_name(source),
                position=trial.position,
                is_repeat=trial.is_repeat,
                repeat_of=trial.repeat_of_id,
                left_arm=left,
                right_arm=right,
                rated=rating is not None,
                scores=scores,
                preference=pref,
                preferred_arm={"left": left, "right": right}.get(pref or ""),
                comment=rating.comment if rating is not None else "",
                revision=rating.revision if rating is not None else None,
                rated_at=rating.updated_at if rating is not None else None,
                preview_url=f"/studies/{study.id}/preview/{trial.id}",
            )
        )
    raters = list(
        db.scalars(
            select(User.username)
            .join(Trial, Trial.rater_id == User.id)
            .where(Trial.study_id == study.id)
            .distinct()
            .order_by(User.username)
        )
    )
    return TrialPage(trials, page, pages, total, raters, labels, items)
