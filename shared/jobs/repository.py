"""All SQL of the job lifecycle. Every statement has a name and a one-line purpose; the words
(head, dispatch, run, token, fence) are those of docs/jobs.md.

A write made by a run carries its fencing token (the job's ``attempts`` when the run claimed it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

import psycopg
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from shared.kit.db import rowcount
from shared.memories import repository as memories_repo
from shared.models import Job
from shared.models.states import OPEN, OPEN_SQL, JobKind, JobStatus
from shared.namespaces.repository import CALLER, known, reaches
from shared.queue import Dispatch
from shared.sessions import repository as sessions_repo

QUEUED, RUNNING = JobStatus.QUEUED.value, JobStatus.RUNNING.value


def is_head(job: str) -> str:
    """The head of a session's queue, as an SQL condition on the job row aliased ``job``: no
    earlier job of its session is unfinished. Only the head holds a wake-up message, and only the
    head may be claimed (DESIGN.md section 3, rule 3)."""
    return (f"NOT EXISTS (SELECT 1 FROM jobs earlier WHERE earlier.session_id = {job}.session_id"
            f" AND earlier.status IN {OPEN_SQL} AND earlier.seq < {job}.seq)")


def get(db: Session, namespace_id: int, job_id: str, *, lock: bool = False) -> Job | None:
    q = select(Job).where(Job.id == job_id, Job.namespace_id == namespace_id)
    if lock:
        q = q.with_for_update()
    return db.execute(q).scalar_one_or_none()


def status_of(db: Session, job_id: str) -> str | None:
    """The job's status, whatever its namespace (for the worker's log of a skipped message)."""
    return db.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none()


# --- accepting a job ---------------------------------------------------------------------------


# What a job read shows, in this order (JobRow); the accepting and reading statements return it.
JOB_COLUMNS = ("id, kind, status, session_name, progress_completed, progress_total, result, error, attempts, "
               "cancel_requested, created_at, started_at, finished_at")


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
# snapshot only once the lock is held, decides and inserts. Their parameters: key (the caller, see
# CALLER), namespace and session (names), kind, id (the new job's id).
_SESSION_OF_CALLER = f"""
    SELECT s.id FROM sessions s
    WHERE s.name = %(session)s AND s.namespace_id = (
        SELECT n.id FROM namespaces n, ({CALLER}) caller WHERE n.name = %(namespace)s AND {reaches("caller", "n")})
"""

LOCK_SESSION = _SESSION_OF_CALLER + " FOR UPDATE OF s"

ACCEPT = f"""
    WITH caller AS ({CALLER}),
    ns AS (SELECT n.id FROM namespaces n, caller WHERE n.name = %(namespace)s AND {reaches("caller", "n")}),
    s AS (SELECT s.id, s.name, s.deleted_at IS NOT NULL AS deleted FROM sessions s, ns
          WHERE s.namespace_id = ns.id AND s.name = %(session)s),
    last AS (SELECT j.id, j.status, j.kind FROM jobs j, s WHERE j.session_id = s.id AND j.status IN {OPEN_SQL}
             ORDER BY j.seq DESC LIMIT 1),
    decision AS (
        SELECT CASE WHEN NOT {known("caller")} THEN '{Outcome.UNAUTHORIZED}'
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


def accept_statements(namespace: str, session: str, kind: JobKind, key: str | None,
                      job_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The statements that accept a job, to run in one transaction (shared.kit.connector.AsyncConnector.run,
    or ``accept`` on a synchronous session); ``accepted`` reads the last one's row."""
    params = {"namespace": namespace, "session": session, "kind": kind.value, "key": key, "id": job_id}
    return [(LOCK_SESSION, params), (ACCEPT, params)]


def accepted(row: tuple[Any, ...]) -> Accepted:
    return Accepted(Outcome(row[0]), bool(row[1]), None if row[2] is None else JobRow(*row[2:]))


def accept(db: Session, namespace: str, session: str, kind: JobKind, key: str | None, job_id: str) -> Accepted:
    """Accept a job within the caller's transaction (the path of a request with an Idempotency-Key)."""
    conn = db.connection()
    last: Any = None
    for sql, params in accept_statements(namespace, session, kind, key, job_id):
        last = conn.exec_driver_sql(sql, params)
    return accepted(last.one())


READ_JOB = f"""
    WITH caller AS ({CALLER}),
    ns AS (SELECT n.id FROM namespaces n, caller WHERE n.name = %(namespace)s AND {reaches("caller", "n")})
    SELECT {known("caller")}, EXISTS (SELECT FROM ns), j.*
    FROM caller LEFT JOIN (SELECT {JOB_COLUMNS} FROM jobs
                           WHERE id = %(job)s AND namespace_id = (SELECT id FROM ns)) j ON true
"""
"""A job as the caller may read it: (key known, namespace reached, the job's columns or NULLs)."""


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


CLAIM = f"""
    UPDATE jobs j
    SET status = '{RUNNING}', attempts = j.attempts + 1, lease_owner = %(owner)s,
        lease_expires_at = now() + make_interval(secs => %(lease)s), started_at = coalesce(j.started_at, now()),
        run_generation = s.generation, snapshot_seq = s.turn_count, progress_completed = 0,
        progress_total = CASE WHEN j.kind = '{JobKind.TRUNCATE.value}' THEN 1
                              ELSE (SELECT count(*) FROM participants p WHERE p.session_id = j.session_id) END
    FROM (SELECT s.id, s.generation, s.turn_count FROM sessions s
          WHERE s.id = (SELECT q.session_id FROM jobs q WHERE q.id = %(id)s) FOR SHARE) s
    WHERE j.id = %(id)s AND s.id = j.session_id AND j.status = '{QUEUED}' AND {is_head("j")}
    RETURNING j.id, j.session_id, j.session_name, j.kind, j.attempts, j.run_generation, j.snapshot_seq, j.result
"""
"""Start a run (params: id, owner, lease in seconds): the row of a ``Run``, or none.

The claim share-locks the session row, which an accept (LOCK_SESSION) and an append lock for
update, and reads the session's generation and last seq from the row it locked, its newest
version. So an accept that coalesces a request into this job either commits before the claim reads
the last seq (the snapshot then holds every turn appended before that request) or waits for the
claim to commit and then sees the job running, and creates a new one."""

# An integration's claim is one round trip (shared.kit.connector): CLAIM, then the reads of its plan
# over this relation, the job's session and snapshot once the claim above made it this run's.
CLAIMED_INTEGRATION = f"""(SELECT session_id, snapshot_seq FROM jobs WHERE id = %(id)s AND status = '{RUNNING}'
                            AND lease_owner = %(owner)s AND kind = '{JobKind.INTEGRATE.value}')"""


def claim_params(job_id: str, owner: str, lease: timedelta) -> dict[str, Any]:
    return {"id": job_id, "owner": owner, "lease": lease.total_seconds()}


def claimed(row: tuple[Any, ...] | None) -> Run | None:
    """The run of CLAIM's row, or None when the job was not claimed (the worker's claim:
    shared.jobs.effects.claim_integration)."""
    return None if row is None else Run(*row)


class Fence(NamedTuple):
    generation: int  # the session's generation now: another than the run's means a truncate came between
    cancel_requested: bool


LOCK_RUN = f"""
    SELECT s.generation, j.cancel_requested
    FROM jobs j JOIN sessions s ON s.id = j.session_id
    WHERE j.id = %(id)s AND j.attempts = %(token)s AND j.status = '{RUNNING}'
    FOR UPDATE OF j FOR SHARE OF s
"""
"""The fence (params: id, token): one row (session generation, cancel requested), or none."""


def fenced(row: tuple[Any, ...] | None) -> Fence | None:
    return None if row is None else Fence(row[0], bool(row[1]))


def lock_run(db: Session, job_id: str, token: int) -> Fence | None:
    """The fence, taken before any write of a run, in one round trip: lock the job row if this run
    still owns it, and share-lock its session so no truncate commits in between. None when the
    job is no longer the run's (re-queued after a lost lease, finished, cancelled, or purged)."""
    return fenced(db.connection().exec_driver_sql(LOCK_RUN, {"id": job_id, "token": token}).first())


# The channels a job's finish is notified on: the API's long-polls listen to the first; the
# scheduler, which sends webhook deliveries, to the second.
JOBS_CHANNEL = "engram_jobs"
DELIVERIES_CHANNEL = "engram_deliveries"


def listen_to_finished_jobs(conn: psycopg.Connection[Any]) -> None:
    """Subscribe a (psycopg, autocommit) connection to the notifications of finished jobs."""
    conn.execute(f"LISTEN {JOBS_CHANNEL}")


# What every statement that finishes jobs ends with, over its CTE ``done`` of the finished job rows
# (id, namespace_id, status): the outbox, a CTE writing their webhook deliveries in the same
# transaction as the finish, and a select expression that notifies at commit the API's long-polls
# and, when deliveries were written, the scheduler that sends them.
_OUTBOX = """outbox AS (
        INSERT INTO webhook_deliveries (id, webhook_id, job_id, event)
        SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), w.id, done.id, 'job.' || done.status
        FROM done JOIN webhooks w ON w.namespace_id = done.namespace_id AND 'job.' || done.status = ANY(w.events)
        RETURNING id)"""
"""One delivery per endpoint of the job's namespace subscribed to its final status. Written with
no message sent (``dispatched_at`` NULL): the scheduler, woken at the commit by the notification,
sends them at once (shared.webhooks.repository.due); a delivery written as "just sent" would wait
for ENGRAM_JOB_REDISPATCH_SECONDS, as if its message had been lost."""
_NOTIFY = (f"(SELECT count(*) FROM (SELECT pg_notify('{JOBS_CHANNEL}', id) FROM done) n)"
           f" + (SELECT count(*) FROM (SELECT pg_notify('{DELIVERIES_CHANNEL}', id) FROM done"
           " WHERE EXISTS (SELECT FROM outbox)) d)")


# With nothing new for any participant, an integration is done in its claim's round trip: this
# statement, run right after CLAIM in the same transaction (the job row is the run's, locked by it;
# no truncate can come between, the job being its session's head), moves the watermarks, finishes
# the job with its result and wakes its long-polls. A job with the result of an earlier attempt
# goes the usual way (its result adds up, see shared.jobs.effects).
_IDLE_JOB = f"""(SELECT id, session_id, snapshot_seq FROM jobs WHERE id = %(id)s AND status = '{RUNNING}'
                 AND lease_owner = %(owner)s AND kind = '{JobKind.INTEGRATE.value}' AND result IS NULL)"""
FINISH_IF_IDLE = f"""
    WITH job AS MATERIALIZED {_IDLE_JOB},
    people(id, agent_id, name, description, watermark) AS MATERIALIZED (
        {sessions_repo.participants_to_integrate_sql("job")}),
    idle AS MATERIALIZED (
        SELECT job.id, job.snapshot_seq FROM job WHERE NOT EXISTS ({sessions_repo.new_turns_seen_sql("job")})),
    moved AS MATERIALIZED ({sessions_repo.MOVE_WATERMARKS.format(
        snapshot="(SELECT snapshot_seq FROM idle)", read="people AS w", when="EXISTS (SELECT FROM idle)")}),
    done AS (
        UPDATE jobs SET status = '{JobStatus.SUCCEEDED.value}', finished_at = now(), lease_expires_at = NULL,
                        progress_completed = (SELECT count(*) FROM people),
                        result = jsonb_build_object('participants', coalesce((
                            SELECT jsonb_agg(jsonb_build_object(
                                       'name', p.name, 'turns_integrated', 0, 'insights_created', 0,
                                       'memories_created', 0, 'watermark', coalesce(m.last_integration_turn, p.watermark))
                                   ORDER BY p.name COLLATE "C")
                            FROM people p LEFT JOIN moved m ON m.id = p.id), '[]'::jsonb))
        WHERE id = (SELECT id FROM idle)
        RETURNING id, namespace_id, status),
    {_OUTBOX}
    SELECT least(1, {_NOTIFY})
"""
"""Params: id, owner. One row: 1 when the job was finished, else 0."""

_FINISH = text(f"""
    WITH done AS (
        UPDATE jobs SET status = :status, result = coalesce(CAST(:result AS jsonb), result),
               error = CAST(:error AS jsonb), progress_completed = coalesce(:completed, progress_completed),
               finished_at = now(), lease_expires_at = NULL
        WHERE id = :id RETURNING id, namespace_id, status
    ),
    {_OUTBOX}
    SELECT {_NOTIFY}
""")


def finish(db: Session, job_id: str, status: JobStatus, *, result: dict[str, Any] | None = None,
           error: dict[str, Any] | None = None, completed: int | None = None) -> None:
    """Finish a job (locked by the caller), write its webhook deliveries (the outbox) and wake
    its long-polls, in one statement. The notifications are delivered at commit: the API's LISTEN
    wakes the requests waiting on the job, the scheduler's sends the new deliveries."""
    db.execute(_FINISH, {"id": job_id, "status": status.value, "completed": completed,
                         "result": None if result is None else json.dumps(result),
                         "error": None if error is None else json.dumps(error)})


# One step of an integration, in one statement: the participants it commits (at most one with new
# turns, the writer, and any with nothing to write) move their watermarks; the writer's insights
# and memories go in, conditional on its watermark moving (a participant unbound or rebound since
# the claim gets nothing); the job records its result and progress, or, on the last step, finishes
# and wakes its long-polls. Nothing applies unless the run still owns the job, no cancel was
# requested and the session's generation is the run's: the fence (LOCK_RUN), sent before this
# statement in the same transaction, holds the locks that keep it so. Nor unless the writer's
# memories were sifted against the agent's latest ones and none of its turns was redacted since
# (the agent's lock, LOCK_AGENT, is taken before this statement too): a write prepared from what
# was read without the lock applies only if that is still so.
# The result is computed here from what moved: ``others`` are the result's entries of participants
# not in this step, ``entries`` give each participant of the step its entry if it moved or if not.
COMMIT_STEP = f"""
    WITH ok AS MATERIALIZED (
        SELECT j.id FROM jobs j JOIN sessions s ON s.id = j.session_id
        WHERE j.id = %(id)s AND j.attempts = %(token)s AND j.status = '{RUNNING}' AND NOT j.cancel_requested
          AND s.generation = %(generation)s
          AND {memories_repo.WINDOW_UNCHANGED} AND {sessions_repo.NONE_REDACTED}),
    moved AS MATERIALIZED ({sessions_repo.MOVE_WATERMARKS.format(
        snapshot="%(snapshot)s", read=sessions_repo.AS_READ, when="EXISTS (SELECT FROM ok)")}),
    writer AS MATERIALIZED (SELECT FROM moved WHERE moved.id = CAST(%(writer)s AS bigint)),
    new_insights AS ({sessions_repo.INSERT_INSIGHTS.format(when="EXISTS (SELECT FROM writer)")}),
    new_memories AS ({memories_repo.INSERT_MEMORIES.format(when="EXISTS (SELECT FROM writer)")}),
    reinforced AS ({memories_repo.REINFORCE.format(when="EXISTS (SELECT FROM writer)")}),
    result AS (
        SELECT jsonb_build_object('participants', coalesce(jsonb_agg(r.e ORDER BY r.e ->> 'name' COLLATE "C"),
                                                           '[]'::jsonb)) AS value
        FROM (SELECT e FROM jsonb_array_elements(CAST(%(others)s AS jsonb)) AS e
              UNION ALL
              SELECT CASE WHEN EXISTS (SELECT FROM moved WHERE moved.id = x.participant) THEN x.moved ELSE x.stayed END
              FROM jsonb_to_recordset(CAST(%(entries)s AS jsonb)) AS x(participant bigint, moved jsonb, stayed jsonb)) r),
    step AS (
        UPDATE jobs SET result = (SELECT value FROM result), progress_completed = %(completed)s,
                        status = CASE WHEN %(last)s THEN '{JobStatus.SUCCEEDED.value}' ELSE status END,
                        finished_at = CASE WHEN %(last)s THEN now() ELSE finished_at END,
                        lease_expires_at = CASE WHEN %(last)s THEN NULL ELSE lease_expires_at END
        WHERE id = (SELECT id FROM ok)
        RETURNING id, namespace_id, status),
    done AS (SELECT id, namespace_id, status FROM step WHERE %(last)s),
    {_OUTBOX}
    SELECT EXISTS (SELECT FROM step), ARRAY(SELECT id FROM moved), {_NOTIFY}
"""
"""Params: id, token, generation, session_id, session_name, snapshot, participants and watermarks
(as read), writer (a participant id or None), agent_id, insights, memories, reinforce, the window
sifted against (low, high, kept), seqs (the writer's turns), others, entries, completed, last.
One row: (the step applied, ids of the participants whose watermark moved, notifications sent).
The last step also writes the job's webhook deliveries (the outbox)."""


def requeue(db: Session, job_id: str, error: dict[str, Any]) -> None:
    """Put a failed run's job (locked by the caller) back in the queue, keeping the error seen."""
    db.execute(text(f"""
        UPDATE jobs SET status = '{QUEUED}', lease_owner = NULL, lease_expires_at = NULL, dispatched_at = NULL,
                        redispatches = 0, error = CAST(:error AS jsonb)
        WHERE id = :id
    """), {"id": job_id, "error": json.dumps(error)})


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


def dispatch_next(db: Session, session_id: int) -> list[Dispatch]:
    """Mark the session's head as dispatched when it is queued and has no message yet; returns
    the message to send after commit. Run in every transaction that finishes or re-queues a job."""
    return [Dispatch(r[0], r[1]) for r in db.connection().exec_driver_sql(DISPATCH_NEXT, {"session_id": session_id})]


HEARTBEAT = f"""
    UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %(lease)s)
    WHERE id = %(id)s AND attempts = %(token)s AND status = '{RUNNING}'
    RETURNING cancel_requested
"""
"""Extend the lease (params: id, token, lease in seconds): one row (cancel requested) while the run's."""


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
