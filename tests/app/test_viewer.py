"""The rater viewer's files: full-depth sources, fixed-format map fields, one colormap table."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Image, Trial
from app.services.catalog.images import import_images
from app.services.maps.jobs import enqueue_generation
from app.services.reading import viewer
from app.services.study.studies import create_study, open_study
from app.worker import run_pending
from ml.data.synthetic import render_case
from ml.data.synthetic_dicom import write_case
from ml.explain.field import FIELD_SIZE
from tests.app.fixtures_ml import Catalog, build_catalog

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def catalog(db: Session, settings: Settings, tmp_path: Path, make_user: Any) -> Catalog:
    return build_catalog(db, settings, tmp_path, make_user, n_images=4)


def _ct_bytes(tmp_path: Path, seed: int) -> bytes:
    img, _ = render_case("nodule", 48, np.random.default_rng(seed))
    return write_case(tmp_path / f"ct{seed}.dcm", img, "ct").read_bytes()


def _open_generated(
    db: Session, catalog: Catalog, session_factory: sessionmaker[Session], settings: Settings,
    image_ids: list[int],
) -> Any:  # fmt: skip
    study = create_study(db, spec=catalog.spec(image_ids=image_ids), actor=catalog.admin)
    enqueue_generation(db, study, catalog.admin)
    db.commit()
    assert run_pending(session_factory, settings) == 2 * len(image_ids)
    db.expire_all()
    open_study(db, study, catalog.admin)
    db.flush()
    return study


def test_colormap_tables_shipped_to_the_browser_are_ml_tables() -> None:
    from scripts.gen_colormaps import source

    shipped = (ROOT / "static" / "js" / "colormaps.js").read_text()
    assert shipped == source(), "run: python scripts/gen_colormaps.py"
    assert viewer.FIELD_SIZE == FIELD_SIZE


def test_every_map_of_a_generated_study_has_one_length_header_and_metadata(
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    client: TestClient,
    login: Any,
) -> None:
    """Blinding, over HTTP as the viewer fetches it: for every trial of every rater, map A and
    map B (and so every map of the study) have the same length, the same bytes up to the
    payload, the same response headers apart from the URL-bound ETag; the viewer's JSON and
    URLs name no arm, checkpoint or method, and depend on the image only."""
    ct = import_images(
        db, settings, files=[("ct.dcm", _ct_bytes(tmp_path, 1))], actor=catalog.admin
    ).image_ids
    study = _open_generated(db, catalog, session_factory, settings, catalog.image_ids + ct)
    forbidden = re.compile(r"arm|checkpoint|method|standard|dual|gradient|sha|route", re.I)
    lengths, headers, shapes = set(), set(), set()
    by_image: dict[int, set[str]] = {}
    trials = db.scalars(select(Trial).where(Trial.study_id == study.id)).all()
    assert len(trials) == 3 * 5
    for rater in catalog.raters:
        login(rater)
        for trial in (t for t in trials if t.rater_id == rater.id):
            res = client.get(f"/api/v1/trials/{trial.token}/viewer")
            assert res.status_code == 200, res.text
            spec = res.json()
            text = res.text.replace(trial.token, "TOKEN")
            following = spec["next_spec_url"]
            if following is not None:  # random tokens may spell "sha" or "arm" by chance
                text = text.replace(following, "/api/v1/trials/NEXT/viewer")
            assert not forbidden.search(text), text
            assert following is None or re.fullmatch(r"/api/v1/trials/[\w-]+/viewer", following)
            by_image.setdefault(trial.image_id, set()).add(
                text.replace('"/api/v1/trials/NEXT/viewer"', "null")
            )
            assert spec["maps"] == {
                "a": f"/t/{trial.token}/view/a",
                "b": f"/t/{trial.token}/view/b",
            }
            for slot in ("a", "b"):
                got = client.get(spec["maps"][slot])
                assert got.status_code == 200
                lengths.add(len(got.content))
                headers.add(got.content[:128])
                shapes.add(
                    tuple(sorted((k, v) for k, v in got.headers.items() if k.lower() != "etag"))
                )
                assert np.load(io.BytesIO(got.content)).shape == (FIELD_SIZE, FIELD_SIZE)
                again = client.get(
                    spec["maps"][slot], headers={"If-None-Match": got.headers["etag"]}
                )
                assert again.status_code == 304
            assert client.get(spec["image"]["url"]).status_code == 200
    # Another rater's token is "not found", like a token that does not exist.
    other = next(r for r in catalog.raters if r.id != trials[0].rater_id)
    login(other)
    assert client.get(f"/t/{trials[0].token}/view/a").status_code == 404
    assert client.get(f"/api/v1/trials/{trials[0].token}/viewer").status_code == 404
    assert all(len(texts) == 1 for texts in by_image.values())
    assert lengths == {128 + FIELD_SIZE * FIELD_SIZE}
    assert len(headers) == 1 and len(shapes) == 1
    assert dict(shapes.pop())["content-type"] == "application/octet-stream"


def test_ct_source_is_stored_in_hu_with_its_windows_and_ct_presets(
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
    client: TestClient,
    login: Any,
) -> None:
    data = _ct_bytes(tmp_path, 2)
    (image_id,) = import_images(
        db, settings, files=[("chest.dcm", data)], actor=catalog.admin
    ).image_ids
    image = db.get(Image, image_id)
    assert image is not None and image.source_path is not None
    ds = pydicom.dcmread(io.BytesIO(data))
    hu = ds.pixel_array.astype(np.int16) + int(ds.RescaleIntercept)
    stored = np.load(settings.data_dir / image.source_path)
    assert stored.dtype == np.int16 and np.array_equal(stored, hu)
    assert image.meta["viewer"]["window"] == [-600.0, 1500.0]
    assert image.meta["viewer"]["units"] == "HU" and image.meta["viewer"]["invert"] is False
    # An 8-bit PNG keeps no separate source: the display PNG is every level it has.
    assert all(im.source_path is None for im in catalog.images)

    study = _open_generated(db, catalog, session_factory, settings, [image_id])
    trial = db.scalars(select(Trial).where(Trial.study_id == study.id)).first()
    assert trial is not None
    login(next(r for r in catalog.raters if r.id == trial.rater_id))
    spec = client.get(f"/api/v1/trials/{trial.token}/viewer").json()
    assert spec["image"]["format"] == "npy" and spec["image"]["units"] == "HU"
    assert spec["image"]["window"] == {"center": -600.0, "width": 1500.0}
    names = [p["name"] for p in spec["image"]["presets"]]
    assert names[:2] == ["DICOM window 1", "DICOM window 2"]
    assert {"Lung", "Mediastinum", "Bone", "Brain"} <= set(names)
    assert spec["finding"] == "each model's own top prediction"
    got = client.get(spec["image"]["url"])
    assert got.headers["content-type"] == "application/octet-stream"
    assert np.array_equal(np.load(io.BytesIO(got.content)), hu)
