from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api import idempotency
from api.deps import (
    DB,
    Authorization,
    IdempotencyKey,
    NamespaceDep,
    NamespaceName,
    PageParams,
    SessionName,
    SettingsDep,
    credentials,
    loop_resources,
    reached_namespace,
)
from shared import queue
from shared.config import Settings
from shared.errors import Unprocessable
from shared.jobs import service
from shared.jobs.schemas import JobRead
from shared.kit.db import after_commit, unit_of_work
from shared.models.states import JobKind, JobStatus
from shared.queue import Dispatch
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


async def _accept(request: Request, settings: Settings, namespace: str, session: str, kind: JobKind,
                  authorization: str | None, idempotency_key: str | None) -> Response:
    """Accept a job. Without an Idempotency-Key: on the event loop, in one round trip to
    PostgreSQL (shared.kit.connector). With one: in a thread, in the transaction that stores the response."""
    key = credentials(settings, authorization)
    if idempotency_key is None:
        enq = await service.enqueue_now(loop_resources(request).adb, namespace, session, kind, key)
        read = service.to_read(enq.job, namespace)
        response = Response(read.model_dump_json(), status_code=202 if enq.created else 200,
                            headers=_headers(request, read), media_type="application/json")
        dispatches = [] if enq.dispatch is None else [enq.dispatch]
    else:
        response, dispatches = await run_in_threadpool(
            _accept_once, request, settings, namespace, session, kind, key, idempotency_key)
    for d in dispatches:  # committed: wake a worker (never waits for the broker)
        loop_resources(request).dispatcher.send(d)
    _log_accepted(kind, response, session)
    return response


def _accept_once(request: Request, settings: Settings, namespace: str, session: str, kind: JobKind,
                 key: str | None, idempotency_key: str) -> tuple[Response, list[Dispatch]]:
    dispatches: list[Dispatch] = []
    with unit_of_work(settings) as db:
        ns = reached_namespace(db, namespace, key)

        def work() -> idempotency.Outcome:
            enq = service.enqueue(db, namespace, session, kind, key)
            if enq.dispatch is not None:
                dispatches.append(enq.dispatch)
            read = service.to_read(enq.job, namespace)
            return (202 if enq.created else 200), read, _headers(request, read)

        response = idempotency.run(db, ns, idempotency_key, "POST", request.url.path, None, work)
    return response, dispatches


def _log_accepted(kind: JobKind, response: Response, session: str) -> None:
    # DEBUG: the access log line already says 202 or 200 for this path, and the worker logs the job's run.
    if log.isEnabledFor(logging.DEBUG):
        job_id = response.headers["Location"].rsplit("/", 1)[-1]
        what = "accepted" if response.status_code == 202 else "coalesced"
        log.debug("%s job %s %s for session %s", kind, job_id, what, session, extra={"job_id": job_id})


@router.post("/sessions/{session}/integrate", response_model=JobRead, status_code=202, responses={
    **_ACCEPTED, 200: {"model": JobRead, "description": "An integration of this session is already queued: that job."}})
async def integrate(namespace: NamespaceName, session: SessionName, settings: SettingsDep, request: Request,
                    authorization: Authorization = None, idempotency_key: IdempotencyKey = None) -> Response:
    """Start integrating the session's new turns into its participants' insights and memories (202 + job).

    An integration of the session that is still queued already covers every turn appended before
    this request: that job is returned (200) instead of a new one."""
    return await _accept(request, settings, namespace, session, JobKind.INTEGRATE, authorization, idempotency_key)


@router.post("/sessions/{session}/truncate", response_model=JobRead, status_code=202, responses=_ACCEPTED)
async def truncate(namespace: NamespaceName, session: SessionName, settings: SettingsDep, request: Request,
                   authorization: Authorization = None, idempotency_key: IdempotencyKey = None) -> Response:
    """Start resetting the session: turns, data and insights go, participants and memories stay (202 + job)."""
    return await _accept(request, settings, namespace, session, JobKind.TRUNCATE, authorization, idempotency_key)


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
                  authorization: Authorization = None) -> JobRead:
    """Get a job; with `?wait=N` answer as soon as it finishes, or after N seconds."""
    if wait > settings.max_wait_seconds:
        raise Unprocessable(f"must be at most {settings.max_wait_seconds}", loc=["query", "wait"])

    # No transaction is held while waiting: each look is its own short read, on the event loop.
    key = credentials(settings, authorization)
    adb = loop_resources(request).adb

    async def look() -> JobRead:
        return await service.read_now(adb, namespace, key, job)

    if wait == 0:
        return await look()
    deadline = time.monotonic() + wait
    waiters = request.app.state.job_waiters
    # Registered before the first look: a finish notified between the look and the wait still
    # sets the event, so the wait cannot miss it.
    event = waiters.register(job)
    try:
        read = await look()
        while not read.status.finished and (remaining := deadline - time.monotonic()) > 0:
            # Woken by the worker's pg_notify; the timeout is a safety net if LISTEN is down.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=min(remaining, 2.0))
            event.clear()
            read = await look()
    finally:
        waiters.unregister(job, event)
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
