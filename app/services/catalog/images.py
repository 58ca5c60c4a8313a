"""Image (case) ingest: DICOM, PNG (8/16-bit), JPEG, or a ZIP of them with a labels CSV.

At ingest every image is decoded once by ``ml.data.load_image`` and up to four renditions are
stored: the 8-bit display PNG (modality LUT → VOI/window → MONOCHROME1 inversion) for pages,
reports and contact sheets, a thumbnail, the model input (the full-resolution float array in
[0, 1] as float16 .npy; each arm's ``prepare_input`` runs at generation time with its own size
and channels), and for images deeper than 8 bits the display source (``.npy`` of the pixels
in real units, HU for CT) that the rater's viewer windows itself; how the viewer opens it
(window, inversion, units) is kept in ``meta["viewer"]``. Only
ml's PHI-free header whitelist is kept, filtered once more here so a patient identifier can
never reach a page. An upload is all-or-nothing: one bad file refuses the whole batch with a
per-file report, and nothing is stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Invalid, NotFound
from app.models import Image, User
from app.services import audit, inference
from app.services.catalog.ingest_zip import (
    ZipLimits,
    is_zip,
    iter_zip,
    new_workdir,
    remove_workdir,
)
from app.services.catalog.names import original_name
from app.storage import Storage, sha256_hex

THUMB_PX = 192
# Never stored even if a loader passes them: identifiers and dates that could name a patient.
PHI_KEYS = frozenset(
    {
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientBirthTime",
        "PatientAddress",
        "OtherPatientIDs",
        "OtherPatientNames",
        "AccessionNumber",
        "InstitutionName",
        "InstitutionAddress",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "StudyID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "StudyDate",
        "StudyTime",
        "AcquisitionDate",
        "ContentDate",
        "SeriesDate",
    }
)
_FILENAME_COLUMNS = ("filename", "file", "path", "image", "image_index", "name")


@dataclass
class FileResult:
    filename: str
    status: str  # "imported" | "duplicate" | "error"
    image_id: int | None = None
    message: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "status": self.status,
            "image_id": self.image_id,
            "message": self.message,
        }


@dataclass
class ImportReport:
    results: list[FileResult] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return sum(r.status == "imported" for r in self.results)

    @property
    def duplicates(self) -> int:
        return sum(r.status == "duplicate" for r in self.results)

    @property
    def errors(self) -> int:
        return sum(r.status == "error" for r in self.results)

    @property
    def image_ids(self) -> list[int]:
        return [r.image_id for r in self.results if r.image_id is not None]

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "duplicates": self.duplicates,
            "errors": self.errors,
            "files": [r.as_json() for r in self.results],
        }


@dataclass
class _Decoded:
    filename: str
    sha256: str
    loaded: Any  # ml.data.LoadedImage


def parse_labels_csv(data: bytes) -> dict[str, dict[str, int]]:
    """``filename,<class>,<class>…`` → {basename: {class: 0|1}}; -1 (uncertain) counts as 0."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("The labels CSV is not UTF-8 text.") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    key = next((c for c in columns if c.lower() in _FILENAME_COLUMNS), None)
    if key is None:
        raise Invalid(
            "The labels CSV needs a filename column (one of: " + ", ".join(_FILENAME_COLUMNS) + ")."
        )
    classes = [c for c in columns if c != key and c.lower() not in ("split", "patient", "view")]
    labels: dict[str, dict[str, int]] = {}
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        name = Path(row.get(key, "").replace("\\", "/")).name
        if not name:
            continue
        entry: dict[str, int] = {}
        for cls in classes:
            value = row.get(cls, "")
            if value == "":
                continue
            try:
                number = int(float(value))
            except ValueError:
                raise Invalid(f"labels CSV line {line}: {cls}={value!r} is not 0 or 1.") from None
            if number not in (-1, 0, 1):
                raise Invalid(f"labels CSV line {line}: {cls}={value!r} is not 0 or 1.")
            entry[cls] = max(number, 0)
        labels[name] = entry
    return labels


def _safe_meta(meta: dict[str, Any] | None) -> dict[str, Any]:
    return {str(k): v for k, v in (meta or {}).items() if str(k) not in PHI_KEYS}


def _png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _thumb_bytes(display: np.ndarray) -> bytes:
    img = PILImage.fromarray(display)
    img.thumbnail((THUMB_PX, THUMB_PX), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


# An uploaded file: its bytes, or (a ZIP) the seekable file it was spooled to.
Upload = tuple[str, bytes | BinaryIO]


def _head(data: bytes | BinaryIO) -> bytes:
    if isinstance(data, bytes | bytearray):
        return bytes(data[:4])
    data.seek(0)
    head = data.read(4)
    data.seek(0)
    return head


def _expand(
    files: Sequence[Upload], settings: Settings, workdir: Path
) -> tuple[list[tuple[str, bytes | Path]], list[bytes]]:
    """Unpack ZIPs (with limits) into plain files; collect any labels CSVs found inside.

    ZIP members are streamed to files under ``workdir`` and read back one at a time when they
    are decoded, so memory never holds a whole archive's contents.
    """
    limits = ZipLimits(
        settings.max_zip_files,
        settings.max_zip_uncompressed_mb * 2**20,
        settings.max_zip_member_mb * 2**20,
    )
    plain: list[tuple[str, bytes | Path]] = []
    csvs: list[bytes] = []
    for name, data in files:
        if is_zip(name, _head(data)):
            for member in iter_zip(data, name, limits, workdir):
                if member.name.lower().endswith(".csv"):
                    csvs.append(member.read())
                else:
                    plain.append((f"{name}/{member.name}", member.path))
            continue
        raw = bytes(data) if isinstance(data, bytes | bytearray) else data.read()
        if name.lower().endswith(".csv"):
            csvs.append(raw)
        else:
            plain.append((name, raw))
    if not plain:
        raise Invalid("No image files in the upload.")
    return plain, csvs


# The leading bytes of the formats ml decodes (it sniffs the same ones, never the name).
_DICOM_MAGIC = (128, b"DICM")
_RASTER_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def _image_head(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(132)
    offset, magic = _DICOM_MAGIC
    return head.startswith(_RASTER_MAGIC) or head[offset : offset + len(magic)] == magic


def _not_an_image(name: str) -> str:
    return (
        f"{Path(name).name}: unsupported image format "
        "(expected DICOM with a DICM preamble, PNG or JPEG)"
    )


def _decode(name: str, data: bytes, max_pixels: int) -> Any:
    try:
        return inference.load_image(data, filename=Path(name).name, max_pixels=max_pixels)
    except inference.ImageRejected as exc:
        raise Invalid(str(exc)) from None


def import_images(
    db: Session,
    settings: Settings,
    *,
    files: Sequence[Upload],
    actor: User | None,
    labels_csv: bytes | None = None,
    masks: Mapping[str, bytes] | None = None,
    labels: Mapping[str, dict[str, int]] | None = None,
) -> ImportReport:
    """Decode, deduplicate and store uploaded images; all-or-nothing.

    ``files`` are (filename, bytes); ZIPs are expanded (a ``.csv`` inside one is read as the
    labels CSV). ``masks`` maps a basename to a ground-truth mask image (for map metrics).
    Raises Invalid (details = the per-file report) when any file is refused.
    """
    workdir = new_workdir(settings.data_dir / "tmp")
    try:
        return _import(db, settings, files, actor, labels_csv, masks, labels, workdir)
    finally:
        remove_workdir(workdir)


def _import(
    db: Session,
    settings: Settings,
    files: Sequence[Upload],
    actor: User | None,
    labels_csv: bytes | None,
    masks: Mapping[str, bytes] | None,
    labels: Mapping[str, dict[str, int]] | None,
    workdir: Path,
) -> ImportReport:
    report = ImportReport()
    plain, csvs = _expand(files, settings, workdir)
    by_name: dict[str, dict[str, int]] = {}
    for blob in ([labels_csv] if labels_csv else []) + csvs:
        by_name.update(parse_labels_csv(blob))
    by_name.update(labels or {})

    decoded: list[_Decoded | FileResult] = []
    seen: dict[str, int] = {}
    for name, source in plain:
        if isinstance(source, Path) and not _image_head(source):
            # Refused from its first bytes: a ZIP member that cannot be an image (a bomb's
            # gigabyte of zeros) is never read into memory.
            decoded.append(FileResult(name, "error", None, _not_an_image(name)))
            continue
        data = source if isinstance(source, bytes) else source.read_bytes()
        digest = sha256_hex(data)
        existing = db.scalar(select(Image).where(Image.sha256 == digest))
        if existing is not None:
            decoded.append(FileResult(name, "duplicate", existing.id, "already stored"))
            continue
        if digest in seen:
            decoded.append(FileResult(name, "duplicate", None, f"same content as {digest}"))
            continue
        try:
            loaded = _decode(name, data, settings.max_image_pixels)
        except Invalid as exc:
            decoded.append(FileResult(name, "error", None, exc.message))
            continue
        seen[digest] = len(decoded)
        decoded.append(_Decoded(name, digest, loaded))

    errors = [d for d in decoded if isinstance(d, FileResult) and d.status == "error"]
    if errors:
        report.results = [
            d if isinstance(d, FileResult) else FileResult(d.filename, "not stored")
            for d in decoded
        ]
        audit.record(
            db,
            actor=actor,
            action="images.refused",
            object_type="image",
            detail={"files": len(plain), "errors": [e.as_json() for e in errors[:20]]},
        )
        first = errors[0]
        raise Invalid(
            f"{len(errors)} of {len(plain)} file(s) could not be read; nothing was stored. "
            f"{first.filename}: {first.message}",
            details=report.as_json(),
        )

    store = Storage(settings.data_dir)
    written: list[str] = []
    stored: dict[str, int] = {}
    try:
        for item in decoded:
            if isinstance(item, FileResult):
                report.results.append(item)
                continue
            image = _store(db, store, item, by_name, masks or {}, actor, written)
            stored[item.sha256] = image.id
            report.results.append(FileResult(item.filename, "imported", image.id))
        for result in report.results:
            if result.status == "duplicate" and result.image_id is None:
                digest = result.message.removeprefix("same content as ")
                result.image_id = stored.get(digest)
                result.message = "same content as an earlier file in this upload"
        store.sync()  # one flush for the upload, before the rows can commit
        db.flush()
    except BaseException:
        store.delete_all(written)
        raise
    audit.record(
        db,
        actor=actor,
        action="images.imported",
        object_type="image",
        detail={"imported": report.imported, "duplicates": report.duplicates},
    )
    return report


def _store(
    db: Session,
    store: Storage,
    item: _Decoded,
    labels: Mapping[str, dict[str, int]],
    masks: Mapping[str, bytes],
    actor: User | None,
    written: list[str],
) -> Image:
    loaded = item.loaded
    display = np.asarray(loaded.display)
    array = np.asarray(loaded.array)
    base = Path(item.filename).name
    paths = {
        "display": store.put_content("images", _png_bytes(display), ".png", sync=False),
        "thumb": store.put_content("images", _thumb_bytes(display), ".png", sync=False),
        "input": store.put_content("images", inference.float16_npy(array), ".npy", sync=False),
    }
    source = loaded.source
    if source is not None:
        paths["source"] = store.put_content(
            "images", inference.source_npy(source.values), ".npy", sync=False
        )
    mask_rel: str | None = None
    mask = masks.get(item.filename, masks.get(base))
    if mask is not None:
        mask_rel = store.put_content("masks", mask, Path(base).suffix or ".png", sync=False)
        paths["mask"] = mask_rel
    written.extend(paths.values())
    image = Image(
        sha256=item.sha256,
        source_filename=item.filename[-300:],  # staff-only: it may name a patient
        modality=str(loaded.modality or "OT")[:16],
        width=int(display.shape[1]),
        height=int(display.shape[0]),
        channels=3 if array.ndim == 3 else 1,
        display_path=paths["display"],
        thumb_path=paths["thumb"],
        input_path=paths["input"],
        mask_path=mask_rel,
        source_path=paths.get("source"),
        window_center=_maybe_float(loaded.window_center),
        window_width=_maybe_float(loaded.window_width),
        labels=dict(labels.get(item.filename, labels.get(base, {}))),
        meta={
            **_safe_meta(loaded.meta),
            "source_format": str(loaded.source_format),
            "viewer": _viewer_meta(loaded),
        },
        uploaded_by_id=actor.id if actor is not None else None,
    )
    db.add(image)
    db.flush()
    return image


def _viewer_meta(loaded: Any) -> dict[str, Any]:
    """How the rater's viewer opens the image: its default window in source units, inversion
    (MONOCHROME1), units ("HU" for CT) and the source's dtype; 8-bit images window 0–255."""
    source = loaded.source
    if source is None:
        return {"window": [127.5, 256.0], "window_source": "8-bit", "invert": False, "units": ""}
    center, width = source.window
    return {
        "window": [float(center), float(width)],
        "window_source": str(source.window_source),
        "invert": bool(source.invert),
        "units": str(source.units),
        "dtype": str(source.values.dtype),
    }


def _maybe_float(value: Any) -> float | None:
    return None if value is None else float(value)


def import_image_paths(
    db: Session,
    settings: Settings,
    paths: Sequence[str | Path],
    labels: Mapping[str, Mapping[str, int]] | Sequence[Mapping[str, int] | None] | None,
    masks: Mapping[str, str | Path] | Sequence[str | Path | None] | None,
    actor: User | None,
) -> list[Image]:
    """Import files from disk (the demo, scripts, benchmarks); all-or-nothing like uploads.

    ``labels`` and ``masks`` are either aligned with ``paths`` (lists, None for "none") or
    keyed by file basename. Returns the images in the order of ``paths`` (an already stored
    file gives the existing image; its labels are filled in if it had none).
    """
    files = [Path(p) for p in paths]
    label_for = _aligned(files, labels)
    mask_for = _aligned(files, masks)
    names = [str(p) for p in files]  # unique even when two folders hold the same basename
    mask_bytes = {n: Path(m).read_bytes() for n, m in zip(names, mask_for, strict=True) if m}
    report = import_images(
        db,
        settings,
        files=[(n, p.read_bytes()) for n, p in zip(names, files, strict=True)],
        actor=actor,
        masks=mask_bytes,
        labels={n: dict(lab) for n, lab in zip(names, label_for, strict=True) if lab},
    )
    images: list[Image] = []
    for result, lab in zip(report.results, label_for, strict=True):
        image = db.get(Image, result.image_id) if result.image_id is not None else None
        if image is None:
            raise Invalid(f"{result.filename}: not stored ({result.message or result.status}).")
        if lab and not image.labels:
            image.labels = dict(lab)
        images.append(image)
    db.flush()
    return images


def _aligned(paths: list[Path], values: Any) -> list[Any]:
    if values is None:
        return [None] * len(paths)
    if isinstance(values, Mapping):
        return [values.get(p.name, values.get(str(p))) for p in paths]
    values = list(values)
    if len(values) != len(paths):
        raise Invalid(f"{len(values)} labels/masks given for {len(paths)} images.")
    return values


# ---------------------------------------------------------------------------- queries
def list_images(
    db: Session, *, label: str | None = None, modality: str | None = None, limit: int = 1000
) -> list[Image]:
    """Images, newest first, optionally those positive for ``label`` and of one modality."""
    stmt = select(Image).order_by(Image.id.desc())
    if modality:
        stmt = stmt.where(Image.modality == modality)
    rows = list(db.scalars(stmt.limit(limit if not label else None)))
    if label:
        rows = [r for r in rows if (r.labels or {}).get(label) == 1][:limit]
    return rows


def count_images(db: Session) -> int:
    return int(db.scalar(select(func.count(Image.id))) or 0)


def get_image(db: Session, image_id: int) -> Image:
    image = db.get(Image, image_id)
    if image is None:
        raise NotFound(f"Image {image_id} does not exist.")
    return image


def existing_image_ids(db: Session, image_ids: Iterable[int]) -> set[int]:
    """Which of `image_ids` are still stored (one query; an image may have been deleted since
    a client recorded its id)."""
    wanted = {int(i) for i in image_ids}
    if not wanted:
        return set()
    return set(db.scalars(select(Image.id).where(Image.id.in_(wanted))))


def image_json(image: Image) -> dict[str, Any]:
    """Staff view of an image (never served to raters: it carries the source file name)."""
    return {
        "id": image.id,
        "sha256": image.sha256,
        "filename": original_name(image.source_filename),
        "modality": image.modality,
        "width": image.width,
        "height": image.height,
        "channels": image.channels,
        "window_center": image.window_center,
        "window_width": image.window_width,
        "labels": image.labels,
        "has_mask": image.mask_path is not None,
        "meta": image.meta,
        "display_url": f"/images/{image.id}/display.png",
        "thumb_url": f"/images/{image.id}/thumb.png",
    }


def all_label_names(db: Session) -> list[str]:
    names: set[str] = set()
    for labels in db.scalars(select(Image.labels)):
        names.update((labels or {}).keys())
    return sorted(names)


def all_modalities(db: Session) -> list[str]:
    return sorted({m for m in db.scalars(select(Image.modality).distinct()) if m})


def load_input_array(settings: Settings, image: Image) -> np.ndarray:
    """The stored model input (float32 in [0, 1], H×W or H×W×3)."""
    path = Storage(settings.data_dir).path(image.input_path)
    return np.load(path, allow_pickle=False).astype(np.float32)


def load_mask_array(settings: Settings, image: Image) -> np.ndarray | None:
    """The ground-truth mask as a 0/1 float32 H×W array, or None."""
    if not image.mask_path:
        return None
    path = Storage(settings.data_dir).path(image.mask_path)
    if path.suffix == ".npy":
        arr = np.load(path, allow_pickle=False)
    else:
        with PILImage.open(path) as im:
            arr = np.asarray(im.convert("L"))
    return (np.asarray(arr) > 0).astype(np.float32)
