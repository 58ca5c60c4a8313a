"""Rated studies for the export and analysis tests: ratings written as ORM rows by a rule."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Arm, Rating, Study, Trial, User
from app.models.base import utcnow
from tests.factories import make_open_study

# (rater index, case position) -> (standard score, dual-BN score)
Rule = Callable[[int, int], tuple[int, int]]


def default_rule(r: int, c: int) -> tuple[int, int]:
    std = 1 + (c + r) % 4  # 1..4
    adv = std + (1 if (c + r) % 3 else 0)  # +1 on two cases in three, tie otherwise
    return std, adv


def rate(
    db: Session,
    study: Study,
    raters: list[User],
    *,
    rule: Rule = default_rule,
    limit: dict[str, int] | None = None,
) -> int:
    """Answer every unanswered trial (or the first `limit[username]`) by `rule`."""
    answered = set(db.scalars(select(Rating.trial_id)))
    arms = {a.id: a for a in db.scalars(select(Arm).where(Arm.study_id == study.id))}
    case_pos = {si.image_id: si.position for si in study.images}
    added = 0
    for r_index, rater in enumerate(raters):
        trials = db.scalars(
            select(Trial)
            .where(Trial.study_id == study.id, Trial.rater_id == rater.id)
            .order_by(Trial.position)
        ).all()
        for trial in trials[: (limit or {}).get(rater.username, len(trials))]:
            if trial.id in answered:
                continue
            std, adv = rule(r_index, case_pos[trial.image_id])
            by_pos = {0: std, 1: adv}
            left = by_pos[arms[trial.left_arm_id].position]
            right = by_pos[arms[trial.right_arm_id].position]
            pref = "left" if left > right else "right" if right > left else "none"
            db.add(
                Rating(
                    trial_id=trial.id,
                    rater_id=rater.id,
                    left_score=left,
                    right_score=right,
                    scores={"highlight": {"left": left, "right": right}},
                    preference=pref,
                    comment="",
                    active_ms=4000 + 10 * trial.position,
                    total_ms=5000 + 10 * trial.position,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
            added += 1
    db.flush()
    return added


def add_repeats(db: Session, study: Study, rater: User, n: int) -> list[Trial]:
    """Repeat the rater's first `n` trials with sides flipped, after their sequence."""
    trials = db.scalars(
        select(Trial)
        .where(Trial.study_id == study.id, Trial.rater_id == rater.id)
        .order_by(Trial.position)
    ).all()
    last = trials[-1].position
    out = []
    for i, t in enumerate(trials[:n]):
        rep = Trial(
            token=secrets.token_urlsafe(18),
            study_id=study.id,
            rater_id=rater.id,
            image_id=t.image_id,
            left_arm_id=t.right_arm_id,
            right_arm_id=t.left_arm_id,
            position=last + 1 + i,
            is_repeat=True,
            repeat_of_id=t.id,
        )
        db.add(rep)
        out.append(rep)
    db.flush()
    return out


def make_rated_study(
    db: Session, data_dir: Path, raters: list[User], *, n_images: int = 8, **kw: object
) -> Study:
    study = make_open_study(db, data_dir, raters=raters, n_images=n_images, size=32)
    rate(db, study, raters, **kw)  # type: ignore[arg-type]
    return study
