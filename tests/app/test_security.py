"""Hostile and malformed input: each gets a clear 4xx and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import AuditEvent, User


def _user_count(db: Session) -> int:
    return int(db.scalar(select(func.count(User.id))) or 0)


def test_html_in_display_name_is_shown_escaped(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss"))
    r = admin.post_form(
        "/admin/users",
        {"username": "xss", "role": "researcher", "display_name": "<script>alert(1)</script>"},
    )
    assert r.status_code == 201
    page = admin.client.get("/admin/users").text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    stored = db.scalar(select(User.display_name).where(User.username == "xss"))
    assert stored == "<script>alert(1)</script>"  # stored literally, escaped on output


@pytest.mark.parametrize(
    "username",
    ["x'; DROP TABLE users;--", "a", "with space", "<b>bold</b>", "x" * 65, "../etc/passwd", ""],
)
def test_bad_usernames_are_rejected_and_the_table_is_intact(
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    client: TestClient,
    db: Session,
    username: str,
) -> None:
    headers = api_headers(make_user("admin", username="boss"))
    before = _user_count(db)
    r = client.post("/api/v1/users", json={"username": username, "role": "rater"}, headers=headers)
    assert r.status_code == 422
    assert r.json()["code"] == "invalid"
    assert _user_count(db) == before
    assert db.execute(text("SELECT count(*) FROM users")).scalar_one() == before


def test_bad_username_on_the_admin_form_rerenders_with_the_reason(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss"))
    before = _user_count(db)
    r = admin.post_form("/admin/users", {"username": "x'; DROP TABLE users;--", "role": "rater"})
    assert r.status_code == 422
    assert "A username has 2–64 characters" in r.text
    assert 'value="x&#39;; DROP TABLE users;--"' in r.text  # kept, escaped, for correction
    assert _user_count(db) == before


def test_sql_injection_in_login_is_just_a_wrong_login(client: TestClient, db: Session) -> None:
    client.get("/login")
    csrf = client.cookies.get("radsal_csrf")
    r = client.post(
        "/login",
        data={"username": "' OR '1'='1", "password": "' OR '1'='1", "csrf_token": csrf},
    )
    assert r.status_code == 401
    assert db.execute(text("SELECT count(*) FROM users")).scalar_one() == 0


def test_duplicate_username_is_409_case_insensitively(
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    client: TestClient,
    db: Session,
) -> None:
    headers = api_headers(make_user("admin", username="boss"))
    make_user("rater", username="Taken")
    r = client.post("/api/v1/users", json={"username": "taken", "role": "rater"}, headers=headers)
    assert r.status_code == 409
    assert "taken" in r.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": "ok-name", "role": "superuser"}, "role"),
        ({"username": "ok-name", "role": "rater", "display_name": "d" * 129}, "display_name"),
        ({"username": "ok-name", "role": "rater", "password": "short"}, None),
        ({"username": "ok-name", "role": "rater", "password": "p" * 257}, "password"),
        ({"username": "ok-name", "role": "rater", "display_name": "bell\x07"}, None),
        ({"role": "rater"}, "username"),
    ],
)
def test_invalid_user_payloads_are_422(
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    client: TestClient,
    db: Session,
    payload: dict[str, str],
    field: str | None,
) -> None:
    headers = api_headers(make_user("admin", username="boss"))
    before = _user_count(db)
    r = client.post("/api/v1/users", json=payload, headers=headers)
    assert r.status_code == 422
    if field is not None:
        assert any(field in e["loc"] for e in r.json()["errors"])
    assert _user_count(db) == before


def test_malformed_json_is_a_clear_422(
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    client: TestClient,
    db: Session,
) -> None:
    headers = api_headers(make_user("admin", username="boss"))
    r = client.post(
        "/api/v1/users",
        content=b"{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "The request is not valid."


def test_admin_form_post_without_csrf_is_refused(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss"))
    before = _user_count(db)
    r = admin.client.post("/admin/users", data={"username": "sneaky", "role": "admin"})
    assert r.status_code == 403
    r = admin.post_form("/admin/users", {"username": "sneaky", "role": "admin", "csrf_token": "x"})
    assert r.status_code == 403
    assert _user_count(db) == before
    assert db.scalar(select(AuditEvent).where(AuditEvent.action == "user.created")) is None


def test_non_admins_cannot_manage_users(
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    client: TestClient,
    db: Session,
) -> None:
    for role in ("rater", "researcher"):
        headers = api_headers(make_user(role))
        r = client.post(
            "/api/v1/users", json={"username": "evil", "role": "admin"}, headers=headers
        )
        assert r.status_code == 403
        assert client.get("/api/v1/users", headers=headers).status_code == 403
    assert db.scalar(select(User).where(User.username == "evil")) is None


def test_login_page_has_security_headers_and_no_inline_script(client: TestClient) -> None:
    r = client.get("/login")
    assert r.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and "style=" not in r.text
    csrf_cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("radsal_csrf"))
    assert "HttpOnly" in csrf_cookie and "SameSite=strict" in csrf_cookie


def test_over_long_login_fields_are_422_and_not_counted(client: TestClient, db: Session) -> None:
    client.get("/login")
    csrf = client.cookies.get("radsal_csrf")
    r = client.post("/login", data={"username": "u" * 65, "password": "x", "csrf_token": csrf})
    assert r.status_code == 422
    r = client.post("/login", data={"username": "u", "password": "x" * 257, "csrf_token": csrf})
    assert r.status_code == 422
    assert db.scalar(select(func.count(AuditEvent.id))) == 0
