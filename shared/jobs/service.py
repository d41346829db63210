"""The job resource as the API sees it: enqueue (with coalescing), read, list, cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound, SessionDeleted
from shared.jobs import repository as repo
from shared.jobs.repository import Dispatch
from shared.jobs.schemas import JobKind, JobLinks, JobRead, JobStatus, Progress
from shared.models import Job, Namespace
from shared.schemas import Page, page_of
from shared.sessions import service as sessions


def job_path(namespace: str, job_id: str) -> str:
    return f"/v1/namespaces/{namespace}/jobs/{job_id}"


def to_read(job: Job, namespace: str) -> JobRead:
    return JobRead(
        id=job.id, kind=JobKind(job.kind), status=JobStatus(job.status), session=job.session_name,
        progress=Progress(completed=job.progress_completed, total=job.progress_total),
        result=job.result, error=job.error, attempts=job.attempts, cancel_requested=job.cancel_requested,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        links=JobLinks(self=job_path(namespace, job.id)),
    )


@dataclass
class Enqueued:
    job: Job
    created: bool  # False: an already queued integration was returned (coalesced)
    dispatch: Dispatch | None  # the job is its session's head: send this message after commit


def enqueue(db: Session, ns: Namespace, session_name: str, kind: JobKind) -> Enqueued:
    """Accept a long operation. The caller commits, then sends ``dispatch`` if there is one."""
    queue = repo.lock_session_queue(db, ns.id, session_name)  # the row lock orders the session's jobs
    if queue is None:
        raise NotFound(f"session '{session_name}' does not exist in namespace '{ns.name}'")
    if queue.deleted:
        raise SessionDeleted(f"session '{session_name}' is deleted; undelete it before writing to it")
    last = queue.last_open
    if kind == JobKind.INTEGRATE and last is not None and last[1] == JobStatus.QUEUED and last[2] == JobKind.INTEGRATE:
        # Coalescing: that queued integration has not taken its snapshot yet, so it will
        # integrate every turn appended before this request too.
        return Enqueued(db.get_one(Job, last[0]), created=False, dispatch=None)
    # With no unfinished job before it, the new job is its session's head (repo.is_head).
    head = last is None
    job = Job(id=str(uuid.uuid4()), namespace_id=ns.id, session_id=queue.session_id,
              session_name=queue.session_name, kind=kind.value, status=JobStatus.QUEUED.value, attempts=0,
              progress_completed=0, progress_total=0, cancel_requested=False)
    repo.insert_job(db, job, dispatch=head)  # a plain INSERT … RETURNING: the hot path of every submit
    return Enqueued(job, created=True, dispatch=Dispatch(job.id, job.kind) if head else None)


def get(db: Session, ns: Namespace, job_id: str, *, lock: bool = False) -> Job:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"job '{job_id}' does not exist in namespace '{ns.name}'") from None
    job = repo.get(db, ns.id, job_id, lock=lock)
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist in namespace '{ns.name}'")
    return job


def list_(db: Session, ns: Namespace, *, session: str | None, kind: JobKind | None, status: JobStatus | None,
          cursor: str | None, limit: int) -> Page[JobRead]:
    session_id = sessions.get(db, ns, session).id if session is not None else None
    return page_of(
        lambda before, n: repo.list_before(db, ns.id, before=before, limit=n, session_id=session_id,
                                           kind=kind, status=status),
        cursor, int, limit, item=lambda j: to_read(j, ns.name), position=lambda j: j.seq)


def cancel(db: Session, ns: Namespace, job_id: str) -> tuple[Job, list[Dispatch]]:
    """Cancel: a queued job at once, a running one at its next safe point (between participants).
    Returns the job and, when a queued head was cancelled, the session's next message to send."""
    job = get(db, ns, job_id, lock=True)
    if JobStatus(job.status).finished:
        raise Conflict(f"job '{job_id}' already finished ({job.status})")
    repo.request_cancel(db, job.id)
    if job.status == JobStatus.RUNNING:
        db.refresh(job)
        return job, []
    repo.finish(db, job.id, JobStatus.CANCELLED)
    db.refresh(job)
    return job, repo.dispatch_next(db, job.session_id)
