"""Single sign-on: OpenID Connect login against a real provider on loopback (tests/oidc_provider),
with roles from a claim or assigned by an admin, and local accounts still working."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import AuditEvent, AuthSession, User
from tests.app.conftest import TEST_PASSWORD
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider


@pytest.fixture()
def provider() -> Iterator[Provider]:
    with running_provider() as p:
        yield p


@pytest.fixture()
def settings(tmp_path: Path, database_url: str, provider: Provider) -> Settings:
    """The app's settings with single sign-on on (overrides conftest's `settings`)."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key",
        device="cpu",
        worker="external",
        base_url="http://testserver",
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_role_claim="groups",
        oidc_role_map="rad-research=researcher,rad-admins=admin,readers=rater",
    )


def _sso(client: TestClient, next_path: str = "/") -> httpx.Response:
    """Click "single sign-on", let the provider log in, follow it back; the last response."""
    start = client.get("/login/oidc", params={"next": next_path}, follow_redirects=False)
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    query = parse_qs(urlsplit(authorize).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    assert query["redirect_uri"] == ["http://testserver/login/oidc/callback"]
    at_provider = httpx.get(authorize, follow_redirects=False)  # a real HTTP call to loopback
    assert at_provider.status_code == 302
    back = at_provider.headers["location"]
    return client.get(back, follow_redirects=False)


def test_login_page_offers_sso_and_keeps_the_local_form(client: TestClient) -> None:
    page = client.get("/login")
    assert 'id="sso-login"' in page.text and "Log in with single sign-on" in page.text
    assert 'id="login-form"' in page.text


def test_new_user_gets_the_role_from_the_claim(
    client: TestClient, provider: Provider, db: Session
) -> None:
    provider.login_as(sub="u-1", preferred_username="dr.sso", name="Dr SSO",
                      groups=["radiology", "rad-research"])  # fmt: skip
    done = _sso(client, "/studies")
    assert done.status_code == 303 and done.headers["location"] == "/studies"
    assert client.get("/studies").status_code == 200  # logged in, as a researcher
    user = db.scalar(select(User).where(User.username == "dr.sso"))
    assert user is not None and user.role == "researcher" and user.password_hash is None
    assert user.display_name == "Dr SSO"
    login = db.scalar(select(AuditEvent).where(AuditEvent.action == "login"))
    assert login is not None and login.detail["method"] == "oidc" and login.detail["sub"] == "u-1"
    # The provider checked the PKCE verifier and the client secret (it refuses otherwise).
    assert provider.token_requests[-1]["code_verifier"]


def test_role_follows_the_claim_at_each_login(
    client: TestClient, provider: Provider, db: Session, make_user: Callable[..., User]
) -> None:
    make_user("rater", username="moving.up", password=None)
    provider.login_as(sub="u-2", preferred_username="moving.up", groups=["rad-admins", "readers"])
    assert _sso(client).status_code == 303
    user = db.scalar(select(User).where(User.username == "moving.up"))
    assert user is not None
    db.refresh(user)
    assert user.role == "admin"  # the highest role the claim names
    assert client.get("/admin").status_code == 200


def test_claim_without_a_radsal_role_is_refused(client: TestClient, provider: Provider) -> None:
    provider.login_as(sub="u-3", preferred_username="visitor", groups=["cafeteria"])
    refused = _sso(client)
    assert refused.status_code == 403 and "has no radsal role" in refused.text
    assert client.get("/studies", follow_redirects=False).status_code in (303, 401)


def test_local_account_with_a_password_is_not_taken_over(
    client: TestClient, provider: Provider, make_user: Callable[..., User]
) -> None:
    make_user("admin", username="local.admin")
    provider.login_as(sub="evil", preferred_username="local.admin", groups=["rad-admins"])
    refused = _sso(client)
    assert refused.status_code == 403 and "local account" in refused.text
    # ... and it still logs in with its password.
    form = client.get("/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    ok = client.post(
        "/login",
        data={"username": "local.admin", "password": TEST_PASSWORD, "csrf_token": csrf},
        follow_redirects=False,
    )
    assert ok.status_code == 303


def test_a_forged_state_is_refused(client: TestClient, provider: Provider) -> None:
    provider.login_as(sub="u-4", preferred_username="someone", groups=["readers"])
    start = client.get("/login/oidc", follow_redirects=False)
    back = httpx.get(start.headers["location"], follow_redirects=False).headers["location"]
    forged = back.replace("state=", "state=x")
    refused = client.get(forged, follow_redirects=False)
    assert refused.status_code == 403 and "does not match" in refused.text


def _who(client: TestClient) -> str:
    """The account a client is logged in as, as the page header shows it ("name · role")."""
    page = client.get("/rate")
    assert page.status_code == 200, page.status_code
    who = page.text.split('<div class="who">')[1]
    return who.split('<span class="muted">')[1].split("</span>")[0]


def _events(db: Session, action: str) -> list[AuditEvent]:
    return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_a_returning_user_is_found_by_issuer_and_subject(
    client: TestClient, provider: Provider, db: Session
) -> None:
    provider.login_as(sub="s-1", preferred_username="back.again", name="Back", groups=["readers"])
    assert _sso(client).status_code == 303
    user = db.scalar(select(User).where(User.username == "back.again"))
    assert user is not None
    assert (user.oidc_issuer, user.oidc_subject) == (provider.url, "s-1")
    client.cookies.clear()
    provider.login_as(sub="s-1", preferred_username="back.again", groups=["readers"])
    assert _sso(client).status_code == 303
    assert _who(client) == "Back · rater"
    assert db.scalar(select(func.count(User.id))) == 1
    assert len(_events(db, "user.created")) == 1
    logins = _events(db, "login")
    assert [e.object_id for e in logins] == [str(user.id)] * 2
    assert all(e.detail["iss"] == provider.url and e.detail["sub"] == "s-1" for e in logins)


@pytest.mark.parametrize("claimed", ["dr.victim", "DR.Victim"])
def test_another_identity_with_the_same_username_is_refused(
    client: TestClient, app: FastAPI, provider: Provider, db: Session, claimed: str
) -> None:
    """User X sets their editable username claim to Y's: refused, Y's session untouched."""
    provider.login_as(sub="victim-sub", preferred_username="dr.victim", name="Victim",
                      groups=["readers"])  # fmt: skip
    assert _sso(client).status_code == 303
    victim = db.scalar(select(User).where(User.username == "dr.victim"))
    assert victim is not None
    with TestClient(app, base_url="http://testserver") as attacker:
        provider.login_as(sub="attacker-sub", preferred_username=claimed, groups=["rad-admins"])
        refused = _sso(attacker)
        assert refused.status_code == 403
        assert "belongs to another single sign-on identity" in refused.text
        assert attacker.get("/rate", follow_redirects=False).status_code in (303, 401)
    # The victim is still logged in, with their role; nothing was revoked or rebound.
    assert _who(client) == "Victim · rater"
    db.refresh(victim)
    assert victim.role == "rater" and victim.oidc_subject == "victim-sub"
    sessions = list(db.scalars(select(AuthSession).where(AuthSession.user_id == victim.id)))
    assert len(sessions) == 1 and sessions[0].revoked_at is None
    (event,) = _events(db, "login.refused")
    assert event.object_id == str(victim.id) and event.detail["sub"] == "attacker-sub"
    assert event.detail["reason"] == "bound_to_another_identity"
    assert [e.detail["sub"] for e in _events(db, "login")] == ["victim-sub"]


def test_a_username_renamed_at_the_provider_keeps_the_account(
    client: TestClient, app: FastAPI, provider: Provider, db: Session
) -> None:
    provider.login_as(sub="y-sub", preferred_username="dr.y", name="Y", groups=["rad-admins"])
    assert _sso(client).status_code == 303
    client.cookies.clear()
    provider.login_as(sub="x-sub", preferred_username="dr.x", name="X", groups=["readers"])
    assert _sso(client).status_code == 303
    x = db.scalar(select(User).where(User.username == "dr.x"))
    assert x is not None
    for new_name in ("dr.x-renamed", "dr.y"):  # a fresh name, then somebody else's
        client.cookies.clear()
        provider.login_as(sub="x-sub", preferred_username=new_name, groups=["readers"])
        assert _sso(client).status_code == 303
        assert _who(client) == "X · rater"  # X's own account, under its radsal username
        last = _events(db, "login")[-1]
        assert last.object_id == str(x.id) and last.detail["claimed_username"] == new_name
    db.refresh(x)
    assert x.username == "dr.x"
    assert db.scalar(select(User).where(User.username == "dr.x-renamed")) is None
    assert db.scalar(select(func.count(User.id))) == 2


class TestAdminAssignedRoles:
    """Without a role claim an admin decides: unknown users are refused until added."""

    @pytest.fixture()
    def settings(self, tmp_path: Path, database_url: str, provider: Provider) -> Settings:
        return Settings(
            data_dir=tmp_path / "data", database_url=database_url, secret_key="k" * 20,
            device="cpu", worker="external", base_url="http://testserver",
            oidc_issuer=provider.url, oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
        )  # fmt: skip

    def test_unknown_user_is_refused_then_admitted_once_an_admin_adds_them(
        self, client: TestClient, provider: Provider, make_user: Callable[..., User]
    ) -> None:
        provider.login_as(sub="u-5", preferred_username="new.reader", groups=["rad-admins"])
        refused = _sso(client)
        assert refused.status_code == 403 and "ask an admin to add it" in refused.text
        make_user("rater", username="new.reader", password=None)  # the admin adds them
        provider.login_as(sub="u-5", preferred_username="new.reader", groups=["rad-admins"])
        done = _sso(client)
        assert done.status_code == 303
        # The claim is ignored without RADSAL_OIDC_ROLE_CLAIM: still a rater.
        assert client.get("/rate").status_code == 200
        assert client.get("/admin").status_code == 403

    def test_an_account_an_admin_created_is_bound_on_its_first_login(
        self, client: TestClient, provider: Provider, db: Session, make_user: Callable[..., User]
    ) -> None:
        user = make_user("rater", username="pre.made", password=None)
        assert user.oidc_subject is None
        provider.login_as(sub="p-1", preferred_username="pre.made")
        assert _sso(client).status_code == 303
        db.refresh(user)
        assert (user.oidc_issuer, user.oidc_subject) == (provider.url, "p-1")
        (bound,) = _events(db, "user.oidc_bound")
        assert bound.object_id == str(user.id) and bound.detail["sub"] == "p-1"
        # From now on only that identity gets in, whatever username it claims.
        client.cookies.clear()
        provider.login_as(sub="p-2", preferred_username="pre.made")
        refused = _sso(client)
        assert refused.status_code == 403 and "another single sign-on identity" in refused.text
        provider.login_as(sub="p-1", preferred_username="someone.else")
        assert _sso(client).status_code == 303
        assert client.get("/rate").status_code == 200
        assert len(_events(db, "user.oidc_bound")) == 1


def test_sso_routes_are_404_when_not_configured(tmp_path: Path) -> None:
    from app.main import create_app

    app = create_app(
        Settings(data_dir=tmp_path / "d", secret_key="k" * 20, worker="external"),
        migrate=False,
        start_worker=False,
    )
    with TestClient(app) as plain:
        assert plain.get("/login/oidc", follow_redirects=False).status_code == 404
        assert 'id="sso-login"' not in plain.get("/login").text
