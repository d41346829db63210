"""Engine and units of work.

One engine per process, created lazily and re-created after a fork (Celery's prefork children
must not share the parent's connections). Services take a ``Session`` and never commit; the
request dependency or the task's unit of work does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings, get_settings
from shared.kit import pg

_lock = threading.Lock()
_Entry = tuple[Engine, sessionmaker[Session]]
_pid: int | None = None  # the process the engines below belong to
_engines: dict[str, _Entry] = {}


def make_engine(settings: Settings, *, pool_size: int = 20) -> Engine:
    engine = create_engine(
        settings.db_url,
        pool_size=pool_size,
        # A little overflow for the long-poll looks and readiness checks; connections beyond the
        # pool are closed after use, so the API sizes its thread pool to pool_size (api.main).
        max_overflow=5,
        # No pre-ping round trip: a connection is checked at checkout without one (shared.kit.pg.alive),
        # so after PostgreSQL restarts no request gets a connection that died with the old server.
        pool_pre_ping=False,
        pool_timeout=settings.db_pool_timeout_seconds,  # a saturated or lost database answers 503, no hang
        connect_args=pg.connect_params(settings, "sql"),
    )

    @event.listens_for(engine, "checkout")
    def _alive(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if not pg.alive(dbapi_connection):
            raise DisconnectionError("the connection was closed by the server")  # the pool connects afresh

    return engine


def _entry(settings: Settings | None) -> _Entry:
    global _pid
    settings = settings or get_settings()
    url = settings.db_url
    pid = os.getpid()
    with _lock:
        if _pid != pid:
            # Forked child: forget the parent's pools without closing the parent's sockets.
            for engine, _ in _engines.values():
                engine.dispose(close=False)
            _engines.clear()
            _pid = pid
        if url not in _engines:
            engine = make_engine(settings, pool_size=settings.db_pool_size)
            _engines[url] = (engine, sessionmaker(engine, expire_on_commit=False))
        return _engines[url]


def get_engine(settings: Settings | None = None) -> Engine:
    """The process's engine for the settings' database (one per URL, re-created after a fork)."""
    return _entry(settings)[0]


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    return _entry(settings)[1]


def reset_engine() -> None:
    """Drop the process's engines (forked children, tests that switch databases)."""
    global _pid
    with _lock:
        entries = list(_engines.values())
        _engines.clear()
        _pid = None
    for engine, _ in entries:
        engine.dispose(close=False)


@contextmanager
def unit_of_work(settings: Settings | None = None) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any exception."""
    with session_factory(settings)() as session, session.begin():
        yield session


def after_commit(db: Session, fn: Callable[[], object]) -> None:
    """Run ``fn`` once the request's transaction has committed (e.g. send a Celery message)."""
    db.info.setdefault("after_commit", []).append(fn)


def rowcount(result: Result[Any]) -> int:
    """Rows changed by an INSERT, UPDATE or DELETE (whose result is always a cursor result)."""
    return cast(CursorResult[Any], result).rowcount
