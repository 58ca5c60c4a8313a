"""Study actions beyond the straight lifecycle: reopen a closed study, add raters to a running
one, clone a study (or start its next round) as a new draft, delete a draft.

Each either keeps what raters have answered exactly as it was or refuses:

- **reopen**: closed → open again, when every map still exists. Ratings stay; raters carry on
  where they stopped. Closing again is the usual close.
- **add raters**: new raters get trials made by the same design rules as the others
  (`design.generate_design` with the study's seed, arms, cases and repeat fraction, the new
  raters appended to the rater list), so their sides are counterbalanced and their order
  shuffled like everyone's. Existing trials are untouched, so the design stays frozen for them.
- **clone / next round**: a new draft with the same arms, images, raters, items and settings.
  A next round gets a new seed (new orders and sides) and a "round N" name.
- **delete**: drafts only (nobody has rated a draft). Their maps go with them; the files are
  returned for the caller to remove after the commit.
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, Invalid
from app.models import SaliencyMap, Study, StudyRater, StudyStatus, User
from app.services import audit
from app.services.maps.queries import active_job
from app.services.study.protocol import protocol_settings
from app.services.study.studies import (
    _validate_raters,
    count_ratings,
    create_study,
    insert_trials,
    map_counts,
    plan_trials,
    spec_of,
)

ROUND_RE = re.compile(r"^(?P<base>.*?)(?:\s+[–-]\s+round\s+(?P<n>\d+))?$")


def reopen_study(db: Session, study: Study, actor: User | None) -> Study:
    """Open a closed study again (its ratings stay; raters continue where they stopped)."""
    if study.status != StudyStatus.closed.value:
        raise Conflict(f"Only a closed study can be reopened (this one is {study.status}).")
    have, needed = map_counts(db, study)
    if have < needed:
        raise Conflict(f"Only {have} of {needed} saliency maps still exist; it cannot reopen.")
    study.status = StudyStatus.open.value
    study.closed_at = None
    audit.record(db, actor=actor, action="study.reopened", object_type="study", object_id=study.id)
    db.flush()
    return study


def add_raters(db: Session, study: Study, usernames: list[str], actor: User | None) -> int:
    """Give new raters their trials (same design rules as everyone); returns trials added."""
    if study.status == StudyStatus.closed.value:
        raise Conflict("The study is closed; reopen it before adding raters.")
    names = list(dict.fromkeys(n.strip() for n in usernames if n.strip()))
    if not names:
        raise Invalid("Name at least one rater to add.")
    new = _validate_raters(db, names)
    current = [r.user_id for r in study.raters]
    already = [u.username for u in new if u.id in current]
    if already:
        raise Conflict(f"Already raters of this study: {', '.join(already)}.")
    arms = [a.id for a in study.arms]
    cases = [si.image_id for si in study.images]
    if len(arms) < 2 or not cases:
        raise Conflict("This study has no complete design to extend.")
    plan = plan_trials(
        raters=current + [u.id for u in new],
        cases=cases,
        arms=arms,
        seed=study.seed,
        repeat_fraction=study.repeat_fraction,
        proto=protocol_settings(study.protocol),
    )
    db.add_all(StudyRater(study_id=study.id, user_id=u.id) for u in new)
    added = insert_trials(db, study.id, plan, only={u.id for u in new})
    audit.record(
        db,
        actor=actor,
        action="study.raters_added",
        object_type="study",
        object_id=study.id,
        detail={"raters": [u.username for u in new], "trials": added},
    )
    db.flush()
    db.refresh(study)
    return added


def next_round_name(name: str) -> str:
    match = ROUND_RE.match(name.strip())
    base = match.group("base") if match else name
    n = int(match.group("n")) + 1 if match and match.group("n") else 2
    return f"{base} – round {n}"[:200]


def clone_study(db: Session, study: Study, actor: User | None, *, next_round: bool) -> Study:
    """A new draft with this study's design; a next round gets a new seed and name."""
    spec = spec_of(study)
    if next_round:
        spec["name"] = next_round_name(study.name)
        spec["seed"] = (int(study.seed) + 1) % (2**31 - 1)
    else:
        spec["name"] = f"Copy of {study.name}"[:200]
    clone = create_study(db, spec=spec, actor=actor)
    audit.record(
        db,
        actor=actor,
        action="study.cloned",
        object_type="study",
        object_id=clone.id,
        detail={"from": study.id, "next_round": next_round},
    )
    return clone


def delete_draft(db: Session, study: Study, actor: User | None) -> list[str]:
    """Delete a draft and its maps; returns the map files to remove after the commit."""
    if study.status != StudyStatus.draft.value:
        raise Conflict(
            f"Only drafts can be deleted (this study is {study.status}); close it instead."
        )
    if count_ratings(db, study):
        raise Conflict("Someone has rated this study; it cannot be deleted.")
    if active_job(db, study.id) is not None:
        raise Conflict("Maps are being generated for this draft; cancel the job first.")
    arm_ids = [a.id for a in study.arms]
    files: list[str] = []
    if arm_ids:
        for raw, field in db.execute(
            select(SaliencyMap.raw_path, SaliencyMap.field_path).where(
                SaliencyMap.arm_id.in_(arm_ids)
            )
        ):
            files += [raw, field]
    shared: set[str] = set()
    if files:
        # A file another study's map still points at stays (defensive: map files are per arm).
        for column in (SaliencyMap.raw_path, SaliencyMap.field_path):
            shared |= set(
                db.scalars(
                    select(column).where(column.in_(files), SaliencyMap.arm_id.not_in(arm_ids))
                )
            )
    audit.record(
        db,
        actor=actor,
        action="study.deleted",
        object_type="study",
        object_id=study.id,
        detail={"name": study.name},
    )
    db.delete(study)
    db.flush()
    return [f for f in dict.fromkeys(files) if f and f not in shared]


def raters_of(db: Session, study: Study) -> list[User]:
    ids = [r.user_id for r in study.raters]
    return list(db.scalars(select(User).where(User.id.in_(ids)).order_by(User.username)))
