"""All SQL of the operational endpoints: readiness and the job figures of /metrics."""

from __future__ import annotations

from sqlalchemy import Connection, text

from shared.models.states import JobStatus

_QUEUED, _SUCCEEDED = JobStatus.QUEUED.value, JobStatus.SUCCEEDED.value


def ping(conn: Connection) -> None:
    """A round trip to PostgreSQL."""
    conn.execute(text("SELECT 1"))


def bound_time(conn: Connection, milliseconds: int) -> None:
    """Give up on this transaction's statements after ``milliseconds`` (a scrape must not hang)."""
    conn.execute(text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(int(milliseconds))})


def job_counts(conn: Connection) -> list[tuple[str, str, int]]:
    """(kind, status, count) of the jobs kept."""
    return [(r[0], r[1], int(r[2])) for r in conn.execute(text("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status"))]


def queue_lag_seconds(conn: Connection) -> float:
    """Age of the oldest queued job, 0 when none is queued."""
    return float(conn.execute(text(
        f"SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM jobs WHERE status = '{_QUEUED}'"
    )).scalar_one())


def run_time_quantiles(conn: Connection) -> list[tuple[str, float, float]]:
    """(kind, p50, p99) run time in seconds of the jobs that succeeded in the last hour."""
    rows = conn.execute(text(f"""
        SELECT kind,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))
        FROM jobs WHERE status = '{_SUCCEEDED}' AND finished_at > now() - interval '1 hour' GROUP BY kind
    """))
    return [(r[0], float(r[1]), float(r[2])) for r in rows]


def pending_turns(conn: Connection) -> float:
    """Turns after each participant's watermark, summed over live sessions (an upper bound: before
    visibility is applied, which would cost a join with every turn)."""
    return float(conn.execute(text("""
        SELECT coalesce(sum(greatest(s.turn_count - greatest(p.last_integration_turn, p.bound_after_seq), 0)), 0)
        FROM participants p JOIN sessions s ON s.id = p.session_id WHERE s.deleted_at IS NULL
    """)).scalar_one())
