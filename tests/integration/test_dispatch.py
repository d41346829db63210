"""The API's wake-up messages (shared.queue.AsyncDispatcher) are the messages Celery itself sends:
the same envelope, headers, properties and body, on the same Redis list. Workers and Flower see
standard tasks, whichever way a job was sent."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime
from typing import Any

import redis

from shared import queue, task_names
from shared.config import Settings
from shared.queue import Dispatch

DISPATCH_REDIS_DB = 5  # no worker consumes it

# Per message: the task id (and what repeats it), the delivery tag, the time it expires, the sender.
_UNIQUE_HEADERS = {"id", "root_id", "expires", "origin"}
_UNIQUE_PROPERTIES = {"correlation_id", "delivery_tag", "reply_to"}


def _comparable(raw: bytes) -> dict[str, Any]:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    message["headers"] = {k: v for k, v in message["headers"].items() if k not in _UNIQUE_HEADERS}
    message["properties"] = {k: v for k, v in message["properties"].items() if k not in _UNIQUE_PROPERTIES}
    return message


def _sent(settings: Settings, send: Any) -> bytes:
    r = redis.Redis.from_url(settings.broker_url)
    r.delete(task_names.QUEUE)
    send()
    items: list[bytes] = r.lrange(task_names.QUEUE, 0, -1)  # type: ignore[assignment]  # redis-py's sync return type
    assert len(items) == 1, items
    return items[0]


def test_api_sends_the_message_celery_sends(settings: Settings) -> None:
    settings = settings.model_copy(update={"redis_url": settings.broker_url.rsplit("/", 1)[0] + f"/{DISPATCH_REDIS_DB}"})
    d = Dispatch("00000000-0000-4000-8000-000000000001", "integrate")
    by_celery = _sent(settings, lambda: queue.dispatch(d, settings))

    async def send_from_the_loop() -> None:
        dispatcher = queue.AsyncDispatcher(settings)
        dispatcher.send(d)
        await dispatcher.close()

    by_api = _sent(settings, lambda: asyncio.run(send_from_the_loop()))
    assert _comparable(by_api) == _comparable(by_celery)
    mine, theirs = json.loads(by_api), json.loads(by_celery)
    assert set(mine["headers"]) == set(theirs["headers"]) and set(mine["properties"]) == set(theirs["properties"])
    assert mine["headers"]["task"] == task_names.INTEGRATE and mine["headers"]["root_id"] == mine["headers"]["id"]
    assert mine["properties"]["correlation_id"] == mine["headers"]["id"]
    expires = [datetime.fromisoformat(m["headers"]["expires"]) for m in (mine, theirs)]
    assert all(e.tzinfo is not None for e in expires) and abs((expires[0] - expires[1]).total_seconds()) < 30


def test_messages_queued_together_keep_their_order(settings: Settings) -> None:
    settings = settings.model_copy(update={"redis_url": settings.broker_url.rsplit("/", 1)[0] + f"/{DISPATCH_REDIS_DB}"})
    r = redis.Redis.from_url(settings.broker_url)
    r.delete(task_names.QUEUE)
    jobs = [f"00000000-0000-4000-8000-{i:012d}" for i in range(20)]

    async def send_many() -> None:
        dispatcher = queue.AsyncDispatcher(settings)
        for j in jobs:
            dispatcher.send(Dispatch(j, "truncate"))
        await dispatcher.close()

    asyncio.run(send_many())
    # Celery's Redis transport takes the oldest message from the tail of the list.
    taken = []
    for _ in jobs:
        raw: bytes = r.rpop(task_names.QUEUE)  # type: ignore[assignment]  # redis-py's sync return type
        taken.append(json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0])
    assert taken == jobs
    assert r.llen(task_names.QUEUE) == 0


def test_broker_down_loses_no_job_and_never_raises(settings: Settings, caplog: Any) -> None:
    # Nothing listens on port 1: the send fails, is logged, and the reconciler's re-send is the remedy.
    settings = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})

    async def send() -> None:
        dispatcher = queue.AsyncDispatcher(settings)
        dispatcher.send(Dispatch("00000000-0000-4000-8000-000000000002", "integrate"))
        await dispatcher.close()

    asyncio.run(send())
    assert "the reconciler will send them again" in caplog.text
