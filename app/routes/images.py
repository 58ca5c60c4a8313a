"""Images (cases): upload page, browser, staff-only renditions and `/api/v1/images`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from app.auth.deps import Csrf, DbSession, StaffUser
from app.errors import DomainError, TooLarge
from app.handlers import error_json
from app.services.catalog import images as service
from app.services.catalog.images import ImportReport
from app.storage import Storage
from app.web import render

router = APIRouter(tags=["images"])
api_router = APIRouter(prefix="/images", tags=["images"])


def _read_uploads(request: Request, files: list[UploadFile]) -> list[tuple[str, bytes]]:
    limit = request.app.state.settings.max_upload_mb * 2**20
    out: list[tuple[str, bytes]] = []
    total = 0
    for f in files:
        data = f.file.read(limit + 1)
        total += len(data)
        if total > limit:
            raise TooLarge(f"Upload too large: the limit is {limit // 2**20} MiB.")
        out.append((f.filename or f"file{len(out) + 1}", data))
    return out


def _import(
    request: Request, db: DbSession, user: Any, files: list[UploadFile], labels: UploadFile | None
) -> ImportReport:
    uploads = _read_uploads(request, files)
    labels_csv = labels.file.read() if labels is not None and labels.filename else None
    return service.import_images(
        db, request.app.state.settings, files=uploads, actor=user, labels_csv=labels_csv or None
    )


# --- pages --------------------------------------------------------------------------------------
def _page(
    request: Request,
    db: DbSession,
    *,
    label: str = "",
    modality: str = "",
    report: dict[str, Any] | None = None,
    flash: str | None = None,
    flash_kind: str = "ok",
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "images.html",
        {
            "rows": service.list_images(db, label=label or None, modality=modality or None),
            "label": label,
            "modality": modality,
            "labels": service.all_label_names(db),
            "modalities": service.all_modalities(db),
            "report": report,
            "flash": flash,
            "flash_kind": flash_kind,
        },
        status_code=status_code,
    )


@router.get("/images", include_in_schema=False)
def images_page(
    request: Request,
    db: DbSession,
    _user: StaffUser,
    label: str = "",
    modality: str = "",
    imported: int | None = None,
    duplicates: int | None = None,
) -> Response:
    flash = None
    if imported is not None:
        flash = f"Imported {imported} image(s); {duplicates or 0} duplicate(s) were already stored."
    return _page(request, db, label=label, modality=modality, flash=flash)


@router.post("/images", dependencies=[Csrf], include_in_schema=False)
def images_upload(
    request: Request,
    db: DbSession,
    user: StaffUser,
    files: Annotated[list[UploadFile], File()],
    labels_csv: Annotated[UploadFile | None, File()] = None,
) -> Response:
    try:
        report = _import(request, db, user, files, labels_csv)
    except DomainError as exc:  # rendered, not raised: the refusal's audit event commits
        details = exc.details if isinstance(exc.details, dict) else None
        return _page(
            request,
            db,
            report=details,
            flash=exc.message,
            flash_kind="error",
            status_code=exc.status_code,
        )
    return RedirectResponse(
        f"/images?imported={report.imported}&duplicates={report.duplicates}", status_code=303
    )


@router.get("/images/{image_id}", include_in_schema=False)
def image_page(request: Request, db: DbSession, _user: StaffUser, image_id: int) -> Response:
    image = service.get_image(db, image_id)
    return render(
        request, "images_detail.html", {"image": image, "info": service.image_json(image)}
    )


def _file(request: Request, rel: str) -> FileResponse:
    path = Storage(request.app.state.settings.data_dir).path(rel)
    return FileResponse(
        path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/images/{image_id}/display.png", include_in_schema=False)
def image_display(request: Request, db: DbSession, _user: StaffUser, image_id: int) -> Response:
    return _file(request, service.get_image(db, image_id).display_path)


@router.get("/images/{image_id}/thumb.png", include_in_schema=False)
def image_thumb(request: Request, db: DbSession, _user: StaffUser, image_id: int) -> Response:
    return _file(request, service.get_image(db, image_id).thumb_path)


# --- API ----------------------------------------------------------------------------------------
@api_router.post("", dependencies=[Csrf], status_code=201)
def api_upload(
    request: Request,
    db: DbSession,
    user: StaffUser,
    files: Annotated[
        list[UploadFile], File(description="DICOM, PNG, JPEG, or ZIPs of them (+ a labels CSV)")
    ],
    labels_csv: Annotated[
        UploadFile | None, File(description="filename,<class>,… with 0/1 values")
    ] = None,
) -> JSONResponse:
    """Ingest images all-or-nothing; the body is the per-file report (422 lists every file)."""
    try:
        report = _import(request, db, user, files, labels_csv)
    except DomainError as exc:  # returned, not raised: the refusal's audit event commits
        return error_json(exc)
    return JSONResponse(report.as_json(), status_code=201 if report.imported else 200)


@api_router.get("")
def api_list(
    db: DbSession, _user: StaffUser, label: str = "", modality: str = ""
) -> list[dict[str, Any]]:
    rows = service.list_images(db, label=label or None, modality=modality or None)
    return [service.image_json(i) for i in rows]


@api_router.get("/{image_id}")
def api_get(db: DbSession, _user: StaffUser, image_id: int) -> dict[str, Any]:
    return service.image_json(service.get_image(db, image_id))
