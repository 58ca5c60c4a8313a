"""Checkpoint ingest: verify with ml.checkpoint (weights only, rebuilt, one dummy forward), store.

Nothing is written to disk or the database until the file has been loaded, rebuilt and run;
a refused file leaves no trace except an audit event. A file whose SHA-256 is already known
returns the existing checkpoint (a duplicate upload is not an error).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Invalid, NotFound, TooLarge
from app.models import Checkpoint, User
from app.services import audit, inference
from app.storage import Storage, sha256_hex

if TYPE_CHECKING:  # torch loads with the first model, not with the server
    from torch import nn

HINT_KEYS = ("arch", "num_classes", "class_names", "image_size", "in_channels")


def _read_all(data: bytes | BinaryIO, limit: int) -> bytes:
    raw = bytes(data) if isinstance(data, bytes | bytearray) else data.read(limit + 1)
    if len(raw) > limit:
        raise TooLarge(f"Checkpoint too large: the limit is {limit // 2**20} MiB.")
    return raw


def clean_hints(hints: dict[str, Any] | None) -> dict[str, Any]:
    """Optional seed-layout hints from a form/API: drop blanks, parse numbers and name lists."""
    out: dict[str, Any] = {}
    for key, value in (hints or {}).items():
        if key not in HINT_KEYS or value is None or value == "" or value == []:
            continue
        if key in ("num_classes", "image_size", "in_channels"):
            try:
                out[key] = int(value)
            except (TypeError, ValueError):
                raise Invalid(f"{key} must be a whole number, got {value!r}.") from None
        elif key == "class_names":
            names = value if isinstance(value, list) else str(value).split(",")
            out[key] = [str(n).strip() for n in names if str(n).strip()]
        else:
            out[key] = str(value).strip()
    return out


def import_checkpoint(
    db: Session,
    settings: Settings,
    *,
    data: bytes | BinaryIO,
    filename: str,
    name: str,
    actor: User | None,
    hints: dict[str, Any] | None = None,
) -> tuple[Checkpoint, bool]:
    """Verify and store an uploaded checkpoint. Returns (checkpoint, was_duplicate).

    Raises Invalid with ml's message verbatim for every refusal (code-bearing pickle, unknown
    architecture, state dict that does not fit, wrong class count, corrupt file).
    """
    raw = _read_all(data, settings.max_upload_mb * 2**20)
    if not raw:
        raise Invalid("The checkpoint file is empty.")
    digest = sha256_hex(raw)
    existing = db.scalar(select(Checkpoint).where(Checkpoint.sha256 == digest))
    if existing is not None:
        return existing, True
    label = (name or "").strip() or filename or "checkpoint"
    if len(label) > 200:
        raise Invalid("The checkpoint name is longer than 200 characters.")
    try:
        loaded = inference.load_checkpoint(raw, map_location="cpu", **clean_hints(hints))
    except inference.CheckpointRejected as exc:
        message = str(exc).replace("<bytes>", filename or "upload")
        audit.record(
            db,
            actor=actor,
            action="checkpoint.refused",
            object_type="checkpoint",
            detail={"filename": filename, "sha256": digest, "reason": message[:500]},
        )
        raise Invalid(message) from None
    meta = loaded.meta
    rel = Storage(settings.data_dir).put_content("checkpoints", raw, ".pt")
    ckpt = Checkpoint(
        name=label,
        arch=str(meta["arch"]),
        dual_bn=bool(meta["dual_bn"]),
        num_classes=int(meta["num_classes"]),
        class_names=[str(c) for c in meta["class_names"]],
        in_channels=int(meta["in_channels"]),
        image_size=int(meta["image_size"]),
        normalize=dict(meta.get("normalize") or {}),
        train_meta={**dict(meta.get("train") or {}), "source_format": loaded.source_format},
        sha256=digest,
        file_path=rel,
        size_bytes=len(raw),
        uploaded_by_id=actor.id if actor is not None else None,
    )
    db.add(ckpt)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="checkpoint.imported",
        object_type="checkpoint",
        object_id=ckpt.id,
        detail={"name": label, "sha256": digest, "arch": ckpt.arch, "dual_bn": ckpt.dual_bn},
    )
    return ckpt, False


def train_mode(ckpt: Checkpoint) -> str:
    """The training mode recorded in the checkpoint ("standard", "adversarial", "dual_bn", …)."""
    return str((ckpt.train_meta or {}).get("mode") or ("dual_bn" if ckpt.dual_bn else "standard"))


def checkpoint_json(ckpt: Checkpoint) -> dict[str, Any]:
    return {
        "id": ckpt.id,
        "name": ckpt.name,
        "arch": ckpt.arch,
        "dual_bn": ckpt.dual_bn,
        "num_classes": ckpt.num_classes,
        "class_names": list(ckpt.class_names),
        "in_channels": ckpt.in_channels,
        "image_size": ckpt.image_size,
        "normalize": ckpt.normalize or None,
        "train": ckpt.train_meta,
        "sha256": ckpt.sha256,
        "size_bytes": ckpt.size_bytes,
        "created_at": ckpt.created_at.isoformat() if ckpt.created_at else None,
    }


def list_checkpoints(db: Session) -> list[Checkpoint]:
    return list(db.scalars(select(Checkpoint).order_by(Checkpoint.id.desc())))


def count_checkpoints(db: Session) -> int:
    return int(db.scalar(select(func.count(Checkpoint.id))) or 0)


def get_checkpoint(db: Session, checkpoint_id: int) -> Checkpoint:
    ckpt = db.get(Checkpoint, checkpoint_id)
    if ckpt is None:
        raise NotFound(f"Checkpoint {checkpoint_id} does not exist.")
    return ckpt


# ---------------------------------------------------------------------- model cache (worker)
_CACHE_SIZE = 4
_cache: OrderedDict[str, nn.Module] = OrderedDict()
_cache_lock = threading.Lock()


def load_model(settings: Settings, ckpt: Checkpoint) -> nn.Module:
    """The verified model of a stored checkpoint (LRU-cached by SHA-256 for the worker)."""
    with _cache_lock:
        if ckpt.sha256 in _cache:
            _cache.move_to_end(ckpt.sha256)
            return _cache[ckpt.sha256]
    path = Storage(settings.data_dir).path(ckpt.file_path)
    loaded = inference.load_checkpoint(
        path,
        map_location="cpu",
        arch=ckpt.arch,
        num_classes=ckpt.num_classes,
        class_names=list(ckpt.class_names),
        image_size=ckpt.image_size,
        in_channels=ckpt.in_channels,
    )
    if loaded.sha256 != ckpt.sha256:
        raise Invalid(f"Checkpoint file {ckpt.file_path} changed on disk (SHA-256 mismatch).")
    model = loaded.model.eval()
    with _cache_lock:
        _cache[ckpt.sha256] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return model
