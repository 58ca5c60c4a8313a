"""What studies are built from: uploaded checkpoints and images (cases)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models.base import CreatedAt


class Checkpoint(CreatedAt, Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    arch: Mapped[str] = mapped_column(String(64))
    dual_bn: Mapped[bool] = mapped_column(Boolean, default=False)
    num_classes: Mapped[int] = mapped_column(Integer)
    class_names: Mapped[list[str]] = mapped_column(JSON, default=list)
    in_channels: Mapped[int] = mapped_column(Integer, default=1)
    image_size: Mapped[int] = mapped_column(Integer)
    # {"mean": [...], "std": [...]}; normalisation happens inside the model.
    normalize: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Training metadata: mode, norm, eps, step size, steps, epochs, ...
    train_meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    file_path: Mapped[str] = mapped_column(String(500))  # relative to the data directory
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class Image(CreatedAt, Base):
    """A case. Only a whitelisted, PHI-free subset of DICOM headers is kept (`meta`)."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    source_filename: Mapped[str] = mapped_column(String(300))
    modality: Mapped[str] = mapped_column(String(16), default="OT")
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    # Paths relative to the data directory.
    display_path: Mapped[str] = mapped_column(String(500))  # 8-bit PNG rendition
    thumb_path: Mapped[str] = mapped_column(String(500))
    input_path: Mapped[str] = mapped_column(String(500))  # float16 .npy in [0,1], C x H x W
    mask_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # Pixels at real depth (.npy: DICOM modality-LUT output, 16-bit PNG values) for the
    # viewer's window/level; None when the 8-bit display PNG already is the source.
    source_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    window_center: Mapped[float | None] = mapped_column(Float, nullable=True)
    window_width: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Ground truth: {"class name": 0 | 1}.
    labels: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
