from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api import idempotency
from api.deps import (
    DB,
    IdempotencyKey,
    NamespaceDep,
    NamespaceName,
    PageParams,
    SessionName,
    SettingsDep,
    authenticate,
    resolve_namespace,
)
from shared import queue
from shared.db import after_commit, unit_of_work
from shared.errors import Unprocessable
from shared.jobs import service
from shared.jobs.schemas import JobKind, JobRead, JobStatus
from shared.models import Namespace
from shared.schemas import Page

log = logging.getLogger("engram.api.jobs")
router = APIRouter(prefix="/v1/namespaces/{namespace}", tags=["jobs"])

_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": JobRead, "description": "Accepted: a new job, to follow at `Location` / `Operation-Location`.",
          "headers": {"Location": {"description": "The job."}, "Operation-Location": {"description": "The job."},
                      "Retry-After": {"description": "Seconds before polling the job."}}},
}


def _headers(request: Request, job_read: JobRead) -> dict[str, str]:
    url = str(request.base_url).rstrip("/") + job_read.links.self
    return {"Location": job_read.links.self, "Operation-Location": url, "Retry-After": "1"}


def _accept(db: DB, ns: Namespace, session: str, kind: JobKind, request: Request, key: str | None,
            settings: SettingsDep) -> JSONResponse:
    def work():  # type: ignore[no-untyped-def]
        enq = service.enqueue(db, ns, session, kind)
        read = service.to_read(enq.job, ns.name)
        log.info("%s job %s %s for session %s", kind, enq.job.id, "accepted" if enq.created else "coalesced", session,
                 extra={"job_id": enq.job.id})
        if enq.dispatch is not None:
            dispatch = enq.dispatch
            after_commit(db, lambda: queue.dispatch(dispatch, settings))
        return (202 if enq.created else 200), read, _headers(request, read)

    return idempotency.run(db, ns, key, "POST", request.url.path, None, work)


@router.post("/sessions/{session}/integrate", response_model=JobRead, status_code=202, responses={
    **_ACCEPTED, 200: {"model": JobRead, "description": "An integration of this session is already queued: that job."}})
def integrate(ns: NamespaceDep, session: SessionName, db: DB, settings: SettingsDep, request: Request,
              idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Start integrating the session's new turns into its participants' insights and memories (202 + job)."""
    return _accept(db, ns, session, JobKind.INTEGRATE, request, idempotency_key, settings)


@router.post("/sessions/{session}/truncate", response_model=JobRead, status_code=202, responses=_ACCEPTED)
def truncate(ns: NamespaceDep, session: SessionName, db: DB, settings: SettingsDep, request: Request,
             idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Start resetting the session: turns, data and insights go, participants and memories stay (202 + job)."""
    return _accept(db, ns, session, JobKind.TRUNCATE, request, idempotency_key, settings)


@router.get("/jobs", response_model=Page[JobRead])
def list_jobs(ns: NamespaceDep, db: DB, page: PageParams,
              session: Annotated[SessionName | None, Query(description="Only this session's jobs.")] = None,
              kind: Annotated[JobKind | None, Query()] = None,
              status: Annotated[JobStatus | None, Query()] = None) -> Page[JobRead]:
    """List jobs, newest first, filtered by session, kind and status."""
    return service.list_(db, ns, session=session, kind=kind, status=status, cursor=page[1], limit=page[0])


@router.get("/jobs/{job}", response_model=JobRead)
async def get_job(namespace: NamespaceName, job: str, request: Request, settings: SettingsDep,
                  wait: Annotated[int, Query(ge=0, le=10_000, description=(
                      "Seconds to wait for the job to finish, at most ENGRAM_MAX_WAIT_SECONDS (30)."))] = 0,
                  authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> JobRead:
    """Get a job; with `?wait=N` answer as soon as it finishes, or after N seconds."""
    if wait > settings.max_wait_seconds:
        raise Unprocessable(f"must be at most {settings.max_wait_seconds}", loc=["query", "wait"])

    # No transaction is held while waiting: each look is its own short unit of work.
    def look() -> JobRead:
        with unit_of_work(settings) as db:
            ns = resolve_namespace(db, authenticate(db, settings, authorization), namespace)
            return service.to_read(service.get(db, ns, job), ns.name)

    read = await run_in_threadpool(look)
    deadline = time.monotonic() + wait
    waiters = request.app.state.job_waiters
    while not read.status.finished and (remaining := deadline - time.monotonic()) > 0:
        event = waiters.register(job)
        try:
            read = await run_in_threadpool(look)  # it may have finished before we registered
            if read.status.finished:
                break
            # Woken by the worker's pg_notify; the timeout is a safety net if LISTEN is down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 2.0))
        finally:
            waiters.unregister(job, event)
        read = await run_in_threadpool(look)
    return read


@router.post("/jobs/{job}/cancel", response_model=JobRead, responses={
    202: {"model": JobRead, "description": "Running: it stops at its next safe point (between participants)."},
    409: {"description": "The job already finished."}})
def cancel_job(ns: NamespaceDep, job: str, db: DB, settings: SettingsDep) -> JSONResponse:
    """Cancel a job: a queued one at once (200), a running one at its next safe point (202)."""
    cancelled, to_dispatch = service.cancel(db, ns, job)
    for d in to_dispatch:
        after_commit(db, functools.partial(queue.dispatch, d, settings))
    read = service.to_read(cancelled, ns.name)
    return JSONResponse(read.model_dump(mode="json"),
                        status_code=200 if read.status == JobStatus.CANCELLED else 202)
