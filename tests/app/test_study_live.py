"""The study page's live status: one small JSON answer with a readable status, maps, the job
and each rater's progress (polled by static/js/study_live.js)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import User
from app.services.study.live import status_label
from tests.app.analysis_helpers import rate
from tests.factories import make_open_study


def test_live_status_follows_ratings(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    raters = [make_user("rater", "live-a"), make_user("rater", "live-b")]
    study = make_open_study(db, settings.data_dir, raters=raters, n_images=3, size=16)
    study.saliency = {**study.saliency, "target": "pneumonia"}  # the factory's maps' target
    db.flush()
    headers = api_headers(make_user("researcher"))
    url = f"/api/v1/studies/{study.id}/live"
    before = client.get(url, headers=headers).json()
    assert before["status"] == "open" and before["status_label"] == "open"
    assert before["maps_ready"] is True and before["maps_done"] == before["maps_total"] == 6
    assert before["ratings_done"] == 0 and before["ratings_total"] == 6
    assert [r["username"] for r in before["raters"]] == ["live-a", "live-b"]
    rate(db, study, raters, limit={"live-a": 2, "live-b": 0})
    after = client.get(url, headers=headers).json()
    assert after["ratings_done"] == 2
    a = next(r for r in after["raters"] if r["username"] == "live-a")
    assert a["done"] == 2 and a["total"] == 3 and a["last_activity"] is not None
    assert client.get(url, headers=api_headers(raters[0])).status_code == 403


def test_a_finished_generation_reads_maps_ready_not_generating() -> None:
    assert status_label("generating", maps_ready=True, job_active=False, job_failed=False) == (
        "maps ready"
    )
    assert status_label("generating", maps_ready=False, job_active=True, job_failed=False) == (
        "generating maps"
    )
    assert status_label("draft", maps_ready=False, job_active=False, job_failed=True) == (
        "draft (generation failed)"
    )
    assert status_label("closed", maps_ready=True, job_active=False, job_failed=False) == "closed"
