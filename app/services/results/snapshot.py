"""The ratings snapshot every export and the analysis are computed from.

`load_snapshot` reads every trial with its current rating in ONE SELECT (trials LEFT JOIN
ratings). A single statement sees one consistent snapshot on PostgreSQL (even under READ
COMMITTED) and on SQLite, so an export taken while raters are rating never mixes a rating's old
and new halves or counts a trial twice. The rest of the design (arms, cases, raters) is frozen
once a study opens, so reading it in separate statements cannot tear.

The snapshot unblinds arms (labels, checkpoint names and hashes): researcher-only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Checkpoint, Image, Rating, Study, StudyImage, StudyRater, Trial, User
from app.services.catalog.names import original_name
from app.services.reading.answers import FLAG_KEY
from app.services.study.arm_labels import unique_arm_labels
from app.services.study.spec import rating_items


@dataclass(frozen=True)
class ArmInfo:
    id: int
    position: int
    label: str  # unique within the study; the researcher's name for the arm
    checkpoint_id: int
    checkpoint_name: str
    checkpoint_sha256: str
    bn_route: str | None
    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class StudySnapshot:
    """Everything an export or analysis needs, read once."""

    study: dict[str, Any]
    items: list[dict[str, Any]]
    arms: list[ArmInfo]
    raters: list[str]
    cases: list[dict[str, Any]]
    trials: pd.DataFrame  # one row per trial; rating columns NaN/None when not yet rated
    exported_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def likert_items(self) -> list[dict[str, Any]]:
        return [i for i in self.items if i.get("kind") == "likert"]

    @property
    def arm_labels(self) -> list[str]:
        return [a.label for a in self.arms]

    @property
    def rated(self) -> pd.DataFrame:
        return self.trials[self.trials["rated"].astype(bool)]

    @property
    def analysed(self) -> pd.DataFrame:
        """Rated trials that enter the statistics: not practice, not catch, not flagged."""
        t = self.trials
        return t[t["rated"].astype(bool) & t["analysed"].astype(bool)]

    def file_stem(self) -> str:
        return f"radsal-study-{self.study['id']}"


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def _iso_column(values: pd.Series) -> pd.Series:
    """ISO 8601 UTC text (`...Z`) for a column of aware datetimes, vectorised (24,000
    `datetime.isoformat` calls took a second); None where missing."""
    stamps = pd.to_datetime(values, utc=True)
    text = np.datetime_as_string(
        stamps.dt.tz_convert(None).to_numpy(dtype="datetime64[us]"), unit="us", timezone="UTC"
    )
    return pd.Series(np.where(stamps.isna(), None, text), index=values.index, dtype=object)


def _items(study: Study) -> list[dict[str, Any]]:
    return rating_items(study.items)


def load_snapshot(db: Session, study_id: int) -> StudySnapshot:
    """Read a study's design and every trial with its current rating (see module docstring)."""
    study = db.get(Study, study_id)
    if study is None:
        raise NotFound(f"Study {study_id} does not exist.")
    arms = list(study.arms)
    labels = unique_arm_labels(arms)  # the stats key on them
    ckpts = {
        c.id: c
        for c in db.scalars(
            select(Checkpoint).where(Checkpoint.id.in_([a.checkpoint_id for a in arms]))
        )
    }
    arm_infos = [
        ArmInfo(
            id=a.id,
            position=a.position,
            label=labels[a.id],
            checkpoint_id=a.checkpoint_id,
            checkpoint_name=ckpts[a.checkpoint_id].name if a.checkpoint_id in ckpts else "",
            checkpoint_sha256=ckpts[a.checkpoint_id].sha256 if a.checkpoint_id in ckpts else "",
            bn_route=a.bn_route,
            method=a.method,
            params=dict(a.params or {}),
        )
        for a in arms
    ]
    image_rows = db.execute(
        select(Image, StudyImage.position)
        .join(StudyImage, StudyImage.image_id == Image.id)
        .where(StudyImage.study_id == study.id)
        .order_by(StudyImage.position)
    ).all()
    cases = [
        {
            "case": str(img.id),
            "position": pos,
            "file": original_name(img.source_filename),
            "sha256": img.sha256,
            "modality": img.modality,
            "labels": dict(img.labels or {}),
        }
        for img, pos in image_rows
    ]
    raters = list(
        db.scalars(
            select(User.username)
            .join(StudyRater, StudyRater.user_id == User.id)
            .where(StudyRater.study_id == study.id)
            .order_by(User.username)
        )
    )
    trials = _trials_frame(db, study.id, labels)
    design = {
        "id": study.id,
        "name": study.name,
        "status": study.status,
        "seed": study.seed,
        "instructions": study.instructions,
        "saliency": dict(study.saliency or {}),
        "allow_back": study.allow_back,
        "repeat_fraction": study.repeat_fraction,
        "analysis_plan": dict(study.analysis_plan or {}),
        "created_at": _iso(study.created_at),
        "opened_at": _iso(study.opened_at),
        "closed_at": _iso(study.closed_at),
    }
    return StudySnapshot(design, _items(study), arm_infos, raters, cases, trials)


_TRIAL_COLUMNS = [
    "trial", "rater", "case", "position", "is_repeat", "repeat_of", "left_arm_id",
    "right_arm_id", "first_shown_at", "rating_id", "left_score", "right_score", "scores",
    "preference", "comment", "active_ms", "total_ms", "revision", "rated_at", "updated_at",
    "protocol",
]  # fmt: skip


def _trials_frame(db: Session, study_id: int, labels: dict[int, str]) -> pd.DataFrame:
    """One SELECT: every trial of the study with its current rating (or none)."""
    stmt = (
        select(
            Trial.id,
            User.username,
            Trial.image_id,
            Trial.position,
            Trial.is_repeat,
            Trial.repeat_of_id,
            Trial.left_arm_id,
            Trial.right_arm_id,
            Trial.first_shown_at,
            Rating.id,
            Rating.left_score,
            Rating.right_score,
            Rating.scores,
            Rating.preference,
            Rating.comment,
            Rating.active_ms,
            Rating.total_ms,
            Rating.revision,
            Rating.created_at,
            Rating.updated_at,
            Trial.protocol,
        )
        .join(User, User.id == Trial.rater_id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(Trial.study_id == study_id)
        .order_by(User.username, Trial.position)
    )
    frame = pd.DataFrame.from_records(
        [tuple(row) for row in db.execute(stmt)], columns=_TRIAL_COLUMNS
    )
    frame["case"] = frame["case"].astype(str)  # ids as text: stable across CSV round trips
    frame["is_repeat"] = frame["is_repeat"].astype(bool)
    frame["rated"] = frame["rating_id"].notna()
    frame["scores"] = [dict(s or {}) for s in frame["scores"]]
    frame["comment"] = frame["comment"].fillna("")
    for col in ("first_shown_at", "rated_at", "updated_at"):
        frame[col] = _iso_column(frame[col])
    frame["left_arm"] = frame["left_arm_id"].map(labels)
    frame["right_arm"] = frame["right_arm_id"].map(labels)
    _protocol_columns(frame)
    return frame


def _protocol_columns(frame: pd.DataFrame) -> None:
    """phase, catch, catch_arm_id, real_side, flag, trial_kind, analysed (issue 15).

    Practice and catch trials and flagged cases are answered like any trial but never enter a
    statistic (`analysed` False); the exports keep them, labelled.
    """
    proto = [dict(p or {}) for p in frame["protocol"]]
    frame["phase"] = [p.get("phase", "main") for p in proto]
    frame["catch"] = [p.get("catch") for p in proto]
    frame["catch_arm_id"] = pd.array([p.get("catch_arm") for p in proto], dtype="Int64")
    frame["real_side"] = [p.get("real_side") for p in proto]
    frame["flag"] = [
        (s.get(FLAG_KEY) or {}).get("reason") if isinstance(s.get(FLAG_KEY), dict) else None
        for s in frame["scores"]
    ]
    frame["flag_note"] = [
        (s.get(FLAG_KEY) or {}).get("note", "") if isinstance(s.get(FLAG_KEY), dict) else ""
        for s in frame["scores"]
    ]
    frame["trial_kind"] = [
        "practice" if ph == "practice" else (f"catch_{c}" if isinstance(c, str) else "main")
        for ph, c in zip(frame["phase"], frame["catch"], strict=True)
    ]
    frame["analysed"] = (
        (frame["phase"] == "main") & frame["catch"].isna() & frame["flag"].isna()
    ).astype(bool)
