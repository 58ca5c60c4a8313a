"""Background worker: claims generation tasks and runs them, in-process or as `radsal worker`.

Each task runs in its own short transaction sequence: claim (commit), compute (no lock held),
store maps and mark done (commit). A worker that dies leaves its task "running" with a stale
heartbeat; the next worker puts it back in the queue and, because maps are keyed by
arm × image × target, only the missing maps are computed.

SQLite allows one writer at a time, so on SQLite workers take a lease first (an exclusive
``flock`` on ``<data dir>/worker.lock``): a second worker waits. Holding the lease also proves
no other worker is alive, so every "running" task is an orphan and is reclaimed at once. On
PostgreSQL any number of workers run side by side (claims use SKIP LOCKED) and only tasks
whose heartbeat is older than ``stale_after`` are reclaimed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Job, JobTask
from app.services.maps import jobs as job_service
from app.services.maps.generation import compute_maps, plan_task, store_maps

log = logging.getLogger("radsal.worker")

Progress = Callable[[int, int], None]
DEFAULT_STALE_AFTER = dt.timedelta(minutes=5)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _is_sqlite(factory: sessionmaker[Session]) -> bool:
    with factory() as db:
        return db.get_bind().dialect.name == "sqlite"


@contextlib.contextmanager
def worker_lease(
    settings: Settings, factory: sessionmaker[Session], *, wait: bool = True
) -> Iterator[bool]:
    """Yield True while this worker may run (always on PostgreSQL; holding the lock on SQLite).

    With ``wait=False`` a busy lease yields False immediately instead of blocking.
    """
    if not _is_sqlite(factory):
        yield True
        return
    path = Path(settings.data_dir) / "worker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fh.fileno(), flags)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def run_one(
    factory: sessionmaker[Session], settings: Settings, name: str
) -> tuple[JobTask | None, int]:
    """Claim and run one task. Returns (task or None when idle, maps computed)."""
    with factory.begin() as db:
        task = job_service.claim_task(db, name)
        if task is None:
            return None, 0
        task_id = task.id
    try:
        # Read, compute with no transaction open (SQLite writers are not blocked), then write.
        with factory.begin() as db:
            task = db.get(JobTask, task_id)
            assert task is not None
            plan = plan_task(db, task)
        rows, _ms = compute_maps(settings, plan)
        with factory.begin() as db:
            task = db.get(JobTask, task_id)
            assert task is not None
            computed = store_maps(db, rows)
            job_service.complete_task(db, task)
        return task, computed
    except Exception as exc:  # any failure is recorded on the job and shown to the user
        log.exception("task %s failed", task_id)
        message = str(exc) or type(exc).__name__
        with factory.begin() as db:
            task = db.get(JobTask, task_id)
            assert task is not None
            job_service.fail_task(db, task, message)
        return task, 0


def run_pending(
    sessionmaker: sessionmaker[Session],
    settings: Settings,
    *,
    progress: Progress | None = None,
    max_tasks: int | None = None,
    stale_after: dt.timedelta = DEFAULT_STALE_AFTER,
    wait: bool = True,
) -> int:
    """Drain the queue synchronously; returns the number of maps computed.

    ``progress(done, total)`` is called after each task with the job's counts. ``max_tasks``
    stops early (tests use it to simulate a worker killed between tasks).
    """
    name = worker_name()
    computed = 0
    with worker_lease(settings, sessionmaker, wait=wait) as granted:
        if not granted:
            return 0
        sqlite = _is_sqlite(sessionmaker)
        with sessionmaker.begin() as db:
            job_service.reclaim_stale(db, older_than=None if sqlite else stale_after)
        ran = 0
        while max_tasks is None or ran < max_tasks:
            task, n = run_one(sessionmaker, settings, name)
            if task is None:
                break
            ran += 1
            computed += n
            if progress is not None:
                with sessionmaker() as db:
                    job = db.get(Job, task.job_id)
                    if job is not None:
                        progress(job.done, job.total)
    return computed


class InProcessWorker:
    """A daemon thread inside the web server that polls for queued work (SQLite default)."""

    def __init__(
        self, sessionmaker: sessionmaker[Session], settings: Settings, poll_seconds: float = 1.0
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="radsal-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._drain()
            except Exception:  # keep the server's worker alive; the error is in the log
                log.exception("in-process worker iteration failed")
            self._stop.wait(self.poll_seconds)

    def _drain(self) -> None:
        with self.sessionmaker() as db:
            if not job_service.has_open_tasks(db):
                return
        name = worker_name()
        with worker_lease(self.settings, self.sessionmaker, wait=False) as granted:
            if not granted:
                return
            with self.sessionmaker.begin() as db:
                sqlite = db.get_bind().dialect.name == "sqlite"
                job_service.reclaim_stale(db, older_than=None if sqlite else DEFAULT_STALE_AFTER)
            while not self._stop.is_set():
                task, _ = run_one(self.sessionmaker, self.settings, name)
                if task is None:
                    return


def poll_forever(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    poll_seconds: float,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> None:
    """`radsal worker` without --once: drain, sleep, repeat until interrupted."""
    stop = stop or threading.Event()
    while not stop.is_set():
        run_pending(factory, settings, progress=progress)
        time.sleep(poll_seconds)
