"""The scheduler's loop: repair what crashes and lost messages left behind, and purge.

Every pass is idempotent and safe to run from several scheduler processes at once (row locks
with SKIP LOCKED, conditional updates). It needs only PostgreSQL to decide; Redis only to send.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from shared import queue
from shared.config import Settings
from shared.errors import problem_body
from shared.idempotency import repository as idempotency_repo
from shared.jobs import repository as repo
from shared.jobs import runs
from shared.kit import pg
from shared.kit.db import unit_of_work
from shared.models.states import JobStatus
from shared.sessions import service as sessions
from shared.webhooks import repository as webhooks_repo

log = logging.getLogger("engram.reconciler")


@dataclass
class PassReport:
    requeued: int = 0
    failed: int = 0
    dispatched: int = 0
    purged_jobs: int = 0
    purged_sessions: int = 0
    purged_keys: int = 0
    deliveries_requeued: int = 0
    deliveries_sent: int = 0


def reconcile_once(settings: Settings) -> PassReport:
    report = PassReport()
    with unit_of_work(settings) as db:
        # Running jobs whose worker vanished (lease expired): back to the queue, or failed when
        # they have used up their attempts.
        report.requeued = len(repo.requeue_expired(db, settings.job_max_attempts))
        for job_id, attempts in repo.lock_exhausted(db, settings.job_max_attempts):
            runs.finish(db, job_id, JobStatus.FAILED, error=problem_body(
                500, "The job was lost too many times",
                f"{attempts} runs of this job were lost (worker killed or unreachable) before finishing; "
                f"the limit is ENGRAM_JOB_MAX_ATTEMPTS={settings.job_max_attempts}.", type_slug="attempts-exhausted"))
            report.failed += 1
    with unit_of_work(settings) as db:
        # Heads of session queues with no message or an old one (Redis lost it, or the API could
        # not reach Redis): send again. Duplicates are harmless: the claim is conditional.
        to_dispatch = repo.redispatch_heads(db, timedelta(seconds=settings.job_redispatch_seconds))
    for d in to_dispatch:
        if queue.dispatch(d, settings):
            report.dispatched += 1
    report.deliveries_requeued, report.deliveries_sent = send_due_deliveries(settings)
    with unit_of_work(settings) as db:
        now = datetime.now(UTC)
        report.purged_jobs = repo.purge_finished(db, now - timedelta(days=settings.job_retention_days))
        report.purged_sessions = sessions.purge_expired(db)
        report.purged_keys = idempotency_repo.purge_before(
            db, now - timedelta(hours=settings.idempotency_retention_hours))
    if any(vars(report).values()):
        log.info("reconciler pass: %s", vars(report))
    return report


def send_due_deliveries(settings: Settings) -> tuple[int, int]:
    """Webhook deliveries: put back the sends of lost workers, then send the messages of those
    due (new ones, retries whose time came, lost messages). Returns (put back, sent)."""
    with unit_of_work(settings) as db:
        requeued = webhooks_repo.requeue_lost(db, settings.webhook_max_attempts)
        due = webhooks_repo.due(db, timedelta(seconds=settings.job_redispatch_seconds))
    return requeued, sum(queue.send_delivery(d, settings) for d in due)


def run_forever(settings: Settings, stop: threading.Event | None = None) -> None:
    """A full pass every ENGRAM_RECONCILE_INTERVAL_SECONDS; in between, the deliveries a job's
    finish writes are sent as soon as PostgreSQL notifies them."""
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("scheduler started: a pass every %.1f s", settings.reconcile_interval_seconds)
    listener = _DeliveriesListener(settings)
    next_pass = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= next_pass:
                reconcile_once(settings)
                next_pass = time.monotonic() + settings.reconcile_interval_seconds
            elif listener.wait(min(next_pass - time.monotonic(), 1.0)):
                send_due_deliveries(settings)
        except Exception as exc:  # noqa: BLE001 - PostgreSQL down: try again next pass
            log.warning("reconciler pass failed: %s", exc)
            listener.close()
            stop.wait(settings.reconcile_interval_seconds)
            next_pass = 0.0
    listener.close()
    log.info("scheduler stopped")


class _DeliveriesListener:
    """LISTEN for the finishes that wrote webhook deliveries (reconnects when needed)."""

    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.libpq_url
        self._params = pg.connect_params(settings, "scheduler-listen")  # keepalives: a silent cut is noticed
        self._conn: psycopg.Connection[Any] | None = None

    def wait(self, timeout: float) -> bool:
        """Whether deliveries were notified within ``timeout`` seconds (all pending notes are read)."""
        if self._conn is None:
            self._conn = psycopg.connect(self._dsn, autocommit=True, **self._params)
            self._conn.execute(f"LISTEN {runs.DELIVERIES_CHANNEL}")
        return any(True for _ in self._conn.notifies(timeout=max(timeout, 0.0), stop_after=1000))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
