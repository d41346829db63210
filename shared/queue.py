"""Sending wake-up messages. A message only says "job X may run now": losing one loses nothing,
because the job row in PostgreSQL is the truth and the reconciler re-sends what was lost."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast

import redis.asyncio
import redis.asyncio.sentinel
from celery import Celery

from shared import task_names
from shared.config import Settings, get_settings, redis_db
from shared.kit.pg import tcp_timeouts

log = logging.getLogger("engram.queue")
_lock = threading.Lock()
_producers: dict[tuple[int, str], Celery] = {}


class Dispatch(NamedTuple):
    """A wake-up message to send after the transaction that decided it commits."""

    job_id: str
    kind: str


def redis_socket_options(settings: Settings) -> dict[str, Any]:
    """How every Redis connection of Engram's notices a fault (redis-py's connection options): a
    connection attempt gives up after 3 s; a link that stops answering breaks the connection after
    about ENGRAM_REDIS_TCP_TIMEOUT_SECONDS (a reply overdue, sent data unacknowledged, or keepalive
    probes unanswered from half of it on)."""
    tcp = tcp_timeouts(settings.redis_tcp_timeout_seconds)
    return {
        "socket_connect_timeout": 3,
        "socket_timeout": settings.redis_tcp_timeout_seconds,
        "socket_keepalive": True,
        "socket_keepalive_options": {socket.TCP_KEEPIDLE: tcp.idle, socket.TCP_KEEPINTVL: tcp.interval,
                                     socket.TCP_KEEPCNT: tcp.probes, socket.TCP_USER_TIMEOUT: tcp.user_timeout_ms},
    }


def broker_options(settings: Settings) -> dict[str, Any]:
    sockets = redis_socket_options(settings)
    sentinel = {
        # kombu asks the sentinels for the master at each (re)connection, so a failover is followed
        "master_name": settings.redis_sentinel_master,
        "sentinel_kwargs": {k: sockets[k] for k in ("socket_connect_timeout", "socket_timeout")},
    } if settings.redis_sentinels else {}
    return {
        # A message not acknowledged within this time is delivered again (worker lost).
        "visibility_timeout": settings.broker_visibility_timeout_seconds,
        **sockets,
        # kombu checks its long-lived connections this often: a consumer's BRPOP whose reply is
        # overdue by this much is dropped and connected again (a silent cut).
        "health_check_interval": max(1, int(settings.redis_tcp_timeout_seconds)),
        "retry_on_timeout": True,
        **sentinel,
    }


def async_redis(settings: Settings) -> redis.asyncio.Redis:
    """A client of the broker's Redis for the event loop: the master the sentinels name, when
    ENGRAM_REDIS_URL names sentinels (asked again at each new connection, so it follows a failover)."""
    options = redis_socket_options(settings)
    sentinels = settings.redis_sentinels
    if sentinels is None:
        return redis.asyncio.Redis.from_url(settings.broker_url, retry_on_timeout=False, **options)
    watch = redis.asyncio.sentinel.Sentinel(
        sentinels, sentinel_kwargs={k: options[k] for k in ("socket_connect_timeout", "socket_timeout")})
    master: redis.asyncio.Redis = watch.master_for(settings.redis_sentinel_master, db=redis_db(settings.broker_url),
                                                   **options)
    return master


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
    return _send(task_names.BY_KIND[d.kind], d.job_id, settings or get_settings(), f"job {d.job_id}")


def send_delivery(delivery_id: str, settings: Settings) -> bool:
    """Send a webhook delivery's message. False (logged) when the broker is unreachable: the
    reconciler sends it again once it is due and its message is old."""
    return _send(task_names.DELIVER, delivery_id, settings, f"webhook delivery {delivery_id}")


def _send(task: str, row_id: str, settings: Settings, what: str) -> bool:
    """Send a task by name carrying only the id of its row; the row in PostgreSQL is the truth."""
    try:
        producer(settings).send_task(task, args=[row_id], queue=task_names.QUEUE,
                                     expires=settings.job_message_expires_seconds)
        return True
    except Exception as exc:  # noqa: BLE001 - any broker failure is handled the same way
        log.warning("could not send %s to the broker (%s); the reconciler will send it again", what, exc)
        return False


# --- from the event loop -----------------------------------------------------------------------


def celery_message(d: Dispatch, settings: Settings) -> bytes:
    """The wake-up message exactly as Celery's ``send_task`` would write it to the queue's Redis
    list (task message protocol 2 in kombu's Redis envelope), so that workers and Flower see a
    standard task. ``tests/integration/test_dispatch.py`` compares it with Celery's own.

    Celery builds the message of each kind once per process; each message then only gets its
    task id, job id, expiry and delivery tag."""
    template = _message_template(settings, d.kind)
    task_id = str(uuid.uuid4())
    expires = datetime.now(UTC) + timedelta(seconds=settings.job_message_expires_seconds)
    body = json.dumps([[d.job_id], {}, template.body[2]]).encode()
    return json.dumps({
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {**template.headers, "id": task_id, "root_id": task_id, "argsrepr": repr([d.job_id]),
                    "expires": expires.isoformat()},
        "properties": {
            **template.properties,
            "correlation_id": task_id,
            "delivery_mode": 2,  # persistent, Celery's default
            "expiration": str(settings.job_message_expires_seconds * 1000),
            "delivery_info": {"exchange": "", "routing_key": task_names.QUEUE},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }).encode()


_templates: dict[tuple[int, str, str], Any] = {}


def _message_template(settings: Settings, kind: str) -> Any:
    key = (os.getpid(), settings.broker_url, kind)  # the origin header names the process
    template = _templates.get(key)
    if template is None:
        template = producer(settings).amqp.as_task_v2(
            "", task_names.BY_KIND[kind], args=cast(Any, []),
            ignore_result=None)  # type: ignore[arg-type]  # what send_task passes when unset
        _templates[key] = template
    return template


class AsyncDispatcher:
    """Sends wake-up messages from the API's event loop without ever making a request wait.

    ``send`` only queues the message; one task pushes what has queued with a single ``LPUSH``
    (the order of sending is the order of running), so under load one round trip to Redis
    carries many messages. A message that cannot be sent is logged and dropped: the job row is
    committed and marked dispatched, and the reconciler sends it again."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._redis = async_redis(settings)
        self._pending: list[tuple[str, bytes]] = []
        self._flushing: asyncio.Task[None] | None = None

    def send(self, d: Dispatch) -> None:
        self._pending.append((d.job_id, celery_message(d, self._settings)))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._redis.lpush(task_names.QUEUE, *(m for _, m in batch))
            except Exception as exc:  # noqa: BLE001 - any broker failure is handled the same way
                log.warning("could not send %d job message(s) to the broker (%s), first job %s; the reconciler "
                            "will send them again", len(batch), exc, batch[0][0])

    async def close(self) -> None:
        """Send what is queued, then close the connection."""
        if self._flushing is not None:
            await self._flushing
        await self._redis.aclose()
