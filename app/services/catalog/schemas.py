"""Response bodies of the catalog API (`/api/v1/images`, `/api/v1/checkpoints`).

The services build these bodies as plain dicts (`image_json`, `checkpoint_json`,
`ImportReport.as_json`), which the staff pages render too; these models are the contract the
routes declare, so `/openapi.json` describes every body and FastAPI checks each response
against it. `extra="forbid"`: a key added to a service dict without its field here fails
loudly in the tests instead of being dropped silently from the response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema

# Timestamps leave the services as `datetime.isoformat()` strings (UTC, "+00:00"); declared as
# RFC 3339 date-times without re-serialising them, so the bytes on the wire stay the same.
IsoDateTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ImageOut(_Body):
    """Staff view of an image: carries the source file name, so never served to raters."""

    id: int
    sha256: str
    filename: str
    modality: str
    width: int
    height: int
    channels: int
    window_center: float | None
    window_width: float | None
    labels: dict[str, int]
    has_mask: bool
    meta: dict[str, Any]
    display_url: str
    thumb_url: str


class FileResultOut(_Body):
    """What happened to one uploaded file ("not stored": fine, but a sibling was refused)."""

    filename: str
    status: Literal["imported", "duplicate", "error", "not stored"]
    image_id: int | None
    message: str


class ImportReportOut(_Body):
    """The per-file report of an all-or-nothing upload (201 when anything was imported)."""

    imported: int
    duplicates: int
    errors: int
    files: list[FileResultOut]


class CheckpointOut(_Body):
    """A verified checkpoint: architecture, classes, input contract and training record."""

    id: int
    name: str
    arch: str
    dual_bn: bool
    num_classes: int
    class_names: list[str]
    in_channels: int
    image_size: int
    normalize: dict[str, Any] | None
    train: dict[str, Any] | None
    sha256: str
    size_bytes: int
    created_at: IsoDateTime | None


class CheckpointUploadOut(CheckpointOut):
    """An upload's answer: the checkpoint, and whether the same file (SHA-256) was stored."""

    duplicate: bool


class LabelsIn(_Body):
    """An image's ground truth: class name → 1 (positive) or 0 (negative)."""

    labels: dict[str, Literal[0, 1]]
