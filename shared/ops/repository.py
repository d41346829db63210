"""All SQL of the operational endpoints: readiness and the job figures of /metrics.

They run in a unit of work of their own: a scrape or a readiness check is not part of a request's
transaction.
"""

from __future__ import annotations

from shared.kit import connector
from shared.kit.db import UnitOfWork
from shared.models.states import JobStatus

PING = "SELECT 1"
"""A round trip to PostgreSQL."""

BOUND_TIME = "SELECT set_config('statement_timeout', %(ms)s::text, true)"
"""Give up on this transaction's statements after ``ms`` milliseconds (a string)."""

JOB_COUNTS = "SELECT kind, status, count(*) AS jobs FROM jobs GROUP BY kind, status"
"""(kind, status, count) of the jobs kept."""

QUEUE_LAG = f"""
    SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) AS seconds FROM jobs WHERE status = '{JobStatus.QUEUED.value}'
"""
"""Age in seconds of the oldest queued job, 0 when none is queued."""

RUN_TIME_QUANTILES = f"""
    SELECT kind,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS p50,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)) AS p99
    FROM jobs WHERE status = '{JobStatus.SUCCEEDED.value}' AND finished_at > now() - interval '1 hour' GROUP BY kind
"""
"""(kind, p50, p99) run time in seconds of the jobs that succeeded in the last hour."""

PENDING_TURNS = """
    SELECT coalesce(sum(greatest(s.turn_count - greatest(p.last_integration_turn, p.bound_after_seq), 0)), 0) AS turns
    FROM participants p JOIN sessions s ON s.id = p.session_id WHERE s.deleted_at IS NULL
"""
"""Turns after each participant's watermark, summed over live sessions."""


def ping(conn: UnitOfWork) -> None:
    """A round trip to PostgreSQL."""
    connector.fetch_all(conn, PING)


def bound_time(conn: UnitOfWork, milliseconds: int) -> None:
    """Give up on this transaction's statements after ``milliseconds`` (a scrape must not hang)."""
    connector.fetch_all(conn, BOUND_TIME, {"ms": str(int(milliseconds))})


def job_counts(conn: UnitOfWork) -> list[tuple[str, str, int]]:
    """(kind, status, count) of the jobs kept."""
    return [(r.kind, r.status, int(r.jobs)) for r in connector.fetch_all(conn, JOB_COUNTS)]


def queue_lag_seconds(conn: UnitOfWork) -> float:
    """Age of the oldest queued job, 0 when none is queued."""
    return float(connector.fetch_all(conn, QUEUE_LAG)[0].seconds)


def run_time_quantiles(conn: UnitOfWork) -> list[tuple[str, float, float]]:
    """(kind, p50, p99) run time in seconds of the jobs that succeeded in the last hour."""
    return [(r.kind, float(r.p50), float(r.p99)) for r in connector.fetch_all(conn, RUN_TIME_QUANTILES)]


def pending_turns(conn: UnitOfWork) -> float:
    """Turns after each participant's watermark, summed over live sessions (an upper bound: before
    visibility is applied, which would cost a join with every turn)."""
    return float(connector.fetch_all(conn, PENDING_TURNS)[0].turns)
