"""Units of work: a transaction on a connection of the process's synchronous pool.

One pool (psycopg_pool) per process and database, created on first use and created afresh after a
fork (Celery's prefork children must not share the parent's connections). Services take a
``UnitOfWork`` and never commit; the request dependency (api.deps.get_db) or ``unit_of_work`` does.
Statements run on it through shared.kit.connector (``fetch_all``, ``fetch_one``, ``execute``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ClassVar, cast

import psycopg
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool

from shared.config import Settings, get_settings
from shared.kit import pg


class Record(tuple[Any, ...]):
    """A row of the unit of work: columns by position, or by name (``row.name``; ``row._mapping``
    for all of them, e.g. to build a record class). A name given twice is its first column."""

    _index: ClassVar[dict[str, int]] = {}

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> dict[str, Any]:
        return {name: self[i] for name, i in self._index.items()}


@functools.lru_cache(maxsize=1024)
def _record_class(names: tuple[str, ...]) -> type[Record]:
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return type("Record", (Record,), {"__slots__": (), "_index": index})


def records(cursor: psycopg.Cursor[Any]) -> RowMaker[Record]:
    """psycopg's row factory for ``Record``s."""
    if cursor.description is None:
        return Record
    return _record_class(tuple(c.name for c in cursor.description))


class UnitOfWork:
    """A transaction, begun on a pooled connection at its first statement (a request that runs none
    takes no connection), and the work to run once it has committed. ``end`` commits or rolls back
    and gives the connection back."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings
        self.after_commit: list[Callable[[], object]] = []
        self._conn: psycopg.Connection[Record] | None = None
        self._held: AbstractContextManager[psycopg.Connection[Record]] | None = None

    @property
    def conn(self) -> psycopg.Connection[Record]:
        if self._conn is None:
            self._held = connection(self.settings)
            conn = self._held.__enter__()
            try:
                conn.execute("BEGIN")
            except BaseException:
                self._held.__exit__(None, None, None)
                raise
            self._conn = conn
        return self._conn

    def end(self, *, commit: bool) -> None:
        """Commit (or roll back) and give the connection back to the pool; a connection left in a
        transaction by a failure is rolled back, or discarded, by the pool."""
        conn, held, self._conn, self._held = self._conn, self._held, None, None
        if conn is None or held is None:
            return
        try:
            if commit:
                conn.execute("COMMIT")
            elif not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
        finally:
            held.__exit__(None, None, None)

    def run_after_commit(self) -> None:
        hooks, self.after_commit = self.after_commit, []
        for fn in hooks:
            fn()


_lock = threading.Lock()
_pid: int | None = None  # the process the pools below belong to
_pools: dict[str, ConnectionPool[psycopg.Connection[Record]]] = {}
_orphans: list[object] = []  # a forked child's copies of its parent's pools: kept, never used or closed


def pool(settings: Settings | None = None) -> ConnectionPool[psycopg.Connection[Record]]:
    """The process's pool for the settings' database (one per URL, created afresh after a fork)."""
    global _pid
    settings = settings or get_settings()
    pid = os.getpid()
    with _lock:
        if _pid != pid:
            # Forked child: the parent's connections are the parent's (psycopg closes no connection
            # another process opened, and these are never used here).
            _orphans.append(dict(_pools))
            _pools.clear()
            _pid = pid
        found = _pools.get(settings.libpq_url)
        if found is None:
            # autocommit: a unit of work's BEGIN and COMMIT are its own (Connection.transaction), and a
            # liveness check (pg.alive) opens no transaction.
            found = _pools[settings.libpq_url] = cast(ConnectionPool[psycopg.Connection[Record]], ConnectionPool(
                settings.libpq_url,
                kwargs={"autocommit": True, "row_factory": records, **pg.connect_params(settings, "sql")},
                # A little room beyond the pool size for the long-poll looks and readiness checks (the
                # API sizes its thread pool to db_pool_size, api.main); none kept open while unused.
                min_size=0, max_size=settings.db_pool_size + 5,
                timeout=settings.db_pool_timeout_seconds,  # a saturated or lost database answers 503, no hang
                name="engram-sql", open=True))
        return found


def reset() -> None:
    """Close the process's pools (tests that switch databases)."""
    global _pid
    with _lock:
        pools = list(_pools.values()) if _pid == os.getpid() else []
        _pools.clear()
        _pid = None
    for p in pools:
        p.close()


@contextmanager
def connection(settings: Settings | None = None) -> Iterator[psycopg.Connection[Record]]:
    """A connection of the pool that is still alive (no round trip to tell, shared.kit.pg.alive): one
    the server closed (it restarted) goes back to the pool, which discards it. (psycopg_pool's own
    ``check`` would back off between dead connections, and a pool full of them outwaits the timeout.)"""
    p = pool(settings)
    for _ in range(p.max_size + 1):
        with p.connection() as conn:
            if not pg.alive(conn):
                conn.close()
                continue
            yield conn
            return
    raise psycopg.OperationalError("every pooled connection to PostgreSQL was closed by the server")


@contextmanager
def unit_of_work(settings: Settings | None = None) -> Iterator[UnitOfWork]:
    """A transaction: committed on success, rolled back on any exception; then, once committed, the
    work registered with ``after_commit`` (e.g. sending a Celery message)."""
    work = UnitOfWork(settings)
    try:
        yield work
    except BaseException:
        work.end(commit=False)
        raise
    work.end(commit=True)
    work.run_after_commit()


def after_commit(db: UnitOfWork, fn: Callable[[], object]) -> None:
    """Run ``fn`` once the unit of work has committed (e.g. send a Celery message)."""
    db.after_commit.append(fn)
