"""Study builder, lifecycle, freezing, progress and the staff pages (API and browser)."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import AuditEvent, Rating, Study, Trial
from app.models.base import utcnow
from app.services.catalog.images import import_images
from app.worker import run_pending
from tests.app.fixtures_ml import Catalog, build_catalog, png_bytes

URL = "/api/v1/studies"


@pytest.fixture()
def catalog(db: Session, settings: Settings, tmp_path: Path, make_user: Any) -> Catalog:
    return build_catalog(db, settings, tmp_path, make_user)


@pytest.fixture()
def staff(make_user: Any, api_headers: Any) -> dict[str, str]:
    return api_headers(make_user("researcher"))  # type: ignore[no-any-return]


def _create(client: TestClient, staff: dict[str, str], spec: dict[str, Any]) -> Any:
    return client.post(URL, json=spec, headers=staff)


def test_create_study_stores_the_full_design(
    client: TestClient, staff: dict[str, str], catalog: Catalog, db: Session
) -> None:
    r = _create(client, staff, catalog.spec(repeat_fraction=0.25))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "draft"
    assert [a["label"] for a in body["arms"]] == ["standard", "dual-BN clean"]
    assert [a["bn_route"] for a in body["arms"]] == [None, "clean"]
    assert body["items"][0]["key"] == "highlight"
    assert body["items"][0]["anchors"] == ["Not at all", "Very well"]
    assert [i["kind"] for i in body["items"]] == ["likert", "preference", "comment"]
    assert body["maps"] == {"done": 0, "total": 8}
    trials = list(db.scalars(select(Trial).where(Trial.study_id == body["id"])))
    per_rater = Counter(t.rater_id for t in trials)
    assert set(per_rater.values()) == {4 + 1}  # every case once + round(0.25 * 4) repeat
    tokens = [t.token for t in trials]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{20,}", t) for t in tokens)
    repeats = [t for t in trials if t.is_repeat]
    assert len(repeats) == 3 and all(t.repeat_of_id is not None for t in repeats)
    assert (
        db.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "study.created"))
        == 1
    )


def test_same_seed_gives_same_design_with_fresh_tokens(
    client: TestClient, staff: dict[str, str], catalog: Catalog, db: Session
) -> None:
    ids = [_create(client, staff, catalog.spec(seed=42)).json()["id"] for _ in range(2)]

    def design(study_id: int) -> tuple[list[tuple[Any, ...]], set[str]]:
        rows = db.scalars(
            select(Trial).where(Trial.study_id == study_id).order_by(Trial.rater_id, Trial.position)
        ).all()
        arms = sorted({t.left_arm_id for t in rows})
        index = {a: n for n, a in enumerate(arms)}
        shape = [(t.rater_id, t.position, t.image_id, index[t.left_arm_id]) for t in rows]
        return shape, {t.token for t in rows}

    (a, tokens_a), (b, tokens_b) = design(ids[0]), design(ids[1])
    assert a == b
    assert not tokens_a & tokens_b


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"arms": "one"}, "at least two arms"),
        ({"raters": ["nobody"]}, "Unknown rater"),
        ({"image_ids": [987654]}, "do not exist"),
        ({"arms": [{"checkpoint_id": 987654, "method": "gradient"}] * 2}, "identical"),
        ({"arms": "missing"}, "does not exist"),
        ({"arms": "route_on_standard"}, "takes no BN route"),
        ({"arms": "bad_method"}, "unknown method"),
        ({"saliency": {"target": "class:nodule"}}, "has no class 'nodule'"),
        ({"saliency": {"target": "whatever"}}, "target"),
        ({"repeat_fraction": 2}, "repeat_fraction"),
        ({"name": "   "}, "name"),
    ],
)
def test_invalid_studies_are_refused(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    db: Session,
    change: dict[str, Any],
    needle: str,
) -> None:
    std, dual = catalog.standard.id, catalog.dual.id
    arms = {
        "one": [{"checkpoint_id": std, "method": "gradient"}],
        "missing": [
            {"checkpoint_id": std, "method": "gradient"},
            {"checkpoint_id": 987654, "method": "gradient"},
        ],
        "route_on_standard": [
            {"checkpoint_id": std, "bn_route": "adv", "method": "gradient"},
            {"checkpoint_id": dual, "method": "gradient"},
        ],
        "bad_method": [
            {"checkpoint_id": std, "method": "astrology"},
            {"checkpoint_id": dual, "method": "gradient"},
        ],
    }
    if isinstance(change.get("arms"), str):
        change = {"arms": arms[change["arms"]]}
    r = _create(client, staff, catalog.spec(**change))
    assert r.status_code == 422, r.text
    assert needle in r.text
    assert db.scalar(select(func.count(Study.id))) == 0


def test_raters_must_have_the_rater_role(
    client: TestClient, staff: dict[str, str], catalog: Catalog, make_user: Any
) -> None:
    researcher = make_user("researcher")
    r = _create(client, staff, catalog.spec(raters=[researcher.username]))
    assert r.status_code == 422 and "rater role" in r.json()["detail"]


def test_colour_images_need_a_three_channel_model(
    client: TestClient, staff: dict[str, str], catalog: Catalog, db: Session, settings: Settings
) -> None:
    colour = import_images(
        db, settings, files=[("c.png", png_bytes(seed=77, rgb=True))], actor=None
    )
    r = _create(client, staff, catalog.spec(image_ids=[*catalog.image_ids, *colour.image_ids]))
    assert r.status_code == 422 and "colour" in r.json()["detail"]


def _generate(
    client: TestClient,
    staff: dict[str, str],
    study_id: int,
    factory: sessionmaker[Session],
    settings: Settings,
) -> dict[str, Any]:
    job = client.post(f"{URL}/{study_id}/generate", headers=staff)
    assert job.status_code == 202, job.text
    run_pending(factory, settings)
    return client.get(f"/api/v1/jobs/{job.json()['id']}", headers=staff).json()  # type: ignore[no-any-return]


def test_lifecycle_draft_generating_open_closed(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    session_factory: sessionmaker[Session],
    settings: Settings,
    db: Session,
) -> None:
    study_id = _create(client, staff, catalog.spec()).json()["id"]
    early = client.post(f"{URL}/{study_id}/open", headers=staff)
    assert early.status_code == 409 and "0 of 8" in early.json()["detail"]
    job = _generate(client, staff, study_id, session_factory, settings)
    assert job["status"] == "done" and job["done"] == job["total"] == 8
    assert client.get(f"{URL}/{study_id}", headers=staff).json()["status"] == "generating"
    opened = client.post(f"{URL}/{study_id}/open", headers=staff)
    assert opened.status_code == 200 and opened.json()["status"] == "open"
    assert opened.json()["opened_at"]
    again = client.post(f"{URL}/{study_id}/generate", headers=staff)
    assert again.status_code == 409
    closed = client.post(f"{URL}/{study_id}/close", headers=staff)
    assert closed.json()["status"] == "closed"
    assert client.post(f"{URL}/{study_id}/open", headers=staff).status_code == 409
    actions = set(db.scalars(select(AuditEvent.action)))
    assert {"study.created", "job.enqueued", "job.done", "study.opened", "study.closed"} <= actions


def _rate(db: Session, study_id: int, rater_id: int, n: int, active_ms: int) -> None:
    trials = db.scalars(
        select(Trial)
        .where(Trial.study_id == study_id, Trial.rater_id == rater_id)
        .order_by(Trial.position)
        .limit(n)
    ).all()
    for k, t in enumerate(trials):
        db.add(
            Rating(
                trial_id=t.id,
                rater_id=rater_id,
                left_score=3,
                right_score=4,
                preference="right",
                active_ms=active_ms * (k + 1),
                updated_at=utcnow() - dt.timedelta(minutes=10 - k),
            )
        )
    db.flush()


def test_design_freezes_at_the_first_rating(
    client: TestClient, staff: dict[str, str], catalog: Catalog, db: Session
) -> None:
    study_id = _create(client, staff, catalog.spec()).json()["id"]
    # Before any rating the design can change: fewer raters → fewer trials.
    r = client.patch(
        f"{URL}/{study_id}", json={"raters": [catalog.raters[0].username]}, headers=staff
    )
    assert r.status_code == 200, r.text
    assert [x["username"] for x in r.json()["raters"]] == [catalog.raters[0].username]
    assert db.scalar(select(func.count(Trial.id)).where(Trial.study_id == study_id)) == 4
    _rate(db, study_id, catalog.raters[0].id, 1, 1000)
    frozen = client.patch(
        f"{URL}/{study_id}", json={"image_ids": catalog.image_ids[:2]}, headers=staff
    )
    assert frozen.status_code == 409 and "frozen" in frozen.json()["detail"]
    renamed = client.patch(f"{URL}/{study_id}", json={"name": "Renamed"}, headers=staff)
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert renamed.json()["design_frozen_at"] is not None


def test_rater_progress_table(
    client: TestClient, staff: dict[str, str], catalog: Catalog, db: Session
) -> None:
    study_id = _create(client, staff, catalog.spec()).json()["id"]
    first, second, third = catalog.raters
    _rate(db, study_id, first.id, 3, 2000)  # 2 s, 4 s, 6 s → median 4 s
    _rate(db, study_id, second.id, 1, 1500)
    rows = {
        r["username"]: r for r in client.get(f"{URL}/{study_id}/progress", headers=staff).json()
    }
    assert rows[first.username]["done"] == 3 and rows[first.username]["total"] == 4
    assert rows[first.username]["median_seconds"] == 4.0
    assert rows[second.username]["median_seconds"] == 1.5
    assert rows[third.username]["done"] == 0 and rows[third.username]["last_activity"] is None
    assert rows[first.username]["last_activity"] is not None
    detail = client.get(f"{URL}/{study_id}", headers=staff).json()
    assert detail["ratings"] == {"done": 4, "total": 12}


def test_pages_builder_detail_preview_and_list(
    client: TestClient,
    make_user: Any,
    login: Any,
    catalog: Catalog,
    session_factory: sessionmaker[Session],
    settings: Settings,
    db: Session,
) -> None:
    session = login(make_user("researcher"))
    builder = client.get("/studies/new")
    assert builder.status_code == 200
    assert catalog.standard.name in builder.text and catalog.raters[0].username in builder.text
    form = {
        "name": "Form study",
        "instructions": "Look at the lungs.",
        "image_ids": [str(i) for i in catalog.image_ids],
        "raters": [r.username for r in catalog.raters],
        "arm0_checkpoint": str(catalog.standard.id),
        "arm0_method": "gradient",
        "arm1_checkpoint": str(catalog.dual.id),
        "arm1_route": "clean",
        "arm1_method": "gradient",
        "arm1_label": "robust",
        "seed": "3",
        "repeat_fraction": "0",
        "allow_back": "1",
        "target": "predicted",
        "postprocess": "clip_std",
        "colormap": "inferno",
        "opacity": "0.4",
        "item_question": "Is the map useful?",
        "item_scale": "7",
        "item_anchor_low": "Useless",
        "item_anchor_high": "Very useful",
        "item_preference": "1",
    }
    r = session.post_form("/studies/new", form)
    assert r.status_code == 303, r.text
    study = db.scalar(select(Study).where(Study.name == "Form study"))
    assert study is not None
    assert study.saliency["colormap"] == "inferno" and study.saliency["opacity"] == 0.4
    assert [i["kind"] for i in study.items] == ["likert", "preference"]
    assert study.items[0]["scale"] == 7 and study.items[0]["anchors"] == ["Useless", "Very useful"]
    assert [a.label for a in study.arms] == ["standard", "robust"]

    detail = client.get(r.headers["location"])
    assert detail.status_code == 200
    assert "robust" in detail.text and "Generate maps" in detail.text

    invalid = session.post_form("/studies/new", {**form, "arm1_checkpoint": ""})
    assert invalid.status_code == 422 and "at least two arms" in invalid.text

    gen = session.post_form(f"/studies/{study.id}/generate")
    assert gen.status_code == 303
    running = client.get(f"/studies/{study.id}")
    assert 'data-job-id="' in running.text and "/static/js/job_progress.js" in running.text
    run_pending(session_factory, settings)
    ready = client.get(f"/studies/{study.id}")
    assert "maps ready" in ready.text and "Open for rating" in ready.text

    trial = db.scalar(select(Trial).where(Trial.study_id == study.id).order_by(Trial.id))
    assert trial is not None
    preview = client.get(f"/studies/{study.id}/preview/{trial.id}")
    assert preview.status_code == 200
    assert "Preview (staff only)" in preview.text
    # The preview's viewer loads the generated maps (the rater's fields, see
    # tests/app/test_preview_viewer.py), before the study is opened.
    spec = client.get(f"/api/v1/studies/{study.id}/preview/{trial.id}/viewer").json()
    for slot in ("a", "b"):
        field = client.get(spec["maps"][slot])
        assert field.status_code == 200 and field.content.startswith(b"\x93NUMPY")

    assert session.post_form(f"/studies/{study.id}/open").status_code == 303
    listing = client.get("/studies")
    assert "Form study" in listing.text and "open" in listing.text


def test_raters_cannot_reach_staff_study_pages(
    client: TestClient,
    make_user: Any,
    login: Any,
    api_headers: Any,
    catalog: Catalog,
    staff: dict[str, str],
) -> None:
    study_id = _create(client, staff, catalog.spec()).json()["id"]
    rater = api_headers(catalog.raters[0])
    for url in (URL, f"{URL}/{study_id}", f"{URL}/{study_id}/progress"):
        assert client.get(url, headers=rater).status_code == 403
    assert client.post(f"{URL}/{study_id}/generate", headers=rater).status_code == 403
    client.headers.clear()
    login(catalog.raters[0])
    assert client.get("/studies").status_code == 403
    assert client.get(f"/studies/{study_id}").status_code == 403
