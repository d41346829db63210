"""Sending wake-up messages. A message only says "job X may run now": losing one loses nothing,
because the job row in PostgreSQL is the truth and the reconciler re-sends what was lost."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery import Celery

from shared import task_names
from shared.config import Settings, get_settings
from shared.jobs.repository import Dispatch

log = logging.getLogger("engram.queue")
_lock = threading.Lock()
_producers: dict[tuple[int, str], Celery] = {}


def broker_options(settings: Settings) -> dict[str, Any]:
    return {
        # A message not acknowledged within this time is delivered again (worker lost).
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
        "retry_on_timeout": True,
    }


def producer(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    redis_url = settings.broker_url
    key = (os.getpid(), redis_url)
    with _lock:
        app = _producers.get(key)
        if app is None:
            app = Celery("engram-producer", broker=redis_url, set_as_current=False)
            app.conf.update(
                broker_transport_options=broker_options(settings),
                broker_connection_timeout=3,
                task_serializer="json",
                accept_content=["json"],
                task_ignore_result=True,
                # Redis down: give up fast; the job is committed and the reconciler re-sends it.
                task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
            )
            _producers[key] = app
        return app


def dispatch(d: Dispatch, settings: Settings | None = None) -> bool:
    """Send one job's wake-up message. False (logged) when the broker is unreachable: the job
    stays dispatched in PostgreSQL and the reconciler sends it again."""
    settings = settings or get_settings()
    try:
        producer(settings).send_task(
            task_names.BY_KIND[d.kind],
            args=[d.job_id],
            queue=task_names.QUEUE,
            expires=settings.job_message_expires_seconds,
        )
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure is handled the same way
        log.warning("could not send job %s to the broker (%s); the reconciler will send it again", d.job_id, exc)
        return False
