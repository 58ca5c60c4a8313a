"""Studies, their arms (conditions), cases, raters and the per-rater trial sequence."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base
from app.models.base import CreatedAt, UTCDateTime, enum_check


class StudyStatus(StrEnum):
    draft = "draft"
    generating = "generating"
    open = "open"
    closed = "closed"


class BnRoute(StrEnum):
    clean = "clean"
    adv = "adv"


class Study(CreatedAt, Base):
    __tablename__ = "studies"
    __table_args__ = (
        CheckConstraint(enum_check("status", tuple(StudyStatus)), name="ck_studies_status"),
        CheckConstraint("repeat_fraction >= 0 AND repeat_fraction <= 1", name="ck_repeat_frac"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=StudyStatus.draft.value)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    # Rating items: [{"key","kind":"likert"|"preference"|"comment","question","scale","anchors",
    # "required"}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Saliency settings: target policy, post-processing, colormap, opacity, method params.
    saliency: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    allow_back: Mapped[bool] = mapped_column(Boolean, default=False)
    repeat_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    # Pre-registered analysis plan, fixed before the study opens: {"primary_analysis", "alpha",
    # "item", "registered_at"}; empty = none registered (the report then says so).
    analysis_plan: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Quality-control protocol (issue 15; typed in app.services.study.spec.ProtocolSpec):
    # practice cases, catch fraction and kinds, anchor-and-rotate design, per-case text.
    protocol: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    design_frozen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    arms: Mapped[list[Arm]] = relationship(
        back_populates="study", order_by="Arm.position", cascade="all, delete-orphan"
    )
    images: Mapped[list[StudyImage]] = relationship(
        order_by="StudyImage.position", cascade="all, delete-orphan"
    )
    raters: Mapped[list[StudyRater]] = relationship(cascade="all, delete-orphan")


class StudyImage(Base):
    __tablename__ = "study_images"
    __table_args__ = (UniqueConstraint("study_id", "image_id", name="uq_study_image"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"))
    position: Mapped[int] = mapped_column(Integer)


class StudyRater(Base):
    __tablename__ = "study_raters"
    __table_args__ = (UniqueConstraint("study_id", "user_id", name="uq_study_rater"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)


class Arm(Base):
    """A condition: checkpoint + BN route + saliency method. `label` is researcher-only."""

    __tablename__ = "arms"
    __table_args__ = (
        UniqueConstraint("study_id", "position", name="uq_arm_position"),
        CheckConstraint(
            "bn_route IS NULL OR " + enum_check("bn_route", tuple(BnRoute)), name="ck_arm_route"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="RESTRICT"))
    bn_route: Mapped[str | None] = mapped_column(String(8), nullable=True)
    method: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    label: Mapped[str] = mapped_column(String(120), default="")
    position: Mapped[int] = mapped_column(Integer)

    study: Mapped[Study] = relationship(back_populates="arms")


class Trial(CreatedAt, Base):
    """One rater x case x ordered arm pair. `token` is the only thing a rater's URLs carry."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("study_id", "rater_id", "position", name="uq_trial_position"),
        CheckConstraint("left_arm_id <> right_arm_id", name="ck_trial_distinct_arms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"))
    left_arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id", ondelete="CASCADE"))
    right_arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 0-based place in the rater's sequence
    is_repeat: Mapped[bool] = mapped_column(Boolean, default=False)
    repeat_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("trials.id", ondelete="SET NULL"), nullable=True
    )
    first_shown_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Quality-control role (app.services.study.protocol), researcher-only: None for an ordinary
    # trial, {"phase": "practice"}, or {"catch": "same"|"randomised", "catch_arm": arm id,
    # "real_side": "left"|"right"|None}. Never part of a rater-facing payload.
    protocol: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
