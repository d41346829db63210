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
The workers' synchronous twin of this module is shared.jobs.pipeline.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

import psycopg
from psycopg_pool import AsyncConnectionPool

from shared.config import Settings
from shared.jobs.pipeline import Rows, Statement, returns_rows

log = logging.getLogger("engram.adb")



class AsyncDatabase:
    """One pool per API process, opened by the app's lifespan."""

    def __init__(self, settings: Settings) -> None:
        self.pool = AsyncConnectionPool(
            settings.libpq_url, min_size=min(4, settings.db_pool_size), max_size=settings.db_pool_size,
            # autocommit: a pipeline's statements are one implicit transaction, up to its Sync
            kwargs={"autocommit": True, "connect_timeout": 5, "application_name": "engram-api"},
            timeout=5,  # a saturated pool answers 503 quickly instead of hanging a request
            open=False, name="engram-api",
        )

    async def open(self) -> None:
        # No wait: the API starts (and /readyz tells) while PostgreSQL is still coming up.
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def run(self, statements: Sequence[Statement], *, retry_lost_connection: bool = False) -> list[Rows]:
        """Run the statements as one transaction, in one round trip; the rows of each.

        A connection found dead (PostgreSQL restarted since it was pooled) makes the pool check
        its other idle connections; ``retry_lost_connection`` (reads only) then tries once more on
        a fresh one. A write is never retried: it may have committed before the connection broke."""
        try:
            return await self._run(statements)
        except psycopg.OperationalError:
            await self._drop_dead_connections()
            if not retry_lost_connection:
                raise
            return await self._run(statements)

    async def _run(self, statements: Sequence[Statement]) -> list[Rows]:
        async with self.pool.connection() as conn:
            async with conn.pipeline():  # on exit: one Sync, so one transaction and one round trip
                cursors = [await conn.execute(sql.encode(), params) for sql, params in statements]
            return [await c.fetchall() if returns_rows(c) else [] for c in cursors]

    async def _drop_dead_connections(self) -> None:
        with contextlib.suppress(Exception):
            await self.pool.check()
