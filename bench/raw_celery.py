"""Raw Celery reference: a no-op task on the same Redis broker, with Engram's worker settings.

The task pushes its token to a Redis list that the bench BLPOPs, so the round trip send →
completion is measured without a result backend (Engram has none either). The worker is started
the way `engram worker` starts one: prefork pool, same concurrency, prefetch 1, acks late,
events on, mingle off, same log level and log format.

    python -m bench.raw_celery --concurrency 1 --hostname r1@%h
"""

from __future__ import annotations

import argparse
import os

import redis
from celery import Celery

from shared.config import get_settings
from shared.logs import configure_logging
from worker.app import celery_config

QUEUE = "bench-raw"
TASK = "bench.noop"

settings = get_settings()
configure_logging(settings)
BROKER = settings.broker_url  # the bench sets ENGRAM_REDIS_URL before importing this module

app = Celery("bench-raw", broker=BROKER, set_as_current=False)
# The very settings of Engram's workers, on a queue of its own: the reference differs only in
# what the task does.
app.conf.update({**celery_config(settings), "task_default_queue": QUEUE})

_redis: dict[int, redis.Redis] = {}


def _client() -> redis.Redis:
    pid = os.getpid()  # one client per forked pool child
    if pid not in _redis:
        _redis[pid] = redis.Redis.from_url(BROKER)
    return _redis[pid]


@app.task(name=TASK, ignore_result=True)
def noop(key: str, token: str) -> None:
    _client().rpush(key, token)


def send(key: str, token: str) -> None:
    """Send one no-op, as the API sends a job's wake-up (send_task by name, with an expiry)."""
    app.send_task(TASK, args=[key, token], queue=QUEUE, expires=settings.job_message_expires_seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--hostname", required=True)
    args = parser.parse_args()
    app.worker_main(["worker", f"--loglevel={settings.log_level}", f"--concurrency={args.concurrency}", "-Q", QUEUE,
                     "--without-mingle", "-E", "--hostname", args.hostname])


if __name__ == "__main__":
    main()
