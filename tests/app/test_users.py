"""User management: admin pages, JSON API, invite links, deactivation, ensure_admin, CLI."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.deps import SESSION_COOKIE
from app.auth.passwords import verify_password
from app.cli.main import main as cli_main
from app.config import get_settings
from app.models import AuditEvent, AuthSession, Invite, User
from app.models.base import utcnow
from app.services.accounts.users import ensure_admin

PASSWORD = "correct-horse-battery"
INVITE_RE = re.compile(r"/invite/([A-Za-z0-9_-]{20,})")


def _actions(db: Session) -> list[str]:
    return [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]


def _invite_token(text: str) -> str:
    match = INVITE_RE.search(text)
    assert match, "no invite link in the response"
    return match.group(1)


def _anon_csrf(client: TestClient, url: str) -> tuple[Any, str]:
    r = client.get(url)
    token = client.cookies.get("radsal_csrf")
    assert token
    return r, token


def test_admin_creates_a_rater_and_sees_the_invite_link_once(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss"))
    r = admin.post_form(
        "/admin/users", {"username": "dr-lee", "role": "rater", "display_name": "Dr Lee"}
    )
    assert r.status_code == 201
    token = _invite_token(r.text)
    user = db.scalar(select(User).where(User.username == "dr-lee"))
    assert user is not None and user.role == "rater" and user.password_hash is None
    # Only the hash is stored; the list page shows the state, never the link again.
    invite = db.scalar(select(Invite).where(Invite.user_id == user.id))
    assert invite is not None and token not in invite.token_hash
    listing = admin.client.get("/admin/users")
    assert token not in listing.text
    assert "pending until" in listing.text
    assert _actions(db)[-2:] == ["user.created", "invite.issued"]


def test_invite_sets_password_logs_in_and_is_single_use(
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[[User], Any],
    db: Session,
) -> None:
    admin = login(make_user("admin", username="boss2"))
    r = admin.post_form("/admin/users", {"username": "newbie", "role": "rater"})
    token = _invite_token(r.text)
    client.cookies.clear()

    page, csrf = _anon_csrf(client, f"/invite/{token}")
    assert page.status_code == 200
    assert "newbie" in page.text and 'id="invite-form"' in page.text
    r = client.post(
        f"/invite/{token}",
        data={
            "password": "my-new-password",
            "password_confirm": "my-new-password",
            "display_name": "New Rater",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert SESSION_COOKIE in r.headers["set-cookie"]
    assert client.get("/", follow_redirects=False).headers["location"] == "/rate"
    user = db.scalar(select(User).where(User.username == "newbie"))
    assert user is not None and user.display_name == "New Rater"
    assert verify_password(user.password_hash, "my-new-password")
    assert "invite.used" in _actions(db)

    # Reuse: a clear 404 page saying why; nothing changes.
    client.cookies.clear()
    again = client.get(f"/invite/{token}")
    assert again.status_code == 404
    assert "already used" in again.text


def test_invite_form_errors_keep_the_invite_usable(
    client: TestClient, make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss3"))
    token = _invite_token(admin.post_form("/admin/users", {"username": "r2", "role": "rater"}).text)
    client.cookies.clear()
    _, csrf = _anon_csrf(client, f"/invite/{token}")
    for password, confirm, message in (
        ("short", "short", "at least 8 characters"),
        ("long-enough-1", "long-enough-2", "do not match"),
    ):
        r = client.post(
            f"/invite/{token}",
            data={"password": password, "password_confirm": confirm, "csrf_token": csrf},
        )
        assert r.status_code == 422
        assert message in r.text
    user = db.scalar(select(User).where(User.username == "r2"))
    assert user is not None and user.password_hash is None
    # Missing CSRF token: refused, invite untouched.
    r = client.post(
        f"/invite/{token}",
        data={"password": "long-enough-1", "password_confirm": "long-enough-1"},
    )
    assert r.status_code == 403
    assert client.get(f"/invite/{token}").status_code == 200


def test_expired_revoked_and_unknown_invites_are_refused(
    client: TestClient, make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss4"))
    token = _invite_token(
        admin.post_form("/admin/users", {"username": "late", "role": "rater"}).text
    )
    invite = db.scalar(select(Invite))
    assert invite is not None
    invite.expires_at = utcnow() - dt.timedelta(minutes=1)
    db.flush()
    client.cookies.clear()
    r = client.get(f"/invite/{token}")
    assert r.status_code == 404 and "expired" in r.text
    assert client.get("/invite/not-a-token").status_code == 404

    # A new invite revokes the old one; revoking the new one makes it unusable too.
    late = db.scalar(select(User).where(User.username == "late"))
    assert late is not None
    admin = login(db.scalar(select(User).where(User.username == "boss4")))  # type: ignore[arg-type]
    token2 = _invite_token(admin.post_form(f"/admin/users/{late.id}/invite").text)
    r = admin.post_form(f"/admin/users/{late.id}/invite/revoke")
    assert r.status_code == 303
    client.cookies.clear()
    r = client.get(f"/invite/{token2}")
    assert r.status_code == 404 and "withdrawn" in r.text
    assert "invite.revoked" in _actions(db)


def test_deactivation_ends_sessions_and_tokens(
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[[User], Any],
    api_headers: Callable[[User], dict[str, str]],
    db: Session,
) -> None:
    admin_user = make_user("admin", username="boss5")
    researcher = make_user("researcher", username="res")
    headers_res = api_headers(researcher)
    headers_admin = api_headers(admin_user)
    r = client.post(f"/api/v1/users/{researcher.id}/deactivate", headers=headers_admin)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert client.get("/api/v1/users", headers=headers_res).status_code == 401
    live = db.scalars(
        select(AuthSession).where(
            AuthSession.user_id == researcher.id, AuthSession.revoked_at.is_(None)
        )
    ).all()
    assert live == []
    assert "user.deactivated" in _actions(db)
    # Twice is a conflict; self-deactivation is refused; reactivation works.
    again = client.post(f"/api/v1/users/{researcher.id}/deactivate", headers=headers_admin)
    assert again.status_code == 409
    me = client.post(f"/api/v1/users/{admin_user.id}/deactivate", headers=headers_admin)
    assert me.status_code == 409 and "own account" in me.json()["detail"]
    back = client.post(f"/api/v1/users/{researcher.id}/reactivate", headers=headers_admin)
    assert back.status_code == 200 and back.json()["is_active"] is True


def test_deactivate_through_the_admin_page(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="boss6"))
    target = make_user("rater", username="bye")
    r = admin.post_form(f"/admin/users/{target.id}/deactivate")
    # The page it lands on offers Undo (reactivation) for this user.
    assert r.status_code == 303
    assert r.headers["location"] == f"/admin/users?done=deactivated&user={target.id}"
    db.refresh(target)
    assert target.is_active is False
    page = admin.client.get("/admin/users?done=deactivated")
    assert "Account deactivated" in page.text and "deactivated</span>" in page.text


def test_users_api_create_list_invite(
    client: TestClient,
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    settings: Any,
) -> None:
    headers = api_headers(make_user("admin", username="api-boss"))
    r = client.post("/api/v1/users", json={"username": "rr", "role": "rater"}, headers=headers)
    assert r.status_code == 201
    body = r.json()
    assert body["invite_url"].startswith(f"{settings.base_url}/invite/")
    assert body["invite"]["state"] == "pending"
    r = client.post(
        "/api/v1/users",
        json={"username": "res2", "role": "researcher", "password": "a-long-password"},
        headers=headers,
    )
    assert r.status_code == 201 and r.json()["invite_url"] is None
    listing = {u["username"]: u for u in client.get("/api/v1/users", headers=headers).json()}
    assert set(listing) == {"api-boss", "rr", "res2"}
    assert listing["rr"]["invite"]["state"] == "pending"
    assert listing["res2"]["invite"]["state"] == "none"
    assert "password_hash" not in listing["res2"]
    link = client.post(f"/api/v1/users/{body['id']}/invite", headers=headers)
    assert link.status_code == 200 and link.json()["invite_url"] != body["invite_url"]
    missing = client.post("/api/v1/users/424242/invite", headers=headers)
    assert missing.status_code == 404


def test_cookie_api_calls_need_the_csrf_header(
    make_user: Callable[..., User], login: Callable[[User], Any], db: Session
) -> None:
    admin = login(make_user("admin", username="cookie-boss"))
    r = admin.client.post("/api/v1/users", json={"username": "x1", "role": "rater"})
    assert r.status_code == 403
    assert db.scalar(select(User).where(User.username == "x1")) is None
    ok = admin.post_json("/api/v1/users", {"username": "x1", "role": "rater"})
    assert ok.status_code == 201


def test_ensure_admin_creates_once(db: Session) -> None:
    user, password = ensure_admin(db)
    assert user.username == "admin" and user.role == "admin"
    assert password is not None and len(password) >= 12
    assert verify_password(user.password_hash, password)
    again, none = ensure_admin(db)
    assert again.id == user.id and none is None
    chosen, pw = ensure_admin(db, username="other", password="given-password")
    assert chosen.id == user.id and pw is None  # an admin already exists


def test_ensure_admin_with_given_password(db: Session) -> None:
    user, password = ensure_admin(db, username="root-admin", password="given-password")
    assert user.username == "root-admin" and password == "given-password"


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture()
def radsal_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., CliResult]]:
    """`radsal users …` in-process (argument parsing and all) on its own SQLite file.

    In-process because every `radsal` process imports torch (seconds each on a busy CI core);
    tests/app/test_migrations.py runs the real executable once.
    """
    monkeypatch.setenv("RADSAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RADSAL_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite'}")
    monkeypatch.setenv("RADSAL_BASE_URL", "https://radsal.example.org")
    get_settings.cache_clear()

    def run(*args: str) -> CliResult:
        code = cli_main(["users", *args])
        out = capsys.readouterr()
        return CliResult(code, out.out, out.err)

    yield run
    get_settings.cache_clear()


@pytest.mark.slow
def test_users_cli_create_invite_list(radsal_cli: Callable[..., CliResult]) -> None:
    run = radsal_cli
    r = run("create", "dr-cli", "--role", "rater", "--display-name", "Dr CLI")
    assert r.returncode == 0, r.stderr
    assert "created rater dr-cli" in r.stdout
    assert re.search(r"https://radsal\.example\.org/invite/[A-Za-z0-9_-]{20,}", r.stdout)
    r = run("create", "boss", "--role", "admin", "--password", "long-password")
    assert r.returncode == 0 and "invite" not in r.stdout
    r = run("create", "x'; DROP TABLE users;--", "--role", "rater")
    assert r.returncode == 2 and "username" in r.stderr
    r = run("create", "boss", "--role", "admin", "--password", "long-password")
    assert r.returncode == 2 and "taken" in r.stderr
    r = run("invite", "dr-cli")
    assert r.returncode == 0 and "/invite/" in r.stdout
    r = run("list")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["username", "role", "active"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"boss", "dr-cli"}
    assert rows["boss"][1:3] == ["admin", "yes"] and rows["boss"][-1] == "none"
    assert rows["dr-cli"][1] == "rater" and rows["dr-cli"][-1] == "pending"
    assert run("deactivate", "dr-cli").returncode == 0
    rows = {line.split()[0]: line.split() for line in run("list").stdout.splitlines()[1:]}
    assert rows["dr-cli"][2] == "no"
    # A deactivated account's invite is withdrawn; deactivating twice is a clear error.
    assert rows["dr-cli"][-1] == "revoked"
    r = run("deactivate", "dr-cli")
    assert r.returncode == 2 and "already deactivated" in r.stderr
    r = run("invite", "nobody")
    assert r.returncode == 2 and "No user named" in r.stderr


def test_an_invite_for_an_existing_account_resets_its_password_and_ends_sessions(
    client: TestClient,
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    db: Session,
) -> None:
    admin_headers = api_headers(make_user("admin", username="boss7"))
    forgetful = make_user("researcher", username="forgetful")
    old_headers = api_headers(forgetful)
    link = client.post(f"/api/v1/users/{forgetful.id}/invite", headers=admin_headers).json()
    token = link["invite_url"].rsplit("/", 1)[1]
    _, csrf = _anon_csrf(client, f"/invite/{token}")
    r = client.post(
        f"/invite/{token}",
        data={
            "password": "brand-new-pass",
            "password_confirm": "brand-new-pass",
            "csrf_token": csrf,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    db.refresh(forgetful)
    assert verify_password(forgetful.password_hash, "brand-new-pass")
    assert not verify_password(forgetful.password_hash, PASSWORD)
    assert client.get("/api/v1/users", headers=old_headers).status_code == 401
