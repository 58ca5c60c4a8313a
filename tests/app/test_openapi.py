"""`/openapi.json` describes every JSON body the API returns, precisely enough to check it.

Clients and schema-based fuzzers trust the published schema: a route that returns a hand-built
dict shows up there as `{}` (anything goes), and nothing can tell a right answer from a wrong
one. So every JSON route under `/api/` (and `/healthz`) must declare a response model for its
success status, and real responses from the staff endpoints must validate against the
published schema, checked here by a small validator for the JSON Schema subset pydantic emits.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.models import Job, JobStatus, User
from tests.app.analysis_helpers import make_rated_study
from tests.app.fixtures_ml import png_bytes

OPERATIONS = ("get", "post", "put", "patch", "delete")
Spec = dict[str, Any]


# --- what the schema declares --------------------------------------------------------------------
def _resolve(spec: Spec, schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _vague(spec: Spec, schema: dict[str, Any], where: str) -> list[str]:
    """Why `schema` does not describe a body: empty, untyped, or an object without fields."""
    schema = _resolve(spec, schema)
    if not schema:
        return [f"{where}: empty schema"]
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        return [p for o in options for p in _vague(spec, o, where)]
    kind = schema.get("type")
    if kind == "array":
        return _vague(spec, schema.get("items", {}), f"{where}[]")
    if kind == "object" and not schema.get("properties"):
        return [f"{where}: an object without declared fields"]
    if kind is None and "enum" not in schema and "const" not in schema:
        return [f"{where}: no type"]
    return []


def undescribed_responses(spec: Spec) -> list[str]:
    """Every API operation whose success response has no (or an empty) body schema."""
    problems: list[str] = []
    for path, operations in spec["paths"].items():
        if not (path.startswith("/api/") or path == "/healthz"):
            continue
        for method, op in operations.items():
            if method not in OPERATIONS:
                continue
            name = f"{method.upper()} {path}"
            success = {c: r for c, r in op.get("responses", {}).items() if c.startswith("2")}
            if not success:
                problems.append(f"{name}: no 2xx response declared")
            for code, response in success.items():
                if code == "204":
                    continue
                content = response.get("content") or {}
                if not content:
                    problems.append(f"{name} {code}: no body declared")
                for media, body in content.items():
                    problems += _vague(spec, body.get("schema", {}), f"{name} {code} {media}")
    return problems


# --- does a body match it ------------------------------------------------------------------------
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def mismatches(spec: Spec, schema: dict[str, Any], value: Any, where: str = "body") -> list[str]:
    """Where `value` breaks `schema` (the subset pydantic emits: types, enums, required,
    additionalProperties, items, anyOf, $ref, date-time strings)."""
    schema = _resolve(spec, schema)
    if "anyOf" in schema:
        if any(not mismatches(spec, option, value, where) for option in schema["anyOf"]):
            return []
        return [f"{where}: {value!r} matches no allowed shape"]
    if "const" in schema and value != schema["const"]:
        return [f"{where}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        return [f"{where}: {value!r} is not {kind}"]
    out: list[str] = []
    if kind == "string" and schema.get("format") == "date-time":
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            out.append(f"{where}: {value!r} is not a date-time")
    if kind == "array":
        for i, item in enumerate(value):
            out += mismatches(spec, schema.get("items", {}), item, f"{where}[{i}]")
    if kind == "object":
        props = schema.get("properties", {})
        out += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                out += mismatches(spec, props[key], item, f"{where}.{key}")
            elif extra is False:
                out.append(f"{where}: undeclared key {key!r}")
            elif isinstance(extra, dict):
                out += mismatches(spec, extra, item, f"{where}.{key}")
    return out


def declared_body(spec: Spec, path: str, method: str, status: int) -> dict[str, Any]:
    response = spec["paths"][path][method]["responses"][str(status)]
    return dict(response["content"]["application/json"]["schema"])


# --- the tests -----------------------------------------------------------------------------------
def test_every_api_response_declares_its_body(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert any(p.startswith("/api/v1/") for p in spec["paths"])
    assert undescribed_responses(spec) == []


def test_the_check_catches_hand_built_bodies() -> None:
    """Meta-test: the checks above can fail (a dict route, a raw JSONResponse, a bad body)."""

    class Good(BaseModel):
        status: str
        count: int | None

    app = FastAPI()

    @app.get("/api/v1/loose")
    def loose() -> dict[str, Any]:
        return {}

    @app.post("/api/v1/raw")
    def raw() -> JSONResponse:
        return JSONResponse({})

    @app.get("/api/v1/typed", response_model=Good)
    def typed() -> Good:
        return Good(status="ok", count=1)

    spec = app.openapi()
    problems = undescribed_responses(spec)
    assert any(p.startswith("GET /api/v1/loose 200") for p in problems)
    assert any(p.startswith("POST /api/v1/raw 200") for p in problems)
    assert not any("/api/v1/typed" in p for p in problems)
    body = declared_body(spec, "/api/v1/typed", "get", 200)
    assert mismatches(spec, body, {"status": "ok", "count": None}) == []
    assert mismatches(spec, body, {"status": 3, "count": None}) != []
    assert mismatches(spec, body, {"status": "ok"}) != []


def test_staff_responses_match_their_declared_schemas(
    client: TestClient,
    db: Session,
    settings: Any,
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
) -> None:
    admin = make_user("admin")
    raters = [make_user("rater"), make_user("rater")]
    study = make_rated_study(db, settings.data_dir, raters, n_images=6)
    job = Job(kind="generate_maps", study_id=None, status=JobStatus.queued.value, total=3)
    db.add(job)
    db.flush()
    image_id = study.images[0].image_id
    checkpoint_id = study.arms[0].checkpoint_id
    auth = api_headers(admin)
    spec = client.get("/openapi.json").json()

    def check(method: str, path: str, url: str, status: int, **kw: Any) -> Any:
        r = client.request(method, url, headers=auth, **kw)
        assert r.status_code == status, (url, r.text)
        body = r.json()
        assert mismatches(spec, declared_body(spec, path, method, status), body) == [], url
        return body

    check("get", "/healthz", "/healthz", 200)
    images = check("get", "/api/v1/images", "/api/v1/images", 200)
    assert len(images) >= 6
    check("get", "/api/v1/images/{image_id}", f"/api/v1/images/{image_id}", 200)
    upload = [("files", ("case.png", io.BytesIO(png_bytes(32, seed=7)), "image/png"))]
    assert check("post", "/api/v1/images", "/api/v1/images", 201, files=upload)["imported"] == 1
    again = [("files", ("case.png", io.BytesIO(png_bytes(32, seed=7)), "image/png"))]
    assert check("post", "/api/v1/images", "/api/v1/images", 200, files=again)["duplicates"] == 1
    assert check("get", "/api/v1/checkpoints", "/api/v1/checkpoints", 200)
    check("get", "/api/v1/checkpoints/{checkpoint_id}", f"/api/v1/checkpoints/{checkpoint_id}", 200)
    check("get", "/api/v1/jobs/{job_id}", f"/api/v1/jobs/{job.id}", 200)
    cancelled = check("post", "/api/v1/jobs/{job_id}/cancel", f"/api/v1/jobs/{job.id}/cancel", 200)
    assert cancelled["cancel_requested"] is True
    analysis = check(
        "get", "/api/v1/studies/{study_id}/analysis", f"/api/v1/studies/{study.id}/analysis", 200
    )
    assert analysis["items"][0]["n_scores"] > 0 and analysis["empty"] is False
    exported = check(
        "get",
        "/api/v1/studies/{study_id}/export",
        f"/api/v1/studies/{study.id}/export?format=json",
        200,
    )
    assert len(exported["trials"]) == 12
    check("get", "/api/v1/users", "/api/v1/users", 200)
    created = check(
        "post",
        "/api/v1/users",
        "/api/v1/users",
        201,
        json={"username": "newrater", "role": "rater"},
    )
    assert created["invite_url"]
