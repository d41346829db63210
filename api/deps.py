"""Request dependencies: settings, the unit of work, the caller, the namespace it may reach."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from shared.config import Settings
from shared.db import session_factory
from shared.errors import Forbidden, NotFound, Unauthorized, Unprocessable
from shared.models import Namespace
from shared.namespaces import service as namespaces
from shared.schemas import SLUG_PATTERN


async def get_settings(request: Request) -> Settings:
    # async: a trivial dependency should not cost a thread-pool hop
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def _rollback_and_close(db: Session) -> None:
    try:
        db.rollback()
    finally:
        db.close()


def _commit_and_close(db: Session) -> None:
    try:
        db.commit()
    except BaseException:
        _rollback_and_close(db)
        raise
    hooks = db.info.pop("after_commit", [])
    db.close()  # the connection goes back to the pool before the hooks talk to Redis
    for fn in hooks:
        fn()


async def get_db(settings: SettingsDep) -> AsyncIterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back if it raises.
    Work registered with ``shared.db.after_commit`` (sending job messages) runs after the commit,
    still before the response is sent.

    async, with the commit in one thread-pool call: a Session connects lazily, so opening it needs
    no thread, and the request pays one hop for the commit instead of two around a generator."""
    db = session_factory(settings)()
    try:
        yield db
    except BaseException:
        await run_in_threadpool(_rollback_and_close, db)
        raise
    await run_in_threadpool(_commit_and_close, db)


# scope="function": commit before the response leaves, so a 2xx always means committed.
DB = Annotated[Session, Depends(get_db, scope="function")]


@dataclass(frozen=True)
class Principal:
    admin: bool
    namespace_id: int | None  # a namespace key's namespace; None for the admin or open mode


def authenticate(db: Session, settings: Settings, authorization: str | None) -> Principal:
    if not settings.auth_required:
        return Principal(admin=True, namespace_id=None)
    if not authorization:
        raise Unauthorized("missing `Authorization: Bearer <key>` header")
    scheme, _, secret = authorization.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthorized("the Authorization header must be `Bearer <key>`")
    admin = settings.admin_key.get_secret_value() if settings.admin_key else None
    if admin and hmac.compare_digest(secret.encode(), admin.encode()):
        return Principal(admin=True, namespace_id=None)
    ns_id = namespaces.namespace_of_secret(db, secret)
    if ns_id is None:
        raise Unauthorized("unknown or revoked key")
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
SessionName = Annotated[str, Path(pattern=SLUG_PATTERN, description="Session name (slug).")]
AgentName = Annotated[str, Path(pattern=SLUG_PATTERN, description="Agent name (slug).")]


def resolve_namespace(db: Session, principal: Principal, name: str) -> Namespace:
    """The namespace, if the caller may reach it. A namespace key asking for another namespace
    gets exactly the 404 of a namespace that does not exist (same query, same body)."""
    ns = namespaces.get(db, name)
    if principal.namespace_id is not None and ns.id != principal.namespace_id:
        raise NotFound(f"namespace '{name}' does not exist")
    return ns


def get_namespace(db: DB, settings: SettingsDep, namespace: NamespaceName,
                  authorization: Authorization = None) -> Namespace:
    # Authenticates itself (rather than depending on get_principal): one thread-pool hop, not two.
    return resolve_namespace(db, authenticate(db, settings, authorization), namespace)


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
