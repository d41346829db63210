"""Engine and units of work.

One engine per process, created lazily and re-created after a fork (Celery's prefork children
must not share the parent's connections). Services take a ``Session`` and never commit; the
request dependency or the task's unit of work does.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from shared.config import Settings, get_settings

_lock = threading.Lock()
_state: dict[str, object] = {}


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted PostgreSQL leaves dead connections in the pool
        pool_timeout=5,  # a saturated pool answers 503 quickly instead of hanging a request
        connect_args={"connect_timeout": 5, "application_name": f"engram-{os.getpid()}"},
    )


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or get_settings()
    pid = os.getpid()
    with _lock:
        engine = _state.get("engine")
        if engine is None or _state.get("pid") != pid:
            if engine is not None:
                # Forked child: forget the parent's pool without closing its sockets.
                engine.dispose(close=False)  # type: ignore[attr-defined]
            url, _ = settings.require_services()
            engine = make_engine(url)
            _state.update(engine=engine, pid=pid, factory=sessionmaker(engine, expire_on_commit=False))
        return engine  # type: ignore[return-value]


def session_factory(settings: Settings | None = None) -> sessionmaker[Session]:
    get_engine(settings)
    return _state["factory"]  # type: ignore[return-value]


def reset_engine() -> None:
    """Drop the process's engine (tests that switch databases, forked children)."""
    with _lock:
        engine = _state.pop("engine", None)
        _state.pop("pid", None)
        _state.pop("factory", None)
    if engine is not None:
        engine.dispose(close=False)  # type: ignore[attr-defined]


@contextmanager
def unit_of_work(settings: Settings | None = None) -> Iterator[Session]:
    """A transaction: commit on success, roll back on any exception."""
    with session_factory(settings)() as session, session.begin():
        yield session


def after_commit(db: Session, fn) -> None:  # type: ignore[no-untyped-def]
    """Run ``fn`` once the request's transaction has committed (e.g. send a Celery message)."""
    db.info.setdefault("after_commit", []).append(fn)
