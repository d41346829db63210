"""Engram across hosts: PostgreSQL, Redis, the API, two workers and the scheduler, each on a host
of its own (tests/hosts/net.py), on three segments:

- ``data``: PostgreSQL, and every Engram process;
- ``broker``: Redis, and every Engram process;
- ``front``: the API and the client (the test's requests).

So a worker can be cut off from PostgreSQL and keep Redis, or the reverse, and the API from
either. Timeouts are short so that faults play out in seconds; the rules they exercise are the
production ones."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg

from shared.stack import process_env
from tests.conftest import ADMIN_KEY, WEBHOOK_SECRETS_KEY
from tests.hosts.net import (
    Host,
    Network,
    crash_postgres,
    network,
    restart_postgres,
    start_postgres,
    start_redis,
    start_sentinel,
)

ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("w1", "w2")
TIMEOUTS = dict(db_pool_timeout_seconds=2, db_tcp_timeout_seconds=4, db_connect_timeout_seconds=2,
                db_idle_in_transaction_timeout_seconds=5, redis_tcp_timeout_seconds=4,
                job_lease_seconds=3, job_redispatch_seconds=3, reconcile_interval_seconds=0.5)
# A request made this long after a fault healed gets no 5xx (the README's Failure model).
HEALED_AFTER = 15.0
Heal = Callable[[], None]


class Cluster:
    def __init__(self, net: Network, data: Path, *, sentinel: bool = False) -> None:
        self.net, self.data = net, data
        self.pg = net.host("pg", ["data"])
        self.redis = net.host("redis", ["broker"])
        self.replicas = [net.host(f"redis{n}", ["broker"]) for n in (2, 3)] if sentinel else []
        self.api = net.host("api", ["front", "data", "broker"])
        self.workers = {w: net.host(w, ["data", "broker"]) for w in WORKERS}
        self.scheduler = net.host("sched", ["data", "broker"])
        self.client = net.host("client", ["front"])
        self.database_url = start_postgres(self.pg, data / "pg")
        self.redis_url = start_redis(self.redis)
        if sentinel:  # the master, two replicas, a sentinel beside each
            for replica in self.replicas:
                start_redis(replica, replica_of=self.redis.address)
            watchers = [start_sentinel(h, data / "sentinels", self.redis.address) for h in [self.redis, *self.replicas]]
            self.redis_url = ";".join(f"sentinel://{w}" for w in watchers) + "/0"
        self.env = process_env(self.database_url, self.redis_url, admin_key=ADMIN_KEY,
                               webhook_secrets_key=WEBHOOK_SECRETS_KEY, api_host=self.api.addresses["front"],
                               api_port=8000, integrator="tests.e2e.slow_integrator:factory", log_level="INFO",
                               **TIMEOUTS)
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "client")])
        self.api_url = f"http://{self.api.addresses['front']}:8000"

    def start(self) -> None:
        migrate = self.api.start("migrate", self.engram("migrate"), self.env, cwd=ROOT)
        assert migrate.wait(120) == 0, "migrations failed: see the api-migrate log under test-artifacts/host-logs"
        self.api.start("api", self.engram("api"), self.env, cwd=ROOT)
        for name in self.workers:
            self.start_worker(name)
        self.scheduler.start("scheduler", self.engram("scheduler"), self.env, cwd=ROOT)
        self.eventually(lambda: self.request("GET", "/readyz", timeout=5)[0] == 200, 60, "the API to be ready")

    def start_worker(self, name: str) -> None:
        self.workers[name].start("worker", self.engram("worker", "--concurrency", "1", "--hostname", f"{name}@%h",
                                                       "--metrics-port", "0"), self.env, cwd=ROOT)

    @staticmethod
    def engram(*args: str) -> list[str]:
        return [sys.executable, "-m", "cli", *args]

    # --- the client's view ---------------------------------------------------------------------

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 30.0) -> tuple[int, Any]:
        """(status, JSON body) of a request sent from the client host."""

        def send() -> tuple[int, Any]:
            r = httpx.request(method, self.api_url + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                              json=body if body is not None else ({} if method == "PUT" else None), timeout=timeout)
            return r.status_code, r.json() if r.content else None

        return self.client.call(send)

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        status, data = self.request(method, "/v1" + path, body)
        assert status < 300, f"{method} {path} -> {status} {data}"
        return data

    # --- the database's view -------------------------------------------------------------------

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows of a query, run from PostgreSQL's own host."""

        def run() -> list[tuple[Any, ...]]:
            with psycopg.connect(self.database_url, autocommit=True, connect_timeout=3) as conn:
                cur = conn.execute(query.encode(), params)
                return cur.fetchall() if cur.description is not None else []

        return self.pg.call(run)

    # --- faults --------------------------------------------------------------------------------

    # Each fault is applied at once and returns what heals it.

    def cut(self, host: str, segment: str) -> Heal:
        """``host`` silently cut off ``segment``."""
        self.net.cut(host, segment)
        return lambda: self.net.heal(host, segment)

    def crash_postgres(self) -> Heal:
        """PostgreSQL stopped as by a crash (``immediate``); healed by starting it again."""
        crash_postgres(self.pg)
        return lambda: restart_postgres(self.pg, self.data / "pg")

    def wipe_redis(self) -> Heal:
        """Redis killed (it keeps nothing); healed by starting it again, empty."""
        self.redis.stop("redis", signal.SIGKILL)

        def heal() -> None:
            start_redis(self.redis)

        return heal

    def kill_worker(self, name: str) -> Heal:
        """A worker killed with kill -9; healed by starting it again."""
        self.workers[name].stop("worker", signal.SIGKILL)
        return lambda: self.start_worker(name)

    def freeze_worker(self, name: str) -> Heal:
        """A worker frozen (SIGSTOP); healed by SIGCONT."""
        self.workers[name].kill("worker", signal.SIGSTOP)
        return lambda: self.workers[name].kill("worker", signal.SIGCONT)

    @staticmethod
    def eventually(predicate: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if predicate():
                    return
            except (httpx.HTTPError, psycopg.Error, OSError):
                pass
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(0.2)


    def sentinel_master(self) -> str:
        """The master's address as the sentinels name it now."""
        import redis

        host, port = self.redis_url.split(";")[0].removeprefix("sentinel://").split(":")

        def ask() -> str:
            reply = redis.Redis(host, int(port.split("/")[0]), socket_timeout=2).execute_command(
                "SENTINEL", "get-master-addr-by-name", "mymaster")
            return str(reply[0].decode() if isinstance(reply[0], bytes) else reply[0])

        return self.redis.call(ask)


@contextmanager
def cluster(name: str, tmp: Path, *, sentinel: bool = False) -> Iterator[Cluster]:
    with network(ROOT / "test-artifacts" / "host-logs" / name, ["data", "broker", "front"]) as net:
        c = Cluster(net, tmp, sentinel=sentinel)
        c.start()
        yield c


__all__ = ["HEALED_AFTER", "Cluster", "Host", "cluster"]
