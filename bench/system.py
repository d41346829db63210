"""What the bench measures, started through shared.stack as `engram dev` and the tests start it.

Services: embedded PostgreSQL and Redis (shared.embedded) in a temporary folder, unless
ENGRAM_DATABASE_URL / ENGRAM_REDIS_URL are set. Then a fresh database ``engram_bench_<pid>_<random>``
is created on that server (and dropped after), and Redis db index 9 is used, flushed first.

Processes (each in its own process group, logs under bench/logs/):
  api        python -m cli api --port P                         (uvicorn, ENGRAM_API_WORKERS)
  w1, w2     python -m cli worker --concurrency 1 --hostname wN@%h
  scheduler  python -m cli scheduler
  hello      python -m bench.hello --port H                      (reference for submit)
  tutorial   python -m bench.tutorial --port T                   (tutorial-shape peer for submit)
  r1, r2     python -m bench.raw_celery --concurrency 1 --hostname rN@%h  (reference Celery workers)

Started only by the scaleout phase, and stopped at its end (``start_extra`` / ``stop_extra``):
  api-1p     python -m cli api --port A1 --workers 1
  api-2p     python -m cli api --port A2 --workers 2
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from shared import stack
from shared.config import libpq
from shared.embedded import free_port

__all__ = ["Processes", "Services", "libpq"]

ROOT = Path(__file__).resolve().parents[1]
BENCH_REDIS_DB = 9
ENGRAM_WORKERS = {"w1": "w1@%h", "w2": "w2@%h"}
RAW_WORKERS = ("r1", "r2")
SCALE_APIS = {"api-1p": 1, "api-2p": 2}  # name → uvicorn processes; started by the scaleout phase only


class Services(stack.Servers):
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="engram-bench-"))
        super().__init__(self.tmp, os.environ.get("ENGRAM_DATABASE_URL"), os.environ.get("ENGRAM_REDIS_URL"),
                         fresh_database="engram_bench")
        self._postmaster: Any = None

    def start_redis(self) -> str:
        url = super().start_redis()
        if self.redis is None:  # a Redis others use too: a db index of the bench's own, emptied first
            import redis

            self.redis_url = url = stack.with_path(url, f"/{BENCH_REDIS_DB}")
            redis.Redis.from_url(url, socket_connect_timeout=3).flushdb()
            self.kind["redis"] = f"external (ENGRAM_REDIS_URL), db {BENCH_REDIS_DB} (flushed)"
        return url

    def service_processes(self) -> dict[str, list[Any]]:
        """The embedded PostgreSQL (postmaster and backends) and Redis processes; empty when external."""
        import psutil

        out: dict[str, list[Any]] = {"postgres": [], "redis": []}
        if self.postgres is not None:
            if self._postmaster is None or not self._postmaster.is_running():
                data = str(self.postgres.data_dir)
                for p in psutil.process_iter(["cmdline"]):
                    cmd = p.info["cmdline"] or []
                    if cmd and cmd[0].endswith("postgres") and data in cmd:
                        self._postmaster = p
                        break
            if self._postmaster is not None:
                out["postgres"] = [self._postmaster, *self._postmaster.children(recursive=True)]
        if self.redis is not None and self.redis.pid is not None:
            out["redis"] = [psutil.Process(self.redis.pid)]
        return out

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class Processes(stack.Processes):
    def __init__(self, services: Services, log_dir: Path) -> None:
        self.api_port, self.hello_port, self.tutorial_port = free_port(), free_port(), free_port()
        self.extra_ports = {name: free_port() for name in SCALE_APIS}
        self.admin_key = "bench-" + secrets.token_urlsafe(24)
        commands = stack.engram_commands(ENGRAM_WORKERS, api_port=self.api_port, flower=False,
                                         metrics_ports={w: free_port() for w in ENGRAM_WORKERS})
        commands["hello"] = _python("bench.hello", "--port", str(self.hello_port))
        commands["tutorial"] = _python("bench.tutorial", "--port", str(self.tutorial_port))
        for name, processes in SCALE_APIS.items():
            commands[name] = stack.engram("api", "--port", str(self.extra_ports[name]), "--workers", str(processes))
        for name in RAW_WORKERS:
            commands[name] = _python("bench.raw_celery", "--concurrency", "1", "--hostname", f"{name}@%h")
        env = stack.process_env(services.database_url, services.redis_url, admin_key=self.admin_key,
                                webhook_secrets_key=secrets.token_urlsafe(32),
                                integrator="builtin", api_port=self.api_port,
                                webhook_allow_private_networks=True)  # the webhook phase's receiver is on 127.0.0.1
        super().__init__(commands, env, log_dir, cwd=ROOT)

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the API and the hello server answer and every Engram and raw worker answers a ping."""
        from bench import raw_celery  # reads the broker from the environment the bench has set by now

        self.ready = {
            "api /readyz": stack.http_ok(f"http://127.0.0.1:{self.api_port}/readyz"),
            "hello": stack.http_ok(f"http://127.0.0.1:{self.hello_port}/hello", method="POST"),
            "tutorial": stack.http_ok(f"http://127.0.0.1:{self.tutorial_port}/openapi.json"),
            "workers w1, w2, r1, r2": stack.celery_answers(raw_celery.app, {*ENGRAM_WORKERS, *RAW_WORKERS}),
        }
        super().wait_ready(timeout)

    def start_extra(self, timeout: float = 90) -> None:
        """Start the extra API stacks (SCALE_APIS) and wait until each answers /readyz."""
        self.start(*SCALE_APIS)
        saved, self.ready = self.ready, {
            f"{name} /readyz": stack.http_ok(f"http://127.0.0.1:{self.extra_ports[name]}/readyz") for name in SCALE_APIS}
        try:
            stack.Processes.wait_ready(self, timeout)
        finally:
            self.ready = saved

    def stop_extra(self) -> None:
        """Stop the extra API stacks (SIGTERM, then SIGKILL after 20 s) and forget them, so that
        check_alive does not take their exit for a crash."""
        for name in SCALE_APIS:
            if name in self.procs:
                self._signal(self.procs[name], signal.SIGTERM)
        for name in SCALE_APIS:
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(5)
