"""Request dependencies: settings, the unit of work, the caller, the namespace it may reach."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from shared.config import Settings
from shared.errors import UNKNOWN_KEY, Forbidden, Unauthorized, Unprocessable, absent
from shared.kit.connector import AsyncConnector
from shared.kit.db import UnitOfWork
from shared.models import Namespace
from shared.namespaces import repository as namespaces_repo
from shared.namespaces import service as namespaces
from shared.queue import AsyncDispatcher
from shared.schemas import SLUG_PATTERN


async def get_settings(request: Request) -> Settings:
    # async: a trivial dependency should not cost a thread-pool hop
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


@dataclass(frozen=True)
class LoopResources:
    """What the event loop's own request paths use: the PostgreSQL pool and the broker dispatcher."""

    adb: AsyncConnector
    dispatcher: AsyncDispatcher


def loop_resources(request: Request) -> LoopResources:
    """The resources of the event loop serving the request, opened by the app's lifespan. A server
    process has one loop; each in-process test client runs the lifespan on a loop of its own."""
    resources: LoopResources = request.app.state.loops[asyncio.get_running_loop()]
    return resources


def _rollback(db: UnitOfWork) -> None:
    db.end(commit=False)


def _commit(db: UnitOfWork) -> None:
    db.end(commit=True)  # the connection goes back to the pool before the hooks talk to Redis
    db.run_after_commit()


async def get_db(settings: SettingsDep) -> AsyncIterator[UnitOfWork]:
    """One transaction per request: committed when the handler returns, rolled back if it raises.
    Work registered with ``shared.kit.db.after_commit`` (sending job messages) runs after the commit,
    still before the response is sent.

    async, with the commit in one thread-pool call: a unit of work takes its connection at its first
    statement (in the handler's thread), so opening it needs no thread, and the request pays one hop
    for the commit instead of two around a generator."""
    db = UnitOfWork(settings)
    try:
        yield db
    except BaseException:
        await run_in_threadpool(_rollback, db)
        raise
    await run_in_threadpool(_commit, db)


# scope="function": commit before the response leaves, so a 2xx always means committed.
DB = Annotated[UnitOfWork, Depends(get_db, scope="function")]


@dataclass(frozen=True)
class Principal:
    admin: bool
    namespace_id: int | None  # a namespace key's namespace; None for the admin or open mode


def credentials(settings: Settings, authorization: str | None) -> str | None:
    """The caller's key as the SQL of the namespace wall takes it (the SQL function reached_namespace):
    the SHA-256 of a namespace key, or None for the admin key (and in open mode). Raises 401 for a
    missing or malformed header; whether a namespace key exists is for the database to say."""
    if not settings.auth_required:
        return None
    if not authorization:
        raise Unauthorized("missing `Authorization: Bearer <key>` header")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("the Authorization header must be `Bearer <key>`")
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return None
    return namespaces.hash_secret(secret)


def authenticate(db: UnitOfWork, settings: Settings, authorization: str | None) -> Principal:
    key = credentials(settings, authorization)
    if key is None:
        return Principal(admin=True, namespace_id=None)
    ns_id = namespaces.namespace_of_key(db, key)
    if ns_id is None:
        raise Unauthorized(UNKNOWN_KEY)
    return Principal(admin=False, namespace_id=ns_id)


Authorization = Annotated[str | None, Header(include_in_schema=False)]


def get_principal(db: DB, settings: SettingsDep, authorization: Authorization = None) -> Principal:
    return authenticate(db, settings, authorization)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.admin:
        raise Forbidden("this operation needs the admin key")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]

NamespaceName = Annotated[str, Path(pattern=SLUG_PATTERN, description="Namespace name (slug).")]
SessionName = Annotated[str, Path(pattern=SLUG_PATTERN, description="UnitOfWork name (slug).")]
AgentName = Annotated[str, Path(pattern=SLUG_PATTERN, description="Agent name (slug).")]


def reached_namespace(db: UnitOfWork, name: str, key: str | None) -> Namespace:
    """Authenticate the caller (``key``, from ``credentials``) and find the namespace it asks for,
    behind the namespace wall (the SQL function ``reached_namespace``), in one round trip: 401
    for an unknown key, and for a namespace key asking for another namespace exactly the 404 of
    one that does not exist."""
    reached = namespaces_repo.resolve(db, name, key)
    if not reached.known:
        raise Unauthorized(UNKNOWN_KEY)
    if reached.namespace is None:
        raise absent("namespace", name)
    return reached.namespace


def get_namespace(db: DB, settings: SettingsDep, namespace: NamespaceName,
                  authorization: Authorization = None) -> Namespace:
    return reached_namespace(db, namespace, credentials(settings, authorization))


NamespaceDep = Annotated[Namespace, Depends(get_namespace)]


async def page_params(settings: SettingsDep,
                limit: Annotated[int, Query(ge=1, le=10_000, description="Page size, at most ENGRAM_MAX_PAGE_SIZE (200).")] = 50,
                cursor: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$", description=(
                    "`next_cursor` of the previous page (opaque: only cursors the list returned are accepted)."))] = None,
                ) -> tuple[int, str | None]:
    if limit > settings.max_page_size:
        raise Unprocessable(f"must be at most {settings.max_page_size}", loc=["query", "limit"])
    return limit, cursor


PageParams = Annotated[tuple[int, str | None], Depends(page_params)]

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, pattern=r"^[\x21-\x7e]+$",
           description="Retry safely: the same key and body return the first response."),
]
