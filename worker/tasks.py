"""Thin tasks: take the job id, run it. Everything else is in shared.jobs.runner."""

from __future__ import annotations

import socket
import time
from typing import Any

from celery import Task

from shared import task_names
from shared.config import get_settings
from shared.jobs.runner import run_job
from shared.kit import metrics
from shared.models.states import JobKind
from shared.webhooks import sender as webhook_sender
from worker.app import app


def _run(task: Task[Any, Any], job_id: str, kind: JobKind) -> str:
    owner = f"{task.request.hostname or socket.gethostname()}/{task.request.id}"
    started = time.perf_counter()
    outcome = run_job(job_id, get_settings(), owner)
    metrics.JOB_RUNS.labels(kind, outcome).inc()
    metrics.JOB_RUN_SECONDS.labels(kind, outcome).observe(time.perf_counter() - started)
    return outcome


@app.task(name=task_names.INTEGRATE, bind=True, ignore_result=True)
def integrate(self: Task[Any, Any], job_id: str) -> str:
    """Integrate a session's new turns into its participants' insights and memories."""
    return _run(self, job_id, JobKind.INTEGRATE)


@app.task(name=task_names.DELIVER, ignore_result=True)
def deliver(delivery_id: str) -> str:
    """Try sending one webhook delivery (signed POST); retries are scheduled in PostgreSQL."""
    return webhook_sender.deliver(delivery_id, get_settings())


@app.task(name=task_names.TRUNCATE, bind=True, ignore_result=True)
def truncate(self: Task[Any, Any], job_id: str) -> str:
    """Reset a session: turns, data, insights and watermarks; bump its generation."""
    return _run(self, job_id, JobKind.TRUNCATE)
