"""Every route of the real app declares who may call it, and the app enforces exactly that.

Routes are discovered from `create_app()`'s route table, so routes added later are covered
without touching this file. A route with no audience declaration fails the first test.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from starlette.routing import BaseRoute, Mount

from app.auth.deps import SESSION_COOKIE, AnyUser, public
from app.auth.sessions import issue_session
from app.models import Role, User

ROLES = ("anonymous", "rater", "researcher", "admin")
ALL_ROLES = frozenset({"rater", "researcher", "admin"})
# Framework routes that are not APIRoutes: the API description is public on purpose.
FRAMEWORK_PUBLIC = {"/openapi.json", "/api/docs", "/docs/oauth2-redirect", "/redoc"}
ANON_CSRF = "route-matrix-anonymous-csrf"
DUMMY = "999999"  # a path value no seeded object has: int- and str-typed params both accept it


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    dependant: Dependant


def route_table(app: FastAPI) -> tuple[list[RouteInfo], list[BaseRoute]]:
    """(FastAPI routes with their effective dependencies, every other route).

    FastAPI >= 0.16x keeps included routers as branches (their routes carry the router's
    dependencies only in the "effective" context); older versions flatten them into APIRoutes.
    Both are handled so the matrix keeps working across upgrades.
    """
    api: list[RouteInfo] = []
    other: list[BaseRoute] = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                original = ctx.original_route
                if isinstance(original, APIRoute):
                    dependant = ctx.dependant or original.dependant
                    api.append(RouteInfo(ctx.path_format, frozenset(ctx.methods), dependant))
                else:
                    other.append(original)
        elif isinstance(route, APIRoute):
            api.append(
                RouteInfo(route.path_format, frozenset(route.methods or ()), route.dependant)
            )
        else:
            other.append(route)
    return api, other


def audience(route: RouteInfo) -> frozenset[str] | None:
    """Roles allowed to call `route` ("anonymous" included for public), None if undeclared."""
    roles: frozenset[str] | None = None
    for dep in _walk(route.dependant):
        if dep.call is public:
            return ALL_ROLES | {"anonymous"}
        allowed = getattr(dep.call, "allowed_roles", None)
        if allowed is not None:
            roles = frozenset(allowed) if roles is None else roles & frozenset(allowed)
    return roles


def undeclared_routes(app: FastAPI) -> list[str]:
    return [f"{sorted(r.methods)} {r.path}" for r in route_table(app)[0] if audience(r) is None]


def test_every_route_declares_its_audience(app: FastAPI) -> None:
    api_routes, other_routes = route_table(app)
    assert len(api_routes) >= 10, "route discovery found suspiciously few routes"
    assert undeclared_routes(app) == []
    # Plain Starlette routes bypass FastAPI dependencies: only the framework's own may exist.
    others = {getattr(r, "path", "") for r in other_routes if not isinstance(r, Mount)}
    assert others <= FRAMEWORK_PUBLIC


def test_a_route_without_audience_is_reported() -> None:
    """The check above can fail: an undeclared route is caught, declared ones are not."""
    app = FastAPI()
    router = APIRouter()

    @router.get("/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    @router.get("/declared")
    def declared(_user: AnyUser) -> dict[str, str]:
        return {}

    app.include_router(router)
    assert undeclared_routes(app) == ["['GET'] /forgotten"]


def _cases(app: FastAPI) -> list[tuple[str, str, frozenset[str]]]:
    return [
        (method, route.path, audience(route) or frozenset())
        for route in route_table(app)[0]
        for method in sorted(route.methods - {"HEAD"})
    ]


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", DUMMY, path)


@pytest.fixture()
def role_users(make_user: Callable[..., User]) -> dict[str, User]:
    return {r.value: make_user(r, username=f"matrix-{r.value}") for r in Role}


def test_route_role_matrix(app: FastAPI, db: Session, role_users: dict[str, User]) -> None:
    """Disallowed callers get 401 (anonymous) / 403 (wrong role); allowed ones get neither.

    Each request gets a fresh session (a route may be /logout) and a valid CSRF token, so a
    403 can only come from the role check. Path params are dummies: 404/422 are fine.
    """
    failures: list[str] = []
    checked = 0
    # A crash is reported as a failure line instead of aborting the walk over all routes.
    client = TestClient(app, raise_server_exceptions=False)
    for method, path, allowed in _cases(app):
        url = _fill(path)
        for role in ROLES:
            client.cookies.clear()
            headers = {"Accept": "application/json"}
            if role == "anonymous":
                client.cookies.set("radsal_csrf", ANON_CSRF)
                headers["X-CSRF-Token"] = ANON_CSRF
            else:
                issued = issue_session(
                    db, role_users[role], kind="web", lifetime=dt.timedelta(hours=1)
                )
                db.flush()
                client.cookies.set(SESSION_COOKIE, issued.token)
                headers["X-CSRF-Token"] = issued.csrf_token
            r = client.request(method, url, headers=headers, follow_redirects=False)
            checked += 1
            if r.status_code >= 500:
                ok = False
            elif role in allowed:
                ok = r.status_code not in (401, 403)
            else:
                ok = r.status_code == (401 if role == "anonymous" else 403)
            if not ok:
                want = "allowed" if role in allowed else "refused"
                want = "no crash" if r.status_code >= 500 else want
                failures.append(f"{method} {path} as {role}: {r.status_code} (want {want})")
    assert checked >= 40
    assert failures == []


def test_framework_routes_are_public(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/api/docs").status_code == 200


def test_admin_areas_are_admin_only(app: FastAPI) -> None:
    """Policy, not just consistency: /admin pages and user management belong to admins."""
    admin_paths = [r for r in route_table(app)[0] if r.path.startswith(("/admin", "/api/v1/users"))]
    assert {r.path for r in admin_paths} >= {"/admin/users", "/api/v1/users"}
    wrong = {r.path: audience(r) for r in admin_paths if audience(r) != frozenset({"admin"})}
    assert wrong == {}
