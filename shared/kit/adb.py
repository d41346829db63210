"""Asynchronous PostgreSQL access for the API's hot paths (accepting a job, reading one).

psycopg's ``AsyncConnectionPool`` on the event loop: no thread-pool hop. A unit of work is a
list of statements sent as one pipeline with a single Sync at its end, so that it costs one
network round trip however many statements it has. PostgreSQL runs the statements before a Sync
as one implicit transaction: committed at the Sync, or rolled back whole when one of them fails
(the extended query protocol; no BEGIN or COMMIT to send). Each statement still sees the effects
of those before it (READ COMMITTED takes a snapshot per statement), so a row lock taken by the
first one orders what the next ones read.

The statements themselves live in the repositories, written in psycopg's ``%(name)s`` style so
that the synchronous paths can run the very same text (``Session.connection().exec_driver_sql``).
The workers' synchronous twin of this module is shared.kit.pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.config import Settings
from shared.kit import pg
from shared.kit.pipeline import Rows, Statement, returns_rows

log = logging.getLogger("engram.adb")



class AsyncDatabase:
    """One pool per API process, opened by the app's lifespan."""

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
