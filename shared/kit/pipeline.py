"""The workers' PostgreSQL access for a run: statements sent as one pipeline, in one round trip.

A run's transactions are a handful of fixed statements; going through the ORM for them cost more
worker CPU than the statements cost PostgreSQL. Here each process keeps a few plain psycopg
connections in autocommit mode. ``run`` sends its statements with a single Sync at the end, so
PostgreSQL runs them as one implicit transaction (committed at the Sync, rolled back whole when
one fails) and the whole costs one network round trip; each statement still sees the effects of
those before it (READ COMMITTED takes a snapshot per statement), so a row lock taken by one
orders what the next ones read. A transaction that needs Python between two round trips starts
with ``BEGIN`` and ends with ``COMMIT`` (see ``Transaction``).

Statements are written in psycopg's ``%(name)s`` style, as those of shared.kit.adb.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper

from shared.config import Settings
from shared.kit import pg

TUPLES_OK = pq.ExecStatus.TUPLES_OK
Statement = tuple[str, dict[str, Any] | None]
Rows = list[tuple[Any, ...]]

_lock = threading.Lock()
_idle: dict[tuple[int, str], list[psycopg.Connection[Any]]] = {}
# Connections kept per process: the run's thread and its heartbeat's.
_KEEP = 2


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    # A run's statements are a fixed handful, each keyed by primary keys or indexed columns: they
    # are prepared on first use and planned once per connection (generic plans). Planned afresh on
    # every execution (PostgreSQL's default for the first executions, and for as long as a custom
    # plan looks cheaper), their planning was about a third of PostgreSQL's CPU per trivial job.
    # psycopg types a Python int as smallint, integer or bigint by its value, and prepares a statement
    # once per combination of parameter types: as ids grow, the same statement would be prepared
    # and planned again and again. Every int is a bigint here.
    params = pg.with_options(pg.connect_params(settings, "worker"), "-c plan_cache_mode=force_generic_plan")
    conn = psycopg.connect(settings.libpq_url, autocommit=True, **params)
    conn.adapters.register_dumper(int, Int8Dumper)
    conn.adapters.register_dumper(int, Int8BinaryDumper)
    conn.prepare_threshold = 0
    return conn


@contextmanager
def connection(settings: Settings) -> Iterator[psycopg.Connection[Any]]:
    """A connection of this process (made after a fork, never the parent's). One that failed
    is closed rather than reused (PostgreSQL may have restarted): the next use connects afresh."""
    key = (os.getpid(), settings.libpq_url)
    with _lock:
        idle = _idle.setdefault(key, [])
        conn = idle.pop() if idle else None
    if conn is not None and not pg.alive(conn):  # closed by the server (restart) since it was kept
        conn.close()
    if conn is None or conn.closed:
        conn = _connect(settings)
    try:
        yield conn
    except psycopg.Error:
        conn.close()
        raise
    finally:
        _give_back(key, conn)


def _give_back(key: tuple[int, str], conn: psycopg.Connection[Any]) -> None:
    if not conn.closed and conn.info.transaction_status == pq.TransactionStatus.IDLE:
        with _lock:
            idle = _idle.setdefault(key, [])
            if len(idle) < _KEEP:
                idle.append(conn)
                return
    conn.close()  # failed, or left in a transaction by an error path: never handed on


def returns_rows(cursor: psycopg.Cursor[Any] | psycopg.AsyncCursor[Any]) -> bool:
    """Whether the cursor's statement returned rows (by the result status, not ``description``,
    which builds a Column object per column)."""
    return cursor.pgresult is not None and cursor.pgresult.status == TUPLES_OK


def array_literal(values: Sequence[int]) -> str:
    """A list of ints as PostgreSQL's array literal, for a parameter its statement casts
    (``CAST(%(ids)s AS bigint[])``). psycopg would look through every element of a list, for every
    statement it is a parameter of, to choose the array's type: a sixth of a trivial run's CPU."""
    return "{" + ",".join(map(str, values)) + "}"


def _plain(params: dict[str, Any] | None) -> dict[str, Any] | None:
    if params is None or not any(type(v) is list for v in params.values()):
        return params
    return {k: array_literal(v) if type(v) is list else v for k, v in params.items()}


def send(conn: psycopg.Connection[Any], statements: Sequence[Statement]) -> list[Rows]:
    """Send the statements as one pipeline (one round trip); the rows of each. A list parameter
    must be of ints, and cast to an array type by its statement (see ``array_literal``)."""
    with conn.pipeline():
        cursors = [conn.execute(sql.encode(), _plain(params)) for sql, params in statements]
    return [c.fetchall() if returns_rows(c) else [] for c in cursors]


def run(settings: Settings, statements: Sequence[Statement]) -> list[Rows]:
    """Run the statements as one transaction, in one round trip; the rows of each."""
    with connection(settings) as conn:
        return send(conn, statements)


class Transaction:
    """A transaction over several round trips: ``BEGIN`` goes with the first pipeline, ``COMMIT``
    with the last (``commit``); leaving the block without committing rolls back."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.started = False

    def send(self, statements: Sequence[Statement], *, commit: bool = False) -> list[Rows]:
        head: list[Statement] = [] if self.started else [("BEGIN", None)]
        tail: list[Statement] = [("COMMIT", None)] if commit else []
        rows = send(self.conn, [*head, *statements, *tail])
        self.started = not commit
        return rows[len(head):len(rows) - len(tail)]

    def rollback(self) -> None:
        if self.started:
            self.started = False
            try:
                self.conn.execute(b"ROLLBACK")
            except psycopg.Error:
                self.conn.close()  # the error that brought us here says more


@contextmanager
def transaction(settings: Settings) -> Iterator[Transaction]:
    with connection(settings) as conn:
        tx = Transaction(conn)
        try:
            yield tx
        finally:
            tx.rollback()
