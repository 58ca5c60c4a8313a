"""Saving a rater's answer: validation against the study's items, revisions, idempotency.

A submission carries a client-made `request_id`; a retry or a double click with the same id
returns the revision already stored instead of writing a second one (RatingRevision has a
unique (trial_id, request_id)). The trial row is locked first (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE), so two concurrent submissions
for one trial never race to create two ratings. Nothing here commits: the request's session
commits before the response says "saved".

Timing: `active_ms` must be >= 0; `total_ms` defaults to `active_ms`; an `active_ms` larger
than `total_ms` is clamped down to it (a client clock quirk must not cost the rater an
answer), and both are capped at 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, Invalid
from app.models import PREFERENCES, Rating, RatingRevision, User
from app.models.base import utcnow
from app.services import audit
from app.services.reading.answers import FLAG_KEY, asked_items, clean_answers, clean_flag
from app.services.reading.trials import (
    COMMENT_MAX,
    Progress,
    likert_items,
    progress,
    require_open,
    trial_context,
)
from app.services.study.spec import rating_items

MAX_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class RatingSubmission:
    """One answer as the rater saw it: sides are left (Map A) and right (Map B)."""

    active_ms: int
    left_score: int | None = None
    right_score: int | None = None
    preference: str | None = None
    comment: str | None = None
    total_ms: int | None = None
    request_id: str | None = None
    scores: dict[str, dict[str, int | None]] = field(default_factory=dict)
    # Protocol items (confidence, blinding guess, localisation region) by item key.
    answers: dict[str, Any] = field(default_factory=dict)
    # {"reason": "unreadable"|"wrong_label"|"other", "note": "..."}: skip the case.
    flag: dict[str, Any] | None = None
    # What the page said the trial is; a practice answer posted as a real one (or the
    # reverse) is refused, so a stale or forged page cannot put practice into the analysis.
    practice: bool | None = None


@dataclass(frozen=True)
class SavedRating:
    """The outcome the client needs: the stored revision and where to go next."""

    revision: int
    replayed: bool
    study_id: int
    progress: Progress
    active_ms: int
    total_ms: int

    @property
    def next_url(self) -> str:
        if self.progress.resume_token is None:
            return f"/rate/{self.study_id}/done"
        return f"/t/{self.progress.resume_token}"


@dataclass(frozen=True)
class _Clean:
    left: int | None
    right: int | None
    scores: dict[str, dict[str, Any]]
    preference: str | None
    comment: str
    active_ms: int
    total_ms: int


def _problem(errors: list[dict[str, Any]], where: str, msg: str) -> None:
    errors.append({"loc": ["body", where], "msg": msg})


def _clean_flagged(sub: RatingSubmission) -> _Clean:
    """A flagged case: the flag and the times, nothing else (the rater skipped the case)."""
    errors: list[dict[str, Any]] = []
    flag = clean_flag(sub.flag, errors)
    active, total = _times(sub, errors)
    if errors or flag is None:
        raise Invalid("The flag is incomplete.", details=errors)
    return _Clean(None, None, {FLAG_KEY: flag}, None, "", min(active, total), total)


def _times(sub: RatingSubmission, errors: list[dict[str, Any]]) -> tuple[int, int]:
    active, total = sub.active_ms, sub.total_ms
    if active < 0 or (total is not None and total < 0):
        _problem(errors, "active_ms", "Times cannot be negative.")
    if active > MAX_MS or (total is not None and total > MAX_MS):
        _problem(errors, "active_ms", "Times are capped at 24 hours.")
    return active, active if total is None else total


def _clean(
    items: list[dict[str, Any]],
    sub: RatingSubmission,
    asked: list[dict[str, Any]] | None = None,
) -> _Clean:
    """Check the answer against the study's items; collect every problem, then raise once.

    `asked` are the items this trial asks (default: all of them); see answers.asked_items.
    """
    errors: list[dict[str, Any]] = []
    likert = likert_items(items)
    kinds = {i["kind"]: i for i in items}
    pairs: dict[str, dict[str, int | None]] = {k: dict(v) for k, v in (sub.scores or {}).items()}
    known = {i["key"] for i in likert}
    for key in pairs:
        if key not in known:
            _problem(errors, f"scores.{key}", "This study has no such rating item.")
    if likert and (sub.left_score is not None or sub.right_score is not None):
        primary = pairs.setdefault(likert[0]["key"], {})
        for side, value in (("left", sub.left_score), ("right", sub.right_score)):
            if value is None:
                continue
            if primary.get(side) not in (None, value):
                _problem(errors, f"{side}_score", f"Disagrees with scores.{likert[0]['key']}.")
            primary[side] = value
    elif not likert and (sub.left_score is not None or sub.right_score is not None):
        _problem(errors, "left_score", "This study asks for no scores.")

    scores: dict[str, dict[str, Any]] = {}
    for item in likert:
        pair = pairs.get(item["key"], {})
        given = {s: pair.get(s) for s in ("left", "right") if pair.get(s) is not None}
        if not given and not item["required"]:
            continue
        for side in ("left", "right"):
            value = given.get(side)
            label = "Map A" if side == "left" else "Map B"
            if value is None:
                _problem(errors, f"scores.{item['key']}.{side}", f"Score {label}.")
            elif isinstance(value, bool) or not isinstance(value, int):
                _problem(errors, f"scores.{item['key']}.{side}", "A score is a whole number.")
            elif not 1 <= value <= item["scale"]:
                _problem(
                    errors,
                    f"scores.{item['key']}.{side}",
                    f"{label}'s score must be between 1 and {item['scale']}.",
                )
        left, right = given.get("left"), given.get("right")
        if isinstance(left, int) and isinstance(right, int):
            scores[item["key"]] = {"left": left, "right": right}

    pref_item = kinds.get("preference")
    preference = sub.preference
    if preference is not None and preference not in PREFERENCES:
        _problem(errors, "preference", "Preference is one of left, right, none.")
    if pref_item is None and preference is not None:
        _problem(errors, "preference", "This study asks for no preference.")
    if pref_item is not None and pref_item["required"] and preference is None:
        _problem(errors, "preference", "Choose the map you prefer (or no preference).")

    comment = (sub.comment or "").strip()
    if len(comment) > COMMENT_MAX:
        _problem(errors, "comment", f"The comment is longer than {COMMENT_MAX} characters.")
    comment_item = kinds.get("comment")
    if comment_item is not None and comment_item["required"] and not comment:
        _problem(errors, "comment", "A comment is required.")

    scores.update(
        clean_answers(asked if asked is not None else items, sub.answers, errors, all_items=items)
    )
    active, total = _times(sub, errors)
    if errors:
        raise Invalid("The answer is incomplete or out of range.", details=errors)

    primary_pair = scores.get(likert[0]["key"]) if likert else None
    return _Clean(
        left=primary_pair["left"] if primary_pair else None,
        right=primary_pair["right"] if primary_pair else None,
        scores=scores,
        preference=preference,
        comment=comment,
        active_ms=min(active, total),
        total_ms=total,
    )


def submit_rating(db: Session, rater: User, token: str, sub: RatingSubmission) -> SavedRating:
    """Store the caller's answer for their trial `token` as a new revision (or replay one)."""
    ctx = trial_context(db, rater, token, for_update=True)
    study, trial = ctx.study, ctx.trial
    require_open(study)

    if sub.request_id:
        earlier = db.scalar(
            select(RatingRevision).where(
                RatingRevision.trial_id == trial.id, RatingRevision.request_id == sub.request_id
            )
        )
        if earlier is not None:
            return SavedRating(
                revision=earlier.revision,
                replayed=True,
                study_id=study.id,
                progress=ctx.progress,
                active_ms=earlier.active_ms,
                total_ms=earlier.total_ms,
            )
    if ctx.rating is None and not ctx.is_current:
        raise Conflict("Trials are answered in order; this one is not your current trial.")
    if ctx.rating is not None and not study.allow_back:
        raise Conflict("This trial is already answered and the study does not allow changes.")

    is_practice = (trial.protocol or {}).get("phase") == "practice"
    # A practice trial must be answered as practice; a real one never as practice.
    if bool(sub.practice) != is_practice:
        raise Conflict(
            "This is a practice trial; its answer cannot be saved as a real one."
            if is_practice
            else "This is not a practice trial; a practice answer cannot be saved here."
        )
    items = rating_items(study.items)
    if sub.flag is not None:
        clean = _clean_flagged(sub)
    else:
        asked = asked_items(
            items,
            position=trial.position,
            last_position=ctx.progress.total - 1,
            practice=is_practice,
        )
        clean = _clean(items, sub, asked)
    now = utcnow()
    rating = ctx.rating
    if rating is None:
        rating = Rating(trial_id=trial.id, rater_id=rater.id, revision=1, created_at=now)
        db.add(rating)
        if study.design_frozen_at is None:
            study.design_frozen_at = now  # the design is fixed once anyone has answered
    else:
        rating.revision += 1
    rating.left_score = clean.left
    rating.right_score = clean.right
    rating.scores = clean.scores
    rating.preference = clean.preference
    rating.comment = clean.comment
    rating.active_ms = clean.active_ms
    rating.total_ms = clean.total_ms
    rating.updated_at = now
    db.flush()
    db.add(
        RatingRevision(
            rating_id=rating.id,
            trial_id=trial.id,
            revision=rating.revision,
            request_id=sub.request_id or None,
            left_score=clean.left,
            right_score=clean.right,
            scores=clean.scores,
            preference=clean.preference,
            comment=clean.comment,
            active_ms=clean.active_ms,
            total_ms=clean.total_ms,
            created_at=now,
        )
    )
    audit.record(
        db,
        actor=rater,
        action="rating.saved" if rating.revision == 1 else "rating.revised",
        object_type="trial",
        object_id=trial.id,
        detail={"study_id": study.id, "revision": rating.revision},
    )
    db.flush()
    return SavedRating(
        revision=rating.revision,
        replayed=False,
        study_id=study.id,
        progress=progress(db, study.id, rater.id),
        active_ms=clean.active_ms,
        total_ms=clean.total_ms,
    )
