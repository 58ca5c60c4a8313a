"""Study lifecycle: create (with its trial design), edit until frozen, open, close, progress.

draft → generating → open → closed. ``generating`` starts when maps are enqueued and stays
until the study is opened (the UI shows "maps ready" once every map exists); a failed or
cancelled generation returns the study to draft. The design (arms, images, raters, seed,
repeats) is stored as Trial rows at creation and frozen at the first rating: after that
nothing that changes what a rater was shown can be edited.
"""

from __future__ import annotations

import datetime as dt
import secrets
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, Invalid, NotFound
from app.models import (
    Arm,
    Checkpoint,
    Image,
    Job,
    Rating,
    Role,
    Study,
    StudyImage,
    StudyRater,
    StudyStatus,
    Trial,
    User,
)
from app.models.base import utcnow
from app.services import audit, inference
from app.services.catalog.checkpoints import train_mode
from app.services.maps.catch import (
    RANDOMISED,
    randomised_pairs,
    study_image_ids,
    variant_target,
)
from app.services.maps.queries import active_job, stored_maps
from app.services.study.design import generate_design
from app.services.study.protocol import (
    ProtocolSpec,
    ProtocolTrial,
    add_protocol,
    protocol_settings,
)
from app.services.study.spec import ArmSpec, StudySpec, saliency_settings

DESIGN_FIELDS = (
    "image_ids", "arms", "raters", "seed", "repeat_fraction", "items", "saliency", "protocol",
)  # fmt: skip


def _as_spec(spec: StudySpec | Mapping[str, Any]) -> StudySpec:
    if isinstance(spec, StudySpec):
        return spec
    try:
        return StudySpec.model_validate(dict(spec))
    except ValidationError as exc:
        details = [
            {"loc": [str(p) for p in e["loc"]], "msg": plain_message(e["msg"])}
            for e in exc.errors()
        ]
        raise Invalid(problems_message(details), details=details) from None


def plain_message(msg: str) -> str:
    """Pydantic's "Value error, The seed …" → "The seed …" (the reason, in the spec's words)."""
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    return msg[:1].upper() + msg[1:]


def problems_message(details: list[dict[str, Any]]) -> str:
    """Every problem at once, each with the field it is about (the builder shows them there)."""
    parts = [
        f"{' → '.join(d['loc']) + ': ' if d['loc'] else ''}{d['msg'].rstrip('.')}." for d in details
    ]
    head = "The study cannot be saved" if len(parts) == 1 else f"{len(parts)} problems"
    return f"{head}: " + " ".join(parts)


def _check_all(db: Session, spec: StudySpec) -> tuple[list[Checkpoint], list[User]]:
    """The database checks, every one of them, so the researcher sees all problems at once."""
    details: list[dict[str, Any]] = []
    ckpts: list[Checkpoint] = []
    raters: list[User] = []
    try:
        ckpts = _validate_arms(db, spec.arms, spec.saliency.target)
    except Invalid as exc:
        details.append({"loc": ["arms"], "msg": exc.message})
    if ckpts:
        for field, ids in (
            ("image_ids", spec.image_ids),
            ("protocol", spec.protocol.practice_image_ids),
        ):
            try:
                _validate_images(db, ids, ckpts)
            except Invalid as exc:
                details.append({"loc": [field], "msg": exc.message})
    try:
        raters = _validate_raters(db, spec.raters)
    except Invalid as exc:
        details.append({"loc": ["raters"], "msg": exc.message})
    if details:
        raise Invalid(problems_message(details), details=details)
    return ckpts, raters


def default_arm_label(ckpt: Checkpoint, route: str | None) -> str:
    """ "standard", "adversarial", "dual-BN clean", … from the checkpoint's training mode."""
    if ckpt.dual_bn:
        return f"dual-BN {route or 'clean'}"
    mode = train_mode(ckpt)
    return "standard" if mode in ("standard", "imported") else mode.replace("_", " ")


def _validate_arms(db: Session, arms: list[ArmSpec], target: str) -> list[Checkpoint]:
    methods = inference.saliency_methods()
    ckpts: list[Checkpoint] = []
    for n, arm in enumerate(arms, start=1):
        ckpt = db.get(Checkpoint, arm.checkpoint_id)
        if ckpt is None:
            raise Invalid(f"Arm {n}: checkpoint {arm.checkpoint_id} does not exist.")
        if arm.method not in methods:
            raise Invalid(f"Arm {n}: unknown method {arm.method!r}; one of {', '.join(methods)}.")
        if arm.bn_route is not None and not ckpt.dual_bn:
            raise Invalid(
                f"Arm {n}: {ckpt.name!r} has no dual batch norm, so it takes no BN route."
            )
        if target.startswith("class:") and target[6:] not in ckpt.class_names:
            raise Invalid(
                f"Arm {n}: {ckpt.name!r} has no class {target[6:]!r} "
                f"(its classes: {', '.join(ckpt.class_names)})."
            )
        ckpts.append(ckpt)
    return ckpts


def _validate_images(db: Session, image_ids: list[int], ckpts: list[Checkpoint]) -> list[Image]:
    images = {i.id: i for i in db.scalars(select(Image).where(Image.id.in_(image_ids)))}
    missing = [i for i in image_ids if i not in images]
    if missing:
        raise Invalid(f"Image(s) {', '.join(map(str, missing[:10]))} do not exist.")
    for ckpt in ckpts:
        if ckpt.in_channels == 1:
            colour = [i for i in image_ids if images[i].channels == 3]
            if colour:
                raise Invalid(
                    f"{ckpt.name!r} takes single-channel images but image(s) "
                    f"{', '.join(map(str, colour[:10]))} are colour; pick greyscale images or "
                    "a 3-channel model."
                )
    return [images[i] for i in image_ids]


def _validate_raters(db: Session, usernames: list[str]) -> list[User]:
    users = {u.username: u for u in db.scalars(select(User).where(User.username.in_(usernames)))}
    unknown = [u for u in usernames if u not in users]
    if unknown:
        raise Invalid(f"Unknown rater(s): {', '.join(unknown)}.")
    wrong = [u for u in usernames if users[u].role != Role.rater.value]
    if wrong:
        raise Invalid(f"Not rater accounts: {', '.join(wrong)} (raters need the rater role).")
    inactive = [u for u in usernames if not users[u].is_active]
    if inactive:
        raise Invalid(f"Deactivated rater account(s): {', '.join(inactive)}.")
    return [users[u] for u in usernames]


def create_study(db: Session, *, spec: StudySpec | Mapping[str, Any], actor: User | None) -> Study:
    """Validate ``spec`` against the database and store the study with its full trial design."""
    spec = _as_spec(spec)
    ckpts, raters = _check_all(db, spec)
    study = Study(
        name=spec.name,
        instructions=spec.instructions,
        status=StudyStatus.draft.value,
        seed=spec.seed,
        items=spec.item_dicts(),
        saliency=spec.saliency.model_dump(),
        allow_back=spec.allow_back,
        repeat_fraction=spec.repeat_fraction,
        protocol=_protocol_json(spec),
        analysis_plan=spec.plan_dict(),
        created_by_id=actor.id if actor is not None else None,
    )
    db.add(study)
    db.flush()
    _build_design(db, study, spec, ckpts, raters)
    audit.record(
        db,
        actor=actor,
        action="study.created",
        object_type="study",
        object_id=study.id,
        detail={"name": study.name, "arms": len(spec.arms), "images": len(spec.image_ids)},
    )
    return study


def _build_design(
    db: Session, study: Study, spec: StudySpec, ckpts: list[Checkpoint], raters: list[User]
) -> None:
    """Arms, cases, raters and every trial (with an opaque random token) for ``study``."""
    arms = [
        Arm(
            study_id=study.id,
            checkpoint_id=ckpt.id,
            bn_route=(a.bn_route or "clean") if ckpt.dual_bn else None,
            method=a.method,
            params=dict(a.params),
            label=(a.label or "").strip() or default_arm_label(ckpt, a.bn_route),
            position=n,
        )
        for n, (a, ckpt) in enumerate(zip(spec.arms, ckpts, strict=True))
    ]
    db.add_all(arms)
    db.add_all(
        StudyImage(study_id=study.id, image_id=image_id, position=n)
        for n, image_id in enumerate(spec.image_ids)
    )
    db.add_all(StudyRater(study_id=study.id, user_id=u.id) for u in raters)
    db.flush()
    planned = plan_trials(
        raters=[u.id for u in raters],
        cases=list(spec.image_ids),
        arms=[a.id for a in arms],
        seed=spec.seed,
        repeat_fraction=spec.repeat_fraction,
        proto=spec.protocol,
    )
    insert_trials(db, study.id, planned)


def plan_trials(
    *,
    raters: list[int],
    cases: list[int],
    arms: list[int],
    seed: int,
    repeat_fraction: float,
    proto: ProtocolSpec,
) -> list[ProtocolTrial]:
    """The full trial plan (design rules + practice block + catch trials) for these raters.

    The one place the design is derived from a study's settings: creating a study and adding
    raters to an open one must deal trials by the same rules, or late raters would miss their
    practice block and catch trials."""
    base = generate_design(
        raters=raters,
        cases=cases,
        arms=arms,
        seed=seed,
        repeat_fraction=repeat_fraction,
        anchor_cases=list(proto.anchor_image_ids),
        readers_per_case=proto.readers_per_case,
    )
    return add_protocol(
        base,
        arms=arms,
        seed=seed,
        practice_cases=list(proto.practice_image_ids),
        catch_fraction=proto.catch_fraction,
        catch_kinds=list(proto.catch_kinds),
    )


def insert_trials(
    db: Session, study_id: int, plan: list[ProtocolTrial], *, only: set[int] | None = None
) -> int:
    """Trial rows (opaque random tokens) for the planned trials of the raters in ``only`` (all
    when None), with repeats linked to their originals; returns how many were added."""
    rows: dict[tuple[int, int], Trial] = {}
    for t in plan:
        if only is not None and t.rater not in only:
            continue
        rows[(t.rater, t.position)] = Trial(
            token=secrets.token_urlsafe(18),
            study_id=study_id,
            rater_id=t.rater,
            image_id=t.case,
            left_arm_id=t.left_arm,
            right_arm_id=t.right_arm,
            position=t.position,
            is_repeat=t.is_repeat,
            protocol=t.protocol_json(),
        )
    db.add_all(rows.values())
    db.flush()
    for t in plan:
        if t.repeat_of is not None and (t.rater, t.position) in rows:
            rows[(t.rater, t.position)].repeat_of_id = rows[(t.rater, t.repeat_of)].id
    db.flush()
    return len(rows)


# ---------------------------------------------------------------------------- lookups
def get_study(db: Session, study_id: int) -> Study:
    study = db.get(Study, study_id)
    if study is None:
        raise NotFound(f"Study {study_id} does not exist.")
    return study


def list_studies(db: Session) -> list[Study]:
    return list(db.scalars(select(Study).order_by(Study.id.desc())))


def count_ratings(db: Session, study: Study) -> int:
    return int(
        db.scalar(
            select(func.count(Rating.id))
            .join(Trial, Trial.id == Rating.trial_id)
            .where(Trial.study_id == study.id)
        )
        or 0
    )


def is_design_frozen(db: Session, study: Study) -> bool:
    """Frozen once anyone has rated; records the moment if the rating service did not."""
    if study.design_frozen_at is not None:
        return True
    first = db.scalar(
        select(func.min(Rating.created_at))
        .join(Trial, Trial.id == Rating.trial_id)
        .where(Trial.study_id == study.id)
    )
    if first is None:
        return False
    study.design_frozen_at = first if first.tzinfo else first.replace(tzinfo=dt.UTC)
    return True


def map_counts(db: Session, study: Study) -> tuple[int, int]:
    """(maps stored, maps needed) for the study's arms × images × target policy."""
    target = saliency_settings(study.saliency).target
    arm_ids = [a.id for a in study.arms]
    image_ids = study_image_ids(study)  # practice cases need maps too
    needed = len(arm_ids) * len(image_ids)
    if not needed:
        return 0, 0
    have = stored_maps(db, arm_ids=arm_ids, target=target, image_ids=image_ids)
    # randomised-weights maps that catch trials show (app.services.maps.catch)
    fake = randomised_pairs(db, study.id)
    fake_have = stored_maps(db, arm_ids=list(fake), target=variant_target(target, RANDOMISED))
    needed += sum(len(v) for v in fake.values())
    done = sum(1 for a, ids in fake.items() for i in ids if (a, i) in fake_have)
    return len(have) + done, needed


def active_raters(db: Session) -> list[User]:
    """The raters a study builder may pick: active accounts with the rater role, by name."""
    return list(
        db.scalars(
            select(User)
            .where(User.role == Role.rater.value, User.is_active.is_(True))
            .order_by(User.username)
        )
    )


def latest_job(db: Session, study: Study) -> Job | None:
    return db.scalar(select(Job).where(Job.study_id == study.id).order_by(Job.id.desc()).limit(1))


# ---------------------------------------------------------------------------- changes
def update_study(
    db: Session, study: Study, changes: Mapping[str, Any], actor: User | None
) -> Study:
    """Edit a study. Name and instructions: until closed. Design fields: only in draft and
    before the first rating; they rebuild arms, cases, raters and trials from scratch."""
    if study.status == StudyStatus.closed.value:
        raise Conflict("The study is closed; it can no longer be edited.")
    unknown = set(changes) - {"name", "instructions", "allow_back", "analysis_plan", *DESIGN_FIELDS}
    if unknown:
        raise Invalid(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    design_changes = {k: v for k, v in changes.items() if k in DESIGN_FIELDS}
    if design_changes or "allow_back" in changes:
        if is_design_frozen(db, study):
            raise Conflict(
                "The design is frozen: raters have started. Arms, images, raters, items and "
                "saliency settings can no longer change."
            )
        if design_changes and study.status != StudyStatus.draft.value:
            raise Conflict(f"The design can only change in draft (the study is {study.status}).")
    if "analysis_plan" in changes and study.status != StudyStatus.draft.value:
        raise Conflict(
            "The analysis plan is pre-registered before the study opens; it can no longer "
            f"change (the study is {study.status})."
        )
    merged = {**spec_of(study), **{k: v for k, v in changes.items() if v is not None}}
    spec = _as_spec(merged)
    # Every check (all problems at once) before anything changes: a refused edit writes nothing.
    ckpts, raters = _check_all(db, spec) if design_changes else ([], [])
    study.name = spec.name
    study.instructions = spec.instructions
    study.allow_back = spec.allow_back
    if "analysis_plan" in changes:  # null withdraws the plan (still only before opening)
        plan = spec.plan_dict() if changes["analysis_plan"] is not None else {}
        # The same plan sent again (the builder posts it with every save) keeps its stamp.
        if _plan_spec(plan) != _plan_spec(study.analysis_plan):
            study.analysis_plan = plan
    if design_changes:
        db.execute(delete(Trial).where(Trial.study_id == study.id))
        study.arms.clear()
        study.images.clear()
        study.raters.clear()
        db.flush()
        study.seed = spec.seed
        study.items = spec.item_dicts()
        study.saliency = spec.saliency.model_dump()
        study.repeat_fraction = spec.repeat_fraction
        study.protocol = _protocol_json(spec)
        _build_design(db, study, spec, ckpts, raters)
        db.refresh(study)
    audit.record(
        db,
        actor=actor,
        action="study.updated",
        object_type="study",
        object_id=study.id,
        detail={"fields": sorted(changes)},
    )
    return study


def spec_of(study: Study) -> dict[str, Any]:
    """The study as a StudySpec-shaped dict (the builder's edit form and PATCH start here)."""
    usernames = {u.id: u.username for u in _users(study)}
    return {
        "name": study.name,
        "instructions": study.instructions,
        "image_ids": [si.image_id for si in study.images],
        "arms": [
            {
                "checkpoint_id": a.checkpoint_id,
                "bn_route": a.bn_route,
                "method": a.method,
                "params": dict(a.params or {}),
                "label": a.label,
            }
            for a in study.arms
        ],
        "raters": [usernames[r.user_id] for r in study.raters if r.user_id in usernames],
        "seed": study.seed,
        "items": list(study.items or []) or None,
        "saliency": dict(study.saliency or {}),
        "allow_back": study.allow_back,
        "repeat_fraction": study.repeat_fraction,
        "protocol": protocol_settings(study.protocol).model_dump(),
        "analysis_plan": _plan_spec(study.analysis_plan),
    }


def _plan_spec(plan: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The stored plan without its registration stamp (the StudySpec shape), None if none."""
    if not plan:
        return None
    return {k: v for k, v in plan.items() if k != "registered_at"}


def _protocol_json(spec: StudySpec) -> dict[str, Any] | None:
    """What `Study.protocol` stores: None for a study without any quality-control option."""
    dumped = spec.protocol.model_dump()
    return None if dumped == type(spec.protocol)().model_dump() else dumped


def _users(study: Study) -> list[User]:
    from sqlalchemy.orm import object_session

    session = object_session(study)
    assert session is not None
    ids = [r.user_id for r in study.raters]
    return list(session.scalars(select(User).where(User.id.in_(ids))))


def open_study(db: Session, study: Study, actor: User | None) -> Study:
    """Open for rating: every map must exist and no generation may be running."""
    if study.status == StudyStatus.open.value:
        return study
    if study.status == StudyStatus.closed.value:
        raise Conflict("The study is closed; use Reopen on its page (or POST …/reopen) instead.")
    if active_job(db, study.id) is not None:
        raise Conflict("Maps are still being generated; open the study when the job is done.")
    have, needed = map_counts(db, study)
    if have < needed:
        raise Conflict(
            f"Only {have} of {needed} saliency maps exist; generate the maps before opening."
        )
    study.status = StudyStatus.open.value
    study.opened_at = utcnow()
    audit.record(db, actor=actor, action="study.opened", object_type="study", object_id=study.id)
    return study


def close_study(db: Session, study: Study, actor: User | None) -> Study:
    """Close rating for good (ratings stay readable for analysis and export)."""
    if study.status == StudyStatus.closed.value:
        return study
    if study.status != StudyStatus.open.value:
        raise Conflict(f"Only an open study can be closed (this one is {study.status}).")
    study.status = StudyStatus.closed.value
    study.closed_at = utcnow()
    audit.record(db, actor=actor, action="study.closed", object_type="study", object_id=study.id)
    return study


# ---------------------------------------------------------------------------- progress
@dataclass(frozen=True)
class RaterProgress:
    user_id: int
    username: str
    display_name: str
    done: int
    total: int
    last_activity: dt.datetime | None
    median_seconds: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "username": self.username,
            "display_name": self.display_name,
            "done": self.done,
            "total": self.total,
            "last_activity": self.last_activity.isoformat() if self.last_activity else None,
            "median_seconds": self.median_seconds,
        }


def rater_progress(db: Session, study: Study) -> list[RaterProgress]:
    """Per rater: trials answered / assigned, last answer time, median active time per trial."""
    totals = dict(
        db.execute(
            select(Trial.rater_id, func.count(Trial.id))
            .where(Trial.study_id == study.id)
            .group_by(Trial.rater_id)
        ).all()
    )
    answers: dict[int, list[tuple[dt.datetime, int]]] = {}
    for rater_id, updated_at, active_ms in db.execute(
        select(Rating.rater_id, Rating.updated_at, Rating.active_ms)
        .join(Trial, Trial.id == Rating.trial_id)
        .where(Trial.study_id == study.id)
    ):
        answers.setdefault(rater_id, []).append((updated_at, active_ms))
    users = {u.id: u for u in _users(study)}
    rows = []
    for sr in study.raters:
        user = users.get(sr.user_id)
        mine = answers.get(sr.user_id, [])
        rows.append(
            RaterProgress(
                user_id=sr.user_id,
                username=user.username if user else "?",
                display_name=(user.display_name if user else "") or "",
                done=len(mine),
                total=int(totals.get(sr.user_id, 0)),
                last_activity=max((a for a, _ in mine), default=None),
                median_seconds=(
                    round(statistics.median(ms for _, ms in mine) / 1000.0, 1) if mine else None
                ),
            )
        )
    return sorted(rows, key=lambda r: r.username)


def study_progress(db: Session, study: Study) -> tuple[int, int]:
    """(ratings given, trials assigned) over all raters."""
    total = db.scalar(select(func.count(Trial.id)).where(Trial.study_id == study.id)) or 0
    return count_ratings(db, study), int(total)


def study_json(db: Session, study: Study) -> dict[str, Any]:
    """Staff view of a study (arm labels and checkpoints included: never for raters)."""
    have, needed = map_counts(db, study)
    done, total = study_progress(db, study)
    job = latest_job(db, study)
    is_design_frozen(db, study)  # records design_frozen_at if a rating exists
    ckpt_names = dict(
        db.execute(
            select(Checkpoint.id, Checkpoint.name).where(
                Checkpoint.id.in_([a.checkpoint_id for a in study.arms])
            )
        ).all()
    )
    return {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "instructions": study.instructions,
        "seed": study.seed,
        "items": study.items,
        "saliency": study.saliency,
        "allow_back": study.allow_back,
        "repeat_fraction": study.repeat_fraction,
        "protocol": protocol_settings(study.protocol).model_dump(),
        "analysis_plan": dict(study.analysis_plan or {}) or None,
        "image_ids": [si.image_id for si in study.images],
        "arms": [
            {
                "id": a.id,
                "position": a.position,
                "label": a.label,
                "checkpoint_id": a.checkpoint_id,
                "checkpoint_name": ckpt_names.get(a.checkpoint_id, ""),
                "bn_route": a.bn_route,
                "method": a.method,
                "params": a.params,
            }
            for a in study.arms
        ],
        "raters": [r.as_json() for r in rater_progress(db, study)],
        "maps": {"done": have, "total": needed},
        "ratings": {"done": done, "total": total},
        "design_frozen_at": study.design_frozen_at.isoformat() if study.design_frozen_at else None,
        "opened_at": study.opened_at.isoformat() if study.opened_at else None,
        "closed_at": study.closed_at.isoformat() if study.closed_at else None,
        "latest_job_id": job.id if job else None,
    }
