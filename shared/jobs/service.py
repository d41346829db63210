"""The job resource as the API sees it: enqueue (with coalescing), read, list, cancel."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shared.errors import Conflict, NotFound, SessionDeleted
from shared.jobs import repository as repo
from shared.jobs.schemas import FINISHED, JobLinks, JobRead, Progress
from shared.models import Job, Namespace
from shared.schemas import Page, decode_cursor, encode_cursor
from shared.sessions import service as sessions


def job_path(namespace: str, job_id: str) -> str:
    return f"/v1/namespaces/{namespace}/jobs/{job_id}"


def to_read(job: Job, namespace: str) -> JobRead:
    return JobRead(
        id=job.id, kind=job.kind, status=job.status, session=job.session_name,  # type: ignore[arg-type]
        progress=Progress(completed=job.progress_completed, total=job.progress_total),
        result=job.result, error=job.error, attempts=job.attempts, cancel_requested=job.cancel_requested,
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
        links=JobLinks(self=job_path(namespace, job.id)),
    )


@dataclass
class Enqueued:
    job: Job
    created: bool  # False: an already queued integration was returned (coalesced)
    send_now: bool  # True: the job is its session's head; send its message after commit


def enqueue(db: Session, ns: Namespace, session_name: str, kind: str) -> Enqueued:
    """Accept a long operation. The caller commits, then sends the message if ``send_now``."""
    found = repo.lock_session_for_enqueue(db, ns.id, session_name)  # the row lock orders the session's jobs
    if found is None:
        raise NotFound(f"session '{session_name}' does not exist in namespace '{ns.name}'")
    session_id, name, deleted, latest = found
    if deleted:
        raise SessionDeleted(f"session '{session_name}' is deleted; undelete it before writing to it")
    if kind == "integrate" and latest is not None and latest[1] == "queued" and latest[2] == "integrate":
        # Coalescing: that queued integration has not taken its snapshot yet, so it will
        # integrate every turn appended before this request too.
        return Enqueued(db.get_one(Job, latest[0]), created=False, send_now=False)
    head = latest is None
    job = Job(id=str(uuid.uuid4()), namespace_id=ns.id, session_id=session_id, session_name=name, kind=kind,
              status="queued", attempts=0, progress_completed=0, progress_total=0, cancel_requested=False)
    repo.insert_job(db, job, head=head)  # a plain INSERT … RETURNING: the hot path of every submit
    return Enqueued(job, created=True, send_now=head)


def get(db: Session, ns: Namespace, job_id: str, *, lock: bool = False) -> Job:
    try:
        uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"job '{job_id}' does not exist in namespace '{ns.name}'") from None
    job = repo.get(db, ns.id, job_id, lock=lock)
    if job is None:
        raise NotFound(f"job '{job_id}' does not exist in namespace '{ns.name}'")
    return job


def list_(db: Session, ns: Namespace, *, session: str | None, kind: str | None, status: str | None,
          cursor: str | None, limit: int) -> Page[JobRead]:
    session_id = sessions.get(db, ns, session).id if session is not None else None
    rows = repo.list_(db, ns.id, before=decode_cursor(cursor, int), limit=limit + 1, session_id=session_id,
                      kind=kind, status=status)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[to_read(r, ns.name) for r in rows], next_cursor=encode_cursor(rows[-1].seq) if more else None)


def cancel(db: Session, ns: Namespace, job_id: str) -> tuple[Job, list[tuple[str, str]]]:
    """Cancel: a queued job at once, a running one at its next safe point (between participants).
    Returns the job and, when a queued head was cancelled, the session's next job to send."""
    job = get(db, ns, job_id, lock=True)
    if job.status in FINISHED:
        raise Conflict(f"job '{job_id}' already finished ({job.status})")
    job.cancel_requested = True
    if job.status == "running":
        return job, []
    repo.finish_run(db, job.id, "cancelled")
    db.flush()
    db.refresh(job)
    return job, repo.promote_next_ids(db, job.session_id)
