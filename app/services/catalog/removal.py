"""Changes to the catalogue after upload: deleting an image or checkpoint nobody uses, and
correcting an image's labels before a study depends on them.

A study (even a draft) pins what it uses: deletion is refused with the studies' names, so the
admin knows what to remove first. Labels are ground truth for the analysis; once a study past
its draft holds the image, they are frozen (a new image row would be the honest fix).

The rows go in the caller's transaction; the files are returned, not deleted, because a service
never knows whether its transaction will commit: the route removes them after the commit.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from app.errors import Conflict, Invalid
from app.models import Arm, Checkpoint, Image, SaliencyMap, Study, StudyImage, StudyStatus, User
from app.services import audit

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,63}$")
MAX_LABELS = 64


def _study_names(db: Session, ids_stmt: Select[Any]) -> list[str]:
    rows = db.execute(
        select(Study.id, Study.name, Study.status).where(Study.id.in_(ids_stmt)).order_by(Study.id)
    )
    return [f"{name!r} (#{sid}, {status})" for sid, name, status in rows]


def _studies_text(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def image_studies(db: Session, image: Image) -> list[str]:
    return _study_names(db, select(StudyImage.study_id).where(StudyImage.image_id == image.id))


def checkpoint_studies(db: Session, ckpt: Checkpoint) -> list[str]:
    return _study_names(db, select(Arm.study_id).where(Arm.checkpoint_id == ckpt.id))


def _unshared(db: Session, paths: list[str], exclude_image: int | None = None) -> list[str]:
    """Files no other image points at (the store is content-addressed: two rows may share)."""
    out = []
    for rel in dict.fromkeys(p for p in paths if p):
        cols = (
            Image.display_path,
            Image.thumb_path,
            Image.input_path,
            Image.mask_path,
            Image.source_path,
        )
        stmt = select(func.count(Image.id)).where(or_(*(col == rel for col in cols)))
        if exclude_image is not None:
            stmt = stmt.where(Image.id != exclude_image)
        if not db.scalar(stmt):
            out.append(rel)
    return out


def delete_image(db: Session, *, actor: User, image: Image, ip: str = "") -> list[str]:
    """Delete an image no study uses; returns its files for the caller to remove after commit."""
    used = image_studies(db, image)
    if used:
        raise Conflict(
            f"Image #{image.id} is used by {_studies_text(used)}; "
            "remove it from those studies (or delete the drafts) first."
        )
    if db.scalar(select(func.count(SaliencyMap.id)).where(SaliencyMap.image_id == image.id)):
        raise Conflict(f"Image #{image.id} has saliency maps stored; it cannot be deleted.")
    files = _unshared(
        db,
        [
            image.display_path,
            image.thumb_path,
            image.input_path,
            image.mask_path or "",
            image.source_path or "",
        ],
        exclude_image=image.id,
    )  # fmt: skip
    audit.record(
        db,
        actor=actor,
        action="image.deleted",
        object_type="image",
        object_id=image.id,
        detail={"sha256": image.sha256},
        ip=ip,
    )
    db.delete(image)
    db.flush()
    return files


def delete_checkpoint(db: Session, *, actor: User, ckpt: Checkpoint, ip: str = "") -> list[str]:
    """Delete a checkpoint no study uses; returns its file for removal after commit."""
    used = checkpoint_studies(db, ckpt)
    if used:
        raise Conflict(
            f"Checkpoint {ckpt.name!r} is an arm of {_studies_text(used)}; "
            "delete those drafts or pick another checkpoint there first."
        )
    shared = db.scalar(
        select(func.count(Checkpoint.id)).where(
            Checkpoint.file_path == ckpt.file_path, Checkpoint.id != ckpt.id
        )
    )
    audit.record(
        db,
        actor=actor,
        action="checkpoint.deleted",
        object_type="checkpoint",
        object_id=ckpt.id,
        detail={"name": ckpt.name, "sha256": ckpt.sha256},
        ip=ip,
    )
    files = [] if shared else [ckpt.file_path]
    db.delete(ckpt)
    db.flush()
    return files


def parse_labels(text: str) -> dict[str, int]:
    """ "pneumonia=1, effusion=0" (or one per line) → {"pneumonia": 1, "effusion": 0}."""
    labels: dict[str, int] = {}
    problems: list[str] = []
    for part in re.split(r"[,\n]", text):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or value not in ("0", "1"):
            problems.append(f"{part!r}: write name=1 (positive) or name=0 (negative).")
        elif not LABEL_RE.fullmatch(name):
            problems.append(f"{name!r}: a label name is letters, digits, space, _ . + -.")
        else:
            labels[name] = int(value)
    if len(labels) > MAX_LABELS:
        problems.append(f"At most {MAX_LABELS} labels.")
    if problems:
        raise Invalid(" ".join(problems))
    return labels


def set_labels(
    db: Session, *, actor: User, image: Image, labels: dict[str, int], ip: str = ""
) -> Image:
    """Replace an image's ground-truth labels while no study past its draft uses it."""
    frozen = _study_names(
        db,
        select(StudyImage.study_id)
        .join(Study, Study.id == StudyImage.study_id)
        .where(StudyImage.image_id == image.id, Study.status != StudyStatus.draft.value),
    )
    if frozen:
        raise Conflict(
            f"The labels of image #{image.id} are ground truth for {_studies_text(frozen)}; "
            "they cannot change any more."
        )
    before = dict(image.labels or {})
    image.labels = dict(labels)
    audit.record(
        db,
        actor=actor,
        action="image.labels_changed",
        object_type="image",
        object_id=image.id,
        detail={"from": before, "to": dict(labels)},
        ip=ip,
    )
    db.flush()
    return image
