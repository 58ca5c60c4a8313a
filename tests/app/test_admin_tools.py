"""Admin tools: role change, user search, bulk invites, the audit log, deleting unused images
and checkpoints (refused with the reason when used), editing labels before a study uses them,
and the offline API docs page."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict
from app.models import AuditEvent, Checkpoint, Image, Invite, Study, User
from app.services import audit
from app.services.accounts.users import change_role
from app.storage import Storage
from tests.factories import make_open_study


def _admin(make_user: Callable[..., User], login: Callable[[User], Any], name: str) -> Any:
    return login(make_user("admin", username=name))


# --- roles and search ---------------------------------------------------------------------------


def test_admin_changes_a_role_and_the_audit_log_says_so(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = _admin(make_user, login, "role-boss")
    target = make_user("rater", username="promoted")
    r = admin.post_form(f"/admin/users/{target.id}/role", {"role": "researcher"})
    assert r.status_code == 303 and r.headers["location"] == "/admin/users?done=role"
    db.refresh(target)
    assert target.role == "researcher"
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "user.role_changed"))
    assert event is not None and event.detail == {"from": "rater", "to": "researcher"}
    # Not one's own role, and an unknown role is refused on the page in words.
    me = admin.post_form(f"/admin/users/{admin.user.id}/role", {"role": "rater"})
    assert me.status_code == 409 and "your own role" in me.text
    bad = admin.post_form(f"/admin/users/{target.id}/role", {"role": "wizard"})
    assert bad.status_code == 422 and "Unknown role" in bad.text


def test_role_api_keeps_the_last_admin(
    make_user: Callable[..., User], api_headers: Callable[[User], dict[str, str]],
    client: TestClient, db: Session,
) -> None:  # fmt: skip
    for user in db.scalars(select(User).where(User.role == "admin")):
        user.is_active = False  # this test's admins are the only active ones
    first = make_user("admin", username="only-admin")
    second = make_user("admin", username="second-admin")
    headers = api_headers(second)
    r = client.post(f"/api/v1/users/{first.id}/role", json={"role": "rater"}, headers=headers)
    assert r.status_code == 200 and r.json()["role"] == "rater"
    # second is now the last active admin: nobody (not even via the shell) may demote them.
    with pytest.raises(Conflict, match="last active admin"):
        change_role(db, actor=None, user=second, role="rater")


def test_user_search_finds_by_username_and_display_name(
    make_user: Callable[..., User], login: Callable[[User], Any], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    admin = _admin(make_user, login, "search-boss")
    make_user("rater", username="xq-findme", display_name="Someone")
    make_user("rater", username="other-person", display_name="Dr. Xq Name")
    make_user("rater", username="not-matched", display_name="Nobody")
    page = admin.client.get("/admin/users?q=XQ")
    assert page.status_code == 200
    assert 'data-username="xq-findme"' in page.text
    assert 'data-username="other-person"' in page.text
    assert 'data-username="not-matched"' not in page.text
    none = admin.client.get("/admin/users?q=%25_")  # LIKE wildcards match literally
    assert "Nobody matches" in none.text
    api = client.get("/api/v1/users", params={"q": "xq"}, headers=api_headers(admin.user))
    assert {u["username"] for u in api.json()} == {"xq-findme", "other-person"}


def test_deactivation_asks_first_and_offers_undo(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = _admin(make_user, login, "undo-boss")
    target = make_user("researcher", username="misclicked")
    page = admin.client.get("/admin/users")
    assert f'action="/admin/users/{target.id}/deactivate"' in page.text
    assert 'data-confirm="Deactivate misclicked?"' in page.text
    r = admin.post_form(f"/admin/users/{target.id}/deactivate")
    landing = admin.client.get(r.headers["location"])
    assert 'id="undo-deactivate"' in landing.text
    assert f'action="/admin/users/{target.id}/reactivate"' in landing.text
    admin.post_form(f"/admin/users/{target.id}/reactivate")
    db.refresh(target)
    assert target.is_active is True


# --- bulk invites -------------------------------------------------------------------------------


def test_bulk_invites_from_a_csv_of_names(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = _admin(make_user, login, "bulk-boss")
    body = "name,role\nDr. Anna Berg,rater\nBo Chen,\nCarla Díaz,researcher\n"
    r = admin.post_form(
        "/admin/users/bulk",
        {"default_role": "rater"},
        files={"csv_file": ("people.csv", body.encode(), "text/csv")},
    )
    assert r.status_code == 201, r.text
    users = {u.username: u for u in db.scalars(select(User)) if "." in u.username}
    assert {"anna.berg", "bo.chen", "carla.diaz"} <= set(users)
    assert users["carla.diaz"].role == "researcher" and users["bo.chen"].role == "rater"
    assert users["anna.berg"].display_name == "Dr. Anna Berg"
    # Every link is on the page once, as rows with copy buttons and as a downloadable CSV.
    assert r.text.count('data-copy-target="bulk-link-') == 3
    assert 'data-download-target="bulk-links-csv"' in r.text
    start = r.text.index('id="bulk-links-csv"')
    csv_text = r.text[r.text.index(">", start) + 1 : r.text.index("</textarea>", start)]
    rows = list(csv.DictReader(io.StringIO(csv_text.replace("&amp;", "&"))))
    assert [row["username"] for row in rows] == ["anna.berg", "bo.chen", "carla.diaz"]
    assert all(row["invite_url"].startswith("http://testserver/invite/") for row in rows)
    # Only hashes are stored: the links are not in the database.
    token = rows[0]["invite_url"].rsplit("/", 1)[1]
    assert all(token not in (i.token_hash or "") for i in db.scalars(select(Invite)))


def test_bulk_invites_report_every_problem_and_create_nobody(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session,
    client: TestClient, api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    admin = _admin(make_user, login, "bulk-boss2")
    make_user("rater", username="taken.name")
    body = "display_name,username,role\nA,taken.name,rater\nB,dup,rater\nC,dup,rater\nD,d1,wizard\n"
    r = admin.post_form(
        "/admin/users/bulk", files={"csv_file": ("p.csv", body.encode(), "text/csv")}
    )
    assert r.status_code == 422
    for expected in ("Line 2:", "is taken", "Line 4:", "also on line 3", "Line 5:", "Unknown role"):
        assert expected in r.text
    assert db.scalar(select(User).where(User.username == "dup")) is None
    api = client.post(
        "/api/v1/users/bulk",
        json={"csv": "name\nEva Fox\nGus Hill\n", "default_role": "rater"},
        headers=api_headers(admin.user),
    )
    assert api.status_code == 201
    out = api.json()
    assert [u["username"] for u in out["users"]] == ["eva.fox", "gus.hill"]
    assert all(u["invite_url"] for u in out["users"])
    assert (
        out["links_csv"].splitlines()[0] == "username,display_name,role,invite_url,expires_at_utc"
    )
    old_mac = client.post(
        "/api/v1/users/bulk", json={"csv": "name\rIda Jones\r"}, headers=api_headers(admin.user)
    )
    assert old_mac.status_code == 201 and old_mac.json()["users"][0]["username"] == "ida.jones"
    broken = client.post(
        "/api/v1/users/bulk", json={"csv": 'name\n"a\x00b'}, headers=api_headers(admin.user)
    )
    assert broken.status_code == 422  # refused in words, never a 500


# --- audit log ----------------------------------------------------------------------------------


def test_audit_log_is_paged_and_filtered_by_actor_action_and_object(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session,
    client: TestClient, api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    admin = _admin(make_user, login, "audit-boss")
    actor = make_user("researcher", username="auditee")
    for i in range(60):
        audit.record(db, actor=actor, action="rating.saved", object_type="trial", object_id=i)
    audit.record(db, actor=actor, action="study.closed", object_type="study", object_id=7)
    db.flush()
    headers = api_headers(admin.user)
    first = client.get("/api/v1/audit", params={"actor": "auditee"}, headers=headers).json()
    assert first["total"] == 61 and first["pages"] == 2 and len(first["events"]) == 50
    assert first["events"][0]["action"] == "study.closed"  # newest first
    second = client.get(
        "/api/v1/audit", params={"actor": "auditee", "page": 2}, headers=headers
    ).json()
    assert len(second["events"]) == 11
    by_action = client.get(
        "/api/v1/audit", params={"actor": "auditee", "action": "study."}, headers=headers
    ).json()
    assert [e["object_id"] for e in by_action["events"]] == ["7"]
    by_object = client.get(
        "/api/v1/audit", params={"actor": "auditee", "object": "trial 12"}, headers=headers
    ).json()
    assert by_object["total"] == 1 and by_object["events"][0]["object_type"] == "trial"
    assert "rating.saved" in first["actions"] and "study.closed" in first["actions"]
    page = admin.client.get("/admin/audit?actor=auditee&action=study.closed")
    assert page.status_code == 200 and "study 7" in page.text and "1 event," in page.text
    paged = admin.client.get("/admin/audit?actor=auditee&page=2")
    assert "page 2 of 2" in paged.text and 'rel="prev"' in paged.text
    assert client.get("/api/v1/audit", headers=api_headers(actor)).status_code == 403


# --- catalogue: delete unused, edit labels ------------------------------------------------------


def _stored_image(db: Session, settings: Settings, name: str) -> tuple[Image, list[str]]:
    store = Storage(settings.data_dir)
    display = store.put_random("images", f"png-{name}".encode(), ".png")
    npy = store.put_random("images", f"npy-{name}".encode(), ".npy")
    image = Image(
        sha256=name.ljust(64, "0")[:64], source_filename=name, modality="DX", width=8, height=8,
        channels=1, display_path=display, thumb_path=display, input_path=npy,
        labels={"pneumonia": 0}, meta={},
    )  # fmt: skip
    db.add(image)
    db.flush()
    return image, [display, npy]


def test_unused_image_is_deleted_with_its_files_and_used_one_is_refused(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session,
    settings: Settings, client: TestClient, api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    admin = _admin(make_user, login, "delete-boss")
    image, files = _stored_image(db, settings, "lonely")
    page = admin.client.get(f"/images/{image.id}")
    assert 'data-confirm="Delete image' in page.text
    r = admin.post_form(f"/images/{image.id}/delete")
    assert r.status_code == 303 and r.headers["location"] == f"/images?deleted={image.id}"
    image_id = image.id
    db.expire_all()
    assert db.scalar(select(Image.id).where(Image.id == image_id)) is None
    store = Storage(settings.data_dir)
    assert not any(store.path(f).exists() for f in files)

    rater = make_user("rater")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    used = study.images[0].image_id
    refused = client.delete(f"/api/v1/images/{used}", headers=api_headers(admin.user))
    assert refused.status_code == 409
    assert study.name in refused.json()["detail"]
    detail = admin.client.get(f"/images/{used}")
    assert 'id="delete-refused"' in detail.text and "Delete image" not in detail.text
    # Researchers may not delete.
    other, _ = _stored_image(db, settings, "kept")
    researcher = make_user("researcher")
    assert (
        client.delete(f"/api/v1/images/{other.id}", headers=api_headers(researcher)).status_code
        == 403
    )


def test_checkpoint_in_a_study_is_refused_and_an_unused_one_deleted(
    make_user: Callable[..., User], db: Session, settings: Settings, client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    admin = make_user("admin")
    headers = api_headers(admin)
    study = make_open_study(db, settings.data_dir, raters=[make_user("rater")], n_images=2)
    used = study.arms[0].checkpoint_id
    refused = client.delete(f"/api/v1/checkpoints/{used}", headers=headers)
    assert refused.status_code == 409 and study.name in refused.json()["detail"]
    store = Storage(settings.data_dir)
    rel = store.put_random("checkpoints", b"fake weights", ".pt")
    spare = Checkpoint(
        name="spare", arch="resnet18", dual_bn=False, num_classes=1, class_names=["x"],
        in_channels=1, image_size=32, normalize=None, train_meta={}, sha256="f" * 64,
        file_path=rel, size_bytes=12,
    )  # fmt: skip
    db.add(spare)
    db.flush()
    ok = client.delete(f"/api/v1/checkpoints/{spare.id}", headers=headers)
    assert ok.status_code == 204
    spare_id = spare.id
    db.expire_all()
    assert db.scalar(select(Checkpoint.id).where(Checkpoint.id == spare_id)) is None
    assert not store.path(rel).exists()


def test_labels_are_editable_until_a_study_past_its_draft_uses_the_image(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session,
    settings: Settings, client: TestClient, api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    researcher = login(make_user("researcher", username="labeller"))
    image, _ = _stored_image(db, settings, "relabel")
    r = researcher.post_form(f"/images/{image.id}/labels", {"labels": "pneumonia=1, effusion=0"})
    assert r.status_code == 303
    db.refresh(image)
    assert image.labels == {"pneumonia": 1, "effusion": 0}
    bad = researcher.post_form(f"/images/{image.id}/labels", {"labels": "pneumonia=yes"})
    assert bad.status_code == 422 and "name=1" in bad.text and "pneumonia=yes" in bad.text

    study = make_open_study(db, settings.data_dir, raters=[make_user("rater")], n_images=2)
    used = study.images[0].image_id
    frozen = client.put(
        f"/api/v1/images/{used}/labels",
        json={"labels": {"pneumonia": 1}},
        headers=api_headers(researcher.user),
    )
    assert frozen.status_code == 409 and "ground truth" in frozen.json()["detail"]
    assert isinstance(db.get(Study, study.id), Study)


# --- API docs -----------------------------------------------------------------------------------


def test_api_docs_page_uses_only_local_assets_under_the_strict_csp(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "<script>" not in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    for asset in (
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
        "/static/js/api_docs.js",
    ):
        assert asset in page.text
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > 100, asset
