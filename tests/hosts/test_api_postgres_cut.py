"""A silent cut between the API and PostgreSQL: requests answer a clear 503 within the documented
bound (ENGRAM_DB_POOL_TIMEOUT_SECONDS + the larger of ENGRAM_DB_TCP_TIMEOUT_SECONDS and
ENGRAM_DB_CONNECT_TIMEOUT_SECONDS) instead of hanging, and succeed again once the link is back.

Hosts: db (PostgreSQL), broker (Redis), api (the API), client (the test's requests)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.stack import process_env
from tests.conftest import ADMIN_KEY, WEBHOOK_SECRETS_KEY
from tests.hosts.net import Host, Network, network, start_postgres, start_redis

ROOT = Path(__file__).resolve().parents[2]
POOL, TCP, CONNECT = 2.0, 4.0, 2.0
BOUND = POOL + max(TCP, CONNECT)  # the documented bound of a request while the database is cut off
RECOVERY = 15.0  # after the link is back, requests succeed again within this (documented in the README)


@dataclass
class Cluster:
    net: Network
    client: Host
    api_url: str

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 30.0) -> tuple[int, str, float, Any]:
        """(status, content type, seconds, body) of a request sent from the client host."""

        def send() -> tuple[int, str, float, Any]:
            t0 = time.monotonic()
            r = httpx.request(method, self.api_url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                              json=body if body is not None else ({} if method == "PUT" else None), timeout=timeout)
            return r.status_code, r.headers.get("content-type", ""), time.monotonic() - t0, r.json() if r.content else None

        return self.client.call(send)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-h-"))
    with network(ROOT / "test-artifacts" / "host-logs" / "api-postgres", ["lan"]) as net:
        db, broker, api, client = (net.host(name, ["lan"]) for name in ("db", "broker", "api", "client"))
        database_url = start_postgres(db, tmp / "pg")
        redis_url = start_redis(broker)
        env = process_env(database_url, redis_url, admin_key=ADMIN_KEY, webhook_secrets_key=WEBHOOK_SECRETS_KEY,
                          api_host=api.address, api_port=8000, db_pool_timeout_seconds=POOL,
                          db_tcp_timeout_seconds=TCP, db_connect_timeout_seconds=CONNECT, log_level="INFO")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "client")])
        migrate = api.start("migrate", [sys.executable, "-m", "cli", "migrate"], env, cwd=ROOT)
        assert migrate.wait(120) == 0, "migrations failed: see test-artifacts/host-logs/api-postgres/api-migrate.log"
        api.start("api", [sys.executable, "-m", "cli", "api"], env, cwd=ROOT)
        c = Cluster(net, client, f"http://{api.address}:8000")
        deadline = time.monotonic() + 60
        while True:
            try:
                if c.request("GET", "/readyz", timeout=5)[0] == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the API on its host did not become ready"
            time.sleep(0.3)
        yield c


def test_a_silent_cut_to_postgres_answers_503_within_the_bound_then_recovers(cluster: Cluster) -> None:
    assert cluster.request("PUT", "/v1/namespaces/cut")[0] == 201
    assert cluster.request("POST", "/v1/namespaces/cut/sessions", {"name": "s1"})[0] == 201
    integrate = "/v1/namespaces/cut/sessions/s1/integrate"
    status, _, _, job = cluster.request("POST", integrate)
    assert status == 202
    # the thread pool's path (a session) and the event loop's (a job)
    reads = ["/v1/namespaces/cut/sessions/s1", f"/v1/namespaces/cut/jobs/{job['id']}"]
    for _ in range(5):
        assert [cluster.request("GET", path)[0] for path in reads] == [200, 200]

    cluster.net.cut("db", "lan")
    try:
        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(lambda path: cluster.request("GET", path, timeout=BOUND + 5)[:3], reads * 3))
        answers.append(cluster.request("POST", integrate, timeout=BOUND + 5)[:3])
        for status, content_type, _ in answers:  # no answer within BOUND + 5 s raises: a hang
            assert status == 503 and content_type == "application/problem+json", answers
        assert max(seconds for _, _, seconds in answers) <= BOUND + 1, answers
    finally:
        cluster.net.heal("db", "lan")

    deadline = time.monotonic() + RECOVERY
    while cluster.request("GET", reads[0], timeout=BOUND + 5)[0] != 200:
        assert time.monotonic() < deadline, f"no success {RECOVERY} s after the link came back"
        time.sleep(0.2)
    after = [cluster.request("GET", path)[0] for path in reads * 10]
    after.append(cluster.request("POST", integrate)[0])
    assert set(after) <= {200, 202}, after
