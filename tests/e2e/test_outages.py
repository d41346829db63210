"""Outages and shutdowns under the running system: PostgreSQL and Redis stopped and restarted,
SIGTERM to a worker and to the API. This module runs its own PostgreSQL and Redis so that it
can stop them without disturbing the rest of the suite."""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from shared.config import libpq
from shared.embedded import EmbeddedPostgres, EmbeddedRedis
from shared.stack import Servers
from tests.conftest import Services
from tests.e2e.conftest import ROOT, System, running
from tests.e2e.test_system import make_namespace, make_session


class Private:
    """Embedded PostgreSQL and Redis of this module's own, for the tests to stop and restart."""

    def __init__(self, servers: Servers) -> None:
        assert servers.postgres is not None and servers.redis is not None
        self.pg: EmbeddedPostgres = servers.postgres
        self.redis: EmbeddedRedis = servers.redis


@pytest.fixture(scope="module")
def outage_system() -> Iterator[tuple[System, Private]]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-o-"))
    servers = Servers(tmp)  # no URLs: always embedded, whatever the environment says
    try:
        servers.start()
        servers.migrate()
        with running(Services.of(servers), ROOT / "test-artifacts" / "outage-logs") as system:
            yield system, Private(servers)
    finally:
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def wait_until(predicate, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def test_postgres_outage_answers_503_then_recovers(outage_system) -> None:
    system, private = outage_system
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": "slow", "bob": "slow"}, turns=4)
    before = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    private.pg.stop()
    try:
        r = system.api.get(f"/v1/namespaces/{ns}/sessions/{session}", timeout=30)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        ready = system.api.get("/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"]["status"] == "down"
        assert ready.json()["checks"]["broker"]["status"] == "up"
    finally:
        private.pg.start()
    wait_until(lambda: system.api.get("/readyz").status_code == 200, what="the API to be ready again")
    assert system.api.get(f"/v1/namespaces/{ns}/sessions/{session}").status_code == 200
    job = system.wait_job(ns, before)
    assert job["status"] == "succeeded", job  # accepted before the outage, done after it


def test_after_a_postgres_restart_every_request_succeeds(outage_system) -> None:
    """The API's pools hold connections that die with the old server; none is handed out once
    PostgreSQL is back: every request after the restart succeeds, on both pools (the thread pool's
    reads, the event loop's accepts and job reads)."""
    system, private = outage_system
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=2)
    job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    system.wait_job(ns, job_id)
    reads = [f"/v1/namespaces/{ns}/sessions/{session}", f"/v1/namespaces/{ns}/sessions/{session}/participants",
             f"/v1/namespaces/{ns}/jobs/{job_id}", f"/v1/namespaces/{ns}/sessions"]

    def many_at_once() -> None:  # fills both pools with open connections
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(lambda path: system.api.get(path).status_code, reads * 6))
        assert set(codes) == {200}, codes

    many_at_once()
    private.pg.stop()
    url = private.pg.start()
    with psycopg.connect(libpq(url), autocommit=True, connect_timeout=5) as conn:  # back, before the API is asked
        conn.execute("SELECT 1")
    answers = []
    for path in reads * 6:
        answers.append((path, system.api.get(path).status_code))
    answers.append(("POST integrate", system.api.post(f"/v1/namespaces/{ns}/sessions/{session}/integrate").status_code))
    assert all(code in (200, 202) for _, code in answers), answers
    many_at_once()


def test_redis_outage_jobs_still_accepted_and_completed(outage_system) -> None:
    system, private = outage_system
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": ""}, turns=3)
    private.redis.stop()
    try:
        r = system.api.post(f"/v1/namespaces/{ns}/sessions/{session}/integrate", timeout=30)
        assert r.status_code == 202, r.text  # it waits in PostgreSQL
        job_id = r.json()["id"]
        ready = system.api.get("/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["broker"]["status"] == "down"
        assert system.call("GET", f"/namespaces/{ns}/jobs/{job_id}")["status"] == "queued"
    finally:
        private.redis.start()  # same port, same data folder
    assert system.wait_job(ns, job_id)["status"] == "succeeded"


def test_sigterm_to_a_worker_finishes_its_current_job(outage_system) -> None:
    system, _ = outage_system
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": "slow", "bob": "slow"}, turns=4)
    job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    wait_until(lambda: system.call("GET", f"/namespaces/{ns}/jobs/{job_id}")["status"] == "running",
               what="the job to start")
    import psycopg

    with psycopg.connect(system.services.database_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT lease_owner FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None
    owner = row[0]
    victim = owner.split("@")[0]
    proc = system.procs[victim]
    proc.send_signal(signal.SIGTERM)  # warm shutdown: finish the current task, take no new one
    try:
        proc.wait(60)  # bounded: the job takes ~4 s
        job = system.call("GET", f"/namespaces/{ns}/jobs/{job_id}")
        assert job["status"] == "succeeded" and job["attempts"] == 1, job
    finally:
        system.start(victim)
        system.wait_ready()


def test_sigterm_to_the_api_drains_in_flight_requests(outage_system) -> None:
    system, _ = outage_system
    ns = make_namespace(system)
    session = make_session(system, ns, {"ada": "slow", "bob": "slow"}, turns=4)
    job_id = system.call("POST", f"/namespaces/{ns}/sessions/{session}/integrate")["id"]
    result: dict = {}

    def long_poll() -> None:
        result["response"] = system.api.get(f"/v1/namespaces/{ns}/jobs/{job_id}", params={"wait": 20})

    t = threading.Thread(target=long_poll)
    t.start()
    time.sleep(1.0)  # the long-poll is in flight
    proc = system.procs["api"]
    proc.send_signal(signal.SIGTERM)
    t.join(60)
    r = result["response"]
    assert r.status_code == 200 and r.json()["status"] == "succeeded"
    # uvicorn re-raises SIGTERM once it has drained, so the exit status says "terminated by SIGTERM".
    assert proc.wait(60) in (0, -signal.SIGTERM)
    system.start("api")
    system.wait_ready()
