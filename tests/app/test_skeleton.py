"""The skeleton works end to end: app factory, health, error mapping, security headers."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_health_reports_ok_and_sets_security_headers(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"


def test_openapi_is_served(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert r.json()["info"]["title"] == "radsal"


def test_unknown_api_path_is_json_404(client: TestClient) -> None:
    r = client.get("/api/v1/does-not-exist")
    assert r.status_code == 404
    assert r.json()["code"] == "http_error"


def test_anonymous_home_redirects_to_login(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login")


def test_home_redirects_each_role_to_its_landing_page(make_user, login, client) -> None:  # type: ignore[no-untyped-def]
    for role, landing in (("admin", "/admin"), ("researcher", "/studies"), ("rater", "/rate")):
        client.cookies.clear()
        login(make_user(role))
        r = client.get("/", follow_redirects=False)
        assert r.status_code == 303, role
        assert r.headers["location"] == landing


def test_oversized_request_is_refused_with_413(client: TestClient) -> None:
    r = client.post("/api/v1/anything", content=b"x", headers={"content-length": str(9 * 2**20)})
    assert r.status_code == 413
