"""Workers: the server's in-process thread, `radsal worker --once`, the SQLite lease and
PostgreSQL's SKIP LOCKED claims (two workers never take the same task)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.auth.passwords import hash_password
from app.config import Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade_database
from app.models import Job, JobTask, SaliencyMap, Study, User
from app.services.maps.jobs import claim_task, enqueue_generation
from app.services.study.studies import create_study
from app.worker import InProcessWorker, run_pending, worker_lease
from tests.app.conftest import TEST_PASSWORD
from tests.app.fixtures_ml import build_catalog


class _Users:
    """make_user for a database outside the test transaction."""

    def __init__(self, db: Session) -> None:
        self.db, self.n = db, 0

    def __call__(self, role: str) -> User:
        self.n += 1
        user = User(
            username=f"{role}{self.n}", role=role, password_hash=hash_password(TEST_PASSWORD)
        )
        self.db.add(user)
        self.db.flush()
        return user


@pytest.fixture()
def sqlite_env(tmp_path: Path) -> Iterator[tuple[Settings, Engine, sessionmaker[Session]]]:
    """A real SQLite file (real commits, several connections), as a server would have."""
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'radsal.sqlite'}",
        secret_key="k",
        device="cpu",
        worker="inprocess",
    )
    engine = make_engine(settings.resolved_database_url())
    upgrade_database(engine)
    yield settings, engine, make_sessionmaker(engine)
    engine.dispose()


def _queued_study(settings: Settings, factory: sessionmaker[Session], tmp: Path) -> int:
    with factory.begin() as db:
        catalog = build_catalog(db, settings, tmp, _Users(db), n_images=3, n_raters=2)
        study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
        enqueue_generation(db, study, catalog.admin)
        return study.id


def _maps(factory: sessionmaker[Session], study_id: int) -> int:
    with factory() as db:
        study = db.get(Study, study_id)
        assert study is not None
        arm_ids = [a.id for a in study.arms]
        return len(db.scalars(select(SaliencyMap.id).where(SaliencyMap.arm_id.in_(arm_ids))).all())


@pytest.mark.slow
def test_in_process_worker_runs_jobs_for_the_server(
    sqlite_env: tuple[Settings, Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    settings, engine, factory = sqlite_env
    study_id = _queued_study(settings, factory, tmp_path)
    app = create_app(settings, engine=engine, migrate=False, start_worker=True)
    with factory.begin() as db:
        admin = db.scalar(select(User).where(User.role == "admin"))
        assert admin is not None
        import datetime as dt

        from app.auth.sessions import issue_session

        token = issue_session(db, admin, kind="api", lifetime=dt.timedelta(hours=1)).token
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:  # the lifespan starts InProcessWorker
        with factory() as db:
            job_id = db.scalar(select(Job.id).where(Job.study_id == study_id))
        deadline = time.monotonic() + 120
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
            if body["status"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert body["status"] == "done", body
        opened = client.post(f"/api/v1/studies/{study_id}/open", headers=headers)
        assert opened.status_code == 200 and opened.json()["status"] == "open"
    assert _maps(factory, study_id) == 6


@pytest.mark.slow
def test_in_process_worker_reclaims_an_orphaned_task(
    sqlite_env: tuple[Settings, Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    settings, _engine, factory = sqlite_env
    study_id = _queued_study(settings, factory, tmp_path)
    with factory.begin() as db:  # a worker died holding every task of the job
        for task in db.scalars(select(JobTask)):
            task.status, task.worker = "running", "dead-host:1:1"
    worker = InProcessWorker(factory, settings, poll_seconds=0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _maps(factory, study_id) < 6:
            time.sleep(0.2)
    finally:
        worker.stop()
    assert _maps(factory, study_id) == 6
    with factory() as db:
        assert db.scalar(select(Job.status).where(Job.study_id == study_id)) == "done"


def test_worker_start_stop_is_idempotent(
    sqlite_env: tuple[Settings, Engine, sessionmaker[Session]],
) -> None:
    settings, _engine, factory = sqlite_env
    worker = InProcessWorker(factory, settings, poll_seconds=0.05)
    worker.start()
    worker.start()
    assert worker.running
    worker.stop()
    assert not worker.running


@pytest.mark.slow
def test_cli_worker_once_drains_the_queue(
    sqlite_env: tuple[Settings, Engine, sessionmaker[Session]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli.main import main

    settings, _engine, factory = sqlite_env
    study_id = _queued_study(settings, factory, tmp_path)
    monkeypatch.setenv("RADSAL_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RADSAL_DATABASE_URL", settings.resolved_database_url())
    monkeypatch.setenv("RADSAL_DEVICE", "cpu")
    get_settings.cache_clear()
    try:
        assert main(["worker", "--once", "--no-progress"]) == 0
    finally:
        get_settings.cache_clear()
    assert "computed 6 map(s)" in capsys.readouterr().err
    assert _maps(factory, study_id) == 6


def test_a_second_sqlite_worker_waits_for_the_lease(
    sqlite_env: tuple[Settings, Engine, sessionmaker[Session]], tmp_path: Path
) -> None:
    settings, _engine, factory = sqlite_env
    study_id = _queued_study(settings, factory, tmp_path)
    with worker_lease(settings, factory) as granted:
        assert granted
        assert run_pending(factory, settings, wait=False) == 0  # busy: returns at once
        result: list[int] = []
        waiter = threading.Thread(target=lambda: result.append(run_pending(factory, settings)))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and not result, "the second worker waits"
        assert _maps(factory, study_id) == 0
    waiter.join(120)
    assert result == [6]


def test_two_postgres_workers_never_claim_the_same_task(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SKIP LOCKED claims are a PostgreSQL feature; SQLite runs one worker")
    factory = make_sessionmaker(engine)
    with factory.begin() as db:
        job = Job(kind="test_claims", status="queued", total=40)
        db.add(job)
        db.flush()
        db.add_all(JobTask(job_id=job.id, payload={"n": n}, size=1) for n in range(40))
        job_id = job.id
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    barrier = threading.Barrier(2)

    def work(name: str) -> None:
        barrier.wait()
        while True:
            with factory.begin() as db:  # each thread: its own connection and transaction
                task = claim_task(db, name)
                if task is None:
                    return
                claimed[name].append(task.id)
                time.sleep(0.01)  # hold the row lock while the other worker claims

    threads = [threading.Thread(target=work, args=(n,)) for n in claimed]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        both = claimed["w1"] + claimed["w2"]
        assert len(both) == 40 and len(set(both)) == 40
        assert claimed["w1"] and claimed["w2"], "both workers got work"
    finally:
        with factory.begin() as db:
            db.execute(delete(JobTask).where(JobTask.job_id == job_id))
            db.execute(delete(Job).where(Job.id == job_id))
