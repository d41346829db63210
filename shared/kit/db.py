"""Units of work: a transaction on a connection of the process's synchronous pool.

One pool per process and database (``Pool``), created on first use and created afresh after a fork
(Celery's prefork children must not share the parent's connections); the workers' pipeline
(shared.kit.connector) keeps its connections in a ``Pool`` too. Services take a
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
from psycopg import pq
from psycopg.rows import RowMaker

from shared.config import Settings, get_settings
from shared.kit import pg


class Record(tuple[Any, ...]):
    """A row of the unit of work: columns by position, or by name (``row.name``; ``row._mapping``
    for all of them, e.g. to build a record class). A name given twice is its first column."""

    __slots__ = ()
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


class Pool:
    """A process's connections to one database, for its threads: at most ``size`` in use at once
    (a caller waits up to ``timeout`` for one, then gets an OperationalError: the API answers 503),
    up to ``keep`` kept idle. A new connection is made in the caller's thread, bounded by the
    connect timeout, so a restarted PostgreSQL is reached again at the first try, with no backoff.
    An idle connection the server closed meanwhile (a restart) is noticed without a round trip
    (shared.kit.pg.alive) and replaced; one that failed or was left in a transaction is closed."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], *, size: int, keep: int,
                 timeout: float) -> None:
        self._connect = connect
        self._slots = threading.BoundedSemaphore(size)
        self._keep = keep
        self._timeout = timeout
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if not self._slots.acquire(blocking=False) and not self._slots.acquire(timeout=self._timeout):
            raise psycopg.OperationalError(f"no connection to PostgreSQL was free within {self._timeout:g} s")
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)  # never hands on a transaction an error left open
        finally:
            self._slots.release()

    def _take(self) -> psycopg.Connection[Any]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if pg.alive(conn):
                return conn
            conn.close()  # closed by the server (a restart) since it was kept

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        if not conn.closed and not conn.broken and conn.info.transaction_status == pq.TransactionStatus.IDLE:
            with self._lock:
                if len(self._idle) < self._keep:
                    self._idle.append(conn)
                    return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_lock = threading.Lock()
_pids: dict[str, int] = {}  # the process each pool below belongs to
_pools: dict[str, Pool] = {}


def process_pool(key: str, make: Callable[[], Pool]) -> Pool:
    """This process's pool of that key, made on first use, made afresh in a forked child (the
    parent's connections are the parent's: psycopg closes none that another process opened, and
    the child never uses them)."""
    pid = os.getpid()
    with _lock:
        if _pids.get(key) != pid:
            _pools[key] = make()
            _pids[key] = pid
        return _pools[key]


def reset() -> None:
    """Close this process's pools (tests that switch databases)."""
    pid = os.getpid()
    with _lock:
        mine = [p for key, p in _pools.items() if _pids.get(key) == pid]
        _pools.clear()
        _pids.clear()
    for p in mine:
        p.close()


def _connect(settings: Settings) -> psycopg.Connection[Record]:
    # autocommit: a unit of work's BEGIN and COMMIT are its own, and a liveness check opens no transaction.
    return psycopg.connect(settings.libpq_url, autocommit=True, row_factory=records, **pg.connect_params(settings, "sql"))


@contextmanager
def connection(settings: Settings | None = None) -> Iterator[psycopg.Connection[Record]]:
    """A connection of the process's pool for the units of work. Its size is the settings' pool
    size with a little room for the long-poll looks and readiness checks (the API sizes its thread
    pool to db_pool_size, api.main)."""
    settings = settings or get_settings()
    found = process_pool("sql " + settings.libpq_url, lambda: Pool(
        functools.partial(_connect, settings), size=settings.db_pool_size + 5, keep=settings.db_pool_size,
        timeout=settings.db_pool_timeout_seconds))
    with found.connection() as conn:
        yield cast(psycopg.Connection[Record], conn)


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
