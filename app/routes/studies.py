"""Studies: researcher landing, builder, detail (progress), lifecycle actions, API.

The staff preview of a study's trials lives in :mod:`app.routes.preview`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.deps import Csrf, DbSession, StaffUser
from app.errors import Conflict, DomainError, Invalid
from app.ids import DbId
from app.models import Study
from app.services import inference
from app.services.catalog import checkpoints as ckpt_service
from app.services.catalog import images as image_service
from app.services.maps import jobs as job_service
from app.services.maps.schemas import JobOut
from app.services.reading import preview
from app.services.results import protocol as protocol_service
from app.services.results import quality as quality_service
from app.services.study import live
from app.services.study import spec as defaults
from app.services.study import studies as service
from app.services.study.schemas import RaterProgressOut, StudyOut
from app.services.study.spec import StudySpec
from app.web import render

router = APIRouter(tags=["studies"])
api_router = APIRouter(prefix="/studies", tags=["studies"])
MAX_FORM_ARMS = 4


def _settings(request: Request) -> Any:
    return request.app.state.settings


# --- form parsing (the builder page posts plain fields; the API posts a StudySpec) -------------
def _ids(value: str) -> list[int]:
    return [int(v) for v in value.replace(";", ",").split(",") if v.strip().isdigit()]


def _protocol_items(form: Mapping[str, Any], text: Any) -> list[dict[str, Any]]:
    """Confidence, blinding check and localisation items from the builder (issue 15)."""
    items: list[dict[str, Any]] = []
    if form.get("item_confidence"):
        items.append({"key": "confidence", "kind": "confidence", "question": ""})
    if form.get("item_blinding"):
        when = "end" if text("blinding_when") == "end" else "trial"
        question = text("blinding_question")
        items.append({"key": "blinding", "kind": "blinding", "question": question, "when": when})
    if text("item_localise") in ("required", "optional"):
        required = text("item_localise") == "required"
        items.append({"key": "region", "kind": "localise", "question": "", "required": required})
    return items


def _protocol_from_form(form: Mapping[str, Any], text: Any) -> dict[str, Any]:
    """The protocol options (practice, catch trials, anchor-and-rotate, per-case text)."""
    try:
        fraction = float(text("catch_fraction") or 0)
    except ValueError:
        fraction = -1.0  # refused by the spec with a clear message
    readers = text("readers_per_case")
    case_text = {}
    for line in text("case_text").splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and value.strip():
            case_text[key.strip()] = value.strip()
    kinds = [k for k in ("same", "randomised") if form.get(f"catch_{k}")]
    return {
        "practice_image_ids": _ids(text("practice_image_ids")),
        "catch_fraction": fraction,
        "catch_kinds": kinds or ["same", "randomised"],
        "readers_per_case": int(readers) if readers.isdigit() else None,
        "anchor_image_ids": _ids(text("anchor_image_ids")),
        "case_text": case_text,
    }


# The builder's and the draft page's labels for the analyses the spec accepts (PRIMARY_ANALYSES).
ANALYSIS_NAMES = {
    "or_mrmc": "OR-MRMC of the mean score difference (readers and cases random)",
    "clmm": "CLMM odds ratio, Likert scores as ordinal (needs R)",
    "vgc": "AUC_VGC with a two-way bootstrap CI",
    "wilcoxon_case_means": "Wilcoxon signed-rank test on per-case mean differences",
    "wilcoxon": "Wilcoxon signed-rank test on rater × case differences (readers fixed)",
    "lmm": "Linear mixed model arm effect",
}


def plan_typed(form: Mapping[str, Any]) -> dict[str, str]:
    """The pre-registration fields exactly as typed (a refused form shows them back so)."""
    keys = ("primary_analysis", "alpha", "item")
    return {k: v.strip() if isinstance(v := form.get(f"plan_{k}"), str) else "" for k in keys}


def plan_from_form(form: Mapping[str, Any]) -> dict[str, Any] | None:
    """The "Pre-registration" fields as an ``analysis_plan`` (None when all are left blank).

    Nothing is checked here: the spec validates the plan exactly as it does for the API (an
    alpha that is not a number is passed on as typed, for the spec to refuse in its words)."""
    analysis, alpha, item = plan_typed(form).values()
    if not (analysis or alpha or item):
        return None
    plan: dict[str, Any] = {"primary_analysis": analysis, "item": item or None}
    if alpha:
        try:
            plan["alpha"] = float(alpha)
        except ValueError:
            plan["alpha"] = alpha
    return plan


def plan_choices(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """What the pre-registration fields offer: the analyses the spec accepts and the Likert
    items (of ``items``, the study's rating items) a plan may name."""
    likert = [i["key"] for i in defaults.rating_items(items) if i["kind"] == "likert"]
    analyses = [(a, ANALYSIS_NAMES.get(a, a)) for a in defaults.PRIMARY_ANALYSES]
    return {"analyses": analyses, "likert_keys": likert}


BUILDER_LIKERT = "highlight"  # the key of the one Likert item the builder writes


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
                "method": text(f"arm{n}_method") or defaults.DEFAULT_METHOD,
                "label": text(f"arm{n}_label") or None,
            }
        )
    items: list[dict[str, Any]] = [
        {
            "key": BUILDER_LIKERT,
            "kind": "likert",
            "question": text("item_question") or defaults.DEFAULT_LIKERT_QUESTION,
            "scale": int(number("item_scale", defaults.DEFAULT_SCALE)),
            "anchors": [text("item_anchor_low"), text("item_anchor_high")],
        }
    ]
    if form.get("item_preference"):
        items.append({"key": "preference", "kind": "preference", "question": ""})
    if form.get("item_comment"):
        items.append({"key": "comment", "kind": "comment", "question": ""})
    items += _protocol_items(form, text)
    return {
        "name": text("name"),
        "instructions": text("instructions"),
        "image_ids": [int(v) for v in getlist("image_ids") if str(v).isdigit()],
        "arms": arms,
        "raters": [str(v) for v in getlist("raters") if v],
        "seed": int(number("seed", 0)),
        "repeat_fraction": number("repeat_fraction", defaults.DEFAULT_REPEAT_FRACTION),
        "allow_back": bool(form.get("allow_back")),
        "items": items,
        "protocol": _protocol_from_form(form, text),
        "analysis_plan": plan_from_form(form),
        "saliency": {
            "target": text("target") or defaults.DEFAULT_TARGET,
            "postprocess": text("postprocess") or defaults.DEFAULT_POSTPROCESS,
            "colormap": text("colormap") or defaults.DEFAULT_COLORMAP,
            "opacity": number("opacity", defaults.DEFAULT_OPACITY),
        },
    }


def _builder(
    request: Request,
    db: DbSession,
    *,
    values: dict[str, Any] | None = None,
    flash: str | None = None,
    status_code: int = 200,
    label: str = "",
    modality: str = "",
    errors: object = None,
    editing: Any = None,
    plan_values: dict[str, Any] | None = None,
) -> Response:
    return render(
        request,
        "studies/new.html",
        {
            "values": values or {},
            "plan_values": plan_values or (values or {}).get("analysis_plan") or {},
            "errors": field_errors(errors),
            "editing": editing,
            "checkpoints": ckpt_service.list_checkpoints(db),
            "images": image_service.list_images(db, label=label or None, modality=modality or None),
            "labels": image_service.all_label_names(db),
            "modalities": image_service.all_modalities(db),
            "label": label,
            "modality": modality,
            "raters": service.active_raters(db),
            "methods": inference.saliency_methods(),
            "colormaps": inference.colormaps(),
            "postprocess_modes": inference.postprocess_modes(),
            "defaults": defaults.SaliencySettings(),
            "arm_slots": range(MAX_FORM_ARMS),
            "default_question": defaults.DEFAULT_LIKERT_QUESTION,
            "default_scale": defaults.DEFAULT_SCALE,
            "flash": flash,
            "flash_kind": "error",
            "plan": plan_choices([{"key": BUILDER_LIKERT, "kind": "likert"}]),
        },
        status_code=status_code,
    )


# --- pages --------------------------------------------------------------------------------------
@router.get("/studies", include_in_schema=False)
def studies_page(
    request: Request, db: DbSession, _user: StaffUser, deleted: int | None = None
) -> Response:
    rows = []
    for study in service.list_studies(db):
        have, needed = service.map_counts(db, study)
        done, total = service.study_progress(db, study)
        rows.append({"study": study, "maps": (have, needed), "ratings": (done, total)})
    flash = "Draft deleted." if deleted else None
    return render(request, "studies/list.html", {"rows": rows, "flash": flash, "flash_kind": "ok"})


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
        return _builder(
            request, db, values=values, flash=_problems(exc), errors=exc.details,
            status_code=exc.status_code, plan_values=plan_typed(form),
        )  # fmt: skip
    return RedirectResponse(f"/studies/{study.id}?done=created", status_code=303)


def field_errors(details: object) -> dict[str, list[str]]:
    """A domain error's `details` ([{"loc", "msg"}]) by the builder section they belong to."""
    out: dict[str, list[str]] = {}
    if not isinstance(details, list):
        return out
    for d in details:
        if not isinstance(d, dict):
            continue
        loc = [str(p) for p in d.get("loc") or []] or [_section_of(str(d.get("msg", "")))]
        where = " → ".join(loc[1:])
        msg = str(d.get("msg", ""))
        out.setdefault(loc[0], []).append(f"{where}: {msg}" if where else msg)
    return out


def _section_of(msg: str) -> str:
    """Where a whole-study problem (no field of its own) is shown: the section it names."""
    text = msg.lower()
    for word, section in (
        ("analysis_plan", "analysis_plan"),
        ("arm", "arms"),
        ("image", "image_ids"),
        ("rater", "raters"),
        ("item", "items"),
        ("saliency", "saliency"),
        ("target", "saliency"),
    ):
        if word in text:
            return section
    return "name"


def _problems(exc: DomainError) -> str:
    n = len(exc.details) if isinstance(exc.details, list) else 1
    if n > 1:
        return f"{n} things need fixing before the study can be saved; each is shown by its field."
    return exc.message


@router.get("/studies/{study_id}/edit", include_in_schema=False)
def study_edit_page(request: Request, db: DbSession, _user: StaffUser, study_id: DbId) -> Response:
    """A draft in the builder, to change anything (the design is rebuilt on save)."""
    study = service.get_study(db, study_id)
    if study.status != "draft":
        raise Conflict(f"Only drafts can be edited in the builder (this study is {study.status}).")
    return _builder(request, db, values=service.spec_of(study), editing=study)


@router.post("/studies/{study_id}/edit", dependencies=[Csrf], include_in_schema=False)
async def study_edit_form(
    request: Request, db: DbSession, user: StaffUser, study_id: DbId
) -> Response:
    study = service.get_study(db, study_id)
    form = await request.form()
    values = spec_from_form(form, form.getlist)
    try:
        service.update_study(db, study, values, user)
    except DomainError as exc:  # update_study validates before it rebuilds anything
        return _builder(
            request, db, values=values, flash=_problems(exc), errors=exc.details,
            editing=study, status_code=exc.status_code, plan_values=plan_typed(form),
        )  # fmt: skip
    return RedirectResponse(f"/studies/{study.id}?done=edited", status_code=303)


FLASH = {
    "created": "Study created with its trial design. Generate the maps next.",
    "generating": "Map generation queued.",
    "opened": "The study is open: raters can start.",
    "closed": "The study is closed.",
    "reopened": "The study is open again: raters continue where they stopped.",
    "raters": "Raters added; their trials follow the study's design.",
    "cloned": "A new draft with the same design. Check it, then generate its maps.",
    "edited": "Draft saved; its trial design was rebuilt.",
    "planned": "Analysis plan pre-registered; it is fixed once the study opens.",
    "unplanned": "Analysis plan withdrawn: the study has no pre-registered primary analysis.",
}


@router.get("/studies/{study_id}", include_in_schema=False)
def study_page(
    request: Request, db: DbSession, _user: StaffUser, study_id: DbId, done: str = ""
) -> Response:
    return _detail(request, db, service.get_study(db, study_id), flash=FLASH.get(done))


@router.post("/studies/{study_id}/plan", dependencies=[Csrf], include_in_schema=False)
async def study_plan_form(
    request: Request, db: DbSession, user: StaffUser, study_id: DbId
) -> Response:
    """Pre-register (or change, or withdraw) a draft's analysis plan from its page: the same
    service call as ``PATCH {"analysis_plan": …}``, so the same checks and the same refusal
    once the study has left draft."""
    study = service.get_study(db, study_id)
    form = await request.form()
    plan = plan_from_form(form)
    try:
        service.update_study(db, study, {"analysis_plan": plan}, user)
    except Invalid as exc:  # checked before anything is written
        return _detail(
            request, db, study, flash=_problems(exc), flash_kind="error",
            plan_values=plan_typed(form), plan_errors=exc.details, status_code=exc.status_code,
        )  # fmt: skip
    return _action_response(study_id, "planned" if plan is not None else "unplanned")


def _detail(
    request: Request,
    db: DbSession,
    study: Study,
    *,
    flash: str | None = None,
    flash_kind: str = "ok",
    plan_values: dict[str, Any] | None = None,
    plan_errors: object = None,
    status_code: int = 200,
) -> Response:
    """The study page; a refused plan comes back in its form with the typed values kept."""
    info = service.study_json(db, study)
    job = service.latest_job(db, study)
    job_active = job is not None and job.status in job_service.ACTIVE
    maps_ready = info["maps"]["done"] >= info["maps"]["total"] > 0
    first_trial = preview.first_trial(db, study)
    return render(
        request,
        "studies/detail.html",
        {
            "study": study,
            "info": info,
            "settings": defaults.saliency_settings(study.saliency),
            "job": job_service.job_json(job) if job else None,
            "job_active": job_active,
            "frozen": service.is_design_frozen(db, study),
            "maps_ready": maps_ready,
            # The live endpoint's label from the counts and job above, not a second round of
            # the same queries (study_live recounts maps, ratings and rater progress).
            "status_label": live.status_label(
                study.status,
                maps_ready=maps_ready,
                job_active=job_active,
                job_failed=job is not None and job.status == "failed",
            ),
            "first_trial": first_trial,
            "flash": flash,
            "flash_kind": flash_kind,
            "quality": quality_service.study_quality(db, study.id),
            "protocol_qc": protocol_service.study_protocol(db, study.id),  # issue 15
            "plan": plan_choices(study.items),
            "plan_values": (info["analysis_plan"] or {}) if plan_values is None else plan_values,
            "plan_errors": field_errors(plan_errors),
        },
        status_code=status_code,
    )


def _action_response(study_id: DbId, done: str) -> RedirectResponse:
    return RedirectResponse(f"/studies/{study_id}?done={done}", status_code=303)


@router.post("/studies/{study_id}/generate", dependencies=[Csrf], include_in_schema=False)
def study_generate_form(
    request: Request, db: DbSession, user: StaffUser, study_id: DbId
) -> RedirectResponse:
    study = service.get_study(db, study_id)
    job_service.enqueue_generation(db, study, user, batch_size=_settings(request).batch_size)
    return _action_response(study_id, "generating")


@router.post("/studies/{study_id}/open", dependencies=[Csrf], include_in_schema=False)
def study_open_form(db: DbSession, user: StaffUser, study_id: DbId) -> RedirectResponse:
    service.open_study(db, service.get_study(db, study_id), user)
    return _action_response(study_id, "opened")


@router.post("/studies/{study_id}/close", dependencies=[Csrf], include_in_schema=False)
def study_close_form(db: DbSession, user: StaffUser, study_id: DbId) -> RedirectResponse:
    service.close_study(db, service.get_study(db, study_id), user)
    return _action_response(study_id, "closed")


# --- API ----------------------------------------------------------------------------------------
# Stored settings are returned as stored: unset fields of the typed models stay out of the body.
STUDY: dict[str, Any] = {"response_model": StudyOut, "response_model_exclude_unset": True}


@api_router.post("", dependencies=[Csrf], status_code=201, **STUDY)
def api_create(db: DbSession, user: StaffUser, spec: StudySpec) -> dict[str, Any]:
    """Create a study and its full trial design (status draft)."""
    study = service.create_study(db, spec=spec, actor=user)
    return service.study_json(db, study)


@api_router.get("", response_model=list[StudyOut], response_model_exclude_unset=True)
def api_list(db: DbSession, _user: StaffUser) -> list[dict[str, Any]]:
    return [service.study_json(db, s) for s in service.list_studies(db)]


@api_router.get("/{study_id}", **STUDY)
def api_get(db: DbSession, _user: StaffUser, study_id: DbId) -> dict[str, Any]:
    return service.study_json(db, service.get_study(db, study_id))


@api_router.patch("/{study_id}", dependencies=[Csrf], **STUDY)
def api_update(
    db: DbSession, user: StaffUser, study_id: DbId, changes: dict[str, Any]
) -> dict[str, Any]:
    """Edit fields of a study; design fields only in draft and before the first rating."""
    study = service.update_study(db, service.get_study(db, study_id), changes, user)
    return service.study_json(db, study)


@api_router.post(
    "/{study_id}/generate", dependencies=[Csrf], status_code=202, response_model=JobOut
)
def api_generate(
    request: Request, db: DbSession, user: StaffUser, study_id: DbId
) -> dict[str, Any]:
    """Queue the missing maps (arm × image × target); returns the job (202)."""
    study = service.get_study(db, study_id)
    job = job_service.enqueue_generation(db, study, user, batch_size=_settings(request).batch_size)
    return job_service.job_json(job)


@api_router.post("/{study_id}/open", dependencies=[Csrf], **STUDY)
def api_open(db: DbSession, user: StaffUser, study_id: DbId) -> dict[str, Any]:
    """Open for rating (409 unless every map exists and no job is running)."""
    study = service.open_study(db, service.get_study(db, study_id), user)
    return service.study_json(db, study)


@api_router.post("/{study_id}/close", dependencies=[Csrf], **STUDY)
def api_close(db: DbSession, user: StaffUser, study_id: DbId) -> dict[str, Any]:
    study = service.close_study(db, service.get_study(db, study_id), user)
    return service.study_json(db, study)


@api_router.get("/{study_id}/progress", response_model=list[RaterProgressOut])
def api_progress(db: DbSession, _user: StaffUser, study_id: DbId) -> list[dict[str, Any]]:
    """Per rater: done/total, last activity, median seconds per trial."""
    study = service.get_study(db, study_id)
    return [r.as_json() for r in service.rater_progress(db, study)]
