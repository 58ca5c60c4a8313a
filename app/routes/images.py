"""Images (cases): upload page, browser, staff-only renditions and `/api/v1/images`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response

from app.auth.deps import AdminUser, Csrf, DbSession, StaffUser
from app.errors import Conflict, DomainError, Invalid, TooLarge
from app.handlers import error_json
from app.ids import DbId
from app.services.catalog import images as service
from app.services.catalog import removal
from app.services.catalog.images import ImportReport, Upload
from app.services.catalog.ingest_zip import is_zip
from app.services.catalog.schemas import ImageOut, ImportReportOut, LabelsIn
from app.storage import Storage
from app.web import client_ip, delete_files_later, render

router = APIRouter(tags=["images"])
api_router = APIRouter(prefix="/images", tags=["images"])


def _read_uploads(request: Request, files: list[UploadFile]) -> list[Upload]:
    """The uploaded files: a ZIP stays in the temporary file Starlette spooled it to (it is
    expanded member by member from there), any other file is read into memory."""
    limit = request.app.state.settings.max_upload_mb * 2**20
    out: list[Upload] = []
    total = 0
    for f in files:
        name = f.filename or f"file{len(out) + 1}"
        f.file.seek(0, 2)
        total += f.file.tell()
        f.file.seek(0)
        if total > limit:
            raise TooLarge(f"Upload too large: the limit is {limit // 2**20} MiB.")
        head = f.file.read(4)
        f.file.seek(0)
        out.append((name, f.file if is_zip(name, head) else f.file.read()))
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
    deleted: int | None = None,
) -> Response:
    flash = None
    if imported is not None:
        flash = f"Imported {imported} image(s); {duplicates or 0} duplicate(s) were already stored."
    if deleted is not None:
        flash = f"Image #{deleted} deleted."
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


def _detail(
    request: Request,
    db: DbSession,
    image_id: int,
    *,
    flash: str | None = None,
    flash_kind: str = "ok",
    labels_text: str | None = None,
    status_code: int = 200,
) -> Response:
    image = service.get_image(db, image_id)
    info = service.image_json(image)
    return render(
        request,
        "images_detail.html",
        {
            "image": image,
            "info": info,
            "used_by": removal.image_studies(db, image),
            "labels_text": labels_text
            if labels_text is not None
            else ", ".join(f"{k}={v}" for k, v in sorted((image.labels or {}).items())),
            "flash": flash,
            "flash_kind": flash_kind,
        },
        status_code=status_code,
    )


@router.get("/images/{image_id}", include_in_schema=False)
def image_page(
    request: Request, db: DbSession, _user: StaffUser, image_id: DbId, done: str = ""
) -> Response:
    return _detail(request, db, image_id, flash={"labels": "Labels saved."}.get(done))


@router.post("/images/{image_id}/delete", dependencies=[Csrf], include_in_schema=False)
def image_delete(
    request: Request, db: DbSession, admin: AdminUser, image_id: DbId, tasks: BackgroundTasks
) -> Response:
    image = service.get_image(db, image_id)
    try:
        files = removal.delete_image(db, actor=admin, image=image, ip=client_ip(request))
    except Conflict as exc:
        return _detail(
            request, db, image_id, flash=exc.message, flash_kind="error", status_code=409
        )
    delete_files_later(request, tasks, files)
    return RedirectResponse(f"/images?deleted={image_id}", status_code=303)


@router.post("/images/{image_id}/labels", dependencies=[Csrf], include_in_schema=False)
def image_labels(
    request: Request,
    db: DbSession,
    user: StaffUser,
    image_id: DbId,
    labels: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    image = service.get_image(db, image_id)
    try:
        parsed = removal.parse_labels(labels)
        removal.set_labels(db, actor=user, image=image, labels=parsed, ip=client_ip(request))
    except (Invalid, Conflict) as exc:
        return _detail(
            request,
            db,
            image_id,
            flash=exc.message,
            flash_kind="error",
            labels_text=labels,
            status_code=exc.status_code,
        )
    return RedirectResponse(f"/images/{image_id}?done=labels", status_code=303)


def _file(request: Request, rel: str) -> FileResponse:
    path = Storage(request.app.state.settings.data_dir).path(rel)
    return FileResponse(
        path, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.get("/images/{image_id}/display.png", include_in_schema=False)
def image_display(request: Request, db: DbSession, _user: StaffUser, image_id: DbId) -> Response:
    return _file(request, service.get_image(db, image_id).display_path)


@router.get("/images/{image_id}/thumb.png", include_in_schema=False)
def image_thumb(request: Request, db: DbSession, _user: StaffUser, image_id: DbId) -> Response:
    return _file(request, service.get_image(db, image_id).thumb_path)


# --- API ----------------------------------------------------------------------------------------
@api_router.post(
    "",
    dependencies=[Csrf],
    status_code=201,
    response_model=ImportReportOut,
    responses={200: {"model": ImportReportOut, "description": "Every file was a duplicate"}},
)
def api_upload(
    request: Request,
    response: Response,
    db: DbSession,
    user: StaffUser,
    files: Annotated[
        list[UploadFile], File(description="DICOM, PNG, JPEG, or ZIPs of them (+ a labels CSV)")
    ],
    labels_csv: Annotated[
        UploadFile | None, File(description="filename,<class>,… with 0/1 values")
    ] = None,
) -> dict[str, Any] | JSONResponse:
    """Ingest images all-or-nothing; the body is the per-file report (422 lists every file)."""
    try:
        report = _import(request, db, user, files, labels_csv)
    except DomainError as exc:  # returned, not raised: the refusal's audit event commits
        return error_json(exc)
    response.status_code = 201 if report.imported else 200
    return report.as_json()


@api_router.get("", response_model=list[ImageOut])
def api_list(
    db: DbSession, _user: StaffUser, label: str = "", modality: str = ""
) -> list[dict[str, Any]]:
    rows = service.list_images(db, label=label or None, modality=modality or None)
    return [service.image_json(i) for i in rows]


@api_router.get("/{image_id}", response_model=ImageOut)
def api_get(db: DbSession, _user: StaffUser, image_id: DbId) -> dict[str, Any]:
    return service.image_json(service.get_image(db, image_id))


@api_router.delete("/{image_id}", dependencies=[Csrf], status_code=204, response_class=Response)
def api_delete(
    request: Request, db: DbSession, admin: AdminUser, image_id: DbId, tasks: BackgroundTasks
) -> Response:
    """409 with the studies that use it; an unused image's row and files go."""
    image = service.get_image(db, image_id)
    files = removal.delete_image(db, actor=admin, image=image, ip=client_ip(request))
    delete_files_later(request, tasks, files)
    return Response(status_code=204)


@api_router.put("/{image_id}/labels", dependencies=[Csrf], response_model=ImageOut)
def api_set_labels(
    request: Request, db: DbSession, user: StaffUser, image_id: DbId, body: LabelsIn
) -> dict[str, Any]:
    """Replace the ground-truth labels; 409 once a study past its draft uses the image."""
    image = service.get_image(db, image_id)
    text = ", ".join(f"{k}={v}" for k, v in body.labels.items())
    labels = removal.parse_labels(text)
    removal.set_labels(db, actor=user, image=image, labels=labels, ip=client_ip(request))
    return service.image_json(image)
