"""Running one job: claim with fencing, heartbeat, effects, finish, hand over to the next job.

Rules (DESIGN.md section 3) and where they hold:
- effects at most once: ``repo.claim`` returns the run's token (attempts); every effect
  transaction locks the job row with that token (``repo.fence``) and checks the session's
  generation, so a duplicate message, a late worker or an integration overtaken by a truncate
  writes nothing;
- one at a time per session: the claim refuses a job that is not the head of its session; the
  transaction that finishes a job marks the session's next job as sent, and its message is sent
  right after the commit;
- accepted means done: a lost run leaves a running row whose lease expires; the reconciler
  re-queues it (bounded attempts).

A trivial integration costs two transactions (claim + plan, then write + finish + hand-over); a
truncate costs one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from shared import queue
from shared.config import Settings
from shared.db import unit_of_work
from shared.integrators import Integrator, IntegratorError, load_integrator
from shared.jobs import effects
from shared.jobs import repository as repo
from shared.jobs.repository import Run
from shared.logs import bind as bind_log_context
from shared.logs import clear as clear_log_context
from shared.models import Job

log = logging.getLogger("engram.jobs")

_integrators: dict[tuple[Any, ...], Integrator] = {}


def integrator_for(settings: Settings) -> Integrator:
    """One integrator per process and configuration: building one (keyphrase models, HTTP
    clients) costs more than a small integration."""
    key = (os.getpid(), settings.integrator, settings.llm_base_url, settings.llm_model)
    found = _integrators.get(key)
    if found is None:
        found = _integrators[key] = load_integrator(settings)
    return found


def problem(type_slug: str, title: str, detail: str, status: int = 500) -> dict[str, Any]:
    return {"type": f"https://engram.dev/problems/{type_slug}", "title": title, "status": status, "detail": detail}


class Heartbeat:
    """Renews the lease every third of it while the run works (long LLM calls included), and at
    safe points learns whether the job was cancelled or taken away."""

    # A safe point renews at most this often: fast jobs pay no extra round trip, and a cancel is
    # seen within this time at the latest.
    CHECK_INTERVAL = 0.5

    def __init__(self, job_id: str, token: int, settings: Settings) -> None:
        self.job_id, self.token, self.settings = job_id, token, settings
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self.cancel_requested = False
        self.lost = False
        self._last = time.monotonic()  # the claim just set the lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def beat(self) -> None:
        """Renew the lease now and learn whether the job was cancelled or taken away."""
        self._last = time.monotonic()
        try:
            with unit_of_work(self.settings) as db:
                ours, cancel = repo.heartbeat(db, self.job_id, self.token, self.lease)
            self.lost = not ours
            self.cancel_requested = cancel
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
            log.warning("heartbeat of job %s failed: %s", self.job_id, exc)

    def checkpoint(self) -> None:
        if time.monotonic() - self._last >= self.CHECK_INTERVAL:
            self.beat()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.job_lease_seconds / 3):
            self.beat()


def run_job(job_id: str, settings: Settings, owner: str) -> str:
    """Run the job if it is this worker's to run. Returns the outcome (for logs and tests)."""
    lease = timedelta(seconds=settings.job_lease_seconds)
    clear_log_context()
    bind_log_context(job_id=job_id)
    handover: list[tuple[str, str]] = []
    plans: list[effects.Plan] = []
    with unit_of_work(settings) as db:
        job = repo.claim(db, job_id, owner, lease)
        if job is None:
            state = db.execute(select(Job.status).where(Job.id == job_id)).scalar_one_or_none() or "gone"
        elif job.kind == "truncate":
            # Claim, effects, finish and hand-over in one transaction.
            handover = effects.truncate(db, job)
        else:
            plans = effects.plan_integration(db, job)
    if job is None:
        # A duplicate or early message: the job is running elsewhere, finished, or waits behind
        # an earlier job of its session (whose run will send this one's message).
        log.info("job %s not claimed (%s)", job_id, state)
        return "skipped"
    token = job.attempts
    bind_log_context(session=job.session_name)
    log.info("job %s claimed: %s of session %s, attempt %d", job_id, job.kind, job.session_name, token)
    outcome = "succeeded"
    try:
        if job.kind == "integrate":
            with Heartbeat(job_id, token, settings) as hb:
                handover = effects.integrate(job, token, settings, integrator_for(settings), hb, plans)
    except effects.Superseded as exc:
        outcome, handover = _fail_or_retry(job, token, settings, False, problem(
            "session-truncated", "The session was truncated during the run", str(exc), 409))
    except effects.Fenced as exc:
        log.warning("job %s attempt %d stopped: %s", job_id, token, exc)
        return "fenced"
    except effects.Cancelled:
        outcome = "cancelled"
        with unit_of_work(settings) as db:
            current = repo.fence(db, job_id, token)
            if current is not None:
                repo.finish_run(db, job_id, "cancelled")
            handover = repo.promote_next_ids(db, job.session_id)
    except IntegratorError as exc:
        outcome, handover = _fail_or_retry(job, token, settings, exc.retryable, problem(
            "integrator-error", "The integrator failed", str(exc), 502))
    except Exception as exc:  # noqa: BLE001 - unexpected: retried within the attempt budget
        log.exception("job %s attempt %d crashed", job_id, token)
        outcome, handover = _fail_or_retry(job, token, settings, True, problem(
            "internal", "Internal error while running the job", f"{type(exc).__name__}: {exc}"))
    for next_id, kind in handover:
        queue.send(next_id, kind, settings)
    log.info("job %s %s", job_id, outcome)
    return outcome


def _fail_or_retry(job: Run, token: int, settings: Settings, retryable: bool,
                   error: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    with unit_of_work(settings) as db:
        current = repo.fence(db, job.id, token)
        if current is None:
            return "fenced", []
        if retryable and current.attempts < settings.job_max_attempts:
            # Back in the queue as its session's head, with a message of its own right away.
            current.status = "queued"
            current.lease_owner = None
            current.lease_expires_at = None
            current.dispatched_at = None
            current.redispatches = 0
            current.error = error
            return "retrying", repo.promote_next_ids(db, job.session_id)
        repo.finish_run(db, job.id, "failed", error=error)
        return "failed", repo.promote_next_ids(db, job.session_id)
