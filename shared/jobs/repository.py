"""All SQL of jobs outside a run: accepting and reading them, listing and cancelling, dispatching a
session's head, and the reconciler's. A run's statements are in shared.jobs.runs. The words (head,
dispatch, run) are those of docs/jobs.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from shared.kit import connector
from shared.kit.db import UnitOfWork
from shared.models import Job
from shared.models.base import columns
from shared.models.states import OPEN_SQL, JobKind, JobStatus
from shared.queue import Dispatch

QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value


def is_head(job: str) -> str:
    """The head of a session's queue, as an SQL condition on the job row aliased ``job``: no
    earlier job of its session is unfinished. Only the head holds a wake-up message, and only the
    head may be claimed (DESIGN.md section 3, rule 3)."""
    return (f"NOT EXISTS (SELECT 1 FROM jobs earlier WHERE earlier.session_id = {job}.session_id"
            f" AND earlier.status IN {OPEN_SQL} AND earlier.seq < {job}.seq)")


_JOB = columns(Job, "jobs")
"""Fragment: every column of a job, as the model ``Job`` has them."""

GET = f"SELECT {_JOB} FROM jobs WHERE id = %(id)s AND namespace_id = %(namespace_id)s"
"""A job of a namespace (params: id, namespace_id)."""
GET_LOCKED = GET + " FOR UPDATE"
"""GET, the job's row locked for the rest of the transaction."""


def get(db: UnitOfWork, namespace_id: int, job_id: str, *, lock: bool = False) -> Job | None:
    row = connector.fetch_one(db, GET_LOCKED if lock else GET, {"id": job_id, "namespace_id": namespace_id})
    return None if row is None else Job(**row._mapping)


STATUS_OF = "SELECT status FROM jobs WHERE id = %(id)s"
"""A job's status, whatever its namespace (param: id)."""


def status_of(db: UnitOfWork, job_id: str) -> str | None:
    """The job's status, whatever its namespace (for the worker's log of a skipped message)."""
    row = connector.fetch_one(db, STATUS_OF, {"id": job_id})
    return None if row is None else str(row[0])


# --- accepting a job ---------------------------------------------------------------------------


class JobRow(NamedTuple):
    id: str
    kind: str
    status: str
    session_name: str
    progress_completed: int
    progress_total: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    attempts: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


JOB_COLUMNS = ", ".join(JobRow._fields)
"""Fragment: what a job read shows, in this order (JobRow); the accepting and reading statements return it."""


class Outcome(StrEnum):
    """What accepting a job came to."""

    CREATED = "created"
    COALESCED = "coalesced"  # an integration of the session was still queued: that job answers
    UNAUTHORIZED = "unauthorized"  # unknown or revoked key
    NO_NAMESPACE = "no_namespace"  # or not the key's namespace (the namespace wall)
    NO_SESSION = "no_session"
    SESSION_DELETED = "session_deleted"


class Accepted(NamedTuple):
    outcome: Outcome
    head: bool  # a created job with no unfinished job before it: send its wake-up after commit
    job: JobRow | None  # the created or coalesced job


# Accepting a job is these two statements, in one transaction sent in one round trip (shared.kit.connector).
# The first locks the session row, which orders the session's jobs; the second, which takes its
# snapshot only once the lock is held, decides and inserts. Their parameters: key (the caller, as
# the SQL function reached_namespace takes it: the namespace wall, migration 0007), namespace and
# session (names), kind, id (the new job's id).
LOCK_SESSION = """
    SELECT s.id FROM sessions s
    WHERE s.name = %(session)s AND s.namespace_id = (SELECT id FROM reached_namespace(%(key)s, %(namespace)s))
    FOR UPDATE OF s
"""
"""Lock the session a job is asked for, if the caller reaches it (params: key, namespace, session)."""

ACCEPT = f"""
    WITH caller AS (SELECT known, id FROM reached_namespace(%(key)s, %(namespace)s)),
    ns AS (SELECT id FROM caller WHERE id IS NOT NULL),
    s AS (SELECT s.id, s.name, s.deleted_at IS NOT NULL AS deleted FROM sessions s, ns
          WHERE s.namespace_id = ns.id AND s.name = %(session)s),
    last AS (SELECT j.id, j.status, j.kind FROM jobs j, s WHERE j.session_id = s.id AND j.status IN {OPEN_SQL}
             ORDER BY j.seq DESC LIMIT 1),
    decision AS (
        SELECT CASE WHEN NOT caller.known THEN '{Outcome.UNAUTHORIZED}'
                    WHEN NOT EXISTS (SELECT FROM ns) THEN '{Outcome.NO_NAMESPACE}'
                    WHEN NOT EXISTS (SELECT FROM s) THEN '{Outcome.NO_SESSION}'
                    WHEN (SELECT deleted FROM s) THEN '{Outcome.SESSION_DELETED}'
                    -- Coalescing: a queued integration has not taken its snapshot yet, so it will
                    -- integrate every turn appended before this request too.
                    WHEN %(kind)s = '{JobKind.INTEGRATE}' AND EXISTS (
                        SELECT FROM last WHERE last.status = '{QUEUED}' AND last.kind = '{JobKind.INTEGRATE}')
                    THEN '{Outcome.COALESCED}'
                    ELSE '{Outcome.CREATED}' END AS outcome,
               -- With no unfinished job before it, the new job is its session's head (is_head).
               NOT EXISTS (SELECT FROM last) AS head
        FROM caller),
    created AS (
        INSERT INTO jobs (id, namespace_id, session_id, session_name, kind, status, attempts, progress_completed,
                          progress_total, cancel_requested, dispatched_at)
        SELECT %(id)s, ns.id, s.id, s.name, %(kind)s, '{QUEUED}', 0, 0, 0, false, CASE WHEN d.head THEN now() END
        FROM ns, s, decision d WHERE d.outcome = '{Outcome.CREATED}'
        RETURNING {JOB_COLUMNS})
    SELECT d.outcome, d.head, j.*
    FROM decision d LEFT JOIN (
        SELECT {JOB_COLUMNS} FROM created
        UNION ALL
        SELECT {", ".join("c." + c.strip() for c in JOB_COLUMNS.split(","))} FROM jobs c JOIN last ON c.id = last.id
        WHERE (SELECT outcome FROM decision) = '{Outcome.COALESCED}') j ON true
"""
"""Decide what the request comes to and create the job (params: key, namespace, session, kind, id): one
row (outcome, head, then the job's columns, JOB_COLUMNS, or NULLs)."""


def accept_statements(namespace: str, session: str, kind: JobKind, key: str | None,
                      job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The statements that accept a job, to run in one transaction (shared.kit.connector.AsyncConnector.run,
    or ``accept`` on a synchronous session); ``accepted`` reads the last one's row."""
    params = {"namespace": namespace, "session": session, "kind": kind.value, "key": key, "id": job_id}
    return [(LOCK_SESSION, params), (ACCEPT, params)]


def accepted(row: tuple[Any, ...]) -> Accepted:
    return Accepted(Outcome(row[0]), bool(row[1]), None if row[2] is None else JobRow(*row[2:]))


def accept(db: UnitOfWork, namespace: str, session: str, kind: JobKind, key: str | None, job_id: str) -> Accepted:
    """Accept a job within the caller's transaction (the path of a request with an Idempotency-Key)."""
    (lock, lock_params), (decide, decide_params) = accept_statements(namespace, session, kind, key, job_id)
    connector.execute(db, lock, lock_params)
    row = connector.fetch_one(db, decide, decide_params)
    assert row is not None  # ACCEPT returns its decision's row, whatever it is
    return accepted(tuple(row))


READ_JOB = f"""
    WITH caller AS (SELECT known, id FROM reached_namespace(%(key)s, %(namespace)s))
    SELECT caller.known, caller.id IS NOT NULL, j.*
    FROM caller LEFT JOIN (SELECT {JOB_COLUMNS} FROM jobs
                           WHERE id = %(job)s AND namespace_id = (SELECT id FROM caller)) j ON true
"""
"""A job as the caller may read it: (key known, namespace reached, the job's columns or NULLs)."""


LIST_BEFORE = f"""
    SELECT {_JOB} FROM jobs
    WHERE namespace_id = %(namespace_id)s AND (CAST(%(before)s AS bigint) IS NULL OR seq < %(before)s)
      AND (CAST(%(session_id)s AS bigint) IS NULL OR session_id = %(session_id)s)
      AND (CAST(%(kind)s AS text) IS NULL OR kind = %(kind)s)
      AND (CAST(%(status)s AS text) IS NULL OR status = %(status)s)
    ORDER BY seq DESC LIMIT %(limit)s
"""
"""A namespace's jobs, newest first, before a position (params: namespace_id, limit; before (a job's
``seq``), session_id, kind and status, each NULL for any)."""


def list_before(db: UnitOfWork, namespace_id: int, *, before: int | None, limit: int, session_id: int | None,
                kind: str | None, status: str | None) -> list[Job]:
    """The namespace's jobs, newest first, before a position (a job's ``seq``)."""
    rows = connector.fetch_all(db, LIST_BEFORE, {"namespace_id": namespace_id, "before": before, "limit": limit,
                                                 "session_id": session_id, "kind": kind, "status": status})
    return [Job(**row._mapping) for row in rows]


REQUEST_CANCEL = "UPDATE jobs SET cancel_requested = true WHERE id = %(id)s"
"""Mark a job cancelled-on-request (param: id)."""


def request_cancel(db: UnitOfWork, job_id: str) -> None:
    """Mark the job cancelled-on-request; a running one sees it at its next safe point."""
    connector.execute(db, REQUEST_CANCEL, {"id": job_id})


# --- dispatching the head ---------------------------------------------------------------------


def _dispatch_next_sql(session: str) -> str:
    return f"""
    UPDATE jobs j SET dispatched_at = now()
    WHERE j.session_id = {session} AND j.status = '{QUEUED}' AND j.dispatched_at IS NULL AND {is_head("j")}
    RETURNING j.id, j.kind
"""


DISPATCH_NEXT = _dispatch_next_sql("%(session_id)s")
"""``dispatch_next`` as a statement (param: session_id); rows (id, kind) of ``Dispatch``."""
DISPATCH_AFTER = _dispatch_next_sql("(SELECT session_id FROM jobs WHERE id = %(id)s)")
"""DISPATCH_NEXT of the job's session (param: id)."""


def dispatch_next(db: UnitOfWork, session_id: int) -> list[Dispatch]:
    """Mark the session's head as dispatched when it is queued and has no message yet; returns
    the message to send after commit. Run in every transaction that finishes or re-queues a job."""
    return [Dispatch(r[0], r[1]) for r in connector.fetch_all(db, DISPATCH_NEXT, {"session_id": session_id})]


# --- the reconciler ----------------------------------------------------------------------------


REQUEUE_EXPIRED = f"""
    UPDATE jobs SET status = '{QUEUED}', lease_owner = NULL, lease_expires_at = NULL, dispatched_at = NULL,
                    redispatches = 0
    WHERE status = '{RUNNING}' AND lease_expires_at < now() AND attempts < %(max_attempts)s
    RETURNING id
"""
"""Running jobs whose lease expired, with attempts left, back to the queue (param: max_attempts): their ids."""


def requeue_expired(db: UnitOfWork, max_attempts: int) -> list[str]:
    """Running jobs whose lease expired (worker lost) with attempts left: back to the queue."""
    return [str(r[0]) for r in connector.fetch_all(db, REQUEUE_EXPIRED, {"max_attempts": max_attempts})]


LOCK_EXHAUSTED = f"""
    SELECT id, attempts FROM jobs
    WHERE status = '{RUNNING}' AND lease_expires_at < now() AND attempts >= %(max_attempts)s
    FOR UPDATE SKIP LOCKED
"""
"""Running jobs whose lease expired and whose attempts are used up, locked (param: max_attempts): (id, attempts)."""


def lock_exhausted(db: UnitOfWork, max_attempts: int) -> list[tuple[str, int]]:
    """Running jobs whose lease expired and that used up their attempts: (id, attempts), locked."""
    return [(r[0], r[1]) for r in connector.fetch_all(db, LOCK_EXHAUSTED, {"max_attempts": max_attempts})]


REDISPATCH_BACKOFF_CAP = 4  # at most 2**4 = 16 times the base interval between re-sends

REDISPATCH_HEADS = f"""
    UPDATE jobs j
    SET redispatches = j.redispatches + CASE WHEN j.dispatched_at IS NULL THEN 0 ELSE 1 END,
        dispatched_at = now()
    WHERE j.id IN (
        SELECT h.id FROM jobs h
        WHERE h.status = '{QUEUED}' AND {is_head("h")}
          AND (h.dispatched_at IS NULL OR h.dispatched_at < now() - make_interval(
                   secs => %(interval)s * power(2, least(h.redispatches, {REDISPATCH_BACKOFF_CAP}))))
        ORDER BY h.seq LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED)
    RETURNING j.id, j.kind
"""
"""Mark due heads dispatched (params: interval in seconds, limit): rows (id, kind) of ``Dispatch``."""


def redispatch_heads(db: UnitOfWork, interval: timedelta, limit: int = 1000) -> list[Dispatch]:
    """Queued heads with no message, or whose message is older than ``interval`` doubled for each
    re-send already made (up to 16 times): mark them dispatched and return the messages to send."""
    rows = connector.fetch_all(db, REDISPATCH_HEADS, {"interval": interval.total_seconds(), "limit": limit})
    return [Dispatch(r[0], r[1]) for r in rows]


PURGE_FINISHED = "DELETE FROM jobs WHERE finished_at < %(before)s"
"""Delete the jobs finished before a time (param: before)."""


def purge_finished(db: UnitOfWork, before: datetime) -> int:
    """Delete the jobs finished before ``before``; returns how many."""
    return connector.execute(db, PURGE_FINISHED, {"before": before})
