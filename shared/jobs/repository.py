"""All SQL of the job lifecycle. Every statement has a name and a one-line purpose; the words
(head, dispatch, run, token, fence) are those of docs/jobs.md.

A write made by a run carries its fencing token (the job's ``attempts`` when the run claimed it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared.db import rowcount
from shared.jobs.schemas import OPEN, OPEN_SQL, JobKind, JobStatus
from shared.models import Job

QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value


def is_head(job: str) -> str:
    """The head of a session's queue, as an SQL condition on the job row aliased ``job``: no
    earlier job of its session is unfinished. Only the head holds a wake-up message, and only the
    head may be claimed (DESIGN.md section 3, rule 3)."""
    return (f"NOT EXISTS (SELECT 1 FROM jobs earlier WHERE earlier.session_id = {job}.session_id"
            f" AND earlier.status IN {OPEN_SQL} AND earlier.seq < {job}.seq)")


class Dispatch(NamedTuple):
    """A wake-up message to send after the transaction that decided it commits."""

    job_id: str
    kind: str


def get(db: Session, namespace_id: int, job_id: str, *, lock: bool = False) -> Job | None:
    q = select(Job).where(Job.id == job_id, Job.namespace_id == namespace_id)
    if lock:
        q = q.with_for_update()
    return db.execute(q).scalar_one_or_none()


def status_of(db: Session, job_id: str) -> str | None:
    """The job's status, whatever its namespace (for the worker's log of a skipped message)."""
    return db.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()


# --- accepting a job ---------------------------------------------------------------------------


class SessionQueue(NamedTuple):
    session_id: int
    session_name: str
    deleted: bool
    last_open: tuple[str, str, str] | None  # (id, status, kind) of the session's newest unfinished job


_LOCK_SESSION_QUEUE = text(f"""
    SELECT s.id, s.name, s.deleted_at IS NOT NULL, l.id, l.status, l.kind
    FROM sessions s
    LEFT JOIN LATERAL (SELECT j.id, j.status, j.kind FROM jobs j
                       WHERE j.session_id = s.id AND j.status IN {OPEN_SQL}
                       ORDER BY j.seq DESC LIMIT 1) l ON true
    WHERE s.namespace_id = :namespace_id AND s.name = :name
    FOR UPDATE OF s
""")


def lock_session_queue(db: Session, namespace_id: int, name: str) -> SessionQueue | None:
    """Lock the session row (it orders the session's jobs) and read its newest unfinished job, in
    one round trip. None when there is no such session."""
    row = db.execute(_LOCK_SESSION_QUEUE, {"namespace_id": namespace_id, "name": name}).first()
    if row is None:
        return None
    return SessionQueue(row[0], row[1], row[2], None if row[3] is None else (row[3], row[4], row[5]))


_INSERT_JOB = text(f"""
    INSERT INTO jobs (id, namespace_id, session_id, session_name, kind, status, attempts, progress_completed,
                      progress_total, cancel_requested, dispatched_at)
    VALUES (:id, :namespace_id, :session_id, :session_name, :kind, '{QUEUED}', 0, 0, 0, false,
            CASE WHEN :dispatch THEN now() END)
    RETURNING created_at
""")


def insert_job(db: Session, job: Job, *, dispatch: bool) -> None:
    """Insert a new queued job, marked as dispatched when its message is sent after commit."""
    job.created_at = db.execute(_INSERT_JOB, {
        "id": job.id, "namespace_id": job.namespace_id, "session_id": job.session_id,
        "session_name": job.session_name, "kind": job.kind, "dispatch": dispatch}).scalar_one()


def open_truncate(db: Session, session_id: int) -> str | None:
    """The id of a truncate of the session that is queued or running, if any."""
    return db.execute(
        select(Job.id).where(Job.session_id == session_id, Job.kind == JobKind.TRUNCATE,
                             Job.status.in_([s.value for s in OPEN])).limit(1)
    ).scalar_one_or_none()


def list_before(db: Session, namespace_id: int, *, before: int | None, limit: int, session_id: int | None,
                kind: str | None, status: str | None) -> list[Job]:
    """The namespace's jobs, newest first, before a position (a job's ``seq``)."""
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


def request_cancel(db: Session, job_id: str) -> None:
    """Mark the job cancelled-on-request; a running one sees it at its next safe point."""
    db.execute(text("UPDATE jobs SET cancel_requested = true WHERE id = :id"), {"id": job_id})


# --- a run -------------------------------------------------------------------------------------


@dataclass
class Run:
    """What a run needs to know about its job: read once, by the claim."""

    id: str
    session_id: int
    session_name: str
    kind: str
    token: int  # the job's attempts when this run claimed it: its fencing token
    generation: int  # the session's generation at the claim: a truncate since then supersedes the run
    snapshot_seq: int  # the session's last seq at the claim: the run integrates nothing after it
    result: dict[str, Any] | None


_CLAIM = text(f"""
    UPDATE jobs j
    SET status = '{RUNNING}', attempts = j.attempts + 1, lease_owner = :owner,
        lease_expires_at = now() + make_interval(secs => :lease), started_at = coalesce(j.started_at, now()),
        run_generation = s.generation, snapshot_seq = s.turn_count, progress_completed = 0,
        progress_total = CASE WHEN j.kind = '{JobKind.TRUNCATE.value}' THEN 1
                              ELSE (SELECT count(*) FROM participants p WHERE p.session_id = j.session_id) END
    FROM sessions s
    WHERE j.id = :id AND s.id = j.session_id AND j.status = '{QUEUED}' AND {is_head("j")}
    RETURNING j.id, j.session_id, j.session_name, j.kind, j.attempts, j.run_generation, j.snapshot_seq, j.result
""")


def claim(db: Session, job_id: str, owner: str, lease: timedelta) -> Run | None:
    """Start a run: queued -> running, attempts + 1 (the run's token), and take the session's
    generation and last seq. None when the job is not queued or is not its session's head."""
    row = db.execute(_CLAIM, {"id": job_id, "owner": owner, "lease": lease.total_seconds()}).first()
    return None if row is None else Run(*row)


class Fence(NamedTuple):
    generation: int  # the session's generation now: another than the run's means a truncate came between
    cancel_requested: bool


_LOCK_RUN = text(f"""
    SELECT s.generation, j.cancel_requested
    FROM jobs j JOIN sessions s ON s.id = j.session_id
    WHERE j.id = :id AND j.attempts = :token AND j.status = '{RUNNING}'
    FOR UPDATE OF j FOR SHARE OF s
""")


def lock_run(db: Session, job_id: str, token: int) -> Fence | None:
    """The fence, taken before any write of a run, in one round trip: lock the job row if this run
    still owns it, and share-lock its session so no truncate commits in between. None when the
    job is no longer the run's (re-queued after a lost lease, finished, cancelled, or purged)."""
    row = db.execute(_LOCK_RUN, {"id": job_id, "token": token}).first()
    return None if row is None else Fence(row[0], bool(row[1]))


# The channel a job's finish is notified on; the API's long-polls listen to it.
JOBS_CHANNEL = "engram_jobs"


def listen_to_finished_jobs(conn: psycopg.Connection[Any]) -> None:
    """Subscribe a (psycopg, autocommit) connection to the notifications of finished jobs."""
    conn.execute(f"LISTEN {JOBS_CHANNEL}")


_FINISH = text(f"""
    WITH done AS (
        UPDATE jobs SET status = :status, result = coalesce(CAST(:result AS jsonb), result),
               error = CAST(:error AS jsonb), progress_completed = coalesce(:completed, progress_completed),
               finished_at = now(), lease_expires_at = NULL
        WHERE id = :id RETURNING id
    )
    SELECT pg_notify('{JOBS_CHANNEL}', id) FROM done
""")


def finish(db: Session, job_id: str, status: JobStatus, *, result: dict[str, Any] | None = None,
           error: dict[str, Any] | None = None, completed: int | None = None) -> None:
    """Finish a job (locked by the caller) and wake its long-polls, in one statement. The
    notification is delivered at commit; the API's LISTEN wakes the requests waiting on the job."""
    db.execute(_FINISH, {"id": job_id, "status": status.value, "completed": completed,
                         "result": None if result is None else json.dumps(result),
                         "error": None if error is None else json.dumps(error)})


def record_progress(db: Session, job_id: str, result: dict[str, Any], completed: int) -> None:
    """A participant committed: the job's partial result and progress, in the same transaction."""
    db.execute(text("UPDATE jobs SET result = CAST(:result AS jsonb), progress_completed = :completed WHERE id = :id"),
               {"id": job_id, "result": json.dumps(result), "completed": completed})


def requeue(db: Session, job_id: str, error: dict[str, Any]) -> None:
    """Put a failed run's job (locked by the caller) back in the queue, keeping the error seen."""
    db.execute(text(f"""
        UPDATE jobs SET status = '{QUEUED}', lease_owner = NULL, lease_expires_at = NULL, dispatched_at = NULL,
                        redispatches = 0, error = CAST(:error AS jsonb)
        WHERE id = :id
    """), {"id": job_id, "error": json.dumps(error)})


_DISPATCH_NEXT = text(f"""
    UPDATE jobs j SET dispatched_at = now()
    WHERE j.session_id = :session_id AND j.status = '{QUEUED}' AND j.dispatched_at IS NULL AND {is_head("j")}
    RETURNING j.id, j.kind
""")


def dispatch_next(db: Session, session_id: int) -> list[Dispatch]:
    """Mark the session's head as dispatched when it is queued and has no message yet; returns
    the message to send after commit. Run in every transaction that finishes or re-queues a job."""
    return [Dispatch(r[0], r[1]) for r in db.execute(_DISPATCH_NEXT, {"session_id": session_id})]


_HEARTBEAT = text(f"""
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => :lease)
    WHERE id = :id AND attempts = :token AND status = '{RUNNING}'
    RETURNING cancel_requested
""")


def heartbeat(db: Session, job_id: str, token: int, lease: timedelta) -> tuple[bool, bool]:
    """Extend the lease. Returns (still the run's, cancel requested)."""
    row = db.execute(_HEARTBEAT, {"id": job_id, "token": token, "lease": lease.total_seconds()}).first()
    return row is not None, bool(row and row[0])


# --- the reconciler ----------------------------------------------------------------------------


_REQUEUE_EXPIRED = text(f"""
    UPDATE jobs SET status = '{QUEUED}', lease_owner = NULL, lease_expires_at = NULL, dispatched_at = NULL,
                    redispatches = 0
    WHERE status = '{RUNNING}' AND lease_expires_at < now() AND attempts < :max_attempts
    RETURNING id
""")


def requeue_expired(db: Session, max_attempts: int) -> list[str]:
    """Running jobs whose lease expired (worker lost) with attempts left: back to the queue."""
    return list(db.execute(_REQUEUE_EXPIRED, {"max_attempts": max_attempts}).scalars())


_LOCK_EXHAUSTED = text(f"""
    SELECT id, attempts FROM jobs
    WHERE status = '{RUNNING}' AND lease_expires_at < now() AND attempts >= :max_attempts
    FOR UPDATE SKIP LOCKED
""")


def lock_exhausted(db: Session, max_attempts: int) -> list[tuple[str, int]]:
    """Running jobs whose lease expired and that used up their attempts: (id, attempts), locked."""
    return [(r[0], r[1]) for r in db.execute(_LOCK_EXHAUSTED, {"max_attempts": max_attempts})]


REDISPATCH_BACKOFF_CAP = 4  # at most 2**4 = 16 times the base interval between re-sends

_REDISPATCH_HEADS = text(f"""
    UPDATE jobs j
    SET redispatches = j.redispatches + CASE WHEN j.dispatched_at IS NULL THEN 0 ELSE 1 END,
        dispatched_at = now()
    WHERE j.id IN (
        SELECT h.id FROM jobs h
        WHERE h.status = '{QUEUED}' AND {is_head("h")}
          AND (h.dispatched_at IS NULL OR h.dispatched_at < now() - make_interval(
                   secs => :interval * power(2, least(h.redispatches, {REDISPATCH_BACKOFF_CAP}))))
        ORDER BY h.seq LIMIT :limit
        FOR UPDATE SKIP LOCKED)
    RETURNING j.id, j.kind
""")


def redispatch_heads(db: Session, interval: timedelta, limit: int = 1000) -> list[Dispatch]:
    """Queued heads with no message, or whose message is older than ``interval`` doubled for each
    re-send already made (up to 16 times): mark them dispatched and return the messages to send."""
    rows = db.execute(_REDISPATCH_HEADS, {"interval": interval.total_seconds(), "limit": limit})
    return [Dispatch(r[0], r[1]) for r in rows]


def purge_finished(db: Session, before: datetime) -> int:
    """Delete the jobs finished before ``before``; returns how many."""
    return rowcount(db.execute(delete(Job).where(Job.finished_at < before)))
