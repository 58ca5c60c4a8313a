"""Generation jobs: progress JSON, failure, cancel, resume after a kill, blinding of map files."""

from __future__ import annotations

import datetime as dt
import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Job, JobTask, SaliencyMap, Study
from app.services.maps import generation
from app.services.maps.jobs import enqueue_generation
from app.services.study.studies import create_study
from app.worker import run_pending
from ml.explain.field import FIELD_SIZE
from tests.app.fixtures_ml import Catalog, build_catalog


@pytest.fixture()
def catalog(db: Session, settings: Settings, tmp_path: Path, make_user: Any) -> Catalog:
    return build_catalog(db, settings, tmp_path, make_user, n_images=5)


@pytest.fixture()
def staff(make_user: Any, api_headers: Any) -> dict[str, str]:
    return api_headers(make_user("admin"))  # type: ignore[no-any-return]


def _study(db: Session, catalog: Catalog, **overrides: Any) -> Study:
    return create_study(db, spec=catalog.spec(**overrides), actor=catalog.admin)


def _maps(db: Session, study: Study) -> list[SaliencyMap]:
    arm_ids = [a.id for a in study.arms]
    return list(db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id.in_(arm_ids))))


def _assert_each_map_once(db: Session, study: Study, settings: Settings) -> None:
    maps = _maps(db, study)
    keys = Counter((m.arm_id, m.image_id, m.target) for m in maps)
    assert len(keys) == len(study.arms) * len(study.images)
    assert set(keys.values()) == {1}
    files = [p for p in (settings.data_dir / "maps").rglob("*") if p.is_file()]
    assert len(files) == 2 * len(maps), "raw .npy and field .npy per map, no more (no PNG)"
    assert {p.suffix for p in files} == {".npy"}


def test_job_json_and_progress_callback(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin, batch_size=2)
    db.flush()
    queued = client.get(f"/api/v1/jobs/{job.id}", headers=staff).json()
    assert {k: queued[k] for k in ("status", "done", "total", "study_id", "kind")} == {
        "status": "queued",
        "done": 0,
        "total": 10,
        "study_id": study.id,
        "kind": "generate_maps",
    }
    assert set(queued) >= {"id", "error", "rate", "eta_seconds"}
    assert len(db.scalars(select(JobTask).where(JobTask.job_id == job.id)).all()) == 6  # 2 arms x 3
    seen: list[tuple[int, int]] = []
    computed = run_pending(session_factory, settings, progress=lambda d, t: seen.append((d, t)))
    assert computed == 10
    assert seen[-1] == (10, 10) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    done = client.get(f"/api/v1/jobs/{job.id}", headers=staff).json()
    assert done["status"] == "done" and done["done"] == 10 and done["eta_seconds"] is None
    assert done["rate"] is not None and done["rate"] > 0
    _assert_each_map_once(db, study, settings)

    m = _maps(db, study)[0]
    assert m.provenance["method"] == "gradient" and len(m.provenance["checkpoint_sha256"]) == 64
    assert m.provenance["postprocess"]["mode"] == "clip_std"
    assert set(m.prediction["probs"]) == {"normal", "pneumonia"}
    assert 0.0 <= m.metrics["gini"] <= 1.0 and m.compute_ms > 0

    page = client.get(f"/jobs/{job.id}", headers=staff)
    assert page.status_code == 200 and "10 / 10" in page.text
    assert client.get("/jobs", headers=staff).status_code == 200

    # Everything exists: a new generation job has nothing to do.
    study.status = "draft"
    empty = enqueue_generation(db, study, catalog.admin)
    assert (empty.total, empty.status) == (0, "done")


def test_map_files_do_not_reveal_the_arm(
    catalog: Catalog, db: Session, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """Random file names; per image both arms' fields have one length and header; no rendered
    PNG is stored (viewers colour the field; a PNG is rendered from it on demand)."""
    study = _study(db, catalog, saliency={"colormap": "viridis"})
    enqueue_generation(db, study, catalog.admin)
    run_pending(session_factory, settings)
    maps = _maps(db, study)
    assert maps
    arm_ids = {str(a.id) for a in study.arms}
    by_image: dict[int, list[SaliencyMap]] = {}
    for m in maps:
        by_image.setdefault(m.image_id, []).append(m)
        for rel in (m.raw_path, m.field_path):
            name = Path(rel).stem
            assert len(name) == 32 and name not in arm_ids
    for pair in by_image.values():
        lengths, heads = set(), set()
        for m in pair:
            data = (settings.data_dir / m.field_path).read_bytes()
            lengths.add(len(data))
            heads.add(data[:128])
            field = np.load(io.BytesIO(data))
            assert field.dtype == np.uint8 and field.shape == (FIELD_SIZE, FIELD_SIZE)
            raw = np.load(settings.data_dir / m.raw_path)
            assert raw.dtype == np.float16 and raw.shape == (32, 32)
        assert len(pair) == 2 and len(lengths) == 1 and len(heads) == 1
    map_dirs = {(settings.data_dir / m.field_path).parent for m in maps}
    assert not [p for d in map_dirs for p in d.glob("*.png")], "no PNG is written for a map"


def test_failure_is_recorded_and_the_study_returns_to_draft(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr("app.worker.compute_maps", boom)
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin)
    run_pending(session_factory, settings)
    body = client.get(f"/api/v1/jobs/{job.id}", headers=staff).json()
    assert body["status"] == "failed" and "out of memory" in body["error"]
    db.refresh(study)
    assert study.status == "draft"
    assert "out of memory" in client.get(f"/studies/{study.id}", headers=staff).text
    statuses = set(db.scalars(select(JobTask.status).where(JobTask.job_id == job.id)))
    assert statuses <= {"failed", "cancelled"}


def test_cancel_drops_queued_work(
    client: TestClient,
    staff: dict[str, str],
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin, batch_size=1)
    db.flush()
    run_pending(session_factory, settings, max_tasks=2)
    r = client.post(f"/api/v1/jobs/{job.id}/cancel", headers=staff)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert r.json()["done"] == 2
    assert run_pending(session_factory, settings) == 0
    db.refresh(study)
    assert study.status == "draft"
    assert len(_maps(db, study)) == 2
    assert client.post(f"/api/v1/jobs/{job.id}/cancel", headers=staff).status_code == 409
    # Generating again computes only the 8 missing maps.
    again = client.post(f"/api/v1/studies/{study.id}/generate", headers=staff).json()
    assert again["total"] == 8
    assert run_pending(session_factory, settings) == 8
    _assert_each_map_once(db, study, settings)


def test_worker_killed_between_tasks_resumes(
    catalog: Catalog, db: Session, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin, batch_size=2)
    db.flush()
    assert run_pending(session_factory, settings, max_tasks=2) == 4  # then "killed"
    assert run_pending(session_factory, settings) == 6
    db.refresh(job)
    assert (job.status, job.done, job.total) == ("done", 10, 10)
    _assert_each_map_once(db, study, settings)


class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing records a failure."""


def test_worker_killed_inside_a_task_resumes_without_recomputing(
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin, batch_size=3)
    db.flush()
    real = generation.compute_maps
    calls: list[int] = []
    killed: list[bool] = []

    def dies_on_second_task(settings: Settings, plan: Any) -> Any:
        calls.append(len(plan.images))
        if len(calls) == 2 and not killed:
            killed.append(True)
            raise _Killed()
        return real(settings, plan)

    monkeypatch.setattr("app.worker.compute_maps", dies_on_second_task)
    with pytest.raises(_Killed):
        run_pending(session_factory, settings)
    running = db.scalars(select(JobTask).where(JobTask.status == "running")).all()
    assert len(running) == 1, "the killed task is left running with its heartbeat"
    assert len(_maps(db, study)) == 3
    calls.clear()
    # The orphan is reclaimed: at once on SQLite (the lease proves its worker is gone), on
    # PostgreSQL once its heartbeat is stale (here: immediately).
    assert run_pending(session_factory, settings, stale_after=dt.timedelta(0)) == 7
    assert sum(calls) == 7, "finished maps are not recomputed"
    db.refresh(job)
    assert job.status == "done" and job.done == 10
    _assert_each_map_once(db, study, settings)


def test_admin_dashboard_counts_and_recent_activity(
    client: TestClient,
    login: Any,
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin)
    run_pending(session_factory, settings)
    login(catalog.admin)
    page = client.get("/admin")
    assert page.status_code == 200
    text = page.text
    for link in ("/admin/users", "/checkpoints", "/images", "/studies", f"/jobs/{job.id}"):
        assert f'href="{link}"' in text
    assert "study.created" in text and "checkpoint.imported" in text
    assert '<span class="stat-value">2</span><span class="stat-label">checkpoints</span>' in text
    client.cookies.clear()
    login(catalog.raters[0])
    assert client.get("/admin").status_code == 403


def test_job_pages_and_api_are_staff_only(
    client: TestClient, api_headers: Any, catalog: Catalog, db: Session
) -> None:
    study = _study(db, catalog)
    job = enqueue_generation(db, study, catalog.admin)
    db.flush()
    rater = api_headers(catalog.raters[0])
    assert client.get(f"/api/v1/jobs/{job.id}", headers=rater).status_code == 403
    assert client.post(f"/api/v1/jobs/{job.id}/cancel", headers=rater).status_code == 403
    assert client.get("/api/v1/jobs/999999", headers=api_headers(catalog.admin)).status_code == 404
    assert db.get(Job, job.id) is not None


def _ground_truth_study(
    db: Session,
    paths: list[Path],
    labels: list[dict[str, int]],
    masks: list[Path | None],
    catalog: Catalog,
    settings: Settings,
) -> Study:
    from app.services.catalog.images import import_image_paths

    images = import_image_paths(db, settings, paths, labels, masks, catalog.admin)
    assert [im.labels for im in images] == labels
    return _study(
        db, catalog, image_ids=[im.id for im in images], saliency={"target": "ground_truth"}
    )


def test_ground_truth_target_and_mask_metrics(
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    tmp_path: Path,
) -> None:
    from tests.app.fixtures_ml import mask_png_bytes, png_bytes

    paths, masks = [], []
    for k in range(2):
        p = tmp_path / "src" / f"lesion{k}.png"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(png_bytes(40, seed=100 + k))
        m = tmp_path / "src" / f"lesion{k}_mask.png"
        m.write_bytes(mask_png_bytes(40))
        paths.append(p)
        masks.append(m)
    labels = [{"normal": 0, "pneumonia": 1}, {"normal": 1, "pneumonia": 0}]
    study = _ground_truth_study(db, paths, labels, [masks[0], None], catalog, settings)
    enqueue_generation(db, study, catalog.admin)
    run_pending(session_factory, settings)
    maps = {(m.image_id, m.arm_id): m for m in _maps(db, study)}
    first, second = (si.image_id for si in study.images)
    for arm in study.arms:
        assert maps[(first, arm.id)].prediction["target_classes"] == ["pneumonia"]
        assert maps[(second, arm.id)].prediction["target_classes"] == ["normal"]
        assert maps[(first, arm.id)].prediction["target_source"] == "ground_truth"
        assert maps[(first, arm.id)].target == "ground_truth"
    # Mask metrics exist exactly for the image that has a mask.
    for arm in study.arms:
        energy = maps[(first, arm.id)].metrics["mask_energy"]
        assert energy is not None and 0.0 <= energy <= 1.0
        assert maps[(first, arm.id)].metrics["pointing"] in (0.0, 1.0)
        assert maps[(second, arm.id)].metrics["mask_energy"] is None


def test_real_chest_xrays_with_box_masks(
    nih_dir: str,
    catalog: Catalog,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    import csv

    root = Path(nih_dir)
    with (root / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["box_mask"]][:2]
    paths = [root / r["file"] for r in rows]
    masks: list[Path | None] = [root / r["box_mask"] for r in rows]
    labels = [{"normal": 1 - int(r["label"]), "pneumonia": int(r["label"])} for r in rows]
    study = _ground_truth_study(db, paths, labels, masks, catalog, settings)
    enqueue_generation(db, study, catalog.admin)
    assert run_pending(session_factory, settings) == 4
    for m in _maps(db, study):
        assert m.metrics["mask_energy"] is not None and 0.0 <= m.metrics["mask_energy"] <= 1.0
        assert m.metrics["pointing"] in (0.0, 1.0)
