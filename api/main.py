"""The FastAPI application: routes, problem+json errors, limits, long-poll listener."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import errors
from api.deps import LoopResources
from api.metrics import register_jobs_collector
from api.middleware import BodyLimitMiddleware, RequestIdMiddleware
from api.routes import agents, jobs, memories, namespaces, ops, participants, sessions, turns, webhooks
from api.waiters import JobWaiters
from shared.config import Settings, get_settings
from shared.kit.connector import AsyncConnector
from shared.logs import configure_logging
from shared.memories.service import recall_mode
from shared.queue import AsyncDispatcher

log = logging.getLogger("engram.api")

DESCRIPTION = """
Engram keeps the working memory of AI agents.

Agents take part in **sessions** inside a **namespace**; every **turn** is recorded. An
**integration** turns each participant's new turns into **insights** and adds them to the agent's
long-term **memories**; a **truncate** resets a session. Both are long operations: they answer
`202 Accepted` with a **job** to follow (`GET …/jobs/{id}?wait=30`).

Authentication: `Authorization: Bearer <key>`, the admin key or a namespace key. Errors are
`application/problem+json` (RFC 9457).
"""


TAGS = [
    {"name": "namespaces", "description": "Tenants and their keys. Creating namespaces and keys needs the admin key."},
    {"name": "agents", "description": "The agents of a namespace: their description and profile."},
    {"name": "memories", "description": "An agent's long-term memories: recall, context for a prompt, forget."},
    {"name": "sessions", "description": "Activity sessions: create, read, delete and undelete."},
    {"name": "participants", "description": "The agents taking part in a session, and their insights."},
    {"name": "turns", "description": "What is said in a session, in order; append in batches."},
    {"name": "jobs", "description": "Long operations (integrate, truncate): accepted at once (202), followed here."},
    {"name": "webhooks", "description": "Signed HTTP callbacks when a job finishes, with every delivery attempt."},
    {"name": "ops", "description": "Liveness, readiness and Prometheus metrics."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    settings.check_for("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One request thread per pooled connection: no request waits for a connection, and none
        # opens (and closes) one beyond the pool.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.db_pool_size
        loop, adb = asyncio.get_running_loop(), AsyncConnector(settings)
        await adb.open()
        app.state.loops[loop] = LoopResources(adb, AsyncDispatcher(settings))
        app.state.job_waiters.start()
        try:  # says at start when an embedder is configured but PostgreSQL has no pgvector
            await anyio.to_thread.run_sync(recall_mode, settings)
        except Exception as exc:  # noqa: BLE001 - the database may come later; /readyz tells then
            log.warning("recall mode not known yet: %s", str(exc).splitlines()[0] if str(exc) else exc)
        # What start-up built stays: the cyclic GC no longer walks it at every full collection
        # (tens of ms each, under load).
        gc.freeze()
        if not settings.auth_required:
            log.warning("!!! OPEN MODE: ENGRAM_ADMIN_KEY is not set, so this dev API accepts requests "
                        "WITHOUT authentication. Never expose it beyond this machine. !!!")
        if settings.webhooks_reach_private_networks:
            log.warning("webhook URLs may resolve to private, loopback and link-local addresses "
                        "(ENGRAM_WEBHOOK_ALLOW_PRIVATE_NETWORKS%s)", "" if settings.webhook_allow_private_networks
                        else " unset, allowed in dev mode")
        yield
        app.state.job_waiters.stop()
        resources = app.state.loops.pop(loop)
        await resources.dispatcher.close()
        await resources.adb.close()

    # The docs pages (/docs, /redoc) load their assets from the installed fastapi-offline package:
    # they work on a machine without internet access.
    app = FastAPIOffline(title="Engram", version="0.1.0", description=DESCRIPTION, lifespan=lifespan, openapi_tags=TAGS)
    app.state.settings = settings
    app.state.job_waiters = JobWaiters(settings)
    app.state.loops = {}  # event loop -> LoopResources, opened by the lifespan (api.deps.loop_resources)
    errors.install(app)
    # Requests are matched against the routes in this order, one route after another: the job
    # routes (every submit and every poll) and the turns come first. The documentation keeps
    # the order of TAGS.
    for module in (jobs, turns, namespaces, agents, memories, sessions, participants, webhooks):
        app.include_router(module.router, responses=errors.COMMON_RESPONSES)
    app.include_router(ops.router)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    register_jobs_collector(settings)
    _document_limits(app, settings)
    return app


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Write the limits that come from settings (page size, long-poll) into the OpenAPI document,
    so that a request it calls valid is one the API accepts."""
    build = app.openapi
    maxima = {"limit": settings.max_page_size, "wait": settings.max_wait_seconds}

    def openapi() -> dict[str, Any]:
        schema = build()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for param in operation.get("parameters", []):
                    if param.get("in") == "query" and param.get("name") in maxima:
                        param["schema"]["maximum"] = maxima[param["name"]]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to adjust the document
