"""The staff preview loads the rater's viewer: its description (the rater's `ViewerSpec` with
staff URLs by trial id) and files (the very bytes the rater gets, catch trials included), for
staff only and in every study status, drafts included."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import SaliencyMap, Study, StudyStatus, Trial, User
from ml.explain.field import FIELD_SIZE
from tests.factories import make_open_study


def _trials(db: Session, study: Study, rater: User) -> list[Trial]:
    stmt = (
        select(Trial)
        .where(Trial.study_id == study.id, Trial.rater_id == rater.id)
        .order_by(Trial.position)
    )
    return list(db.scalars(stmt))


def _attr(html: str, name: str) -> str:
    found = re.search(rf'{name}="([^"]*)"', html)
    assert found, name
    return found.group(1)


def _without_urls(spec: dict[str, Any]) -> dict[str, Any]:
    image = {k: v for k, v in spec["image"].items() if k != "url"}
    return {**spec, "image": image, "maps": sorted(spec["maps"]), "next_spec_url": None}


@pytest.fixture()
def setup(db: Session, settings: Settings, make_user: Callable[..., User]) -> Any:
    rater = make_user("rater", "preview-reader")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=3, size=24)
    db.flush()
    return study, rater, _trials(db, study, rater)


@pytest.mark.parametrize("status", [StudyStatus.draft.value, StudyStatus.open.value])
def test_preview_viewer_answers_staff_with_the_raters_spec_and_files(
    db: Session, setup: Any, make_user: Callable[..., User], login: Any, client: TestClient,
    status: str,
) -> None:  # fmt: skip
    study, rater, trials = setup
    first = trials[0]
    # What the rater's viewer loads for this trial (while the study is open).
    login(rater)
    rater_spec = client.get(f"/api/v1/trials/{first.token}/viewer").json()
    rater_files = {
        slot: client.get(f"/t/{first.token}/view/{slot}").content for slot in ("source", "a", "b")
    }
    assert all(rater_files.values())
    study.status = status
    db.flush()

    login(make_user("researcher"))
    page = client.get(f"/studies/{study.id}/preview/{first.id}")
    assert page.status_code == 200 and "Preview (staff only)" in page.text
    viewer_url = _attr(page.text, "data-viewer-url")
    assert viewer_url == f"/api/v1/studies/{study.id}/preview/{first.id}/viewer"
    files = f"/studies/{study.id}/preview/{first.id}/view"
    assert _attr(page.text, "data-map-a-url") == f"{files}/a"
    assert _attr(page.text, "data-map-b-url") == f"{files}/b"

    r = client.get(viewer_url)
    assert r.status_code == 200, r.text
    spec = r.json()
    assert spec["image"]["url"] == f"{files}/source"
    assert spec["maps"] == {"a": f"{files}/a", "b": f"{files}/b"}
    assert spec["next_spec_url"] == f"/api/v1/studies/{study.id}/preview/{trials[1].id}/viewer"
    assert spec["field_size"] == FIELD_SIZE
    assert _without_urls(spec) == _without_urls(rater_spec), "same description as the rater's"

    got = {slot: client.get(f"{files}/{slot}") for slot in ("source", "a", "b")}
    assert all(g.status_code == 200 for g in got.values())
    assert {slot: g.content for slot, g in got.items()} == rater_files, "the rater's bytes"
    lengths = set()
    for slot in ("a", "b"):
        assert got[slot].headers["content-type"] == "application/octet-stream"
        field = np.load(io.BytesIO(got[slot].content))
        assert field.dtype == np.uint8 and field.shape == (FIELD_SIZE, FIELD_SIZE)
        lengths.add(len(got[slot].content))
    assert len(lengths) == 1, "every field has the one fixed length"
    again = client.get(f"{files}/a", headers={"If-None-Match": got["a"].headers["etag"]})
    assert again.status_code == 304

    # The next trial's description, as the viewer prefetches it; the last has none.
    following = client.get(spec["next_spec_url"]).json()
    assert following["maps"]["a"] == f"/studies/{study.id}/preview/{trials[1].id}/view/a"
    last = client.get(f"/api/v1/studies/{study.id}/preview/{trials[-1].id}/viewer").json()
    assert last["next_spec_url"] is None


def test_preview_viewer_is_staff_only(
    setup: Any, make_user: Callable[..., User], login: Any, client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    study, rater, trials = setup
    base = f"/studies/{study.id}/preview/{trials[0].id}"
    spec_url = f"/api/v1/studies/{study.id}/preview/{trials[0].id}/viewer"
    assert client.get(spec_url).status_code == 401
    for url in (f"{base}/view/a", f"{base}/view/source"):  # page routes: to the login form
        anonymous = client.get(url, follow_redirects=False)
        assert anonymous.status_code == 303 and "/login" in anonymous.headers["location"], url
    login(rater)
    for url in (spec_url, f"{base}/view/a", f"{base}/view/b", f"{base}/view/source"):
        assert client.get(url).status_code == 403, url
    assert client.get(spec_url, headers=api_headers(rater)).status_code == 403
    assert client.get(spec_url, headers=api_headers(make_user("admin"))).status_code == 200


def test_preview_lookups_stay_inside_the_study(
    db: Session, settings: Settings, setup: Any, make_user: Callable[..., User], login: Any,
    client: TestClient,
) -> None:  # fmt: skip
    study, rater, trials = setup
    other = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    login(make_user("researcher"))
    mine = f"/studies/{study.id}/preview/{trials[0].id}"
    assert client.get(f"{mine}/view/c").status_code == 404
    assert client.get(f"{mine}/view/raw").status_code == 404
    # The retired per-arm PNG route: the preview draws the fields like the rater's viewer.
    assert client.get(f"{mine}/a.png").status_code == 404
    # Another study's trial under this study's id is "not found".
    stranger = _trials(db, other, rater)[0]
    assert client.get(f"/studies/{study.id}/preview/{stranger.id}/view/a").status_code == 404
    wrong = f"/api/v1/studies/{study.id}/preview/{stranger.id}/viewer"
    assert client.get(wrong).status_code == 404
    assert client.get(f"/api/v1/studies/999999/preview/{trials[0].id}/viewer").status_code == 404


def test_preview_of_a_draft_without_maps_describes_and_says_not_generated(
    db: Session, setup: Any, make_user: Callable[..., User], login: Any, client: TestClient
) -> None:
    study, _, trials = setup
    study.status = StudyStatus.draft.value
    for m in db.scalars(select(SaliencyMap).where(SaliencyMap.image_id == trials[0].image_id)):
        db.delete(m)
    db.flush()
    login(make_user("researcher"))
    files = f"/studies/{study.id}/preview/{trials[0].id}/view"
    assert client.get(f"/api/v1/studies/{study.id}/preview/{trials[0].id}/viewer").is_success
    assert client.get(f"{files}/source").status_code == 200
    missing = client.get(f"{files}/a")
    assert missing.status_code == 404 and "not been generated" in missing.text


def test_preview_of_a_catch_trial_shows_the_raters_catch_maps(
    db: Session, setup: Any, make_user: Callable[..., User], login: Any, client: TestClient
) -> None:
    """Catch trials (issue 15) fill their slots with other maps than their stored arms: the
    preview resolves slots by the rater's rule, so it shows what the rater sees."""
    study, rater, trials = setup
    arms = sorted(study.arms, key=lambda a: a.position)
    catch = trials[1]
    catch.protocol = {"catch": "same", "catch_arm": arms[1].id, "real_side": None}
    db.flush()
    login(rater)
    seen = {slot: client.get(f"/t/{catch.token}/view/{slot}").content for slot in ("a", "b")}
    assert seen["a"] == seen["b"], "a 'same' catch trial shows one map twice"
    login(make_user("researcher"))
    files = f"/studies/{study.id}/preview/{catch.id}/view"
    previewed = {slot: client.get(f"{files}/{slot}").content for slot in ("a", "b")}
    assert previewed == seen
