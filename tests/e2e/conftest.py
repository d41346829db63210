"""The real system as separate processes: api (uvicorn), two Celery workers, the scheduler and
Flower, on the run's PostgreSQL and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.embedded import free_port
from shared.stack import Processes, engram_commands, flower_lists, http_ok, process_env
from tests.conftest import ADMIN_KEY, WEBHOOK_SECRETS_KEY, Services

E2E_REDIS_DB = 2
ROOT = Path(__file__).resolve().parents[2]
FLOWER_AUTH = ("flower", "e2e-" + ADMIN_KEY[-8:])
WORKERS = ("w1", "w2")


class System(Processes):
    """The processes (api, w1, w2, scheduler, flower) with clients for the API and Flower."""

    def __init__(self, services: Services, log_dir: Path) -> None:
        self.services = services
        self.api_port, self.flower_port = free_port(), free_port()
        self.redis_url = services.redis_url(E2E_REDIS_DB)
        # The webhook receivers of the tests listen on 127.0.0.1: private networks are allowed here.
        env = process_env(services.database_url, self.redis_url, admin_key=ADMIN_KEY,
                          webhook_secrets_key=WEBHOOK_SECRETS_KEY, webhook_allow_private_networks="true",
                          webhook_retry_base_seconds=0.5, webhook_timeout_seconds=3,
                          flower_basic_auth=":".join(FLOWER_AUTH), integrator="tests.e2e.slow_integrator:factory",
                          job_lease_seconds=3, job_redispatch_seconds=3, reconcile_interval_seconds=0.5,
                          log_level="INFO")
        self.metrics_ports = {w: free_port() for w in WORKERS}
        commands = engram_commands({w: f"{w}@%h" for w in WORKERS}, api_port=self.api_port,
                                   flower_port=self.flower_port, metrics_ports=self.metrics_ports)
        super().__init__(commands, env, log_dir, cwd=ROOT)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}",
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=40)
        self.flower = httpx.Client(base_url=f"http://127.0.0.1:{self.flower_port}", auth=FLOWER_AUTH, timeout=10)
        self.ready = {
            "api /readyz": http_ok(f"http://127.0.0.1:{self.api_port}/readyz"),
            "w1 and w2 in Flower": flower_lists(f"http://127.0.0.1:{self.flower_port}", FLOWER_AUTH, set(WORKERS)),
        }

    # --- API helpers -------------------------------------------------------------------------

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 202, 204), **kw: Any) -> Any:
        r = self.api.request(method, "/v1" + path, **kw)
        assert r.status_code in expect, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json() if r.content else None

    def wait_job(self, ns: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.call("GET", f"/namespaces/{ns}/jobs/{job_id}", params={"wait": 10})
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}\n" +
                             "\n".join(self.tail(n) for n in self.procs))


@contextmanager
def running(services: Services, log_dir: Path) -> Iterator[System]:
    """The whole system on ``services``, ready, stopped at the end."""
    log_dir.mkdir(parents=True, exist_ok=True)
    system = System(services, log_dir)
    system.start()
    try:
        system.wait_ready()
        yield system
    finally:
        system.stop_all()


# Package scope: the system is stopped once the end-to-end tests are done. Its scheduler works on
# the database the integration tests share, and would otherwise put back their expired leases too.
@pytest.fixture(scope="package")
def system(services: Services) -> Iterator[System]:
    import redis

    redis.Redis.from_url(services.redis_url(E2E_REDIS_DB)).flushdb()
    with running(services, ROOT / "test-artifacts" / "e2e-logs") as sys_:
        yield sys_
