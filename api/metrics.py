"""Prometheus metrics of the API, and job figures read from PostgreSQL at scrape time.

Job state lives in PostgreSQL, so the job figures come from there: any API process reports the
same numbers, whichever worker ran the jobs.
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text

from shared.config import Settings
from shared.db import get_engine

log = logging.getLogger("engram.api.metrics")

REQUESTS = Counter("engram_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
LATENCY = Histogram("engram_http_request_duration_seconds", "HTTP request latency by route.", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one request under its route template (not the raw path: bounded label values)."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


_JOBS_SQL = text("""
    SELECT kind, status, count(*) FROM jobs GROUP BY kind, status
""")
_LAG_SQL = text("""
    SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM jobs WHERE status = 'queued'
""")
_DURATION_SQL = text("""
    SELECT kind,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at)),
           count(*)
    FROM jobs WHERE status = 'succeeded' AND finished_at > now() - interval '1 hour' GROUP BY kind
""")
# Upper bound: turns after each participant's watermark, before visibility is applied.
_PENDING_SQL = text("""
    SELECT coalesce(sum(greatest(s.turn_count - greatest(p.last_integration_turn, p.bound_after_seq), 0)), 0)
    FROM participants p JOIN sessions s ON s.id = p.session_id WHERE s.deleted_at IS NULL
""")


class JobsCollector(Collector):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def describe(self):  # type: ignore[no-untyped-def]
        # Registering would otherwise call collect() (a database query) at start-up.
        return []

    def collect(self):  # type: ignore[no-untyped-def]
        jobs = GaugeMetricFamily("engram_jobs", "Jobs by kind and status (kept ones).", labels=["kind", "status"])
        lag = GaugeMetricFamily("engram_queue_lag_seconds", "Age of the oldest queued job.")
        duration = GaugeMetricFamily("engram_job_duration_seconds",
                                     "Run time of jobs that succeeded in the last hour.", labels=["kind", "quantile"])
        pending = GaugeMetricFamily("engram_integration_lag_turns",
                                    "Turns not yet integrated, summed over participants (before visibility).")
        up = GaugeMetricFamily("engram_database_up", "1 when the job figures could be read from PostgreSQL.")
        try:
            with get_engine(self.settings).connect() as conn:
                conn.execute(text("SET LOCAL statement_timeout = 2000"))
                for kind, status, n in conn.execute(_JOBS_SQL):
                    jobs.add_metric([kind, status], n)
                lag.add_metric([], float(conn.execute(_LAG_SQL).scalar_one()))
                for kind, p50, p99, _ in conn.execute(_DURATION_SQL):
                    duration.add_metric([kind, "0.5"], float(p50))
                    duration.add_metric([kind, "0.99"], float(p99))
                pending.add_metric([], float(conn.execute(_PENDING_SQL).scalar_one()))
            up.add_metric([], 1)
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database is down
            log.warning("metrics: cannot read job figures: %s", str(exc).splitlines()[0] if str(exc) else exc)
            up.add_metric([], 0)
            yield up
            return
        yield from (jobs, lag, duration, pending, up)


_registered: dict[str, JobsCollector] = {}


def register_jobs_collector(settings: Settings) -> None:
    """Once per process (tests build several apps)."""
    if "jobs" in _registered:
        _registered["jobs"].settings = settings
        return
    collector = JobsCollector(settings)
    REGISTRY.register(collector)
    _registered["jobs"] = collector
