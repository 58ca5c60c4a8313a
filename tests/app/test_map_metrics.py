"""The study's map-metrics panel and JSON (issue 17): per-arm means with case-bootstrap CIs,
paired differences with Wilcoxon p, the shuffled-mask null, degenerate maps excluded."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import SaliencyMap, Study, Trial
from app.services.catalog.images import import_image_paths
from app.services.maps.jobs import enqueue_generation
from app.services.study.studies import create_study
from app.storage import Storage
from app.worker import run_pending
from tests.app.fixtures_ml import Catalog, build_catalog, png_bytes

H, W = 40, 48  # not square: masks are letterboxed like the images


@pytest.fixture()
def catalog(db: Session, settings: Settings, tmp_path: Path, make_user: Any) -> Catalog:
    return build_catalog(db, settings, tmp_path, make_user, n_images=4)


@pytest.fixture()
def staff(make_user: Any, api_headers: Any) -> dict[str, str]:
    return api_headers(make_user("admin"))  # type: ignore[no-any-return]


def _mask_png() -> bytes:
    arr = np.zeros((H, W), dtype=np.uint8)
    arr[10:22, 12:26] = 255
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _masked_study(
    db: Session, settings: Settings, catalog: Catalog, tmp_path: Path, **overrides: Any
) -> Study:
    """Five images, every one with the *same* lesion mask: a map scored against another case's
    mask then scores exactly as against its own, which pins the shuffled-mask computation to the
    pipeline's (same letterbox, post-processing and metrics)."""
    src = tmp_path / "masked"
    src.mkdir()
    paths, masks = [], []
    for k in range(5):
        (src / f"m{k}.png").write_bytes(png_bytes(H, seed=200 + k, width=W))
        (src / f"m{k}_mask.png").write_bytes(_mask_png())
        paths.append(src / f"m{k}.png")
        masks.append(src / f"m{k}_mask.png")
    labels = [{"normal": k % 2, "pneumonia": 1 - k % 2} for k in range(5)]
    images = import_image_paths(db, settings, paths, labels, masks, catalog.admin)
    spec = catalog.spec(image_ids=[im.id for im in images], **overrides)
    return create_study(db, spec=spec, actor=catalog.admin)


def _generate(db: Session, study: Study, catalog: Catalog, sf: Any, settings: Settings) -> None:
    enqueue_generation(db, study, catalog.admin)
    run_pending(sf, settings)


def _metrics(client: TestClient, staff: dict[str, str], study: Study) -> dict[str, Any]:
    resp = client.get(f"/api/v1/studies/{study.id}/map-metrics", headers=staff)
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_no_maps_yet_is_a_message_not_an_error(
    client: TestClient, staff: dict[str, str], catalog: Catalog, db: Session
) -> None:
    study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
    body = _metrics(client, staff, study)
    assert body["available"] is False and body["maps"] == 0 and body["maps_expected"] == 8
    assert body["arms"] == [] and body["paired"] == []
    assert any("No maps yet" in n for n in body["notes"])
    page = client.get(f"/studies/{study.id}", headers=staff)
    assert page.status_code == 200
    assert f'data-map-metrics-src="/studies/{study.id}/map-metrics"' in page.text
    assert "/static/js/map_metrics.js" in page.text
    panel = client.get(f"/studies/{study.id}/map-metrics", headers=staff)
    assert panel.status_code == 200 and "No maps yet" in panel.text
    assert "data-map-metrics-src" not in panel.text  # the real panel, not the placeholder


def test_statistics_with_masks_nulls_and_a_degenerate_map(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    study = _masked_study(db, settings, catalog, tmp_path)
    # Two randomised catch trials of the first arm: their re-initialised-model maps are a null.
    catch_images: set[int] = set()
    for trial in db.scalars(select(Trial).where(Trial.study_id == study.id).order_by(Trial.id)):
        if len(catch_images) < 2 and trial.image_id not in catch_images:
            trial.protocol = {"catch": "randomised", "catch_arm": study.arms[0].id}
            catch_images.add(trial.image_id)
    db.flush()
    _generate(db, study, catalog, session_factory, settings)
    body = _metrics(client, staff, study)
    assert body["available"] is True and body["maps"] == body["maps_expected"] == 10
    assert {"mask_energy", "pointing", "gini", "entropy", "tv"} <= set(body["metrics"])
    arms = {a["arm"]: a for a in body["arms"]}
    real = [a for a in body["arms"] if a["kind"] == "model"]
    assert len(real) == 2
    for a in real:
        assert a["n_cases"] == 5 and a["n_degenerate"] == 0
        shuffled = arms[f"{a['arm']} · shuffled masks"]
        assert shuffled["kind"] == "null: shuffled masks" and shuffled["n_cases"] == 5
        for m in ("mask_energy", "gini"):
            s = a["metrics"][m]
            assert s["n"] == 5 and s["ci_low"] <= s["mean"] <= s["ci_high"]
    # Stored metrics are the per-case values: the mean is their mean.
    first = study.arms[0]
    stored = db.scalars(
        select(SaliencyMap).where(
            SaliencyMap.arm_id == first.id, SaliencyMap.target.not_like("%|%")
        )
    ).all()
    name = real[0]["arm"]
    assert arms[name]["metrics"]["gini"]["mean"] == pytest.approx(
        np.mean([m.metrics["gini"] for m in stored])
    )
    # Identical masks: the shuffled baseline equals the arm case by case.
    pairs = {(p["a"], p["b"], p["metric"]): p for p in body["paired"]}
    same = pairs[(f"{name} · shuffled masks", name, "mask_energy")]
    assert same["n"] == 5 and same["mean_diff"] == pytest.approx(0.0, abs=1e-6)
    between = pairs[(real[0]["arm"], real[1]["arm"], "gini")]
    assert between["n"] == 5 and 0.0 <= between["wilcoxon_p"] <= 1.0
    assert between["ci_low"] <= between["mean_diff"] <= between["ci_high"]
    assert body["mask_area_mean"] is not None and 0.0 < body["mask_area_mean"] < 1.0
    null = arms[f"{name} · re-initialised (catch-trial maps)"]
    assert null["kind"] == "null: untrained" and null["n_cases"] == 2
    assert pairs[(null["arm"], name, "gini")]["n"] == 2
    assert any("radsal saliency" in n for n in body["notes"])

    # An all-zero map is counted and excluded, with a note; its pairs lose that case.
    victim = stored[0]
    path = Storage(settings.data_dir).path(victim.raw_path)
    np.save(path, np.zeros(np.load(path).shape, dtype=np.float16))
    body = _metrics(client, staff, study)
    arm = {a["arm"]: a for a in body["arms"]}[name]
    assert arm["n_degenerate"] == 1 and arm["degenerate_cases"] == [str(victim.image_id)]
    assert arm["metrics"]["gini"]["n"] == 4
    assert any(n.startswith(f"{name}: 1 of 5 maps are degenerate") for n in body["notes"])
    between = {(p["a"], p["b"], p["metric"]): p for p in body["paired"]}[
        (real[0]["arm"], real[1]["arm"], "gini")
    ]
    assert between["n"] == 4

    # A raw file gone missing is noted, never a 500: the stored metrics still count.
    other = db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id == study.arms[1].id)).first()
    assert other is not None
    Storage(settings.data_dir).path(other.raw_path).unlink()
    body = _metrics(client, staff, study)
    assert any(n.startswith("The raw files of 1 map(s) could not be read") for n in body["notes"])
    assert {a["arm"]: a for a in body["arms"]}[real[1]["arm"]]["metrics"]["gini"]["n"] == 5

    panel = client.get(f"/studies/{study.id}/map-metrics", headers=staff).text
    assert 'data-map-metrics="arms"' in panel and 'data-map-metrics="paired"' in panel
    assert "shuffled masks" in panel and "1 of 5 maps are degenerate" in panel


def test_one_arm_with_maps_and_no_masks_explains_what_is_missing(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
    _generate(db, study, catalog, session_factory, settings)
    second = study.arms[1].id
    for m in db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id == second)):
        db.delete(m)  # as if only the first arm's maps had been generated so far
    db.flush()
    body = _metrics(client, staff, study)
    assert body["available"] is True and [a["kind"] for a in body["arms"]] == ["model"]
    assert (body["maps"], body["maps_expected"]) == (4, 8)
    assert body["paired"] == [] and body["mask_area_mean"] is None
    assert "mask_energy" not in body["metrics"] and "gini" in body["metrics"]
    assert body["notes"][0] == "4 of 8 maps exist so far: statistics use those."
    assert any("One arm" in n for n in body["notes"])
    assert any("ground-truth mask" in n for n in body["notes"])
    page = client.get(f"/studies/{study.id}/map-metrics", headers=staff)
    assert page.status_code == 200 and "One arm has maps" in page.text


def test_map_metrics_are_staff_only(
    client: TestClient,
    catalog: Catalog,
    db: Session,
    api_headers: Any,
    staff: dict[str, str],
) -> None:
    study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
    rater = api_headers(catalog.raters[0])
    assert client.get(f"/api/v1/studies/{study.id}/map-metrics", headers=rater).status_code == 403
    assert client.get(f"/studies/{study.id}/map-metrics", headers=rater).status_code in (303, 403)
    assert client.get("/api/v1/studies/999999/map-metrics", headers=staff).status_code == 404
    assert client.get("/api/v1/studies/abc/map-metrics", headers=staff).status_code in (404, 422)
