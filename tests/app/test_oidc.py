"""Single sign-on: OpenID Connect login against a real provider on loopback (tests/oidc_provider),
with roles from a claim or assigned by an admin, and local accounts still working."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import AuditEvent, User
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
