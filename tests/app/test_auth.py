"""Login, logout, bearer tokens, rate limiting and the audit trail, through HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.deps import SESSION_COOKIE
from app.models import AuditEvent, AuthSession, User
from app.models.base import utcnow

PASSWORD = "correct-horse-battery"  # tests/app/conftest.py TEST_PASSWORD


def _csrf(client: TestClient) -> str:
    """The anonymous CSRF token: GET /login sets the cookie and embeds the same value."""
    r = client.get("/login")
    assert r.status_code == 200
    token = client.cookies.get("radsal_csrf")
    assert token and f'value="{token}"' in r.text
    return token


def _form_login(client: TestClient, username: str, password: str, **extra: str) -> Any:
    data = {"username": username, "password": password, "csrf_token": _csrf(client), **extra}
    return client.post("/login", data=data, follow_redirects=False)


def _audit(db: Session, action: str) -> list[AuditEvent]:
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_login_sets_a_hardened_session_cookie_and_audits(
    client: TestClient, make_user: Callable[..., User], db: Session
) -> None:
    user = make_user("researcher", username="rosa")
    r = _form_login(client, "rosa", PASSWORD)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # plain http in tests; see the https test below
    # The session works: / sends a researcher to /studies.
    home = client.get("/", follow_redirects=False)
    assert home.headers["location"] == "/studies"
    events = _audit(db, "login")
    assert [e.actor_id for e in events] == [user.id]
    db.refresh(user)
    assert user.last_login_at is not None


def test_session_cookie_is_secure_behind_https(
    client: TestClient, make_user: Callable[..., User]
) -> None:
    make_user("rater", username="sam")
    csrf = _csrf(client)
    r = client.post(
        "/login",
        data={"username": "sam", "password": PASSWORD, "csrf_token": csrf},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Secure" in r.headers["set-cookie"]


def test_login_redirects_to_a_local_next_but_never_offsite(
    client: TestClient, make_user: Callable[..., User]
) -> None:
    make_user("admin", username="ada")
    r = _form_login(client, "ada", PASSWORD, next="/admin/users")
    assert r.headers["location"] == "/admin/users"
    client.cookies.clear()
    r = _form_login(client, "ada", PASSWORD, next="//evil.example/phish")
    assert r.headers["location"] == "/"


@pytest.mark.parametrize(
    ("username", "password"), [("wendy", "wrong-password"), ("nobody-here", PASSWORD)]
)
def test_wrong_password_or_unknown_user_gets_401_and_a_failed_login_event(
    client: TestClient, make_user: Callable[..., User], db: Session, username: str, password: str
) -> None:
    make_user("rater", username="wendy")
    r = _form_login(client, username, password)
    assert r.status_code == 401
    assert "Wrong username or password." in r.text
    assert 'id="login-form"' in r.text
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    failed = _audit(db, "login.failed")
    assert [e.subject for e in failed] == [username]
    assert db.scalar(select(func.count(AuthSession.id))) == 0


def test_deactivated_user_cannot_log_in(client: TestClient, make_user: Callable[..., User]) -> None:
    make_user("researcher", username="gone", is_active=False)
    assert _form_login(client, "gone", PASSWORD).status_code == 401


def test_login_without_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, make_user: Callable[..., User], db: Session
) -> None:
    make_user("admin", username="csrfless")
    client.get("/login")
    r = client.post(
        "/login", data={"username": "csrfless", "password": PASSWORD}, follow_redirects=False
    )
    assert r.status_code == 403
    assert "did not come from this site" in r.text
    assert db.scalar(select(func.count(AuthSession.id))) == 0
    assert _audit(db, "login") == []


def test_logout_revokes_the_session(
    client: TestClient, make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    session = login(make_user("admin", username="leaver"))
    assert client.get("/admin/users").status_code == 200
    r = session.post_form("/logout")
    assert r.status_code == 303
    assert r.headers["location"] == "/login"
    assert db.scalar(select(AuthSession).where(AuthSession.revoked_at.is_not(None))) is not None
    assert len(_audit(db, "logout")) == 1
    # Even if the browser kept the old cookie, the session no longer works.
    r = client.get("/admin/users", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_expired_session_is_treated_as_anonymous(
    client: TestClient, make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    login(make_user("admin", username="old"))
    row = db.scalar(select(AuthSession))
    assert row is not None
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.flush()
    r = client.get("/api/v1/users")
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"


def test_rate_limit_per_username_returns_429_with_a_clear_message(
    client: TestClient, make_user: Callable[..., User], settings: Any, db: Session
) -> None:
    make_user("rater", username="target")
    for _ in range(settings.login_max_failures):
        assert _form_login(client, "target", "guess-guess").status_code == 401
    # Now even the right password is refused until the window passes.
    r = _form_login(client, "target", PASSWORD)
    assert r.status_code == 429
    assert "Too many failed logins" in r.text
    assert _audit(db, "login") == []
    # Other usernames from the same address are not locked by this username's failures.
    make_user("rater", username="bystander")
    assert _form_login(client, "bystander", PASSWORD).status_code == 303


def test_rate_limit_per_address_counts_all_usernames(
    client: TestClient, make_user: Callable[..., User], settings: Any
) -> None:
    settings.login_max_failures_per_ip = 3
    make_user("rater", username="victim")
    for name in ("a1", "a2", "a3"):
        assert _form_login(client, name, "nope-nope").status_code == 401
    assert _form_login(client, "victim", PASSWORD).status_code == 429


def test_failures_outside_the_window_do_not_count(
    client: TestClient, make_user: Callable[..., User], settings: Any, db: Session
) -> None:
    make_user("rater", username="patient")
    for _ in range(settings.login_max_failures):
        _form_login(client, "patient", "guess-guess")
    for event in _audit(db, "login.failed"):
        event.at = utcnow() - dt.timedelta(minutes=settings.login_window_minutes + 1)
    db.flush()
    assert _form_login(client, "patient", PASSWORD).status_code == 303


def test_api_token_flow(client: TestClient, make_user: Callable[..., User], db: Session) -> None:
    make_user("admin", username="apiadmin")
    r = client.post("/api/v1/auth/token", json={"username": "apiadmin", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer"
    assert len(body["access_token"]) >= 40
    expires = dt.datetime.fromisoformat(body["expires_at"])
    assert dt.timedelta(hours=23) < expires - utcnow() <= dt.timedelta(hours=24)
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    # Bearer callers need no CSRF token and get JSON.
    listing = client.get("/api/v1/users", headers=headers)
    assert listing.status_code == 200
    assert [u["username"] for u in listing.json()] == ["apiadmin"]
    assert len(_audit(db, "token.issued")) == 1
    # A bearer token is not a browser session: as a cookie it authenticates nothing.
    client.cookies.set(SESSION_COOKIE, body["access_token"])
    assert client.get("/api/v1/users").status_code == 401


def test_api_token_bad_credentials_and_bad_input(
    client: TestClient, make_user: Callable[..., User], db: Session
) -> None:
    make_user("admin", username="apiadmin2")
    r = client.post("/api/v1/auth/token", json={"username": "apiadmin2", "password": "nope"})
    assert r.status_code == 401
    assert r.json() == {"detail": "Wrong username or password.", "code": "invalid_credentials"}
    assert r.headers["www-authenticate"] == "Bearer"
    assert len(_audit(db, "login.failed")) == 1
    malformed = client.post(
        "/api/v1/auth/token",
        content=b'{"username": "apiadmin2", ',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert malformed.json()["code"] == "invalid"
    too_long = client.post("/api/v1/auth/token", json={"username": "u" * 65, "password": "x"})
    assert too_long.status_code == 422
    assert len(_audit(db, "login.failed")) == 1  # bad input is not even an attempt
    garbage = client.post("/api/v1/auth/token", headers={"Authorization": "Bearer garbage"})
    assert garbage.status_code == 422


def test_invalid_bearer_token_is_401_json(client: TestClient) -> None:
    r = client.get("/api/v1/users", headers={"Authorization": "Bearer not-a-real-token"})
    assert r.status_code == 401
    assert r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


def test_logged_in_user_visiting_login_is_sent_on(
    client: TestClient, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    login(make_user("rater", username="already"))
    r = client.get("/login", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/"
