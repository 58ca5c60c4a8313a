"""A rater's trials: which one is next, what a trial page shows, and which files it may fetch.

Everything here is rater-facing, so it is written around the blinding rule: a trial is found
only by its opaque token *and* its owner (another rater's token is simply "not found"), and
the view model carries no arm, checkpoint, method, map or image identifier. Map slot "a" is
the trial's stored left arm and "b" its right arm, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Image, Rating, Study, StudyRater, StudyStatus, Trial, User
from app.models.base import utcnow
from app.services.reading.answers import FLAG_REASONS, asked_items
from app.services.reading.practice import practice_feedback
from app.services.study.protocol import protocol_settings
from app.services.study.spec import rating_items, saliency_settings
from app.storage import Storage

COMMENT_MAX = 2000
SLOTS = ("image",)
RATER_VISIBLE_STATUSES = (StudyStatus.open.value, StudyStatus.closed.value)


def likert_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["kind"] == "likert"]


@dataclass(frozen=True)
class Progress:
    """One rater's position in one study."""

    answered: int
    total: int
    resume_token: str | None  # first unanswered trial in sequence order; None when finished
    resume_position: int | None

    @property
    def done(self) -> bool:
        return self.resume_token is None


@dataclass(frozen=True)
class StudyCard:
    """What the rater home shows for one study: only the caller's own progress."""

    study_id: int
    name: str
    status: str
    progress: Progress


def progress(db: Session, study_id: int, rater_id: int) -> Progress:
    """Counts and the resume point in two indexed queries (this runs on every rater request)."""
    total, answered, resume_position = db.execute(
        select(
            func.count(Trial.id),
            func.count(Rating.id),
            func.min(case((Rating.id.is_(None), Trial.position))),
        )
        .select_from(Trial)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Trial.study_id == study_id, Trial.rater_id == rater_id)
    ).one()
    token = None
    if resume_position is not None:
        token = db.scalar(
            select(Trial.token).where(
                Trial.study_id == study_id,
                Trial.rater_id == rater_id,
                Trial.position == resume_position,
            )
        )
    return Progress(
        answered=int(answered or 0),
        total=int(total or 0),
        resume_token=token,
        resume_position=int(resume_position) if resume_position is not None else None,
    )


def rater_studies(db: Session, rater: User) -> list[StudyCard]:
    """The caller's open and closed studies, newest first (drafts are not theirs to see yet)."""
    studies = db.scalars(
        select(Study)
        .join(StudyRater, StudyRater.study_id == Study.id)
        .where(StudyRater.user_id == rater.id, Study.status.in_(RATER_VISIBLE_STATUSES))
        .order_by(Study.id.desc())
    ).all()
    return [
        StudyCard(
            study_id=s.id, name=s.name, status=s.status, progress=progress(db, s.id, rater.id)
        )
        for s in studies
    ]


def rater_study(db: Session, rater: User, study_id: int) -> Study:
    """A study the caller rates in; 404 for any other (existence is not disclosed)."""
    study = db.scalar(
        select(Study)
        .join(StudyRater, StudyRater.study_id == Study.id)
        .where(
            Study.id == study_id,
            StudyRater.user_id == rater.id,
            Study.status.in_(RATER_VISIBLE_STATUSES),
        )
    )
    if study is None:
        raise NotFound("No such study.")
    return study


def require_open(study: Study) -> None:
    if study.status != StudyStatus.open.value:
        raise Conflict("This study is closed; ratings can no longer be changed.")


def next_trial(db: Session, rater: User, study_id: int | None = None) -> tuple[Study, Progress]:
    """The study to continue (the given one, else the oldest open one with work left) and the
    caller's progress in it. Raises NotFound when the caller has no open study at all."""
    if study_id is not None:
        study = rater_study(db, rater, study_id)
        require_open(study)
        return study, progress(db, study.id, rater.id)
    open_studies = db.scalars(
        select(Study)
        .join(StudyRater, StudyRater.study_id == Study.id)
        .where(StudyRater.user_id == rater.id, Study.status == StudyStatus.open.value)
        .order_by(Study.id)
    ).all()
    if not open_studies:
        raise NotFound("You have no open study.")
    for study in open_studies:
        prog = progress(db, study.id, rater.id)
        if not prog.done:
            return study, prog
    # Everything answered: report the oldest open study as done.
    return open_studies[0], progress(db, open_studies[0].id, rater.id)


@dataclass(frozen=True)
class TrialContext:
    """A trial the caller owns, its study, and where the caller stands in that study."""

    trial: Trial
    study: Study
    progress: Progress
    rating: Rating | None

    @property
    def is_current(self) -> bool:
        return self.trial.token == self.progress.resume_token

    def blocked_reason(self) -> str | None:
        """Why the caller may not open this trial now (None: they may)."""
        if self.rating is None and not self.is_current:
            return "Trials are answered in order; continue with your current trial."
        if self.rating is not None and not self.study.allow_back:
            return "This study does not allow going back to answered trials."
        return None


def trial_context(
    db: Session,
    rater: User,
    token: str,
    *,
    for_update: bool = False,
    known: Progress | None = None,
) -> TrialContext:
    """Load a trial with its study and the caller's progress (`known` when just computed).
    `for_update` locks the trial row (PostgreSQL) so concurrent submissions for one trial
    are serialised."""
    stmt = select(Trial).where(Trial.token == token, Trial.rater_id == rater.id)
    if for_update:
        stmt = stmt.with_for_update()
    trial = db.scalar(stmt) if token and len(token) <= 64 else None
    if trial is None:
        raise NotFound("No such trial.")
    study = db.get(Study, trial.study_id)
    if study is None or study.status not in RATER_VISIBLE_STATUSES:
        raise NotFound("No such trial.")
    rating = db.scalar(select(Rating).where(Rating.trial_id == trial.id))
    prog = known or progress(db, study.id, rater.id)
    return TrialContext(trial=trial, study=study, progress=prog, rating=rating)


def mark_shown(ctx: TrialContext) -> None:
    """Stamp when the rater first saw the trial (kept for timing analyses)."""
    if ctx.trial.first_shown_at is None:
        ctx.trial.first_shown_at = utcnow()


def open_trial(
    db: Session, rater: User, token: str, *, known: Progress | None = None
) -> TrialContext:
    """A trial the caller may look at now (409 otherwise); stamps when it was first shown."""
    ctx = trial_context(db, rater, token, known=known)
    require_open(ctx.study)
    reason = ctx.blocked_reason()
    if reason is not None:
        raise Conflict(reason)
    mark_shown(ctx)
    return ctx


def neighbour_token(db: Session, trial: Trial, step: int) -> str | None:
    """Token of the caller's trial `step` places away in their sequence (back-navigation)."""
    return db.scalar(
        select(Trial.token).where(
            Trial.study_id == trial.study_id,
            Trial.rater_id == trial.rater_id,
            Trial.position == trial.position + step,
        )
    )


def answer_of(rating: Rating | None) -> dict[str, Any] | None:
    """The caller's current answer, in the sides they saw (prefills an edit)."""
    if rating is None:
        return None
    return {
        "left_score": rating.left_score,
        "right_score": rating.right_score,
        "scores": dict(rating.scores or {}),
        "preference": rating.preference,
        "comment": rating.comment,
        "revision": rating.revision,
        "updated_at": rating.updated_at.isoformat(),
    }


def trial_urls(token: str) -> dict[str, str]:
    return {
        "page_url": f"/t/{token}",
        # The viewer's description of the trial (app.services.reading.viewer.ViewerSpec).
        "viewer_url": f"/api/v1/trials/{token}/viewer",
        "image_url": f"/t/{token}/image.png",
        # The viewer's map fields (fixed length and headers for every map of a study): no
        # per-arm rendered PNG is reachable by a rater, its byte size would tell the arms apart.
        "map_a_url": f"/t/{token}/view/a",
        "map_b_url": f"/t/{token}/view/b",
        "rating_url": f"/api/v1/trials/{token}/rating",
    }


def view_of(
    study: Study,
    *,
    token: str,
    position: int,
    total: int,
    answered: int,
    urls: dict[str, str],
    previous_url: str | None,
    next_url: str | None,
    rating: dict[str, Any] | None,
    practice: bool = False,
    case_text: str = "",
    items: list[dict[str, Any]] | None = None,
    feedback: str | None = None,
) -> dict[str, Any]:
    """The one builder of a trial page's view, for the rater's trial and the staff preview
    alike, so the preview cannot drift from what a rater sees. ``position`` is 1-based.

    ``urls`` holds the page's URLs (``page_url``, ``viewer_url``, ``image_url``, ``map_a_url``,
    ``map_b_url``, ``rating_url``): the rater's by token, the preview's staff ones by trial id.
    ``practice`` labels a practice trial (the rater is told; catch trials are never marked),
    ``case_text`` is the case's clinical history, ``items`` those the trial asks (default all).
    """
    return {
        "done": False,
        "token": token,
        "position": position,
        "total": total,
        "answered": answered,
        "study": {
            "id": study.id,
            "name": study.name,
            "instructions": study.instructions,
            "allow_back": study.allow_back,
        },
        "items": items if items is not None else rating_items(study.items),
        "practice": practice,
        "case_text": case_text,
        "feedback": feedback,
        "flag_reasons": list(FLAG_REASONS),
        **urls,
        "map_urls": {"a": urls["map_a_url"], "b": urls["map_b_url"]},
        "overlay_opacity": saliency_settings(study.saliency).opacity,
        "previous_url": previous_url,
        "next_url": next_url,
        "resume_url": f"/rate/{study.id}",
        "rating": rating,
    }


def trial_view(db: Session, ctx: TrialContext) -> dict[str, Any]:
    """Everything a trial page or API client needs, and nothing that could unblind."""
    study, trial, prog = ctx.study, ctx.trial, ctx.progress
    previous = neighbour_token(db, trial, -1) if study.allow_back else None
    following = None
    if study.allow_back and ctx.rating is not None:
        candidate = neighbour_token(db, trial, +1)
        # Forward navigation stops at the first unanswered trial (the resume point).
        if candidate is not None and (
            prog.resume_position is None or trial.position + 1 <= prog.resume_position
        ):
            following = candidate
    practice = (trial.protocol or {}).get("phase") == "practice"
    proto = protocol_settings(study.protocol)
    return view_of(
        study,
        token=trial.token,
        position=trial.position + 1,
        total=prog.total,
        answered=prog.answered,
        urls=trial_urls(trial.token),
        previous_url=f"/t/{previous}" if previous else None,
        next_url=f"/t/{following}" if following else None,
        rating=answer_of(ctx.rating),
        practice=practice,
        case_text=proto.case_text.get(str(trial.image_id), ""),
        items=asked_items(
            rating_items(study.items),
            position=trial.position,
            last_position=prog.total - 1,
            practice=practice,
        ),
        feedback=practice_feedback(db, study, trial) if ctx.rating is None else None,
    )


def done_view(study: Study, prog: Progress) -> dict[str, Any]:
    return {
        "done": True,
        "study": {"id": study.id, "name": study.name},
        "total": prog.total,
        "answered": prog.answered,
        "done_url": f"/rate/{study.id}/done",
    }


def trial_file(db: Session, storage: Storage, rater: User, token: str, slot: str) -> Path:
    """The file behind `/t/{token}/image.png` for the caller's own trial: the case's display
    rendition (the localise item draws on it). Maps are served only as the viewer's fixed-size
    fields (`/t/{token}/view/a|b`), never as per-arm PNGs. One query: images are the most
    frequent rater request. A closed study's files are no longer served (409): reading is
    over, and a rater's old links must not keep the cases open."""
    if slot not in SLOTS or not token or len(token) > 64:
        raise NotFound("No such file.")
    owned = (Trial.token == token, Trial.rater_id == rater.id)
    visible = Study.status.in_(RATER_VISIBLE_STATUSES)
    stmt = (
        select(Image.display_path, Study.status)
        .join(Trial, Trial.image_id == Image.id)
        .join(Study, Study.id == Trial.study_id)
        .where(*owned, visible)
    )
    row = db.execute(stmt).first()
    if row is None or not row[0]:
        raise NotFound("No such file.")
    if row[1] != StudyStatus.open.value:
        raise Conflict("This study is closed; its images are no longer shown.")
    path = storage.path(row[0])
    if not path.is_file():
        raise NotFound("No such file.")
    return path
