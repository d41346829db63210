"""How every process connects to PostgreSQL: the connection parameters, and whether a pooled
connection is still alive before it is handed out.

Every connection an Engram process opens (the API's two pools, a worker's pipeline connections,
the LISTEN connections of the long-polls and the scheduler) takes ``connect_params``, so that a
fault is noticed within the same documented bounds everywhere:

- ``ENGRAM_DB_CONNECT_TIMEOUT_SECONDS``: a connection attempt gives up after it.
- ``ENGRAM_DB_TCP_TIMEOUT_SECONDS``: a link that stops answering (a silent cut: no reset, no
  error, packets dropped) breaks the connection after about this long. ``tcp_user_timeout`` bounds
  how long sent data may stay unacknowledged; TCP keepalives probe an idle or waiting connection.
- ``ENGRAM_DB_STATEMENT_TIMEOUT_SECONDS``: PostgreSQL cancels a statement that runs longer.
- ``ENGRAM_DB_IDLE_IN_TRANSACTION_TIMEOUT_SECONDS``: PostgreSQL ends the session of a client that
  left a transaction open and went silent (a frozen or cut-off worker), releasing its locks.

When PostgreSQL restarts or crashes, it closes its connections' sockets: an idle pooled
connection then has something to read (the termination notice, or the end of the stream).
``alive`` checks that without a round trip (a zero-timeout ``select``), and only then asks the
server, so the pools hand out fresh connections after a restart at no cost in calm times.
"""

from __future__ import annotations

import os
import select
from typing import Any, NamedTuple

import psycopg

from shared.config import Settings


class TcpTimeouts(NamedTuple):
    """How a connection notices a silent cut within ``timeout`` seconds: keepalive probes start
    after ``idle`` quiet seconds, one a second, ``probes`` of them unanswered break it; data sent and
    unacknowledged ``user_timeout_ms`` breaks it too. Shared by PostgreSQL and Redis connections."""

    idle: int
    interval: int
    probes: int
    user_timeout_ms: int


def tcp_timeouts(timeout: float) -> TcpTimeouts:
    idle = max(1, int(timeout / 2))
    return TcpTimeouts(idle=idle, interval=1, probes=max(1, int(timeout) - idle), user_timeout_ms=int(timeout * 1000))


def connect_params(settings: Settings, role: str) -> dict[str, Any]:
    """libpq parameters of every connection to PostgreSQL, for a process of ``role``."""
    tcp = tcp_timeouts(settings.db_tcp_timeout_seconds)
    return {
        "connect_timeout": max(1, round(settings.db_connect_timeout_seconds)),
        "application_name": f"engram-{role}-{os.getpid()}",
        "keepalives": 1,
        "keepalives_idle": tcp.idle,
        "keepalives_interval": tcp.interval,
        "keepalives_count": tcp.probes,
        "tcp_user_timeout": tcp.user_timeout_ms,
        "options": " ".join([
            f"-c statement_timeout={int(settings.db_statement_timeout_seconds * 1000)}",
            f"-c idle_in_transaction_session_timeout={int(settings.db_idle_in_transaction_timeout_seconds * 1000)}",
        ]),
    }


def with_options(params: dict[str, Any], *options: str) -> dict[str, Any]:
    """``params`` with more server settings (``-c name=value``) in its ``options``."""
    return {**params, "options": " ".join([params.get("options", ""), *options]).strip()}


def has_input(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection has something to read: the server closed it (restart, crash,
    terminated backend) or sent it a notice. No round trip."""
    if conn.closed or conn.broken:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def alive(conn: psycopg.Connection[Any]) -> bool:
    """Whether an idle connection can still be used: no round trip unless it has input."""
    if not has_input(conn):
        return True
    if conn.closed or conn.broken:
        return False
    try:
        conn.execute("")  # reads what is waiting: a termination raises
    except psycopg.Error:
        return False
    return True


async def alive_async(conn: psycopg.AsyncConnection[Any]) -> bool:
    """``alive`` for the API's event-loop pool."""
    if not has_input(conn):
        return True
    if conn.closed or conn.broken:
        return False
    try:
        await conn.execute("")
    except psycopg.Error:
        return False
    return True
