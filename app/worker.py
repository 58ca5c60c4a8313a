"""Background worker: claims generation tasks and runs them, in-process or as `radsal worker`.

Each task runs in its own short transaction sequence: claim (commit), compute (no lock held),
store maps and mark done (commit). While the task computes, a heartbeat thread refreshes its
``heartbeat_at`` every ``RADSAL_TASK_HEARTBEAT_SECONDS`` in a transaction of its own, so a slow
but alive worker keeps its task. A worker that dies stops beating and leaves its task "running";
the next worker puts it back in the queue and, because maps are keyed by arm × image × target,
only the missing maps are computed. A task started ``RADSAL_TASK_MAX_ATTEMPTS`` times that
killed its worker every time is not re-queued again: it fails its job with a clear error.

SQLite allows one writer at a time, so on SQLite workers take a lease first (an exclusive
``flock`` on ``<data dir>/worker.lock``): a second worker waits. Holding the lease also proves
no other worker is alive (the kernel drops the lock of a dead process), so every "running" task
is an orphan and is reclaimed at once. On PostgreSQL any number of workers run side by side
(claims use SKIP LOCKED) and only tasks whose heartbeat is older than
``RADSAL_TASK_STALE_SECONDS`` are reclaimed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.models import Job, JobTask
from app.services.maps import jobs as job_service
from app.services.maps.generation import compute_maps, plan_task, store_maps

log = logging.getLogger("radsal.worker")

Progress = Callable[[int, int], None]


def stale_after(settings: Settings) -> dt.timedelta:
    """How old a heartbeat must be before its task counts as orphaned (PostgreSQL)."""
    return dt.timedelta(seconds=settings.task_stale_seconds)


def beat_interval(settings: Settings) -> float:
    """Seconds between beats: the setting, but at least three beats per stale period, so one
    slow beat (a busy database) never makes a live task look dead."""
    return min(settings.task_heartbeat_seconds, settings.task_stale_seconds / 3)


def worker_name() -> str:
    """host:pid:thread, unique per worker thread: a beat only refreshes a task under this name."""
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


@contextlib.contextmanager
def heartbeat(
    factory: sessionmaker[Session], task_id: int, name: str, interval: float
) -> Iterator[Callable[[], bool]]:
    """Beat for ``task_id`` from a separate thread while the body computes.

    Each beat is its own short transaction (computation holds none), so neither SQLite writers
    nor PostgreSQL row locks are held between beats. Yields a callable that tells whether the
    task was lost (taken back by another worker after this one stalled past the stale timeout);
    the thread stops then. On exit the thread is stopped and joined, so the caller's next
    database work never overlaps a beat.
    """
    stop = threading.Event()
    lost = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with factory.begin() as db:
                    mine = job_service.heartbeat(db, task_id, name)
            except Exception:  # a missed beat is not fatal: the next one may get through
                log.warning("heartbeat for task %s failed", task_id, exc_info=True)
                continue
            if not mine:
                log.warning("task %s is no longer this worker's; heartbeat stops", task_id)
                lost.set()
                return

    thread = threading.Thread(target=beat, name=f"radsal-heartbeat-{task_id}", daemon=True)
    thread.start()
    try:
        yield lost.is_set
    finally:
        stop.set()
        thread.join()


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
        with heartbeat(factory, task_id, name, beat_interval(settings)):
            rows, _ms = compute_maps(settings, plan)
        with factory.begin() as db:
            task = db.get(JobTask, task_id)
            assert task is not None
            computed = store_maps(db, rows)  # kept even if lost: stored maps are never redone
            if job_service.owns_task(task, name):
                job_service.complete_task(db, task)
            else:
                log.warning("task %s was taken back while this worker computed it", task_id)
        return task, computed
    except Exception as exc:  # any failure is recorded on the job and shown to the user
        log.exception("task %s failed", task_id)
        message = str(exc) or type(exc).__name__
        with factory.begin() as db:
            task = db.get(JobTask, task_id)
            assert task is not None
            if job_service.owns_task(task, name):
                job_service.fail_task(db, task, message)
        return task, 0


def reclaim_orphans(
    factory: sessionmaker[Session], settings: Settings, *, older_than: dt.timedelta | None = None
) -> int:
    """Re-queue the tasks of dead workers (failing those that used up their attempts).

    On SQLite the caller holds the lease, so every running task is an orphan; on PostgreSQL
    only those whose heartbeat is older than ``older_than`` (default: the stale setting).
    """
    with factory.begin() as db:
        sqlite = db.get_bind().dialect.name == "sqlite"
        if older_than is None:
            older_than = stale_after(settings)
        return job_service.reclaim_stale(
            db, older_than=None if sqlite else older_than, max_attempts=settings.task_max_attempts
        )


def run_pending(
    sessionmaker: sessionmaker[Session],
    settings: Settings,
    *,
    progress: Progress | None = None,
    max_tasks: int | None = None,
    stale_after: dt.timedelta | None = None,
    wait: bool = True,
) -> int:
    """Drain the queue synchronously; returns the number of maps computed.

    ``progress(done, total)`` is called after each task with the job's counts. ``max_tasks``
    stops early (tests use it to simulate a worker killed between tasks). ``stale_after``
    overrides ``RADSAL_TASK_STALE_SECONDS`` for reclaiming orphans on PostgreSQL.
    """
    name = worker_name()
    computed = 0
    with worker_lease(settings, sessionmaker, wait=wait) as granted:
        if not granted:
            return 0
        reclaim_orphans(sessionmaker, settings, older_than=stale_after)
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
            reclaim_orphans(self.sessionmaker, self.settings)
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
        stop.wait(poll_seconds)
