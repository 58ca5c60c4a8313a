"""Workers: the server's in-process thread, `radsal worker --once`, the SQLite lease,
PostgreSQL's SKIP LOCKED claims (two workers never take the same task), the heartbeat (a worker
killed mid-task loses its task, a slow but alive one keeps it) and the cap on task attempts."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.auth.passwords import hash_password
from app.config import PROJECT_ROOT, Settings, get_settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade_database
from app.models import Job, JobTask, SaliencyMap, Study, User
from app.models.base import utcnow
from app.services.maps import generation
from app.services.maps.jobs import claim_task, enqueue_generation
from app.services.study.studies import create_study
from app.worker import InProcessWorker, run_pending, worker_lease, worker_name
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


def _queued_study(
    settings: Settings, factory: sessionmaker[Session], tmp: Path, batch_size: int | None = None
) -> int:
    with factory.begin() as db:
        catalog = build_catalog(db, settings, tmp, _Users(db), n_images=3, n_raters=2)
        study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
        enqueue_generation(db, study, catalog.admin, batch_size=batch_size)
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


# ------------------------------------------------------------------ heartbeat and attempts
@dataclass
class LiveDb:
    """A database with real commits shared by several workers (threads or processes)."""

    settings: Settings
    factory: sessionmaker[Session]
    url: str  # what a worker subprocess puts in RADSAL_DATABASE_URL
    dialect: str


@pytest.fixture()
def live_db(database_url: str, tmp_path: Path) -> Iterator[LiveDb]:
    """The test database's engine kind with real commits: a fresh SQLite file, or on
    PostgreSQL a schema of this test's own (the URL carries its search_path to subprocesses).
    Stale after 1 s, a beat every 0.1 s, so the heartbeat tests take seconds."""
    admin: Engine | None = None
    schema = ""
    if database_url.startswith("postgresql"):
        schema = f"radsal_worker_{uuid.uuid4().hex[:10]}"
        admin = make_engine(database_url)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in database_url else "?"
        url = f"{database_url}{sep}options=-csearch_path%3D{schema}"
    else:
        url = f"sqlite:///{tmp_path / 'live.sqlite'}"
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        secret_key="k",
        device="cpu",
        worker="external",
        task_heartbeat_seconds=0.1,
        task_stale_seconds=1.0,
        task_max_attempts=3,
    )
    engine = make_engine(url)
    upgrade_database(engine)
    try:
        yield LiveDb(settings, make_sessionmaker(engine), url, engine.dialect.name)
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def _tasks(factory: sessionmaker[Session], study_id: int) -> list[JobTask]:
    with factory() as db:
        job_id = db.scalar(select(Job.id).where(Job.study_id == study_id))
        return list(
            db.scalars(select(JobTask).where(JobTask.job_id == job_id).order_by(JobTask.id))
        )


def _job(factory: sessionmaker[Session], study_id: int) -> Job:
    with factory() as db:
        job = db.scalar(select(Job).where(Job.study_id == study_id))
        assert job is not None
        return job


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# The worker subprocess: the real `radsal worker --once`, whose saliency engine computes the
# first task normally and then hangs in the second one (a test hook, not production code), so
# the test can kill -9 it in the middle of a task.
_HANGING_WORKER = """
import os, sys, time
import app.worker as worker
real = worker.compute_maps
calls = []
def compute_then_hang(settings, plan):
    calls.append(plan.arm_id)
    if len(calls) == 2:
        with open(os.environ["HANG_MARKER"], "w") as fh:
            fh.write(str(os.getpid()))
        while True:
            time.sleep(0.05)
    return real(settings, plan)
worker.compute_maps = compute_then_hang
from app.cli.main import main
sys.exit(main(["worker", "--once", "--no-progress"]))
"""


@pytest.mark.slow
def test_a_worker_killed_mid_task_loses_it_to_the_next_worker_once_stale(
    live_db: LiveDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, factory = live_db.settings, live_db.factory
    study_id = _queued_study(settings, factory, tmp_path)  # two tasks: one per arm
    marker = tmp_path / "hanging"
    env = {
        **os.environ,
        "RADSAL_DATA_DIR": str(settings.data_dir),
        "RADSAL_DATABASE_URL": live_db.url,
        "RADSAL_DEVICE": "cpu",
        "RADSAL_TASK_HEARTBEAT_SECONDS": "0.1",
        "RADSAL_TASK_STALE_SECONDS": "1",
        "HANG_MARKER": str(marker),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    child = subprocess.Popen(
        [sys.executable, "-c", _HANGING_WORKER],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: marker.exists() or child.poll() is not None, 120, "the worker to hang")
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        first, second = _tasks(factory, study_id)
        assert first.status == "done" and second.status == "running"
        assert second.worker.split(":")[1] == str(child.pid)
        # The hanging worker is alive: its heartbeat thread keeps beating in the real process.
        beat = second.heartbeat_at
        assert beat is not None
        _wait_for(lambda: _tasks(factory, study_id)[1].heartbeat_at != beat, 10, "a beat")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        if child.stderr is not None:
            child.stderr.close()
    assert _maps(factory, study_id) == 3, "the first task's maps are stored"

    if live_db.dialect == "postgresql":
        # Before its heartbeat is stale nobody takes the orphan (its worker might be alive)...
        assert run_pending(factory, settings, stale_after=dt.timedelta(hours=1)) == 0
        orphan = _tasks(factory, study_id)[1]
        assert (orphan.status, orphan.attempts) == ("running", 1)
        # ...then, once the stale timeout has passed, the next worker reclaims it.
        last = orphan.heartbeat_at
        assert last is not None
        _wait_for(
            lambda: utcnow() - last > dt.timedelta(seconds=settings.task_stale_seconds),
            10,
            "the heartbeat to go stale",
        )
    # On SQLite the kernel released the dead worker's lease: the orphan is reclaimed at once.
    computed: list[int] = []
    real = generation.compute_maps

    def counting(s: Settings, plan: Any) -> Any:
        computed.extend(im.id for im in plan.images)
        return real(s, plan)

    monkeypatch.setattr("app.worker.compute_maps", counting)
    assert run_pending(factory, settings) == 3
    assert len(computed) == 3, "only the killed task's maps are computed again"
    first, second = _tasks(factory, study_id)
    assert (second.status, second.attempts) == ("done", 2)
    assert second.worker == worker_name()
    assert _job(factory, study_id).status == "done"
    assert _maps(factory, study_id) == 6


@pytest.mark.slow
def test_a_slow_but_alive_task_is_not_stolen(
    live_db: LiveDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, factory = live_db.settings, live_db.factory
    study_id = _queued_study(settings, factory, tmp_path)  # two tasks: one per arm
    real = generation.compute_maps
    computed: list[tuple[int, int]] = []
    holding, release = threading.Event(), threading.Event()

    def slow_first_task(s: Settings, plan: Any) -> Any:
        computed.extend((plan.arm_id, im.id) for im in plan.images)
        if not holding.is_set():
            holding.set()
            assert release.wait(60), "the test never released the slow task"
        return real(s, plan)

    monkeypatch.setattr("app.worker.compute_maps", slow_first_task)
    results: list[int] = []
    slow = threading.Thread(target=lambda: results.append(run_pending(factory, settings)))
    slow.start()
    try:
        assert holding.wait(60)
        slow_task = _tasks(factory, study_id)[0]
        assert slow_task.status == "running"
        # A second worker polls for three stale periods while the first one computes.
        started = time.monotonic()
        others = 0
        while time.monotonic() - started < 3 * settings.task_stale_seconds:
            others += run_pending(factory, settings, wait=False)
            time.sleep(0.2)
        now = _tasks(factory, study_id)[0]
        assert (now.status, now.worker, now.attempts) == ("running", slow_task.worker, 1)
        assert now.heartbeat_at is not None and slow_task.heartbeat_at is not None
        assert now.heartbeat_at > slow_task.heartbeat_at, "the slow task beats"
        assert utcnow() - now.heartbeat_at < dt.timedelta(seconds=settings.task_stale_seconds)
    finally:
        release.set()
        slow.join(120)
    # PostgreSQL: the second worker took the other arm's task; SQLite: it waited for the lease.
    assert others == (3 if live_db.dialect == "postgresql" else 0)
    assert results and results[0] + others == 6
    assert len(computed) == 6 and set(Counter(computed).values()) == {1}, "each map computed once"
    assert [t.attempts for t in _tasks(factory, study_id)] == [1, 1]
    assert _job(factory, study_id).status == "done"
    assert _maps(factory, study_id) == 6


@pytest.mark.slow
def test_a_worker_that_lost_its_task_while_stalled_does_not_finish_it_twice(
    live_db: LiveDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker frozen past the stale timeout (e.g. a suspended VM) finds its task taken back:
    its late result is not recorded as a second completion, and its heartbeat stops."""
    settings, factory = live_db.settings, live_db.factory
    study_id = _queued_study(settings, factory, tmp_path, batch_size=16)
    real = generation.compute_maps
    holding, release = threading.Event(), threading.Event()

    def frozen_first_task(s: Settings, plan: Any) -> Any:
        if not holding.is_set():
            holding.set()
            assert release.wait(60)
        return real(s, plan)

    monkeypatch.setattr("app.worker.compute_maps", frozen_first_task)
    results: list[int] = []
    stalled = threading.Thread(target=lambda: results.append(run_pending(factory, settings)))
    stalled.start()
    try:
        assert holding.wait(60)
        with factory.begin() as db:  # its worker looked dead long enough: taken back
            task = db.scalars(select(JobTask).where(JobTask.status == "running")).one()
            task.status, task.worker = "queued", ""
            lost_id = task.id
        # Another worker (same process, another thread) finishes it meanwhile.
        taker = threading.Thread(target=lambda: results.append(run_pending(factory, settings)))
        if live_db.dialect == "postgresql":
            taker.start()
            taker.join(120)
            assert _maps(factory, study_id) >= 3
    finally:
        release.set()
        stalled.join(120)
    if live_db.dialect != "postgresql":  # one worker at a time: the taker runs afterwards
        taker.start()
        taker.join(120)
    with factory() as db:
        lost = db.get(JobTask, lost_id)
        assert lost is not None and lost.status == "done" and lost.attempts == 2
        job = db.scalar(select(Job).where(Job.study_id == study_id))
        assert job is not None and (job.status, job.done, job.total) == ("done", 6, 6)
    assert sum(results) == 6, "every map stored once, whoever computed it"
    assert _maps(factory, study_id) == 6


class _Killed(BaseException):
    """Stands in for SIGKILL: not an Exception, so nothing records a failure."""


def test_a_task_that_keeps_crashing_its_worker_fails_the_job_after_the_cap(
    client: TestClient,
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    make_user: Any,
    api_headers: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = build_catalog(db, settings, tmp_path, make_user, n_images=3, n_raters=2)
    study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
    job = enqueue_generation(db, study, catalog.admin)
    db.flush()
    starts: list[int] = []

    def crashes(_s: Settings, plan: Any) -> Any:
        starts.append(plan.arm_id)
        raise _Killed()  # e.g. the kernel's OOM killer, every time on this task

    monkeypatch.setattr("app.worker.compute_maps", crashes)
    assert settings.task_max_attempts == 3
    for _ in range(3):
        with pytest.raises(_Killed):
            run_pending(session_factory, settings, stale_after=dt.timedelta(0))
    first = db.scalars(select(JobTask).where(JobTask.job_id == job.id).order_by(JobTask.id)).first()
    assert first is not None
    db.refresh(first)
    assert (first.status, first.attempts) == ("running", 3)
    # The next worker does not start it a fourth time: the job fails with a clear error.
    assert run_pending(session_factory, settings, stale_after=dt.timedelta(0)) == 0
    assert len(starts) == 3 and len(set(starts)) == 1
    body = client.get(f"/api/v1/jobs/{job.id}", headers=api_headers(catalog.admin)).json()
    assert body["status"] == "failed"
    assert f"Task {first.id} (images " in body["error"]
    assert "crashed its worker 3 times" in body["error"]
    assert f"last worker: {worker_name()}" in body["error"]
    db.refresh(study)
    assert study.status == "draft"
    rows = db.execute(select(JobTask.id, JobTask.status).where(JobTask.job_id == job.id))
    statuses = {task_id: status for task_id, status in rows}
    assert statuses.pop(first.id) == "failed" and set(statuses.values()) == {"cancelled"}
    assert run_pending(session_factory, settings, stale_after=dt.timedelta(0)) == 0


def test_an_orphan_of_a_cancelled_job_closes_the_job(
    db: Session,
    session_factory: sessionmaker[Session],
    settings: Settings,
    make_user: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Cancel lets the running task finish; if its worker dies instead, the next worker closes
    the job as cancelled rather than re-queueing a task nobody will claim."""
    from app.services.maps.jobs import cancel_job, has_open_tasks

    catalog = build_catalog(db, settings, tmp_path, make_user, n_images=3, n_raters=2)
    study = create_study(db, spec=catalog.spec(), actor=catalog.admin)
    job = enqueue_generation(db, study, catalog.admin)
    db.flush()

    def crashes(_s: Settings, _plan: Any) -> Any:
        raise _Killed()

    monkeypatch.setattr("app.worker.compute_maps", crashes)
    with pytest.raises(_Killed):
        run_pending(session_factory, settings)
    db.refresh(job)
    cancel_job(db, job, catalog.admin)
    db.flush()
    assert job.status == "running", "the running task may still finish its chunk"
    assert run_pending(session_factory, settings, stale_after=dt.timedelta(0)) == 0
    db.refresh(job)
    db.refresh(study)
    assert job.status == "cancelled" and study.status == "draft"
    assert not has_open_tasks(db)
