"""Checkpoint upload: API and page; good files (radsal/1, seed layouts) and every refusal."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import TooLarge
from app.models import AuditEvent, Checkpoint
from app.services.catalog.checkpoints import import_checkpoint
from tests.app.fixtures_ml import (
    checkpoint_bytes,
    malicious_checkpoint_bytes,
    raw_pickle_bytes,
    seed_layout_bytes,
)

URL = "/api/v1/checkpoints"


def _post(client: TestClient, headers: dict[str, str], data: bytes, **form: str) -> Any:
    files = {"file": ("model.pt", io.BytesIO(data), "application/octet-stream")}
    return client.post(URL, files=files, data=form, headers=headers)


def _count(db: Session) -> int:
    return int(db.scalar(select(func.count(Checkpoint.id))) or 0)


@pytest.fixture()
def staff(make_user: Any, api_headers: Any) -> dict[str, str]:
    return api_headers(make_user("researcher"))  # type: ignore[no-any-return]


def test_radsal1_upload_is_verified_and_described(
    client: TestClient, staff: dict[str, str], tmp_path: Path, settings: Settings
) -> None:
    data = checkpoint_bytes(tmp_path, dual_bn=True)
    r = _post(client, staff, data, name="Dual BN model")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["duplicate"] is False
    assert body["name"] == "Dual BN model"
    assert body["arch"] == "resnet_tiny"
    assert body["dual_bn"] is True
    assert body["num_classes"] == 2 and body["class_names"] == ["normal", "pneumonia"]
    assert body["in_channels"] == 1 and body["image_size"] == 32
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["train"]["mode"] == "dual_bn"
    stored = list((settings.data_dir / "checkpoints").rglob("*.pt"))
    assert len(stored) == 1 and stored[0].read_bytes() == data

    again = _post(client, staff, data, name="same file, other name")
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == body["id"]
    assert again.json()["name"] == "Dual BN model"

    listing = client.get(URL, headers=staff).json()
    assert [c["id"] for c in listing] == [body["id"]]


@pytest.mark.parametrize("dual_bn", [False, True])
def test_seed_layouts_are_imported(
    client: TestClient, staff: dict[str, str], dual_bn: bool
) -> None:
    r = _post(
        client,
        staff,
        seed_layout_bytes(dual_bn=dual_bn),
        name="seed",
        arch="resnet_tiny",
        class_names="normal, pneumonia",
        image_size="32",
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["dual_bn"] is dual_bn
    assert body["class_names"] == ["normal", "pneumonia"]
    assert body["image_size"] == 32
    assert body["train"]["source_format"] == ("seed-dual-bn" if dual_bn else "torchvision")


def test_malicious_pickle_is_refused_and_never_executed(
    client: TestClient, staff: dict[str, str], tmp_path: Path, db: Session, settings: Settings
) -> None:
    for data in (
        malicious_checkpoint_bytes(tmp_path / "pwned1"),
        raw_pickle_bytes(tmp_path / "pwned2"),
    ):
        r = _post(client, staff, data, name="evil")
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid"
    assert (
        "never executes"
        in _post(
            client, staff, malicious_checkpoint_bytes(tmp_path / "pwned3"), name="evil"
        ).json()["detail"]
    )
    assert not any((tmp_path / f"pwned{i}").exists() for i in (1, 2, 3))
    assert _count(db) == 0
    assert not (settings.data_dir / "checkpoints").exists()
    refusals = db.scalar(
        select(func.count(AuditEvent.id)).where(AuditEvent.action == "checkpoint.refused")
    )
    assert refusals == 3


def _radsal1(tmp: Path, **changes: Any) -> bytes:
    obj = torch.load(io.BytesIO(checkpoint_bytes(tmp)), weights_only=True)
    obj.update(changes)
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def test_refusals_have_clear_messages(
    client: TestClient, staff: dict[str, str], tmp_path: Path, db: Session
) -> None:
    cases: list[tuple[bytes, dict[str, str], str]] = [
        (_radsal1(tmp_path, arch="resnet9000"), {}, "unknown architecture"),
        (
            _radsal1(tmp_path, state_dict={"fc.weight": torch.zeros(2, 2)}),
            {},
            "does not fit",
        ),
        (_radsal1(tmp_path, num_classes=3, class_names=["a", "b", "c"]), {}, "does not fit"),
        (seed_layout_bytes(dual_bn=False), {"arch": "resnet_tiny", "num_classes": "3"}, "3"),
        (b"not a checkpoint at all", {}, "not a PyTorch checkpoint"),
        (checkpoint_bytes(tmp_path)[:500], {}, "corrupt"),
        (b"", {}, "empty"),
    ]
    for data, hints, needle in cases:
        r = _post(client, staff, data, name="bad", **hints)
        assert r.status_code == 422, (needle, r.text)
        assert needle in r.json()["detail"], (needle, r.json())
    assert _count(db) == 0


def test_oversized_upload_is_refused(
    client: TestClient, staff: dict[str, str], db: Session, settings: Settings
) -> None:
    r = _post(client, staff, b"\0" * (settings.max_upload_mb * 2**20 + 1), name="huge")
    assert r.status_code == 413
    small = settings.model_copy(update={"max_upload_mb": 1})
    with pytest.raises(TooLarge):
        import_checkpoint(
            db, small, data=io.BytesIO(b"\0" * (2**20 + 10)), filename="x.pt", name="x", actor=None
        )


def test_raters_and_anonymous_callers_cannot_upload(
    client: TestClient, make_user: Any, api_headers: Any, tmp_path: Path, db: Session
) -> None:
    data = checkpoint_bytes(tmp_path)
    assert _post(client, api_headers(make_user("rater")), data).status_code == 403
    # Anonymous: refused by the CSRF check (no session) before authentication is even asked.
    assert _post(client, {}, data).status_code in (401, 403)
    assert client.get(URL).status_code == 401
    assert _count(db) == 0


def test_upload_page_flow(
    client: TestClient, make_user: Any, login: Any, tmp_path: Path, db: Session
) -> None:
    session = login(make_user("admin"))
    page = client.get("/checkpoints")
    assert page.status_code == 200 and "Upload a checkpoint" in page.text
    files = {"file": ("std.pt", checkpoint_bytes(tmp_path), "application/octet-stream")}
    r = session.client.post(
        "/checkpoints",
        files=files,
        data={"name": "Standard <b>x</b>", "csrf_token": session.csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    detail = client.get(r.headers["location"])
    assert detail.status_code == 200
    assert "verified and stored" in detail.text
    assert "Standard &lt;b&gt;x&lt;/b&gt;" in detail.text  # escaped, never raw HTML
    ckpt = db.scalar(select(Checkpoint))
    assert ckpt is not None and ckpt.sha256 in detail.text

    bad = session.client.post(
        "/checkpoints",
        files={"file": ("x.pt", b"garbage", "application/octet-stream")},
        data={"name": "x", "csrf_token": session.csrf},
    )
    assert bad.status_code == 422
    assert "not a PyTorch checkpoint" in bad.text

    no_csrf = session.client.post(
        "/checkpoints", files={"file": ("x.pt", b"garbage", "application/octet-stream")}
    )
    assert no_csrf.status_code == 403
