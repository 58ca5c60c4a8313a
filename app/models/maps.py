"""Computed saliency maps: one per arm x image x target."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import CreatedAt


class SaliencyMap(CreatedAt, Base):
    __tablename__ = "saliency_maps"
    __table_args__ = (
        UniqueConstraint("arm_id", "image_id", "target", name="uq_map_arm_image_target"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="RESTRICT"), index=True)
    target: Mapped[str] = mapped_column(String(120))
    raw_path: Mapped[str] = mapped_column(String(500))  # float16 .npy, relative to data dir
    # The map as every viewer gets it: a uint8 .npy field of one fixed size (ml.explain.field),
    # coloured by the browser; a PNG, where one is wanted, is rendered from it on demand
    # (app.services.inference.field_png), never stored.
    field_path: Mapped[str] = mapped_column(String(500))
    prediction: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    compute_ms: Mapped[float] = mapped_column(Float, default=0.0)
