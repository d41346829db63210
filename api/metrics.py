"""Prometheus metrics of the API, and job figures read from PostgreSQL at scrape time.

Job state lives in PostgreSQL, so the job figures come from there: any API process reports the
same numbers, whichever worker ran the jobs.
"""

from __future__ import annotations

import logging

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.config import Settings
from shared.kit.db import unit_of_work
from shared.ops import repository as repo

log = logging.getLogger("engram.api.metrics")

REQUESTS = Counter("engram_http_requests_total", "HTTP requests by route and status.", ["method", "route", "status"])
LATENCY = Histogram("engram_http_request_duration_seconds", "HTTP request latency by route.", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one request under its route template (not the raw path: bounded label values)."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


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
            with unit_of_work(self.settings) as conn:
                repo.bound_time(conn, 2000)
                for kind, status, n in repo.job_counts(conn):
                    jobs.add_metric([kind, status], n)
                lag.add_metric([], repo.queue_lag_seconds(conn))
                for kind, p50, p99 in repo.run_time_quantiles(conn):
                    duration.add_metric([kind, "0.5"], p50)
                    duration.add_metric([kind, "0.99"], p99)
                pending.add_metric([], repo.pending_turns(conn))
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
