"""Long-poll wake-ups: one LISTEN connection per API process wakes the requests waiting on a job.

The worker's final transaction runs ``pg_notify('engram_jobs', job_id)``; this thread receives
it and sets the asyncio events of that job's waiters. No polling loop per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import defaultdict

import psycopg

from shared.config import Settings
from shared.jobs.runs import JOBS_CHANNEL, listen_to_finished_jobs
from shared.kit import pg

log = logging.getLogger("engram.api.waiters")
CHANNEL = JOBS_CHANNEL


class JobWaiters:
    def __init__(self, settings: Settings) -> None:
        self._dsn = settings.libpq_url
        # keepalives: a listener whose link was cut silently notices it and connects again
        self._params = pg.connect_params(settings, "api-listen")
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, args=(self._stop,), name="job-listener", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def register(self, job_id: str) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._waiters[job_id].add(event)
        return event

    def unregister(self, job_id: str, event: asyncio.Event) -> None:
        with self._lock:
            events = self._waiters.get(job_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[job_id]

    def _wake(self, job_id: str) -> None:
        with self._lock:
            events = list(self._waiters.get(job_id, ()))
        for event in events:
            self._loop.call_soon_threadsafe(event.set)  # type: ignore[union-attr]

    def _listen(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, **self._params) as conn:
                    listen_to_finished_jobs(conn)
                    log.debug("listening on %s", CHANNEL)
                    while not stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._wake(note.payload)
            except Exception as exc:  # noqa: BLE001 - PostgreSQL restarting: waiters fall back to their timeout
                log.warning("job listener lost its connection (%s); reconnecting", exc)
                stop.wait(1.0)
