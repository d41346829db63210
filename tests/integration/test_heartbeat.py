"""The heartbeat (shared.jobs.runner.Heartbeat, one thread per process) keeps a long run's lease: the
reconciler never re-queues a job whose run is alive, however long its integrator takes."""

from __future__ import annotations

import threading
import time

from shared.jobs.runner import run_job
from tests.integration import blocking_integrator as blocking
from tests.integration.test_job_rules import conversation, job, sql
from worker.reconciler import reconcile_once


def test_a_long_run_keeps_its_lease(world, settings) -> None:
    name = conversation(world, "ada")
    job_id = world.post(f"/sessions/{name}/integrate").json()["id"]
    blocking.reset()
    s = settings.model_copy(update={"integrator": "tests.integration.blocking_integrator:factory"})
    outcome: list[str] = []
    t = threading.Thread(target=lambda: outcome.append(run_job(job_id, s, "long-runner")))
    t.start()
    try:
        assert blocking.entered.wait(10)
        started = time.monotonic()
        # Twice the lease: without beats the lease would expire and the reconciler re-queue the job.
        while time.monotonic() - started < 2 * settings.job_lease_seconds:
            reconcile_once(settings)
            ((expires_in,),) = sql(settings, "SELECT extract(epoch FROM lease_expires_at - now()) FROM jobs "
                                   "WHERE id = %(id)s", id=job_id)
            assert expires_in > 0
            assert job(world, job_id)["status"] == "running"
            time.sleep(0.25)
    finally:
        blocking.release.set()
        t.join(15)
    assert outcome == ["succeeded"]
    assert job(world, job_id)["attempts"] == 1
