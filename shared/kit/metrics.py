"""What only the workers know, as Prometheus metrics: job runs by kind and outcome (fenced and
superseded runs included), run durations, the integrator's and the embedder's time, webhook
deliveries by outcome.

The metric objects are created here and observed where the work happens (the timed integrator
and embedder wrappers live with their interfaces: shared.integrators, shared.embedders). In a worker they count
in prometheus_client's multiprocess mode (``worker/metrics.py`` sets it up before this module is
imported), so that the prefork children's counts add up on the worker's metrics port. Anywhere
else (tests, in-process runs) they count in the process's own registry.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

JOB_RUNS = Counter("engram_worker_job_runs_total",
                   "Messages of jobs handled by the workers, by job kind and outcome (succeeded, failed, cancelled, "
                   "retrying, fenced: another run owns the job, superseded: a truncate came between, skipped: "
                   "not claimable, a duplicate or early message).", ["kind", "outcome"])
JOB_RUN_SECONDS = Histogram("engram_worker_job_run_seconds", "Time of a job's run on a worker, by kind and outcome.",
                            ["kind", "outcome"], buckets=_SECONDS)
INTEGRATOR_SECONDS = Histogram("engram_worker_integrator_seconds",
                               "Time of one integrator call (one participant's reflection).", buckets=_SECONDS)
EMBEDDER_SECONDS = Histogram("engram_worker_embedder_seconds", "Time of one embedder call (a batch of texts).",
                             buckets=_SECONDS)
WEBHOOK_DELIVERIES = Counter("engram_worker_webhook_deliveries_total",
                             "Webhook sends by outcome (delivered, retrying, failed: budget used up, superseded, "
                             "not_due: duplicate message).", ["outcome"])
WEBHOOK_SECONDS = Histogram("engram_worker_webhook_request_seconds", "Time of one webhook request.", buckets=_SECONDS)

NAMES = ("engram_worker_job_runs_total", "engram_worker_job_run_seconds", "engram_worker_integrator_seconds",
         "engram_worker_embedder_seconds", "engram_worker_webhook_deliveries_total", "engram_worker_webhook_request_seconds")
