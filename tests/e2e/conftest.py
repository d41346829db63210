"""The real system as separate processes: api (uvicorn), two Celery workers, the scheduler and
Flower, on the run's PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.embedded import free_port
from tests.conftest import ADMIN_KEY

E2E_REDIS_DB = 2
ROOT = Path(__file__).resolve().parents[2]
FLOWER_AUTH = ("flower", "e2e-" + ADMIN_KEY[-8:])


class System:
    def __init__(self, services, log_dir: Path) -> None:  # type: ignore[no-untyped-def]
        self.services = services
        self.log_dir = log_dir
        self.api_port, self.flower_port = free_port(), free_port()
        self.redis_url = services.redis_url(E2E_REDIS_DB)
        self.env = {
            **os.environ,
            "ENGRAM_DATABASE_URL": services.database_url,
            "ENGRAM_REDIS_URL": self.redis_url,
            "ENGRAM_ADMIN_KEY": ADMIN_KEY,
            "ENGRAM_FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
            "ENGRAM_INTEGRATOR": "tests.e2e.slow_integrator:factory",
            "ENGRAM_JOB_LEASE_SECONDS": "3",
            "ENGRAM_JOB_REDISPATCH_SECONDS": "3",
            "ENGRAM_RECONCILE_INTERVAL_SECONDS": "0.5",
            "ENGRAM_LOG_LEVEL": "INFO",
            "PYTHONPATH": str(ROOT),
        }
        self.env.pop("ENGRAM_DEV_MODE", None)
        self.procs: dict[str, subprocess.Popen] = {}
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}",
                                headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=40)
        self.flower = httpx.Client(base_url=f"http://127.0.0.1:{self.flower_port}", auth=FLOWER_AUTH, timeout=10)

    def command(self, name: str) -> list[str]:
        exe = [sys.executable, "-m", "cli"]
        return {
            "api": exe + ["api", "--port", str(self.api_port)],
            "w1": exe + ["worker", "--concurrency", "1", "--hostname", "w1@%h"],
            "w2": exe + ["worker", "--concurrency", "1", "--hostname", "w2@%h"],
            "scheduler": exe + ["scheduler"],
            "flower": exe + ["flower", "--port", str(self.flower_port)],
        }[name]

    def start(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process
        # Own session: a kill reaches the worker's pool children too, like a host going down.
        self.procs[name] = subprocess.Popen(self.command(name), env=self.env, cwd=ROOT, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        os.killpg(proc.pid, sig)
        proc.wait(30)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{self.tail(name)}")
            try:
                api_ok = self.api.get("/readyz").status_code == 200
                workers = self.flower.get("/api/workers", params={"refresh": "true"}).json()
                if api_ok and sum(1 for w in workers if w.split("@")[0] in ("w1", "w2")) == 2:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("the system did not come up:\n" + "\n".join(self.tail(n) for n in self.procs))

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    # --- API helpers -------------------------------------------------------------------------

    def call(self, method: str, path: str, expect: tuple[int, ...] = (200, 201, 202, 204), **kw):  # type: ignore[no-untyped-def]
        r = self.api.request(method, "/v1" + path, **kw)
        assert r.status_code in expect, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json() if r.content else None

    def wait_job(self, ns: str, job_id: str, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.call("GET", f"/namespaces/{ns}/jobs/{job_id}", params={"wait": 10})
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        raise AssertionError(f"job {job_id} did not finish in {timeout}s: {job}\n" +
                             "\n".join(self.tail(n) for n in self.procs))


@pytest.fixture(scope="session")
def system(services, tmp_path_factory) -> Iterator[System]:  # type: ignore[no-untyped-def]
    import redis

    redis.Redis.from_url(services.redis_url(E2E_REDIS_DB)).flushdb()
    artifacts = ROOT / "test-artifacts" / "e2e-logs"
    artifacts.mkdir(parents=True, exist_ok=True)
    sys_ = System(services, artifacts)
    for name in ("api", "w1", "w2", "scheduler", "flower"):
        sys_.start(name)
    try:
        sys_.wait_ready()
        yield sys_
    finally:
        sys_.stop_all()
