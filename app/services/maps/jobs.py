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

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Job, JobStatus, JobTask, SaliencyMap, Study, StudyStatus, User
from app.models.base import utcnow
from app.services import audit

GENERATE_MAPS = "generate_maps"
DEFAULT_CHUNK = 16
ACTIVE = (JobStatus.queued.value, JobStatus.running.value)


def _missing_pairs(db: Session, study: Study) -> dict[int, list[int]]:
    """arm id → image ids (study order) that have no map for the study's target yet."""
    target = str((study.saliency or {}).get("target", "predicted"))
    arm_ids = [a.id for a in study.arms]
    rows = db.execute(
        select(SaliencyMap.arm_id, SaliencyMap.image_id).where(
            SaliencyMap.arm_id.in_(arm_ids), SaliencyMap.target == target
        )
    )
    have = {(arm_id, image_id) for arm_id, image_id in rows}
    image_ids = [si.image_id for si in study.images]
    return {a: [i for i in image_ids if (a, i) not in have] for a in arm_ids}


def enqueue_generation(
    db: Session, study: Study, actor: User | None, *, batch_size: int | None = None
) -> Job:
    """Queue the maps this study still lacks; returns the job (an active one if present)."""
    if study.status in (StudyStatus.open.value, StudyStatus.closed.value):
        raise Conflict(f"The study is {study.status}; its maps are final.")
    running = db.scalar(
        select(Job).where(Job.study_id == study.id, Job.status.in_(ACTIVE)).limit(1)
    )
    if running is not None:
        return running
    chunk = max(1, int(batch_size or DEFAULT_CHUNK))
    missing = _missing_pairs(db, study)
    total = sum(len(v) for v in missing.values())
    now = utcnow()
    job = Job(
        kind=GENERATE_MAPS,
        study_id=study.id,
        status=JobStatus.queued.value if total else JobStatus.done.value,
        done=0,
        total=total,
        params={"target": (study.saliency or {}).get("target", "predicted"), "chunk": chunk},
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


def heartbeat(db: Session, task: JobTask) -> None:
    now = utcnow()
    task.heartbeat_at = now
    db.execute(update(Job).where(Job.id == task.job_id).values(heartbeat_at=now))


def reclaim_stale(db: Session, *, older_than: dt.timedelta | None) -> int:
    """Put running tasks whose worker died back in the queue. ``None``: every running task
    (only safe when the caller knows no other worker is alive, e.g. holding the SQLite lease)."""
    stmt = update(JobTask).where(JobTask.status == JobStatus.running.value)
    if older_than is not None:
        stmt = stmt.where(JobTask.heartbeat_at < utcnow() - older_than)
    result = db.execute(stmt.values(status=JobStatus.queued.value, worker=""))
    return int(getattr(result, "rowcount", 0) or 0)


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
    """A task raised: the job fails with the message; its other queued tasks are dropped."""
    task.status = JobStatus.failed.value
    task.finished_at = utcnow()
    task.error = error[:4000]
    job = db.get(Job, task.job_id)
    assert job is not None
    job.status = JobStatus.failed.value
    job.error = error[:4000]
    db.execute(
        update(JobTask)
        .where(JobTask.job_id == job.id, JobTask.status == JobStatus.queued.value)
        .values(status=JobStatus.cancelled.value)
    )
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
