"""Studies: researcher landing, builder, detail (progress), lifecycle actions, preview, API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.deps import Csrf, DbSession, StaffUser
from app.errors import DomainError, NotFound
from app.models import Role, SaliencyMap, Trial, User
from app.services.catalog import checkpoints as ckpt_service
from app.services.catalog import images as image_service
from app.services.maps import jobs as job_service
from app.services.study import studies as service
from app.services.study.spec import COLORMAPS, DEFAULT_LIKERT_QUESTION, StudySpec
from app.storage import Storage
from app.web import HOTKEYS, render

router = APIRouter(tags=["studies"])
api_router = APIRouter(prefix="/studies", tags=["studies"])
MAX_FORM_ARMS = 4


def _settings(request: Request) -> Any:
    return request.app.state.settings


# --- form parsing (the builder page posts plain fields; the API posts a StudySpec) -------------
def spec_from_form(form: Mapping[str, Any], getlist: Any) -> dict[str, Any]:
    """Turn the builder's fields into a StudySpec-shaped dict (validation happens later)."""

    def text(key: str, default: str = "") -> str:
        value = form.get(key)
        return value.strip() if isinstance(value, str) else default

    def number(key: str, default: float) -> float:
        try:
            return float(text(key) or default)
        except ValueError:
            return default

    arms = []
    for n in range(MAX_FORM_ARMS):
        ckpt = text(f"arm{n}_checkpoint")
        if not ckpt:
            continue
        arms.append(
            {
                "checkpoint_id": int(ckpt) if ckpt.isdigit() else -1,
                "bn_route": text(f"arm{n}_route") or None,
                "method": text(f"arm{n}_method") or "gradient",
                "label": text(f"arm{n}_label") or None,
            }
        )
    items: list[dict[str, Any]] = [
        {
            "key": "highlight",
            "kind": "likert",
            "question": text("item_question") or DEFAULT_LIKERT_QUESTION,
            "scale": int(number("item_scale", 5)),
            "anchors": [text("item_anchor_low"), text("item_anchor_high")],
        }
    ]
    if form.get("item_preference"):
        items.append({"key": "preference", "kind": "preference", "question": ""})
    if form.get("item_comment"):
        items.append({"key": "comment", "kind": "comment", "question": ""})
    return {
        "name": text("name"),
        "instructions": text("instructions"),
        "image_ids": [int(v) for v in getlist("image_ids") if str(v).isdigit()],
        "arms": arms,
        "raters": [str(v) for v in getlist("raters") if v],
        "seed": int(number("seed", 0)),
        "repeat_fraction": number("repeat_fraction", 0.0),
        "allow_back": bool(form.get("allow_back")),
        "items": items,
        "saliency": {
            "target": text("target") or "predicted",
            "postprocess": text("postprocess") or "clip_std",
            "colormap": text("colormap") or "jet",
            "opacity": number("opacity", 0.5),
        },
    }


def _raters(db: Session) -> list[User]:
    return list(
        db.scalars(
            select(User)
            .where(User.role == Role.rater.value, User.is_active.is_(True))
            .order_by(User.username)
        )
    )


def _builder(
    request: Request,
    db: Session,
    *,
    values: dict[str, Any] | None = None,
    flash: str | None = None,
    status_code: int = 200,
    label: str = "",
    modality: str = "",
) -> Response:
    from ml.explain import METHODS

    return render(
        request,
        "studies/new.html",
        {
            "values": values or {},
            "checkpoints": ckpt_service.list_checkpoints(db),
            "images": image_service.list_images(db, label=label or None, modality=modality or None),
            "labels": image_service.all_label_names(db),
            "modalities": image_service.all_modalities(db),
            "label": label,
            "modality": modality,
            "raters": _raters(db),
            "methods": METHODS,
            "colormaps": COLORMAPS,
            "arm_slots": range(MAX_FORM_ARMS),
            "default_question": DEFAULT_LIKERT_QUESTION,
            "flash": flash,
            "flash_kind": "error",
        },
        status_code=status_code,
    )


# --- pages --------------------------------------------------------------------------------------
@router.get("/studies", include_in_schema=False)
def studies_page(request: Request, db: DbSession, _user: StaffUser) -> Response:
    rows = []
    for study in service.list_studies(db):
        have, needed = service.map_counts(db, study)
        done, total = service.study_progress(db, study)
        rows.append({"study": study, "maps": (have, needed), "ratings": (done, total)})
    return render(request, "studies/list.html", {"rows": rows})


@router.get("/studies/new", include_in_schema=False)
def study_new_page(
    request: Request, db: DbSession, _user: StaffUser, label: str = "", modality: str = ""
) -> Response:
    return _builder(request, db, label=label, modality=modality)


@router.post("/studies/new", dependencies=[Csrf], include_in_schema=False)
async def study_create_form(request: Request, db: DbSession, user: StaffUser) -> Response:
    form = await request.form()
    values = spec_from_form(form, form.getlist)
    try:
        study = service.create_study(db, spec=values, actor=user)
    except DomainError as exc:  # validation precedes every write: nothing to undo
        return _builder(request, db, values=values, flash=exc.message, status_code=exc.status_code)
    return RedirectResponse(f"/studies/{study.id}?done=created", status_code=303)


FLASH = {
    "created": "Study created with its trial design. Generate the maps next.",
    "generating": "Map generation queued.",
    "opened": "The study is open: raters can start.",
    "closed": "The study is closed.",
}


@router.get("/studies/{study_id}", include_in_schema=False)
def study_page(
    request: Request, db: DbSession, _user: StaffUser, study_id: int, done: str = ""
) -> Response:
    study = service.get_study(db, study_id)
    info = service.study_json(db, study)
    job = service.latest_job(db, study)
    first_trial = db.scalar(
        select(Trial).where(Trial.study_id == study.id).order_by(Trial.rater_id, Trial.position)
    )
    return render(
        request,
        "studies/detail.html",
        {
            "study": study,
            "info": info,
            "job": job_service.job_json(job) if job else None,
            "job_active": job is not None and job.status in job_service.ACTIVE,
            "frozen": service.is_design_frozen(db, study),
            "maps_ready": info["maps"]["done"] >= info["maps"]["total"] > 0,
            "first_trial": first_trial,
            "flash": FLASH.get(done),
            "flash_kind": "ok",
        },
    )


def _action_response(study_id: int, done: str) -> RedirectResponse:
    return RedirectResponse(f"/studies/{study_id}?done={done}", status_code=303)


@router.post("/studies/{study_id}/generate", dependencies=[Csrf], include_in_schema=False)
def study_generate_form(
    request: Request, db: DbSession, user: StaffUser, study_id: int
) -> RedirectResponse:
    study = service.get_study(db, study_id)
    job_service.enqueue_generation(db, study, user, batch_size=_settings(request).batch_size)
    return _action_response(study_id, "generating")


@router.post("/studies/{study_id}/open", dependencies=[Csrf], include_in_schema=False)
def study_open_form(db: DbSession, user: StaffUser, study_id: int) -> RedirectResponse:
    service.open_study(db, service.get_study(db, study_id), user)
    return _action_response(study_id, "opened")


@router.post("/studies/{study_id}/close", dependencies=[Csrf], include_in_schema=False)
def study_close_form(db: DbSession, user: StaffUser, study_id: int) -> RedirectResponse:
    service.close_study(db, service.get_study(db, study_id), user)
    return _action_response(study_id, "closed")


@router.get("/studies/{study_id}/preview/{trial_id}", include_in_schema=False)
def study_preview(
    request: Request, db: DbSession, _user: StaffUser, study_id: int, trial_id: int
) -> Response:
    """A trial exactly as its rater will see it (the rater template), answers not saved."""
    from app.services.reading.trials import normalize_items

    study = service.get_study(db, study_id)
    trial = db.get(Trial, trial_id)
    if trial is None or trial.study_id != study.id:
        raise NotFound("No such trial.")
    total = len(
        db.scalars(
            select(Trial.id).where(Trial.study_id == study.id, Trial.rater_id == trial.rater_id)
        ).all()
    )
    rows = db.execute(
        select(Trial.position, Trial.id).where(
            Trial.study_id == study.id,
            Trial.rater_id == trial.rater_id,
            Trial.position.in_([trial.position - 1, trial.position + 1]),
        )
    )
    neighbours = {position: trial_id for position, trial_id in rows}
    base = f"/studies/{study.id}/preview"
    view = {
        "done": False,
        "token": "preview",
        "position": trial.position + 1,
        "total": total,
        "answered": 0,
        "study": {
            "id": study.id,
            "name": study.name,
            "instructions": study.instructions,
            "allow_back": study.allow_back,
        },
        "items": normalize_items(study.items),
        "image_url": f"/images/{trial.image_id}/display.png",
        "rating_url": "",
        "map_urls": {"a": f"{base}/{trial.id}/a.png", "b": f"{base}/{trial.id}/b.png"},
        "overlay_opacity": float((study.saliency or {}).get("opacity", 0.5)),
        "previous_url": (
            f"{base}/{neighbours[trial.position - 1]}" if trial.position - 1 in neighbours else None
        ),
        "next_url": (
            f"{base}/{neighbours[trial.position + 1]}" if trial.position + 1 in neighbours else None
        ),
        "rating": None,
    }

    return render(
        request,
        "rater/trial.html",
        {
            "view": view,
            "hotkeys": HOTKEYS,
            "notice": "Preview (staff only): this is what the rater sees; answers are not saved.",
        },
    )


@router.get("/studies/{study_id}/preview/{trial_id}/{slot}.png", include_in_schema=False)
def study_preview_map(
    request: Request, db: DbSession, _user: StaffUser, study_id: int, trial_id: int, slot: str
) -> Response:
    trial = db.get(Trial, trial_id)
    if trial is None or trial.study_id != study_id or slot not in ("a", "b"):
        raise NotFound("No such map.")
    study = service.get_study(db, study_id)
    arm_id = trial.left_arm_id if slot == "a" else trial.right_arm_id
    rel = db.scalar(
        select(SaliencyMap.overlay_path).where(
            SaliencyMap.arm_id == arm_id,
            SaliencyMap.image_id == trial.image_id,
            SaliencyMap.target == str((study.saliency or {}).get("target", "predicted")),
        )
    )
    if rel is None:
        raise NotFound("This map has not been generated yet.")
    path = Storage(_settings(request).data_dir).path(rel)
    return FileResponse(path, media_type="image/png")


# --- API ----------------------------------------------------------------------------------------
@api_router.post("", dependencies=[Csrf], status_code=201)
def api_create(db: DbSession, user: StaffUser, spec: StudySpec) -> JSONResponse:
    """Create a study and its full trial design (status draft)."""
    study = service.create_study(db, spec=spec, actor=user)
    return JSONResponse(service.study_json(db, study), status_code=201)


@api_router.get("")
def api_list(db: DbSession, _user: StaffUser) -> list[dict[str, Any]]:
    return [service.study_json(db, s) for s in service.list_studies(db)]


@api_router.get("/{study_id}")
def api_get(db: DbSession, _user: StaffUser, study_id: int) -> dict[str, Any]:
    return service.study_json(db, service.get_study(db, study_id))


@api_router.patch("/{study_id}", dependencies=[Csrf])
def api_update(
    db: DbSession, user: StaffUser, study_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Edit fields of a study; design fields only in draft and before the first rating."""
    study = service.update_study(db, service.get_study(db, study_id), changes, user)
    return service.study_json(db, study)


@api_router.post("/{study_id}/generate", dependencies=[Csrf], status_code=202)
def api_generate(request: Request, db: DbSession, user: StaffUser, study_id: int) -> dict[str, Any]:
    """Queue the missing maps (arm × image × target); returns the job (202)."""
    study = service.get_study(db, study_id)
    job = job_service.enqueue_generation(db, study, user, batch_size=_settings(request).batch_size)
    return job_service.job_json(job)


@api_router.post("/{study_id}/open", dependencies=[Csrf])
def api_open(db: DbSession, user: StaffUser, study_id: int) -> dict[str, Any]:
    """Open for rating (409 unless every map exists and no job is running)."""
    study = service.open_study(db, service.get_study(db, study_id), user)
    return service.study_json(db, study)


@api_router.post("/{study_id}/close", dependencies=[Csrf])
def api_close(db: DbSession, user: StaffUser, study_id: int) -> dict[str, Any]:
    study = service.close_study(db, service.get_study(db, study_id), user)
    return service.study_json(db, study)


@api_router.get("/{study_id}/progress")
def api_progress(db: DbSession, _user: StaffUser, study_id: int) -> list[dict[str, Any]]:
    """Per rater: done/total, last activity, median seconds per trial."""
    study = service.get_study(db, study_id)
    return [r.as_json() for r in service.rater_progress(db, study)]
