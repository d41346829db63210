"""All SQL of the job lifecycle. Writes made by a run carry its fencing token (``attempts``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.orm import Session, aliased

from shared.models import ActivitySession, IdempotencyRecord, Job

OPEN = ("queued", "running")


def _no_earlier_open_job():
    earlier = aliased(Job)
    return ~exists().where(earlier.session_id == Job.session_id, earlier.status.in_(OPEN), earlier.seq < Job.seq)


def get(db: Session, namespace_id: int, job_id: str, *, lock: bool = False) -> Job | None:
    q = select(Job).where(Job.id == job_id, Job.namespace_id == namespace_id)
    if lock:
        q = q.with_for_update()
    return db.execute(q).scalar_one_or_none()


_LOCK_FOR_ENQUEUE = text("""
    SELECT s.id, s.name, s.deleted_at IS NOT NULL, l.id, l.status, l.kind
    FROM sessions s
    LEFT JOIN LATERAL (SELECT j.id, j.status, j.kind FROM jobs j
                       WHERE j.session_id = s.id AND j.status IN ('queued', 'running')
                       ORDER BY j.seq DESC LIMIT 1) l ON true
    WHERE s.namespace_id = :namespace_id AND s.name = :name
    FOR UPDATE OF s
""")


def lock_session_for_enqueue(db: Session, namespace_id: int, name: str):  # type: ignore[no-untyped-def]
    """One round trip: the session row locked (it orders the session's jobs), and the latest
    unfinished job of the session. Returns (session_id, session_name, deleted, latest) where
    latest is (id, status, kind) or None; None when there is no such session."""
    row = db.execute(_LOCK_FOR_ENQUEUE, {"namespace_id": namespace_id, "name": name}).first()
    if row is None:
        return None
    return row[0], row[1], row[2], (None if row[3] is None else (row[3], row[4], row[5]))


_INSERT_JOB = text("""
    INSERT INTO jobs (id, namespace_id, session_id, session_name, kind, status, attempts, progress_completed,
                      progress_total, cancel_requested, dispatched_at)
    VALUES (:id, :namespace_id, :session_id, :session_name, :kind, 'queued', 0, 0, 0, false,
            CASE WHEN :head THEN now() END)
    RETURNING created_at
""")


def insert_job(db: Session, job: Job, *, head: bool) -> None:
    """Insert a new queued job (marked as sent when it is its session's head)."""
    job.created_at = db.execute(_INSERT_JOB, {
        "id": job.id, "namespace_id": job.namespace_id, "session_id": job.session_id,
        "session_name": job.session_name, "kind": job.kind, "head": head}).scalar_one()


def open_truncate(db: Session, session_id: int) -> str | None:
    """The id of a truncate of the session that is queued or running, if any."""
    return db.execute(
        select(Job.id).where(Job.session_id == session_id, Job.kind == "truncate", Job.status.in_(OPEN)).limit(1)
    ).scalar_one_or_none()


def list_(db: Session, namespace_id: int, *, before: int | None, limit: int, session_id: int | None,
          kind: str | None, status: str | None) -> list[Job]:
    q = select(Job).where(Job.namespace_id == namespace_id).order_by(Job.seq.desc()).limit(limit)
    if before is not None:
        q = q.where(Job.seq < before)
    if session_id is not None:
        q = q.where(Job.session_id == session_id)
    if kind is not None:
        q = q.where(Job.kind == kind)
    if status is not None:
        q = q.where(Job.status == status)
    return list(db.execute(q).scalars())


@dataclass
class Run:
    """What a run needs to know about its job: read once, by the claim."""

    id: str
    session_id: int
    session_name: str
    kind: str
    attempts: int  # the run's fencing token
    run_generation: int
    snapshot_seq: int
    result: dict[str, Any] | None


_CLAIM = text("""
    UPDATE jobs j
    SET status = 'running', attempts = j.attempts + 1, lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease), started_at = coalesce(j.started_at, now()),
        run_generation = s.generation, snapshot_seq = s.turn_count, progress_completed = 0,
        progress_total = CASE WHEN j.kind = 'truncate' THEN 1
                              ELSE (SELECT count(*) FROM participants p WHERE p.session_id = j.session_id) END
    FROM sessions s
    WHERE j.id = :id AND s.id = j.session_id AND j.status = 'queued'
      AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.session_id = j.session_id
                      AND e.status IN ('queued', 'running') AND e.seq < j.seq)
    RETURNING j.id, j.session_id, j.session_name, j.kind, j.attempts, j.run_generation, j.snapshot_seq, j.result
""")


def claim(db: Session, job_id: str, owner: str, lease: timedelta) -> Run | None:
    """Start a run: queued -> running, attempts + 1 (the run's fencing token), and take the
    session's generation and last seq. None when the job is not queued, or is not the head of
    its session's queue (an earlier job is unfinished)."""
    row = db.execute(_CLAIM, {"id": job_id, "owner": owner, "lease": lease.total_seconds()}).first()
    return None if row is None else Run(*row)


def fence(db: Session, job_id: str, token: int) -> Job | None:
    """Lock the job for this run's write; None when another run (or a cancel) owns it now."""
    return db.execute(
        select(Job).where(Job.id == job_id, Job.attempts == token, Job.status == "running").with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


_LOCK_RUN = text("""
    SELECT s.generation, j.cancel_requested
    FROM jobs j JOIN sessions s ON s.id = j.session_id
    WHERE j.id = :id AND j.attempts = :token AND j.status = 'running'
    FOR UPDATE OF j FOR SHARE OF s
""")


def lock_run(db: Session, job_id: str, token: int) -> tuple[int | None, bool] | None:
    """One round trip before a run's write: lock the job row if this run still owns it, and
    share-lock its session so no truncate commits in between. Returns (generation, cancel
    requested), or None when the job is no longer this run's."""
    row = db.execute(_LOCK_RUN, {"id": job_id, "token": token}).first()
    return None if row is None else (row[0], bool(row[1]))


_FINISH_RUN = text("""
    WITH done AS (
        UPDATE jobs SET status = :status, result = coalesce(CAST(:result AS jsonb), result),
               error = CAST(:error AS jsonb), progress_completed = coalesce(:completed, progress_completed),
               finished_at = now(), lease_expires_at = NULL
        WHERE id = :id RETURNING id
    )
    SELECT pg_notify('engram_jobs', id) FROM done
""")


def finish_run(db: Session, job_id: str, status: str, *, result: dict[str, Any] | None = None,
               error: dict[str, Any] | None = None, completed: int | None = None) -> None:
    """Finish a job (locked by the caller) and wake its long-polls, in one statement. The
    notification is delivered at commit; the API's LISTEN wakes the requests waiting on the job."""
    db.execute(_FINISH_RUN, {"id": job_id, "status": status, "completed": completed,
                             "result": None if result is None else json.dumps(result),
                             "error": None if error is None else json.dumps(error)})


def record_progress(db: Session, job_id: str, result: dict[str, Any], completed: int) -> None:
    db.execute(update(Job).where(Job.id == job_id).values(result=result, progress_completed=completed))


_PROMOTE = text("""
    UPDATE jobs SET dispatched_at = now()
    WHERE id = (SELECT id FROM jobs WHERE session_id = :session_id AND status IN ('queued', 'running')
                ORDER BY seq LIMIT 1)
      AND status = 'queued' AND dispatched_at IS NULL
    RETURNING id, kind
""")


def promote_next_ids(db: Session, session_id: int) -> list[tuple[str, str]]:
    """One round trip: mark the session's next job as sent when it is queued and was never sent;
    returns [(id, kind)] to send after commit."""
    return [(r[0], r[1]) for r in db.execute(_PROMOTE, {"session_id": session_id})]


def lock_session(db: Session, session_id: int) -> None:
    """Lock the session row (waits for any write to it in flight, e.g. an append)."""
    db.execute(select(ActivitySession.id).where(ActivitySession.id == session_id).with_for_update())


def heartbeat(db: Session, job_id: str, token: int, lease: timedelta) -> tuple[bool, bool]:
    """Extend the lease. Returns (still ours, cancel requested)."""
    row = db.execute(
        update(Job)
        .where(Job.id == job_id, Job.attempts == token, Job.status == "running")
        .values(lease_expires_at=func.now() + lease)
        .returning(Job.cancel_requested)
    ).scalar_one_or_none()
    return row is not None, bool(row)


# --- reconciler -------------------------------------------------------------------------------


def requeue_expired(db: Session, max_attempts: int) -> list[str]:
    return list(db.execute(
        update(Job)
        .where(Job.status == "running", Job.lease_expires_at < func.now(), Job.attempts < max_attempts)
        .values(status="queued", lease_owner=None, lease_expires_at=None, dispatched_at=None, redispatches=0)
        .returning(Job.id)
    ).scalars())


def expired_out_of_attempts(db: Session, max_attempts: int) -> list[Job]:
    return list(db.execute(
        select(Job).where(Job.status == "running", Job.lease_expires_at < func.now(), Job.attempts >= max_attempts)
        .with_for_update(skip_locked=True)
    ).scalars())


REDISPATCH_BACKOFF_CAP = 4  # at most 2**4 = 16 times the base interval between re-sends


def heads_to_dispatch(db: Session, older_than: timedelta, limit: int = 1000) -> list[Job]:
    """Queued session heads with no message, or whose message is older than ``older_than``,
    doubled for each re-send already made (up to 16 times)."""
    wait = func.make_interval(0, 0, 0, 0, 0, 0, older_than.total_seconds() * func.power(
        2, func.least(Job.redispatches, REDISPATCH_BACKOFF_CAP)))
    return list(db.execute(
        select(Job)
        .where(
            Job.status == "queued",
            _no_earlier_open_job(),
            (Job.dispatched_at.is_(None)) | (Job.dispatched_at < func.now() - wait),
        )
        .order_by(Job.seq)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).scalars())


def purge_finished(db: Session, before: datetime) -> int:
    return db.execute(delete(Job).where(Job.finished_at < before)).rowcount  # type: ignore[attr-defined]


def purge_idempotency(db: Session, before: datetime) -> int:
    return db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before)).rowcount  # type: ignore[attr-defined]


