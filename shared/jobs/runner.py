"""Running one job: claim with fencing, heartbeat, effects, finish, dispatch the next job.

Rules (DESIGN.md section 3) and where they hold (docs/jobs.md has the whole table):
- effects at most once: the claim (``effects.claim_integration``, ``runs.CLAIM``) returns the
  run's token; every effect transaction takes the fence (``runs.LOCK_RUN``, judged by
  ``effects.fence``: the job row locked with that token, the session's generation checked), so a
  duplicate message, a late worker or an integration overtaken by a truncate writes nothing;
- one at a time per session: the claim refuses a job that is not its session's head; the
  transaction that finishes a job dispatches the session's next head, whose message is sent right
  after the commit;
- accepted means done: a lost run leaves a running row whose lease expires; the reconciler
  re-queues it (bounded attempts).

A trivial integration costs three round trips to PostgreSQL (shared.kit.connector): the claim with
the reads of its plan; the fence with the agent's lock and recent memories; the writes with the
finish, the notify and the dispatch of the next head, committed. With nothing new to integrate it
costs one: the claim finishes the job. A truncate costs two transactions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from shared import queue
from shared.config import Settings
from shared.errors import problem_body
from shared.integrators import Integrator, IntegratorError, TimedIntegrator, load_integrator
from shared.jobs import effects, runs
from shared.jobs import repository as repo
from shared.jobs.runs import Run
from shared.jobs.schemas import RunOutcome
from shared.kit import connector
from shared.kit.db import unit_of_work
from shared.logs import bind as bind_log_context
from shared.logs import clear as clear_log_context
from shared.memories.service import active_embedder
from shared.models.states import JobKind, JobStatus
from shared.queue import Dispatch

log = logging.getLogger("engram.jobs")

_integrators: dict[tuple[Any, ...], Integrator] = {}


def integrator_for(settings: Settings) -> Integrator:
    """One integrator per process and configuration: building one (keyphrase models, HTTP
    clients) costs more than a small integration."""
    key = (os.getpid(), settings.integrator, settings.llm_base_url, settings.llm_model)
    found = _integrators.get(key)
    if found is None:
        found = _integrators[key] = TimedIntegrator(load_integrator(settings))
    return found


class Heartbeat:
    """Renews the lease every third of it while the run works (long LLM calls included), and at
    safe points learns whether the job was cancelled or taken away. The renewing is done by one
    thread per process (``_Beater``), so a run starts no thread of its own."""

    # A safe point renews at most this often: fast jobs pay no extra round trip, and a cancel is
    # seen within this time at the latest.
    CHECK_INTERVAL = 0.5

    def __init__(self, job_id: str, token: int, settings: Settings) -> None:
        self.job_id, self.token, self.settings = job_id, token, settings
        self.lease = timedelta(seconds=settings.job_lease_seconds)
        self.cancel_requested = False
        self.lost = False
        self.last = time.monotonic()  # the claim just set the lease

    def __enter__(self) -> Heartbeat:
        _beater().watch(self)
        return self

    def __exit__(self, *exc: object) -> None:
        _beater().watch(None)

    def beat(self) -> None:
        """Renew the lease now and learn whether the job was cancelled or taken away."""
        self.last = time.monotonic()
        try:
            (rows,) = connector.run(self.settings, [(runs.HEARTBEAT, {
                "id": self.job_id, "token": self.token, "lease": self.lease.total_seconds()})])
            self.lost = not rows
            self.cancel_requested = bool(rows and rows[0][0])
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried at the next one
            log.warning("heartbeat of job %s failed: %s", self.job_id, exc)

    def checkpoint(self) -> None:
        if time.monotonic() - self.last >= self.CHECK_INTERVAL:
            self.beat()


class _Beater:
    """The process's heartbeat thread: beats for the run under way every third of its lease. It
    looks every sixth of the lease (half a second without a run), so that a run starting or ending
    never wakes it: a beat comes at most half a lease after the last one."""

    IDLE_LOOK = 0.5

    def __init__(self) -> None:
        self.current: Heartbeat | None = None
        threading.Thread(target=self._loop, name="heartbeat", daemon=True).start()

    def watch(self, hb: Heartbeat | None) -> None:
        self.current = hb

    def _loop(self) -> None:
        while True:
            hb = self.current
            period = self.IDLE_LOOK if hb is None else hb.settings.job_lease_seconds / 6
            time.sleep(period)
            hb = self.current
            # A beat racing the run's end is harmless: it only renews a lease still the run's.
            if hb is not None and time.monotonic() - hb.last >= hb.settings.job_lease_seconds / 3:
                hb.beat()


_beaters: dict[int, _Beater] = {}


def _beater() -> _Beater:
    found = _beaters.get(os.getpid())  # threads do not survive a fork: one per process
    if found is None:
        found = _beaters[os.getpid()] = _Beater()
    return found


def run_job(job_id: str, settings: Settings, owner: str) -> RunOutcome:
    """Run the job if it is this worker's to run. Returns the outcome (for logs and tests)."""
    lease = timedelta(seconds=settings.job_lease_seconds)
    clear_log_context()
    bind_log_context(job_id=job_id)
    claim = effects.claim_integration(settings, job_id, owner, lease)
    run, to_dispatch = claim.run, claim.to_dispatch
    if run is None:
        # A duplicate or early message: the job is running elsewhere, finished, or waits behind
        # an earlier job of its session (whose run will dispatch this one).
        for d in to_dispatch:
            queue.dispatch(d, settings)
        if log.isEnabledFor(logging.INFO):
            with unit_of_work(settings) as db:
                state = repo.status_of(db, job_id) or "gone"
            log.info("job %s not claimed (%s)", job_id, state)
        return RunOutcome.SKIPPED
    bind_log_context(session=run.session_name)
    # One line per run at INFO, when it ends, says all of it; the claim is a DEBUG line.
    log.debug("job %s claimed: %s of session %s, attempt %d", job_id, run.kind, run.session_name, run.token)
    if claim.finished:
        for d in to_dispatch:
            queue.dispatch(d, settings)
        log.info("job %s %s: %s of session %s, attempt %d, nothing new to integrate", job_id,
                 RunOutcome.SUCCEEDED, run.kind, run.session_name, run.token)
        return RunOutcome.SUCCEEDED
    outcome = RunOutcome.SUCCEEDED
    try:
        if run.kind == JobKind.TRUNCATE:
            to_dispatch = effects.truncate_run(settings, run)
        else:
            with Heartbeat(job_id, run.token, settings) as hb:
                to_dispatch = effects.integrate(run, settings, integrator_for(settings), hb, claim.plans,
                                                active_embedder(settings))
    except effects.Superseded as exc:
        outcome, to_dispatch = _fail_or_retry(run, settings, False, problem_body(
            409, "The session was truncated during the run", str(exc), type_slug="session-truncated"))
        if outcome == RunOutcome.FAILED:
            outcome = RunOutcome.SUPERSEDED  # the job failed, because a truncate came between (metrics and logs tell it apart)
    except effects.Fenced as exc:
        log.warning("job %s attempt %d stopped: %s", job_id, run.token, exc)
        outcome, to_dispatch = RunOutcome.FENCED, exc.to_dispatch
    except effects.Cancelled:
        outcome = RunOutcome.CANCELLED
        with unit_of_work(settings) as db:
            if runs.lock_run(db, job_id, run.token) is not None:
                runs.finish(db, job_id, JobStatus.CANCELLED)
            to_dispatch = repo.dispatch_next(db, run.session_id)
    except IntegratorError as exc:
        outcome, to_dispatch = _fail_or_retry(run, settings, exc.retryable, problem_body(
            502, "The integrator failed", str(exc), type_slug="integrator-error"))
    except Exception as exc:
        log.exception("job %s attempt %d crashed", job_id, run.token)
        outcome, to_dispatch = _fail_or_retry(run, settings, True, problem_body(
            500, "Internal error while running the job", f"{type(exc).__name__}: {exc}", type_slug="internal"))
    for d in to_dispatch:
        queue.dispatch(d, settings)
    log.info("job %s %s: %s of session %s, attempt %d", job_id, outcome, run.kind, run.session_name, run.token)
    return outcome


def _fail_or_retry(run: Run, settings: Settings, retryable: bool,
                   error: dict[str, Any]) -> tuple[RunOutcome, list[Dispatch]]:
    with unit_of_work(settings) as db:
        if runs.lock_run(db, run.id, run.token) is None:
            return RunOutcome.FENCED, []
        if retryable and run.token < settings.job_max_attempts:
            # Back in the queue as its session's head, dispatched again right away.
            runs.requeue(db, run.id, error)
            return RunOutcome.RETRYING, repo.dispatch_next(db, run.session_id)
        runs.finish(db, run.id, JobStatus.FAILED, error=error)
        return RunOutcome.FAILED, repo.dispatch_next(db, run.session_id)
