"""Image upload: formats, DICOM odd cases, PHI, dedup, ZIP limits, all-or-nothing, pages."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Image
from tests.app.fixtures_ml import (
    dicom_bytes,
    jpeg_bytes,
    monochrome1_dicom_bytes,
    multiframe_dicom_bytes,
    png_bytes,
    zip_bytes,
)

URL = "/api/v1/images"


def _post(
    client: TestClient,
    headers: dict[str, str],
    files: list[tuple[str, bytes]],
    csv: bytes | None = None,
) -> Any:
    parts: list[tuple[str, tuple[str, io.BytesIO, str]]] = [
        ("files", (name, io.BytesIO(data), "application/octet-stream")) for name, data in files
    ]
    if csv is not None:
        parts.append(("labels_csv", ("labels.csv", io.BytesIO(csv), "text/csv")))
    return client.post(URL, files=parts, headers=headers)


def _count(db: Session) -> int:
    return int(db.scalar(select(func.count(Image.id))) or 0)


def _stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "images"
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def _has(name: str) -> bool:
    from pydicom.data import get_testdata_file

    return get_testdata_file(name, download=False) is not None


@pytest.fixture()
def staff(make_user: Any, api_headers: Any) -> dict[str, str]:
    return api_headers(make_user("admin"))  # type: ignore[no-any-return]


def test_png_jpeg_and_dicom_are_ingested_with_renditions(
    client: TestClient, staff: dict[str, str], db: Session, settings: Settings
) -> None:
    files = [
        ("gray8.png", png_bytes(40, seed=1)),
        ("gray16.png", png_bytes(40, seed=2, bit16=True)),
        ("colour.png", png_bytes(40, seed=3, rgb=True)),
        ("photo.jpg", jpeg_bytes(40, seed=4)),
        ("ct.dcm", dicom_bytes("CT_small.dcm")),
        ("mr.dcm", dicom_bytes("MR_small.dcm")),
        ("j2k.dcm", dicom_bytes("JPEG2000.dcm")),  # compressed: decoded by pylibjpeg
    ]
    r = _post(client, staff, files)
    assert r.status_code == 201, r.text
    report = r.json()
    assert report["imported"] == 7 and report["errors"] == 0
    by_name = {f["filename"]: f["image_id"] for f in report["files"]}
    rows = {im.source_filename: im for im in db.scalars(select(Image))}
    assert rows["ct.dcm"].modality == "CT" and (rows["ct.dcm"].width, rows["ct.dcm"].height) == (
        128,
        128,
    )
    assert rows["mr.dcm"].window_center == 600.0 and rows["mr.dcm"].window_width == 1600.0
    assert rows["colour.png"].channels == 3 and rows["gray16.png"].channels == 1
    assert rows["j2k.dcm"].meta["TransferSyntaxUID"] == "1.2.840.10008.1.2.4.91"
    # Model input: full resolution float16 in [0, 1]; display: 8-bit PNG of the same size.
    store = settings.data_dir
    ct = rows["ct.dcm"]
    arr = np.load(store / ct.input_path)
    assert arr.dtype == np.float16 and arr.shape == (128, 128)
    assert float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0
    with PILImage.open(store / ct.display_path) as im:
        assert im.size == (128, 128) and im.mode == "L"
    with PILImage.open(store / ct.thumb_path) as im:
        assert max(im.size) <= 192
    # Staff can fetch renditions; JSON lists them.
    png = client.get(f"/images/{by_name['ct.dcm']}/display.png", headers=staff)
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert client.get(f"{URL}/{by_name['ct.dcm']}", headers=staff).json()["modality"] == "CT"


def test_phi_is_never_stored(client: TestClient, staff: dict[str, str], db: Session) -> None:
    raw = dicom_bytes("CT_small.dcm")
    ds = pydicom.dcmread(io.BytesIO(raw))
    patient = str(ds.PatientName)
    assert patient  # the sample file does carry a name
    r = _post(client, staff, [("ct.dcm", raw)])
    assert r.status_code == 201
    image = db.scalar(select(Image))
    assert image is not None
    for key in ("PatientName", "PatientID", "PatientBirthDate"):
        assert key not in image.meta
    dumped = json.dumps(image.meta) + client.get(f"{URL}/{image.id}", headers=staff).text
    assert patient not in dumped and str(ds.PatientID) not in dumped


def test_monochrome1_is_inverted_for_display(
    client: TestClient, staff: dict[str, str], db: Session, settings: Settings
) -> None:
    r = _post(
        client,
        staff,
        [("m2.dcm", dicom_bytes("CT_small.dcm")), ("m1.dcm", monochrome1_dicom_bytes())],
    )
    assert r.status_code == 201, r.text
    rows = {im.source_filename: im for im in db.scalars(select(Image))}
    m1 = np.asarray(PILImage.open(settings.data_dir / rows["m1.dcm"].display_path), dtype=int)
    m2 = np.asarray(PILImage.open(settings.data_dir / rows["m2.dcm"].display_path), dtype=int)
    assert np.abs(m1 + m2 - 255).max() <= 1


def test_multiframe_dicom_takes_one_frame(
    client: TestClient, staff: dict[str, str], db: Session
) -> None:
    data = dicom_bytes("emri_small.dcm") if _has("emri_small.dcm") else multiframe_dicom_bytes()
    r = _post(client, staff, [("multi.dcm", data)])
    assert r.status_code == 201, r.text
    image = db.scalar(select(Image))
    assert image is not None and int(image.meta.get("NumberOfFrames", 0)) > 1
    assert "frame" in image.meta


def test_png_renamed_dcm_is_read_by_content(
    client: TestClient, staff: dict[str, str], db: Session
) -> None:
    r = _post(client, staff, [("looks_like.dcm", png_bytes(32, seed=9))])
    assert r.status_code == 201, r.text
    image = db.scalar(select(Image))
    assert image is not None and image.meta["source_format"] == "png"


@pytest.mark.parametrize(
    ("bad_name", "bad_data", "needle"),
    [
        ("rtplan.dcm", "rtplan", "no pixel data"),
        ("truncated.dcm", "truncated", "truncated.dcm"),
        ("notes.txt", b"hello, not an image", "unsupported image format"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "broken.png"),
    ],
)
def test_one_bad_file_refuses_the_whole_upload(
    client: TestClient,
    staff: dict[str, str],
    db: Session,
    settings: Settings,
    bad_name: str,
    bad_data: Any,
    needle: str,
) -> None:
    if bad_data == "rtplan":
        bad_data = dicom_bytes("rtplan.dcm")
    elif bad_data == "truncated":
        bad_data = dicom_bytes("CT_small.dcm")[:3000]
    r = _post(client, staff, [("good.png", png_bytes(seed=1)), (bad_name, bad_data)])
    assert r.status_code == 422, r.text
    body = r.json()
    assert needle in body["detail"]
    statuses = {f["filename"]: f["status"] for f in body["errors"]["files"]}
    assert statuses == {"good.png": "not stored", bad_name: "error"}
    assert _count(db) == 0
    assert _stored_files(settings) == []


def test_duplicates_are_recognised_by_content(
    client: TestClient, staff: dict[str, str], db: Session
) -> None:
    data = png_bytes(seed=5)
    first = _post(client, staff, [("a.png", data), ("same-bytes.png", data)]).json()
    assert [f["status"] for f in first["files"]] == ["imported", "duplicate"]
    assert first["files"][0]["image_id"] == first["files"][1]["image_id"]
    second = _post(client, staff, [("renamed.png", data)])
    assert second.status_code == 200
    assert second.json()["files"][0]["status"] == "duplicate"
    assert second.json()["files"][0]["image_id"] == first["files"][0]["image_id"]
    assert _count(db) == 1


def test_zip_with_labels_csv(client: TestClient, staff: dict[str, str], db: Session) -> None:
    archive = zip_bytes(
        {
            "cases/a.png": png_bytes(seed=1),
            "cases/b.png": png_bytes(seed=2),
            "cases/c.dcm": dicom_bytes("MR_small.dcm"),
            "__MACOSX/._a.png": b"junk",
            "labels.csv": b"filename,normal,pneumonia\na.png,1,0\nb.png,0,1\nc.dcm,0,-1\n",
        }
    )
    r = _post(client, staff, [("batch.zip", archive)])
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 3
    labels = {Path(im.source_filename).name: im.labels for im in db.scalars(select(Image))}
    assert labels == {
        "a.png": {"normal": 1, "pneumonia": 0},
        "b.png": {"normal": 0, "pneumonia": 1},
        "c.dcm": {"normal": 0, "pneumonia": 0},  # uncertain (-1) counts as negative
    }
    positive = client.get(URL, params={"label": "pneumonia"}, headers=staff).json()
    assert [Path(i["filename"]).name for i in positive] == ["b.png"]
    mr = client.get(URL, params={"modality": "MR"}, headers=staff).json()
    assert [Path(i["filename"]).name for i in mr] == ["c.dcm"]


def test_separate_labels_csv(client: TestClient, staff: dict[str, str], db: Session) -> None:
    r = _post(client, staff, [("x.png", png_bytes(seed=3))], csv=b"image,effusion\nx.png,1\n")
    assert r.status_code == 201
    image = db.scalar(select(Image))
    assert image is not None and image.labels == {"effusion": 1}
    bad = _post(client, staff, [("y.png", png_bytes(seed=4))], csv=b"image,effusion\ny.png,7\n")
    assert bad.status_code == 422 and "not 0 or 1" in bad.json()["detail"]


@pytest.mark.parametrize(
    ("members", "status", "needle"),
    [
        ({"../evil.png": b"x"}, 422, "path traversal"),
        ({"/abs/evil.png": b"x"}, 422, "absolute path"),
        ({"inner.zip": zip_bytes({"a.png": b"x"})}, 422, "nested archive"),
    ],
)
def test_zip_refusals(
    client: TestClient,
    staff: dict[str, str],
    db: Session,
    members: dict[str, bytes],
    status: int,
    needle: str,
) -> None:
    r = _post(client, staff, [("up.zip", zip_bytes({"ok.png": png_bytes(seed=1), **members}))])
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert _count(db) == 0


def test_zip_limits_on_count_and_uncompressed_size(
    client: TestClient, staff: dict[str, str], db: Session, settings: Settings
) -> None:
    settings.max_zip_files = 2
    many = zip_bytes({f"{i}.png": png_bytes(16, seed=i) for i in range(3)})
    r = _post(client, staff, [("many.zip", many)])
    assert r.status_code == 413 and "at most 2" in r.json()["detail"]
    settings.max_zip_files = 100
    settings.max_zip_uncompressed_mb = 1
    bomb = zip_bytes({"big.png": b"\0" * (3 * 2**20)})  # compresses to a few KiB
    assert len(bomb) < 100_000
    r = _post(client, staff, [("bomb.zip", bomb)])
    assert r.status_code == 413 and "uncompressed" in r.json()["detail"]
    assert _count(db) == 0


def test_images_page_and_upload_form(
    client: TestClient, make_user: Any, login: Any, db: Session
) -> None:
    session = login(make_user("researcher"))
    r = session.client.post(
        "/images",
        files=[
            ("files", ("p.png", png_bytes(seed=1), "image/png")),
            ("files", ("q.png", png_bytes(seed=2), "image/png")),
        ],
        data={"csrf_token": session.csrf},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(r.headers["location"])
    assert "Imported 2 image(s)" in page.text
    ids = [im.id for im in db.scalars(select(Image))]
    assert all(f"/images/{i}/thumb.png" in page.text for i in ids)
    assert client.get(f"/images/{ids[0]}").status_code == 200
    assert client.get(f"/images/{ids[0]}/thumb.png").content.startswith(b"\x89PNG")
    bad = session.client.post(
        "/images",
        files=[("files", ("bad.dcm", b"nope", "application/dicom"))],
        data={"csrf_token": session.csrf},
    )
    assert bad.status_code == 422
    assert "bad.dcm" in bad.text and "Per-file report" in bad.text


def test_raters_cannot_reach_images(
    client: TestClient, make_user: Any, api_headers: Any, db: Session, settings: Settings
) -> None:
    from app.services.catalog.images import import_images

    report = import_images(db, settings, files=[("a.png", png_bytes(seed=1))], actor=None)
    image_id = report.image_ids[0]
    rater = api_headers(make_user("rater"))
    assert client.get(f"/images/{image_id}/display.png", headers=rater).status_code == 403
    assert client.get(URL, headers=rater).status_code == 403
    assert _post(client, rater, [("b.png", png_bytes(seed=2))]).status_code == 403
