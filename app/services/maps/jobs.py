"""Generation jobs and their claimable tasks: enqueue, claim, finish, fail, cancel, reclaim.

A job is split into tasks (one arm × a chunk of images) when it is enqueued; workers claim
tasks, not jobs, so several workers can share one study. On PostgreSQL a claim is
``SELECT … FOR UPDATE SKIP LOCKED`` (two workers never take the same task); SQLite serialises
writers (BEGIN IMMEDIATE), and the worker lease in app.worker keeps to one worker at a time.
Maps are keyed by arm × image × target, so a task only computes what is missing: a job that
was killed mid-way resumes where it stopped, and re-enqueueing skips finished maps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Job, JobStatus, JobTask, Study, StudyStatus, User
from app.models.base import utcnow
from app.services import audit
from app.services.maps.catch import (
    RANDOMISED,
    randomised_pairs,
    study_image_ids,
    variant_target,
)
from app.services.maps.queries import ACTIVE, active_job, stored_maps
from app.services.study.spec import saliency_settings

GENERATE_MAPS = "generate_maps"
DEFAULT_CHUNK = 16


def _missing_pairs(db: Session, study: Study) -> dict[int, list[int]]:
    """arm id → image ids (study order) that have no map for the study's target yet."""
    target = saliency_settings(study.saliency).target
    arm_ids = [a.id for a in study.arms]
    have = stored_maps(db, arm_ids=arm_ids, target=target)
    image_ids = study_image_ids(study)
    return {a: [i for i in image_ids if (a, i) not in have] for a in arm_ids}


def _missing_randomised(db: Session, study: Study) -> dict[int, list[int]]:
    """arm id → image ids whose randomised-weights map a catch trial shows and that lack it."""
    wanted = randomised_pairs(db, study.id)
    if not wanted:
        return {}
    target = variant_target(saliency_settings(study.saliency).target, RANDOMISED)
    have = stored_maps(db, arm_ids=list(wanted), target=target)
    return {a: [i for i in ids if (a, i) not in have] for a, ids in wanted.items()}


def enqueue_generation(
    db: Session, study: Study, actor: User | None, *, batch_size: int | None = None
) -> Job:
    """Queue the maps this study still lacks; returns the job (an active one if present)."""
    if study.status in (StudyStatus.open.value, StudyStatus.closed.value):
        raise Conflict(f"The study is {study.status}; its maps are final.")
    running = active_job(db, study.id)
    if running is not None:
        return running
    chunk = max(1, int(batch_size or DEFAULT_CHUNK))
    missing = _missing_pairs(db, study)
    randomised = _missing_randomised(db, study)
    total = sum(len(v) for v in missing.values()) + sum(len(v) for v in randomised.values())
    now = utcnow()
    job = Job(
        kind=GENERATE_MAPS,
        study_id=study.id,
        status=JobStatus.queued.value if total else JobStatus.done.value,
        done=0,
        total=total,
        params={"target": saliency_settings(study.saliency).target, "chunk": chunk},
        created_by_id=actor.id if actor is not None else None,
        finished_at=None if total else now,
    )
    db.add(job)
    db.flush()
    tasks = [
        JobTask(
            job_id=job.id,
            status=JobStatus.queued.value,
            payload={"arm_id": arm_id, "image_ids": ids[lo : lo + chunk]},
            size=len(ids[lo : lo + chunk]),
        )
        for arm_id, ids in missing.items()
        for lo in range(0, len(ids), chunk)
    ]
    # After the real maps (tasks are claimed in id order), so a randomised map can explain
    # the class its real map explained.
    tasks += [
        JobTask(
            job_id=job.id,
            status=JobStatus.queued.value,
            payload={"arm_id": arm_id, "image_ids": ids[lo : lo + chunk], "variant": RANDOMISED},
            size=len(ids[lo : lo + chunk]),
        )
        for arm_id, ids in randomised.items()
        for lo in range(0, len(ids), chunk)
    ]
    db.add_all(tasks)
    study.status = StudyStatus.generating.value
    audit.record(
        db,
        actor=actor,
        action="job.enqueued",
        object_type="job",
        object_id=job.id,
        detail={"study_id": study.id, "maps": total, "tasks": len(tasks)},
    )
    db.flush()
    return job


def get_job(db: Session, job_id: int) -> Job:
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"Job {job_id} does not exist.")
    return job


def recent_jobs(db: Session, limit: int = 10) -> list[Job]:
    return list(db.scalars(select(Job).order_by(Job.id.desc()).limit(limit)))


def job_json(job: Job, now: dt.datetime | None = None) -> dict[str, Any]:
    """The job as the API and the progress bar see it (rate in maps/s, ETA in seconds)."""
    now = now or utcnow()
    rate: float | None = None
    eta: float | None = None
    if job.started_at is not None and job.done > 0:
        end = job.finished_at or job.heartbeat_at or now
        elapsed = max((end - job.started_at).total_seconds(), 1e-6)
        rate = round(job.done / elapsed, 3)
        if job.status in ACTIVE and rate > 0:
            eta = round((job.total - job.done) / rate, 1)
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "done": job.done,
        "total": job.total,
        "error": job.error,
        "rate": rate,
        "eta_seconds": eta,
        "study_id": job.study_id,
        "cancel_requested": job.cancel_requested,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


# ------------------------------------------------------------------------ worker side
def claim_task(db: Session, worker: str) -> JobTask | None:
    """Take the oldest queued task of a live job (SKIP LOCKED on PostgreSQL); None if idle."""
    stmt = (
        select(JobTask)
        .join(Job, Job.id == JobTask.job_id)
        .where(
            JobTask.status == JobStatus.queued.value,
            Job.status.in_(ACTIVE),
            Job.cancel_requested.is_(False),
        )
        .order_by(JobTask.id)
        .limit(1)
    )
    if db.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=JobTask)
    task = db.scalar(stmt)
    if task is None:
        return None
    now = utcnow()
    task.status = JobStatus.running.value
    task.worker = worker[:120]
    task.claimed_at = now
    task.heartbeat_at = now
    task.attempts += 1
    job = db.get(Job, task.job_id)
    assert job is not None
    if job.status == JobStatus.queued.value:
        job.status = JobStatus.running.value
    job.started_at = job.started_at or now
    job.heartbeat_at = now
    job.worker = worker[:120]
    db.flush()
    return task


def heartbeat(db: Session, task_id: int, worker: str) -> bool:
    """Refresh a running task's heartbeat (and its job's); False once the task is no longer this
    worker's (reclaimed after a stall, cancelled or failed), so the caller stops beating.

    One conditional UPDATE: on PostgreSQL it waits for a reclaimer holding the row and then
    re-reads the row, so a beat never revives a task another worker has taken back.
    """
    now = utcnow()
    result = db.execute(
        update(JobTask)
        .where(
            JobTask.id == task_id,
            JobTask.status == JobStatus.running.value,
            JobTask.worker == worker[:120],
        )
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    if not int(getattr(result, "rowcount", 0) or 0):
        return False
    db.execute(
        update(Job)
        .where(Job.id == select(JobTask.job_id).where(JobTask.id == task_id).scalar_subquery())
        .values(heartbeat_at=now)
        .execution_options(synchronize_session=False)
    )
    return True


def owns_task(task: JobTask, worker: str) -> bool:
    """Whether ``task`` (freshly loaded) is still running under ``worker``: not reclaimed by
    another worker after this one stalled past the stale timeout."""
    return task.status == JobStatus.running.value and task.worker == worker[:120]


def crash_message(task: JobTask) -> str:
    """The job's error when a task used up its attempts: which task, how often, last worker."""
    images = ", ".join(str(i) for i in (task.payload or {}).get("image_ids", []))
    what = f"task {task.id}" + (f" (images {images})" if images else "")
    return (
        f"{what[0].upper()}{what[1:]} crashed its worker {task.attempts} times "
        f"(last worker: {task.worker or 'unknown'}); it is not retried again. A worker that "
        "dies while computing is usually out of memory: lower RADSAL_BATCH_SIZE or the "
        "checkpoint's image size, then generate again."
    )


def reclaim_stale(
    db: Session, *, older_than: dt.timedelta | None, max_attempts: int | None = None
) -> int:
    """Deal with running tasks whose worker is gone; returns how many were put back in the queue.

    ``older_than``: only tasks whose heartbeat is older than this (a live worker beats while it
    computes, so only a dead worker's task qualifies); ``None``: every running task (only safe
    when the caller knows no other worker is alive, e.g. holding the SQLite lease). A task that
    has already been started ``max_attempts`` times is not re-queued: it keeps killing its
    worker, so it fails its job with :func:`crash_message` instead of looping forever.
    """
    orphan = JobTask.status == JobStatus.running.value
    if older_than is not None:
        cutoff = utcnow() - older_than
        orphan = and_(orphan, or_(JobTask.heartbeat_at.is_(None), JobTask.heartbeat_at < cutoff))
    stmt = select(JobTask).where(orphan).order_by(JobTask.id)
    if db.get_bind().dialect.name == "postgresql":
        # A row being beaten right now is locked by its live worker: skip it, it is not stale.
        stmt = stmt.with_for_update(skip_locked=True, of=JobTask)
    requeued = 0
    for task in db.scalars(stmt).all():
        job = db.get(Job, task.job_id)
        assert job is not None
        if job.cancel_requested or job.status not in ACTIVE:
            # Its job was cancelled or failed meanwhile: nobody would claim it again.
            task.status = JobStatus.cancelled.value
            task.finished_at = utcnow()
            db.flush()
            _finalize(db, job)
        elif max_attempts is not None and task.attempts >= max_attempts:
            fail_task(db, task, crash_message(task))
        else:
            task.status = JobStatus.queued.value
            task.worker = ""
            requeued += 1
    db.flush()
    return requeued


def _finalize(db: Session, job: Job) -> None:
    """Close the job when no task is queued or running; the study follows the outcome."""
    open_tasks = db.scalar(
        select(func.count(JobTask.id)).where(JobTask.job_id == job.id, JobTask.status.in_(ACTIVE))
    )
    if open_tasks:
        return
    study = db.get(Study, job.study_id) if job.study_id is not None else None
    if job.status == JobStatus.failed.value:
        pass
    elif job.cancel_requested:
        job.status = JobStatus.cancelled.value
    else:
        job.status = JobStatus.done.value
    job.finished_at = utcnow()
    failed = job.status != JobStatus.done.value
    if study is not None and failed and study.status == StudyStatus.generating.value:
        study.status = StudyStatus.draft.value
    audit.record(
        db,
        actor=None,
        action=f"job.{job.status}",
        object_type="job",
        object_id=job.id,
        detail={"study_id": job.study_id, "done": job.done, "total": job.total},
    )


def complete_task(db: Session, task: JobTask) -> Job:
    task.status = JobStatus.done.value
    task.finished_at = utcnow()
    job = db.get(Job, task.job_id)
    assert job is not None
    db.flush()
    job.done = int(
        db.scalar(
            select(func.coalesce(func.sum(JobTask.size), 0)).where(
                JobTask.job_id == job.id, JobTask.status == JobStatus.done.value
            )
        )
        or 0
    )
    job.heartbeat_at = task.finished_at
    _finalize(db, job)
    return job


def fail_task(db: Session, task: JobTask, error: str) -> Job:
    """A task raised (or crashed its worker too often): the job fails with the message; its
    other queued tasks are dropped.

    Task rows are written before the job row, the order every claim and beat uses, so on
    PostgreSQL this never deadlocks with a worker claiming a sibling task at the same moment.
    """
    task.status = JobStatus.failed.value
    task.finished_at = utcnow()
    task.error = error[:4000]
    db.execute(
        update(JobTask)
        .where(JobTask.job_id == task.job_id, JobTask.status == JobStatus.queued.value)
        .values(status=JobStatus.cancelled.value)
    )
    job = db.get(Job, task.job_id)
    assert job is not None
    job.status = JobStatus.failed.value
    job.error = error[:4000]
    db.flush()
    _finalize(db, job)
    return job


def cancel_job(db: Session, job: Job, actor: User | None) -> Job:
    """Stop a job: queued tasks are dropped now, a running one finishes its chunk first."""
    if job.status not in ACTIVE:
        raise Conflict(f"The job is already {job.status}.")
    job.cancel_requested = True
    db.execute(
        update(JobTask)
        .where(JobTask.job_id == job.id, JobTask.status == JobStatus.queued.value)
        .values(status=JobStatus.cancelled.value)
    )
    db.flush()
    audit.record(db, actor=actor, action="job.cancel", object_type="job", object_id=job.id)
    _finalize(db, job)
    return job


def has_open_tasks(db: Session) -> bool:
    """Queued work, or running tasks (which may be orphans of a dead worker to reclaim)."""
    count = db.scalar(select(func.count(JobTask.id)).where(JobTask.status.in_(ACTIVE)))
    return bool(count)
