"""The job resource as the API sees it: enqueue (with coalescing), read, list, cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import UNKNOWN_KEY, Conflict, SessionDeleted, Unauthorized, absent
from shared.jobs import repository as repo
from shared.jobs import runs
from shared.jobs.repository import Accepted, JobRow, Outcome
from shared.jobs.schemas import JobLinks, JobRead, Progress
from shared.kit.db import UnitOfWork
from shared.models import Job, Namespace
from shared.models.states import JobKind, JobStatus
from shared.queue import Dispatch
from shared.schemas import Page, page_of
from shared.sessions import service as sessions

if TYPE_CHECKING:
    from shared.kit.connector import AsyncConnector


def job_path(namespace: str, job_id: str) -> str:
    return f"/v1/namespaces/{namespace}/jobs/{job_id}"


JobFields = Job | JobRow
"""A job's fields as a read shows them: a ``Job`` record, or the row of an accept or a read."""


def to_read(job: JobFields, namespace: str) -> JobRead:
    return JobRead(
        id=job.id, kind=JobKind(job.kind), status=JobStatus(job.status), session=job.session_name,
        progress=Progress(completed=job.progress_completed, total=job.progress_total),
        result=job.result, error=job.error, attempts=job.attempts, cancel_requested=job.cancel_requested,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        links=JobLinks(self=job_path(namespace, job.id)),
    )


@dataclass
class Enqueued:
    job: JobRow
    created: bool  # False: an already queued integration was returned (coalesced)
    dispatch: Dispatch | None  # the job is its session's head: send this message after commit


def _enqueued(a: Accepted, namespace: str, session: str) -> Enqueued:
    if a.outcome == Outcome.UNAUTHORIZED:
        raise Unauthorized(UNKNOWN_KEY)
    if a.outcome == Outcome.NO_NAMESPACE:
        raise absent("namespace", namespace)
    if a.outcome == Outcome.NO_SESSION:
        raise absent("session", session, namespace)
    if a.outcome == Outcome.SESSION_DELETED:
        raise SessionDeleted(f"session '{session}' is deleted; undelete it before writing to it")
    assert a.job is not None
    created = a.outcome == Outcome.CREATED
    return Enqueued(a.job, created, Dispatch(a.job.id, a.job.kind) if created and a.head else None)


def enqueue(db: UnitOfWork, namespace: str, session: str, kind: JobKind, key: str | None) -> Enqueued:
    """Accept a long operation in the caller's transaction; the caller commits, then sends
    ``dispatch`` if there is one. ``key`` is the caller (as the SQL function reached_namespace takes it)."""
    return _enqueued(repo.accept(db, namespace, session, kind, key, str(uuid.uuid4())), namespace, session)


async def enqueue_now(adb: AsyncConnector, namespace: str, session: str, kind: JobKind, key: str | None) -> Enqueued:
    """Accept a long operation in a transaction of its own, in one round trip; committed on return."""
    rows = await adb.run(repo.accept_statements(namespace, session, kind, key, str(uuid.uuid4())))
    return _enqueued(repo.accepted(rows[-1][0]), namespace, session)


async def read_now(adb: AsyncConnector, namespace: str, key: str | None, job_id: str) -> JobRead:
    """A job as the caller may read it, in one round trip (the long-poll's look)."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise absent("job", job_id, namespace) from None
    rows = await adb.run([(repo.READ_JOB, {"namespace": namespace, "key": key, "job": job_id})],
                         retry_lost_connection=True)
    row = rows[0][0]
    if not row[0]:
        raise Unauthorized(UNKNOWN_KEY)
    if not row[1]:
        raise absent("namespace", namespace)
    if row[2] is None:
        raise absent("job", job_id, namespace)
    return to_read(repo.JobRow(*row[2:]), namespace)


def get(db: UnitOfWork, ns: Namespace, job_id: str, *, lock: bool = False) -> Job:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise absent("job", job_id, ns.name) from None
    job = repo.get(db, ns.id, job_id, lock=lock)
    if job is None:
        raise absent("job", job_id, ns.name)
    return job


def list_(db: UnitOfWork, ns: Namespace, *, session: str | None, kind: JobKind | None, status: JobStatus | None,
          cursor: str | None, limit: int) -> Page[JobRead]:
    session_id = sessions.get(db, ns, session).id if session is not None else None
    return page_of(
        lambda before, n: repo.list_before(db, ns.id, before=before, limit=n, session_id=session_id,
                                           kind=kind, status=status),
        cursor, int, limit, item=lambda j: to_read(j, ns.name), position=lambda j: j.seq)


def cancel(db: UnitOfWork, ns: Namespace, job_id: str) -> tuple[Job, list[Dispatch]]:
    """Cancel: a queued job at once, a running one at its next safe point (between participants).
    Returns the job and, when a queued head was cancelled, the session's next message to send."""
    job = get(db, ns, job_id, lock=True)
    if JobStatus(job.status).finished:
        raise Conflict(f"job '{job_id}' already finished ({job.status})")
    repo.request_cancel(db, job.id)
    if job.status != JobStatus.RUNNING:
        runs.finish(db, job.id, JobStatus.CANCELLED)
    return get(db, ns, job_id), [] if job.status == JobStatus.RUNNING else repo.dispatch_next(db, job.session_id)
