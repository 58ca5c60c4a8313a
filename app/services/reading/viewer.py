"""What the rater's viewer loads for a trial: the image at full depth and two map fields.

The viewer windows the image itself (in HU for CT) and colours both maps itself with the
study's colormap, so per trial it needs three files and one description:

* ``source`` — the image's display source (``.npy`` of the pixels in real units, see
  ``ml.data.source``), or the 8-bit display PNG when the image has no deeper source;
* ``a`` / ``b`` — the two arms' map fields (``.npy`` uint8, ``FIELD_SIZE``² for every map of
  every study, see ``ml.explain.field``): identical length and header whatever the arm, so a
  map's size in the network panel says nothing about where it came from;
* :func:`viewer_spec` — the window presets, inversion, units, colormap name, the finding the
  maps explain and where the next trial's description is (for prefetching). Nothing in it
  depends on the arms.

Files are found by the trial's opaque token, its owner and a slot, exactly like the trial's
other files; another rater's token is "not found". The staff preview
(``app.services.reading.preview``) finds the same files through the same lookup
(:func:`slot_file`) by trial id, and describes them with the same :func:`viewer_spec`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Image, SaliencyMap, Study, StudyStatus, Trial, User
from app.services.reading.slots import slot_map, variant_clause
from app.services.reading.trials import neighbour_token, require_open, trial_context
from app.services.study.spec import SaliencySettings, saliency_settings
from app.storage import Storage

VIEWER_SLOTS = ("source", "a", "b")
FIELD_SIZE = 256  # ml.explain.field.FIELD_SIZE (a test keeps the two equal)
FIELD_MEDIA_TYPE = "application/octet-stream"

# Standard CT window presets (centre, width) in HU, offered after the file's own windows.
CT_PRESETS: tuple[tuple[str, float, float], ...] = (
    ("Lung", -600.0, 1500.0),
    ("Mediastinum", 40.0, 400.0),
    ("Bone", 400.0, 1800.0),
    ("Brain", 40.0, 80.0),
)


@dataclass(frozen=True)
class ViewerFile:
    """A file the viewer may fetch, with the media type it is served as."""

    path: Path
    media_type: str


@dataclass(frozen=True)
class SlotFile:
    """What a trial's viewer slot holds: its stored file (may be empty) and the study's status."""

    rel: str | None
    media_type: str
    status: str


def slot_file(db: Session, trial: tuple[ColumnElement[bool], ...], slot: str) -> SlotFile | None:
    """The stored file behind `slot` of the one trial selected by `trial`; None: no such trial
    or no map for the slot.

    The one lookup behind the rater's ``/t/{token}/view/{slot}`` and the staff preview's files
    (which differ only in how the trial is found and in who may see which study), so a preview
    shows the very file the rater gets: the maps follow the same slot rule (catch trials,
    issue 15, app.services.reading.slots)."""
    if slot not in VIEWER_SLOTS:
        return None
    if slot == "source":
        row = db.execute(
            select(Image.source_path, Image.display_path, Study.status)
            .join(Trial, Trial.image_id == Image.id)
            .join(Study, Study.id == Trial.study_id)
            .where(*trial)
        ).first()
        if row is None:
            return None
        rel, media = (row[0], FIELD_MEDIA_TYPE) if row[0] else (row[1], "image/png")
        return SlotFile(rel, media, row[2])
    found = db.execute(
        select(Trial.left_arm_id, Trial.right_arm_id, Trial.protocol).where(*trial)
    ).first()
    if found is None:
        return None
    arm, variant = slot_map(slot, found[0], found[1], found[2])
    map_row = db.execute(
        select(SaliencyMap.field_path, Study.status)
        .join(Trial, SaliencyMap.image_id == Trial.image_id)
        .join(Study, Study.id == Trial.study_id)
        .where(*trial, SaliencyMap.arm_id == arm, variant_clause(variant))
        .order_by(SaliencyMap.id)
        .limit(1)
    ).first()
    if map_row is None:
        return None
    return SlotFile(map_row[0], FIELD_MEDIA_TYPE, map_row[1])


def stored_file(storage: Storage, found: SlotFile) -> ViewerFile:
    """The slot's file on disk (404 when it was never written or has gone)."""
    if not found.rel:
        raise NotFound("No such file.")
    path = storage.path(found.rel)
    if not path.is_file():
        raise NotFound("No such file.")
    return ViewerFile(path, found.media_type)


def viewer_file(db: Session, storage: Storage, rater: User, token: str, slot: str) -> ViewerFile:
    """The file behind ``/t/{token}/view/{slot}`` for the caller's own trial (open study)."""
    if slot not in VIEWER_SLOTS or not token or len(token) > 64:
        raise NotFound("No such file.")
    found = slot_file(db, (Trial.token == token, Trial.rater_id == rater.id), slot)
    visible = (StudyStatus.open.value, StudyStatus.closed.value)
    if found is None or found.status not in visible or not found.rel:
        raise NotFound("No such file.")
    if found.status != StudyStatus.open.value:
        raise Conflict("This study is closed; its images are no longer shown.")
    return stored_file(storage, found)


def _dicom_windows(image: Image) -> list[dict[str, Any]]:
    meta = image.meta or {}
    centers, widths = meta.get("WindowCenter"), meta.get("WindowWidth")
    if centers is None or widths is None:
        return []
    centers = centers if isinstance(centers, list) else [centers]
    widths = widths if isinstance(widths, list) else [widths]
    out = []
    for i, (c, w) in enumerate(zip(centers, widths, strict=False)):
        name = "DICOM window" if len(centers) == 1 else f"DICOM window {i + 1}"
        out.append({"name": name, "center": float(c), "width": float(w)})
    return out


def _finding(study: Study, image: Image, spec: SaliencySettings) -> str:
    """The finding the maps explain, as the rater should read it (never per arm)."""
    if spec.target.startswith("class:"):
        return spec.target.removeprefix("class:")
    if spec.target == "ground_truth":
        positives = [name for name, v in sorted((image.labels or {}).items()) if v == 1]
        return ", ".join(positives) or "no finding (normal)"
    return "each model's own top prediction"


class WindowPreset(BaseModel):
    """A window the rater can pick: (centre, width) in the image's units, or the robust auto
    window (0.5–99.5 % of the pixel values, computed by the viewer)."""

    name: str
    center: float | None = None
    width: float | None = None
    auto: bool = False


class Window(BaseModel):
    center: float
    width: float


class ViewerImage(BaseModel):
    url: str
    format: Literal["npy", "png"]  # npy: values in real units; png: the 8-bit display
    width: int
    height: int
    modality: str
    units: str  # "HU" for CT
    window: Window  # the default: the file's own first window, else VOI LUT range, else auto
    invert: bool  # MONOCHROME1
    presets: list[WindowPreset]


class ViewerSpec(BaseModel):
    """Everything the viewer needs for one trial; it depends on the study and image only."""

    image: ViewerImage
    maps: dict[str, str]  # slot ("a", "b") → field URL
    field_size: int
    colormap: str
    opacity: float
    finding: str
    next_spec_url: str | None  # the following trial's description, for prefetching


@dataclass(frozen=True)
class SpecUrls:
    """Where a trial's viewer files and the following trial's description are."""

    files: str  # the slots hang under it: {files}/source, {files}/a, {files}/b
    next_spec_url: str | None  # prefetched while this trial is read


def rater_urls(db: Session, trial: Trial, token: str) -> SpecUrls:
    """The rater's URLs: the trial's token and slot, the next trial's description by token."""
    following = neighbour_token(db, trial, 1)
    return SpecUrls(
        files=f"/t/{token}/view",
        next_spec_url=f"/api/v1/trials/{following}/viewer" if following else None,
    )


def viewer_spec(
    db: Session,
    study: Study,
    trial: Trial,
    token: str | None = None,
    *,
    urls: SpecUrls | None = None,
) -> ViewerSpec:
    """The viewer's description of one trial (presets, colormap, finding), for the rater and
    the staff preview alike: only the URLs differ. By default the rater's (by ``token``, the
    trial's own); the staff preview passes its ``urls`` (by trial id)."""
    if urls is None:
        urls = rater_urls(db, trial, token or trial.token)
    image = db.get(Image, trial.image_id)
    if image is None:
        raise NotFound("No such trial.")
    spec = saliency_settings(study.saliency)
    viewer = dict((image.meta or {}).get("viewer") or {})
    center, width = viewer.get("window") or [127.5, 256.0]
    presets = [WindowPreset(**p) for p in _dicom_windows(image)] if image.source_path else []
    if (image.modality or "").upper() == "CT" and image.source_path:
        presets += [WindowPreset(name=n, center=c, width=w) for n, c, w in CT_PRESETS]
    presets.append(WindowPreset(name="Auto (0.5–99.5 %)", auto=True))
    return ViewerSpec(
        image=ViewerImage(
            url=f"{urls.files}/source",
            format="npy" if image.source_path else "png",
            width=image.width,
            height=image.height,
            modality=image.modality,
            units=str(viewer.get("units") or ""),
            window=Window(center=float(center), width=float(width)),
            invert=bool(viewer.get("invert", False)),
            presets=presets,
        ),
        maps={"a": f"{urls.files}/a", "b": f"{urls.files}/b"},
        field_size=FIELD_SIZE,
        colormap=spec.colormap,
        opacity=spec.opacity,
        finding=_finding(study, image, spec),
        next_spec_url=urls.next_spec_url,
    )


def trial_viewer(db: Session, rater: User, token: str) -> ViewerSpec:
    """The caller's own trial's viewer description (open study). Any of the caller's trials,
    answered or not: the page prefetches the next one while the rater reads this one, and the
    description, like the trial's files, says nothing a rater may not see."""
    ctx = trial_context(db, rater, token)
    require_open(ctx.study)
    return viewer_spec(db, ctx.study, ctx.trial, token)
