"""Typed study settings: one set of defaults, the staff preview built by the rater's view code,
legacy stored settings still load, and every studies API body described in /openapi.json."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Study, Trial, User
from tests.factories import make_open_study


@pytest.fixture()
def rater(make_user: Callable[..., User]) -> User:
    return make_user("rater", "reader_one", None)


def _first_trial(db: Session, study: Study, rater: User) -> Trial:
    trial = db.scalar(
        select(Trial)
        .where(Trial.study_id == study.id, Trial.rater_id == rater.id)
        .order_by(Trial.position)
    )
    assert trial is not None
    return trial


def _page_state(html: str) -> dict[str, Any]:
    """What a trial page shows the reader, minus the URLs (which differ by design)."""
    opacity = re.search(r'data-opacity="([^"]+)"', html)
    slider = re.search(r'id="opacity"[^>]*value="(\d+)"', html)
    assert opacity and slider
    questions = re.findall(r"<legend[^>]*>(.*?)</legend>", html, re.S)
    return {"opacity": opacity.group(1), "slider": slider.group(1), "questions": questions}


@pytest.mark.parametrize("stored", [{"opacity": 0.3}, {"overlay_opacity": 0.3}])
def test_preview_shows_what_the_rater_sees(
    db: Session,
    settings: Settings,
    rater: User,
    make_user: Callable[..., User],
    login: Any,
    client: TestClient,
    stored: dict[str, float],
) -> None:
    """The spec's `opacity` reaches both pages; the legacy `overlay_opacity` still loads."""
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2)
    study.saliency = {"colormap": "hot", **stored}
    db.commit()
    trial = _first_trial(db, study, rater)

    login(rater)
    rater_page = client.get(f"/t/{trial.token}")
    assert rater_page.status_code == 200

    login(make_user("researcher"))
    preview = client.get(f"/studies/{study.id}/preview/{trial.id}")
    assert preview.status_code == 200 and "Preview (staff only)" in preview.text

    seen, previewed = _page_state(rater_page.text), _page_state(preview.text)
    assert seen == previewed
    assert seen["opacity"] == "0.3" and seen["slider"] == "30"


def test_missing_settings_fall_back_to_the_one_set_of_defaults(
    db: Session, settings: Settings, rater: User, login: Any, client: TestClient
) -> None:
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2)
    study.saliency = {}
    study.items = []
    db.commit()
    login(rater)
    page = client.get(f"/t/{_first_trial(db, study, rater).token}")
    assert page.status_code == 200
    assert 'data-opacity="0.5"' in page.text
    assert "How well does this map highlight the image regions that support the finding?" in (
        page.text
    )
    assert "Which map do you prefer?" in page.text


def test_studies_api_keeps_the_stored_shape(
    db: Session,
    settings: Settings,
    rater: User,
    make_user: Callable[..., User],
    api_headers: Any,
    client: TestClient,
) -> None:
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2)
    staff = api_headers(make_user("researcher"))
    body = client.get(f"/api/v1/studies/{study.id}", headers=staff).json()
    assert body["saliency"] == {"colormap": "hot", "opacity": 0.6}
    assert body["items"] == study.items
    assert body["maps"]["total"] == 4 and body["raters"][0]["username"] == "reader_one"
    listed = client.get("/api/v1/studies", headers=staff).json()
    assert listed == [body]
    progress = client.get(f"/api/v1/studies/{study.id}/progress", headers=staff).json()
    assert progress == body["raters"]


def test_openapi_describes_every_studies_response(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()

    def schema(path: str, method: str, status: str) -> dict[str, Any]:
        content = spec["paths"][path][method]["responses"][status]["content"]
        return content["application/json"]["schema"]  # type: ignore[no-any-return]

    one = {"$ref": "#/components/schemas/StudyOut"}
    assert schema("/api/v1/studies", "post", "201") == one
    assert schema("/api/v1/studies/{study_id}", "get", "200") == one
    assert schema("/api/v1/studies/{study_id}", "patch", "200") == one
    assert schema("/api/v1/studies/{study_id}/open", "post", "200") == one
    assert schema("/api/v1/studies/{study_id}/close", "post", "200") == one
    assert schema("/api/v1/studies", "get", "200")["items"] == one
    assert schema("/api/v1/studies/{study_id}/generate", "post", "202") == {
        "$ref": "#/components/schemas/JobOut"
    }
    progress = schema("/api/v1/studies/{study_id}/progress", "get", "200")
    assert progress["items"] == {"$ref": "#/components/schemas/RaterProgressOut"}
    fields = spec["components"]["schemas"]["StudyOut"]["properties"]
    assert {"saliency", "items", "arms", "raters", "maps", "ratings"} <= set(fields)
