"""Checkpoints: upload page and `/api/v1/checkpoints` (admins and researchers)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from app.auth.deps import Csrf, DbSession, StaffUser
from app.errors import DomainError
from app.handlers import error_json
from app.services.catalog import checkpoints as service
from app.web import render

router = APIRouter(tags=["checkpoints"])
api_router = APIRouter(prefix="/checkpoints", tags=["checkpoints"])


def _hints(
    arch: str, num_classes: str, class_names: str, image_size: str, in_channels: str
) -> dict[str, Any]:
    return {
        "arch": arch,
        "num_classes": num_classes,
        "class_names": class_names,
        "image_size": image_size,
        "in_channels": in_channels,
    }


# --- pages --------------------------------------------------------------------------------------
@router.get("/checkpoints", include_in_schema=False)
def checkpoints_page(request: Request, db: DbSession, _user: StaffUser) -> Response:
    return render(request, "checkpoints.html", {"rows": service.list_checkpoints(db), "form": {}})


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
    settings = request.app.state.settings
    try:
        ckpt, duplicate = service.import_checkpoint(
            db,
            settings,
            data=file.file,
            filename=file.filename or "upload.pt",
            name=name,
            actor=user,
            hints=_hints(arch, num_classes, class_names, image_size, in_channels),
        )
    except DomainError as exc:  # rendered, not raised: the refusal's audit event commits
        return render(
            request,
            "checkpoints.html",
            {
                "rows": service.list_checkpoints(db),
                "flash": exc.message,
                "flash_kind": "error",
                "form": {
                    "name": name,
                    "arch": arch,
                    "num_classes": num_classes,
                    "class_names": class_names,
                    "image_size": image_size,
                },
            },
            status_code=exc.status_code,
        )
    done = "duplicate" if duplicate else "imported"
    return RedirectResponse(f"/checkpoints/{ckpt.id}?done={done}", status_code=303)


@router.get("/checkpoints/{checkpoint_id}", include_in_schema=False)
def checkpoint_page(
    request: Request, db: DbSession, _user: StaffUser, checkpoint_id: int, done: str = ""
) -> Response:
    ckpt = service.get_checkpoint(db, checkpoint_id)
    flash = {
        "imported": "Checkpoint verified and stored.",
        "duplicate": "This file was already uploaded; showing the existing checkpoint.",
    }.get(done)
    return render(
        request,
        "checkpoints_detail.html",
        {"ckpt": ckpt, "info": service.checkpoint_json(ckpt), "flash": flash, "flash_kind": "ok"},
    )


# --- API ----------------------------------------------------------------------------------------
@api_router.post(
    "",
    dependencies=[Csrf],
    status_code=201,
    responses={200: {"description": "Duplicate: the existing checkpoint"}},
)
def api_upload(
    request: Request,
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
) -> JSONResponse:
    """Verify (weights only, rebuilt, one dummy forward) and store a checkpoint.

    201 with the checkpoint; 200 with `"duplicate": true` when the same file (SHA-256) exists.
    """
    try:
        ckpt, duplicate = service.import_checkpoint(
            db,
            request.app.state.settings,
            data=file.file,
            filename=file.filename or "upload.pt",
            name=name,
            actor=user,
            hints=_hints(arch, num_classes, class_names, image_size, in_channels),
        )
    except DomainError as exc:  # returned, not raised: the refusal's audit event commits
        return error_json(exc)
    body = {**service.checkpoint_json(ckpt), "duplicate": duplicate}
    return JSONResponse(body, status_code=200 if duplicate else 201)


@api_router.get("")
def api_list(db: DbSession, _user: StaffUser) -> list[dict[str, Any]]:
    return [service.checkpoint_json(c) for c in service.list_checkpoints(db)]


@api_router.get("/{checkpoint_id}")
def api_get(db: DbSession, _user: StaffUser, checkpoint_id: int) -> dict[str, Any]:
    return service.checkpoint_json(service.get_checkpoint(db, checkpoint_id))
