"""Checkpoints: upload page and `/api/v1/checkpoints` (admins and researchers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.auth.deps import AdminUser, Csrf, DbSession, StaffUser
from app.errors import Conflict, DomainError
from app.handlers import error_json
from app.ids import DbId
from app.models import Checkpoint, User
from app.services.catalog import checkpoints as service
from app.services.catalog import removal
from app.services.catalog.schemas import CheckpointOut, CheckpointUploadOut
from app.web import client_ip, delete_files_later, render

router = APIRouter(tags=["checkpoints"])
api_router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])


def _hints(
    arch: str, num_classes: str, class_names: str, image_size: str, in_channels: str
) -> dict[str, str]:
    """The upload form's hints for a bare state dict (a radsal/1 checkpoint describes itself)."""
    return {
        "arch": arch,
        "num_classes": num_classes,
        "class_names": class_names,
        "image_size": image_size,
        "in_channels": in_channels,
    }


def _import(
    request: Request, db: DbSession, user: User, file: UploadFile, name: str, hints: dict[str, str]
) -> tuple[Checkpoint, bool]:
    """The upload page's and the API's import: (checkpoint, was it a duplicate)."""
    return service.import_checkpoint(
        db,
        request.app.state.settings,
        data=file.file,
        filename=file.filename or "upload.pt",
        name=name,
        actor=user,
        hints=hints,
    )


# --- pages --------------------------------------------------------------------------------------
@router.get("/checkpoints", include_in_schema=False)
def checkpoints_page(
    request: Request, db: DbSession, _user: StaffUser, deleted: int | None = None
) -> Response:
    flash = "Checkpoint deleted." if deleted else None
    return render(
        request,
        "checkpoints.html",
        {"rows": service.list_checkpoints(db), "form": {}, "flash": flash, "flash_kind": "ok"},
    )


@router.post("/checkpoints", dependencies=[Csrf], include_in_schema=False)
def checkpoints_upload(
    request: Request,
    db: DbSession,
    user: StaffUser,
    file: Annotated[UploadFile, File()],
    name: Annotated[str, Form(max_length=200)] = "",
    arch: Annotated[str, Form(max_length=64)] = "",
    num_classes: Annotated[str, Form(max_length=8)] = "",
    class_names: Annotated[str, Form(max_length=2000)] = "",
    image_size: Annotated[str, Form(max_length=8)] = "",
    in_channels: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    hints = _hints(arch, num_classes, class_names, image_size, in_channels)
    try:
        ckpt, duplicate = _import(request, db, user, file, name, hints)
    except DomainError as exc:  # rendered, not raised: the refusal's audit event commits
        return render(
            request,
            "checkpoints.html",
            {
                "rows": service.list_checkpoints(db),
                "flash": exc.message,
                "flash_kind": "error",
                "form": {"name": name, **hints},
            },
            status_code=exc.status_code,
        )
    done = "duplicate" if duplicate else "imported"
    return RedirectResponse(f"/checkpoints/{ckpt.id}?done={done}", status_code=303)


@router.get("/checkpoints/{checkpoint_id}", include_in_schema=False)
def checkpoint_page(
    request: Request, db: DbSession, _user: StaffUser, checkpoint_id: DbId, done: str = ""
) -> Response:
    flash = {
        "imported": "Checkpoint verified and stored.",
        "duplicate": "This file was already uploaded; showing the existing checkpoint.",
    }.get(done)
    return _detail(request, db, checkpoint_id, flash=flash)


def _detail(
    request: Request,
    db: DbSession,
    checkpoint_id: int,
    *,
    flash: str | None = None,
    flash_kind: str = "ok",
    status_code: int = 200,
) -> Response:
    ckpt = service.get_checkpoint(db, checkpoint_id)
    return render(
        request,
        "checkpoints_detail.html",
        {
            "ckpt": ckpt,
            "info": service.checkpoint_json(ckpt),
            "used_by": removal.checkpoint_studies(db, ckpt),
            "flash": flash,
            "flash_kind": flash_kind,
        },
        status_code=status_code,
    )


@router.post("/checkpoints/{checkpoint_id}/delete", dependencies=[Csrf], include_in_schema=False)
def checkpoint_delete(
    request: Request,
    db: DbSession,
    admin: AdminUser,
    checkpoint_id: DbId,
    tasks: BackgroundTasks,
) -> Response:
    ckpt = service.get_checkpoint(db, checkpoint_id)
    try:
        files = removal.delete_checkpoint(db, actor=admin, ckpt=ckpt, ip=client_ip(request))
    except Conflict as exc:
        return _detail(
            request, db, checkpoint_id, flash=exc.message, flash_kind="error", status_code=409
        )
    delete_files_later(request, tasks, files)
    return RedirectResponse("/checkpoints?deleted=1", status_code=303)


# --- API ----------------------------------------------------------------------------------------
@api_router.post(
    "",
    dependencies=[Csrf],
    status_code=201,
    response_model=CheckpointUploadOut,
    responses={
        200: {"model": CheckpointUploadOut, "description": "Duplicate: the existing checkpoint"}
    },
)
def api_upload(
    request: Request,
    response: Response,
    db: DbSession,
    user: StaffUser,
    file: Annotated[
        UploadFile, File(description="A .pt/.pth: radsal/1 or a seed-layout state dict")
    ],
    name: Annotated[str, Form(max_length=200)] = "",
    arch: Annotated[str, Form(max_length=64)] = "",
    num_classes: Annotated[str, Form(max_length=8)] = "",
    class_names: Annotated[str, Form(max_length=2000, description="comma-separated")] = "",
    image_size: Annotated[str, Form(max_length=8)] = "",
    in_channels: Annotated[str, Form(max_length=2)] = "",
) -> dict[str, Any] | JSONResponse:
    """Verify (weights only, rebuilt, one dummy forward) and store a checkpoint.

    201 with the checkpoint; 200 with `"duplicate": true` when the same file (SHA-256) exists.
    """
    try:
        hints = _hints(arch, num_classes, class_names, image_size, in_channels)
        ckpt, duplicate = _import(request, db, user, file, name, hints)
    except DomainError as exc:  # returned, not raised: the refusal's audit event commits
        return error_json(exc)
    response.status_code = 200 if duplicate else 201
    return {**service.checkpoint_json(ckpt), "duplicate": duplicate}


@api_router.get("", response_model=list[CheckpointOut])
def api_list(db: DbSession, _user: StaffUser) -> list[dict[str, Any]]:
    return [service.checkpoint_json(c) for c in service.list_checkpoints(db)]


@api_router.get("/{checkpoint_id}", response_model=CheckpointOut)
def api_get(db: DbSession, _user: StaffUser, checkpoint_id: DbId) -> dict[str, Any]:
    return service.checkpoint_json(service.get_checkpoint(db, checkpoint_id))


@api_router.delete(
    "/{checkpoint_id}", dependencies=[Csrf], status_code=204, response_class=Response
)
def api_delete(
    request: Request,
    db: DbSession,
    admin: AdminUser,
    checkpoint_id: DbId,
    tasks: BackgroundTasks,
) -> Response:
    """409 naming the studies whose arm it is; an unused checkpoint's row and file go."""
    ckpt = service.get_checkpoint(db, checkpoint_id)
    files = removal.delete_checkpoint(db, actor=admin, ckpt=ckpt, ip=client_ip(request))
    delete_files_later(request, tasks, files)
    return Response(status_code=204)
