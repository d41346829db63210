"""The Celery app of the workers. Its settings follow from DESIGN.md section 3:

- acks late + reject on worker lost: a message is acknowledged only after the run, so a killed
  worker's message is delivered again (and the job row's lease covers the rest);
- prefetch 1: a busy worker does not hoard messages other workers could run;
- time limits below the broker's visibility timeout: Redis never redelivers a message whose run
  is still legitimately going;
- json only, results ignored: job status lives in PostgreSQL, never in a result backend;
- task events on: Flower shows workers and tasks.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

from shared import task_names
from shared.config import Settings, get_settings
from shared.queue import broker_options

log = logging.getLogger("engram.worker")


def celery_config(settings: Settings) -> dict[str, Any]:
    """The worker settings (also used by the benchmark's raw-Celery reference, for parity)."""
    return dict(
        broker_url=settings.broker_url,
        broker_transport_options=broker_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # Redis restarting: keep trying, jobs wait in PostgreSQL
        task_default_queue=task_names.QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.task_soft_time_limit_seconds,
        task_time_limit=min(settings.task_soft_time_limit_seconds + 60, settings.broker_visibility_timeout_seconds - 60),
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        worker_send_task_events=True,
        task_send_sent_event=True,
        worker_hijack_root_logger=False,
        worker_max_memory_per_child=400_000,  # KiB: recycle a child that grew past 400 MB
    )


app = Celery("engram", include=["worker.tasks"])
# Importing this module reads nothing: the settings are read when the app is first used (a worker,
# Flower or `celery -A worker.app inspect` starting). A missing ENGRAM_REDIS_URL is then a
# SettingsError that says so, never a silent default broker.
app.add_defaults(lambda: celery_config(get_settings()))


@worker_process_init.connect
def _prepare_child(**_: object) -> None:
    # (A forked child never reuses the parent's database connections: shared.kit.db and
    # shared.kit.connector make their own in each process.)
    # Build the integrator now (imports, keyphrase models), not inside the child's first job.
    from shared.jobs.runner import integrator_for

    settings = get_settings()
    try:
        integrator_for(settings)
    except Exception:
        log.exception("cannot load the integrator %r", settings.integrator)


@worker_process_shutdown.connect
def _forget_child_metrics(pid: int | None = None, **_: object) -> None:
    from worker.metrics import child_exited

    child_exited(pid or os.getpid())
