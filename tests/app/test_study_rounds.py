"""Reopen a closed study, add raters to an open one (same design rules), clone a study or
start its next round, delete drafts only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import AuditEvent, SaliencyMap, Study, StudyRater, StudyStatus, Trial, User
from app.services.study.rounds import next_round_name
from tests.app.analysis_helpers import rate
from tests.factories import make_open_study


def _trials(db: Session, study_id: int, rater: User) -> list[Trial]:
    return list(
        db.scalars(
            select(Trial)
            .where(Trial.study_id == study_id, Trial.rater_id == rater.id)
            .order_by(Trial.position)
        )
    )


def test_close_then_reopen_keeps_ratings(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    rater = make_user("rater")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    study.saliency = {**study.saliency, "target": "pneumonia"}  # the factory's maps' target
    rate(db, study, [rater], limit={rater.username: 1})
    headers = api_headers(make_user("researcher"))
    not_closed = client.post(f"/api/v1/studies/{study.id}/reopen", headers=headers)
    assert not_closed.status_code == 409 and "Only a closed study" in not_closed.json()["detail"]
    assert client.post(f"/api/v1/studies/{study.id}/close", headers=headers).status_code == 200
    again = client.post(f"/api/v1/studies/{study.id}/reopen", headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "open"
    db.refresh(study)
    assert study.closed_at is None
    assert db.scalar(select(AuditEvent.id).where(AuditEvent.action == "study.reopened"))


def test_added_raters_get_a_counterbalanced_sequence_and_others_keep_theirs(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    first = make_user("rater", "first-reader")
    study = make_open_study(db, settings.data_dir, raters=[first], n_images=4, size=16)
    rate(db, study, [first], limit={"first-reader": 2})
    before = [
        (t.id, t.left_arm_id, t.right_arm_id, t.position) for t in _trials(db, study.id, first)
    ]
    late = make_user("rater", "late-reader")
    headers = api_headers(make_user("researcher"))
    r = client.post(
        f"/api/v1/studies/{study.id}/raters", json={"raters": ["late-reader"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["raters"] == ["first-reader", "late-reader"] and r.json()["trials_added"] == 4
    after = [
        (t.id, t.left_arm_id, t.right_arm_id, t.position) for t in _trials(db, study.id, first)
    ]
    assert after == before  # nobody else's trials changed
    new = _trials(db, study.id, late)
    # Every case once (one arm pair), in a shuffled sequence with its own tokens.
    assert [t.position for t in new] == list(range(4))
    assert sorted(t.image_id for t in new) == sorted(si.image_id for si in study.images)
    arms = [a.id for a in study.arms]
    lefts = [t.left_arm_id for t in new]
    assert abs(lefts.count(arms[0]) - lefts.count(arms[1])) <= 1
    assert all(len(t.token) > 20 for t in new)
    again = client.post(
        f"/api/v1/studies/{study.id}/raters", json={"raters": ["late-reader"]}, headers=headers
    )
    assert again.status_code == 409 and "Already raters" in again.json()["detail"]
    not_rater = client.post(
        f"/api/v1/studies/{study.id}/raters", json={"raters": ["nobody-here"]}, headers=headers
    )
    assert not_rater.status_code == 422 and "Unknown rater" in not_rater.json()["detail"]


def test_clone_and_next_round_make_drafts_and_only_drafts_delete(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]], login: Callable[[User], Any],
) -> None:  # fmt: skip
    rater = make_user("rater", "round-reader")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    researcher = make_user("researcher")
    headers = api_headers(researcher)
    client.post(f"/api/v1/studies/{study.id}/close", headers=headers)
    nxt = client.post(
        f"/api/v1/studies/{study.id}/clone", json={"next_round": True}, headers=headers
    )
    assert nxt.status_code == 201, nxt.text
    assert nxt.json()["status"] == "draft"
    assert nxt.json()["name"] == f"{study.name} – round 2"
    clone = db.get(Study, nxt.json()["id"])
    assert clone is not None and clone.seed == study.seed + 1
    assert [a.label for a in clone.arms] == [a.label for a in study.arms]
    assert [s.image_id for s in clone.images] == [s.image_id for s in study.images]
    assert db.scalar(select(func.count(StudyRater.id)).where(StudyRater.study_id == clone.id)) == 1

    refused = client.delete(f"/api/v1/studies/{study.id}", headers=headers)
    assert refused.status_code == 409 and "Only drafts" in refused.json()["detail"]
    page = login(researcher)
    copy = page.post_form(f"/studies/{study.id}/clone")
    assert copy.status_code == 303
    copy_id = int(copy.headers["location"].split("/")[2].split("?")[0])
    gone = page.post_form(f"/studies/{copy_id}/delete")
    assert gone.status_code == 303 and gone.headers["location"] == "/studies?deleted=1"
    db.expire_all()
    assert db.scalar(select(Study.id).where(Study.id == copy_id)) is None
    assert db.scalar(select(func.count(Trial.id)).where(Trial.study_id == copy_id)) == 0
    assert client.delete(f"/api/v1/studies/{clone.id}", headers=headers).status_code == 204


def test_deleting_a_draft_removes_its_map_files(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    """Both files a map has (raw and field) go with the draft; no PNG is stored for a map."""
    study = make_open_study(db, settings.data_dir, raters=[make_user("rater")], n_images=2)
    study.status = StudyStatus.draft.value
    arm_ids = [a.id for a in study.arms]
    maps = db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id.in_(arm_ids))).all()
    files = [settings.data_dir / rel for m in maps for rel in (m.raw_path, m.field_path)]
    assert len(files) == 2 * 2 * 2 and all(f.is_file() for f in files)
    db.flush()
    headers = api_headers(make_user("researcher"))
    assert client.delete(f"/api/v1/studies/{study.id}", headers=headers).status_code == 204
    assert not [f for f in files if f.exists()]


def test_round_names_count_up() -> None:
    assert next_round_name("Chest study") == "Chest study – round 2"
    assert next_round_name("Chest study – round 2") == "Chest study – round 3"
    assert next_round_name("Chest study - round 9") == "Chest study – round 10"


def test_added_raters_get_the_same_catch_trials_as_everyone(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    """A late rater's trials come from the study's full plan (design + practice + catch), not
    the bare design: otherwise they would read no catch trials and their QC would be empty."""
    first = make_user("rater", "first-reader")
    study = make_open_study(db, settings.data_dir, raters=[first], n_images=8, size=16)
    study.protocol = {"catch_fraction": 0.25, "catch_kinds": ["same"]}
    db.flush()
    make_user("rater", "late-reader")
    headers = api_headers(make_user("researcher"))
    r = client.post(
        f"/api/v1/studies/{study.id}/raters", json={"raters": ["late-reader"]}, headers=headers
    )
    assert r.status_code == 200, r.text
    late = db.scalar(select(User).where(User.username == "late-reader"))
    assert late is not None
    new = _trials(db, study.id, late)
    catches = [t for t in new if t.protocol and t.protocol.get("catch") == "same"]
    assert len(catches) == 2, [t.protocol for t in new]  # 8 main cases x 0.25
    arms = {a.id for a in study.arms}
    assert all(t.protocol["catch_arm"] in arms for t in catches)
    assert [t.position for t in new] == list(range(len(new)))
    main = [t for t in new if not t.protocol]
    assert sorted(t.image_id for t in main) == sorted(si.image_id for si in study.images)
