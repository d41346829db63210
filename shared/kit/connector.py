"""The one way to PostgreSQL: every statement of the service runs through this module.

Statements are text in psycopg's ``%(name)s`` style, each a named constant with a one-line
purpose in the repository of its domain (README "Development"). The same text runs on each face:

- **the unit of work** (synchronous; ``fetch_all``, ``fetch_one``, ``execute``): a statement at a
  time, inside the transaction of ``shared.kit.db.unit_of_work`` or of a request. The API's
  handlers that run in threads, the CLI, the scheduler and the reconciler use it.
- **the pipeline** (synchronous; ``run``, ``transaction``): the workers' runs. Statements go as one
  pipeline with a single Sync at its end, over the process's own autocommit connections.
- **the asynchronous pipeline** (``AsyncConnector.run``): the API's hot paths (accepting a job,
  reading one), on the event loop with no thread hop.

A pipeline's statements are one implicit transaction, committed at the Sync or rolled back whole
when one fails (the extended query protocol), and the whole costs one network round trip. Each
statement still sees the effects of those before it (READ COMMITTED takes a snapshot per
statement), so a row lock taken by one orders what the next ones read. A transaction that needs
Python between two round trips starts with ``BEGIN`` and ends with ``COMMIT`` (``Transaction``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import pq
from psycopg.types.numeric import Int8BinaryDumper, Int8Dumper
from psycopg_pool import AsyncConnectionPool

from shared.config import Settings
from shared.kit import db, pg
from shared.kit.db import Record, UnitOfWork

TUPLES_OK = pq.ExecStatus.TUPLES_OK
Params = Mapping[str, Any] | None
Statement = tuple[str, dict[str, Any] | None]
Rows = list[tuple[Any, ...]]


# --- the unit of work ------------------------------------------------------------------------


def fetch_all(db: UnitOfWork, sql: str, params: Params = None) -> list[Record]:
    """The rows of a statement run in the unit of work (columns by position or name)."""
    return db.conn.execute(sql, _driver(params)).fetchall()


def fetch_one(db: UnitOfWork, sql: str, params: Params = None) -> Record | None:
    """The first row of a statement run in the unit of work, or None."""
    return db.conn.execute(sql, _driver(params)).fetchone()


def execute(db: UnitOfWork, sql: str, params: Params = None) -> int:
    """Run a statement in the unit of work; the rows it changed."""
    return db.conn.execute(sql, _driver(params)).rowcount


def _driver(params: Params) -> dict[str, Any]:
    # Always a mapping, so that psycopg always reads the text for placeholders: a literal % is %% in every statement.
    return {} if params is None else dict(params)


# --- the pipeline ------------------------------------------------------------------------------

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
    """A connection of this process's pipeline pool (kit.db.Pool: made in this process, never the
    parent's; one the server closed is replaced, one that failed is closed). Two are kept: the
    run's thread and its heartbeat's."""
    pool = db.process_pool("pipeline " + settings.libpq_url, lambda: db.Pool(
        functools.partial(_connect, settings), size=settings.db_pool_size, keep=2,
        timeout=settings.db_pool_timeout_seconds))
    with pool.connection() as conn:
        yield conn


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


# --- the asynchronous pipeline ----------------------------------------------------------------


class AsyncConnector:
    """The API's pool on the event loop (psycopg's ``AsyncConnectionPool``), opened by its lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.pool = AsyncConnectionPool(
            settings.libpq_url, min_size=min(4, settings.db_pool_size), max_size=settings.db_pool_size,
            # autocommit: a pipeline's statements are one implicit transaction, up to its Sync
            kwargs={"autocommit": True, **pg.connect_params(settings, "api")},
            timeout=settings.db_pool_timeout_seconds,  # a saturated or lost database answers 503, no hang
            open=False, name="engram-api",
        )
        self._checking: asyncio.Task[None] | None = None

    async def open(self) -> None:
        # No wait: the API starts (and /readyz tells) while PostgreSQL is still coming up.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, statements: Sequence[Statement], *, retry_lost_connection: bool = False) -> list[Rows]:
        """Run the statements as one transaction, in one round trip; the rows of each.

        A connection that fails makes the pool check its idle ones (in the background: with the
        link down, each check waits for the TCP timeout). ``retry_lost_connection`` (reads only)
        tries once more on another connection when the failure came at once (a connection closed
        under it); not after a timeout, which would only double the wait. A write is never
        retried: it may have committed before the connection broke."""
        started = time.monotonic()
        try:
            return await self._run(statements)
        except psycopg.OperationalError:
            self._check_soon()
            if not retry_lost_connection or time.monotonic() - started > 1.0:
                raise
            return await self._run(statements)

    async def _run(self, statements: Sequence[Statement]) -> list[Rows]:
        # A connection the server closed (it restarted) is skipped: back in the pool it is
        # discarded and replaced at once. (psycopg_pool's own ``check`` would back off between
        # dead connections, and a pool full of them outwaits the checkout timeout.)
        for _ in range(self.pool.max_size + 1):
            async with self.pool.connection() as conn:
                if not await pg.alive_async(conn):
                    continue
                async with conn.pipeline():  # on exit: one Sync, so one transaction and one round trip
                    cursors = [await conn.execute(sql.encode(), params) for sql, params in statements]
                return [await c.fetchall() if returns_rows(c) else [] for c in cursors]
        raise psycopg.OperationalError("every pooled connection to PostgreSQL was closed by the server")

    def _check_soon(self) -> None:
        if self._checking is None or self._checking.done():
            self._checking = asyncio.create_task(self._check())

    async def _check(self) -> None:
        with contextlib.suppress(Exception):
            await self.pool.check()
