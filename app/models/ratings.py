"""Ratings: the current answer per trial plus an append-only revision history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import UTCDateTime, enum_check, utcnow

PREFERENCES: tuple[str, ...] = ("left", "right", "none")


class Rating(Base):
    """The current answer. Scores refer to sides as the rater saw them (left/right)."""

    __tablename__ = "ratings"
    __table_args__ = (
        UniqueConstraint("trial_id", name="uq_rating_trial"),
        CheckConstraint(
            "preference IS NULL OR " + enum_check("preference", PREFERENCES), name="ck_rating_pref"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    # Primary item's scores (the contract's left_score/right_score).
    left_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    right_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # All Likert items: {"item key": {"left": int, "right": int}}.
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    preference: Mapped[str | None] = mapped_column(String(8), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    active_ms: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RatingRevision(Base):
    """Append-only history; `request_id` makes a retried submission idempotent."""

    __tablename__ = "rating_revisions"
    __table_args__ = (
        UniqueConstraint("trial_id", "revision", name="uq_revision_number"),
        UniqueConstraint("trial_id", "request_id", name="uq_revision_request"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rating_id: Mapped[int] = mapped_column(ForeignKey("ratings.id", ondelete="CASCADE"), index=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    left_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    right_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    preference: Mapped[str | None] = mapped_column(String(8), nullable=True)
    comment: Mapped[str] = mapped_column(Text, default="")
    active_ms: Mapped[int] = mapped_column(Integer, default=0)
    total_ms: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
