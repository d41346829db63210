"""The process commands of `engram`: migrate, api, worker, scheduler, flower, and dev (all of them
on this machine).

The server's modules (settings, Celery, uvicorn, Alembic) are imported inside each command, so the
client verbs of `engram` start without them.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from cli.output import fail
from cli.verbs import PLAIN

if TYPE_CHECKING:
    from shared.config import Settings

app = typer.Typer(**PLAIN)  # commands at the top level of `engram`
log = logging.getLogger("engram.cli")


def run_migrations(database_url: str) -> None:
    """Bring the database to the latest migration (``shared.migrations.upgrade``)."""
    from shared.migrations import upgrade

    upgrade(database_url)


def _settings() -> Settings:
    from shared.config import get_settings
    from shared.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
    return settings


def _require(settings: Settings) -> None:
    try:
        settings.require_services()
    except RuntimeError as exc:
        fail(str(exc))


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head)."""
    settings = _settings()
    if not settings.database_url:
        fail("ENGRAM_DATABASE_URL is not set (`engram dev` migrates its embedded database itself)")
    run_migrations(settings.database_url)
    typer.echo("database is at the latest migration")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (ENGRAM_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ENGRAM_API_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn processes (ENGRAM_API_WORKERS).")] = None,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = _settings()
    _require(settings)
    if settings.admin_key is None and not settings.dev_mode:
        fail("ENGRAM_ADMIN_KEY is required: set it to a long random secret "
              "(only `engram dev` may run without keys)")
    uvicorn.run(
        "api.main:create_app", factory=True, host=host or settings.api_host, port=port or settings.api_port,
        workers=workers or settings.api_workers, log_level=settings.log_level.lower(), access_log=False,
        # SIGTERM: stop accepting, let in-flight requests finish (long-polls end within max wait).
        timeout_graceful_shutdown=settings.max_wait_seconds + 5,
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int | None, typer.Option(help="Worker processes (ENGRAM_WORKER_CONCURRENCY).")] = None,
    hostname: Annotated[str | None, typer.Option(help="Celery node name, e.g. w1@%h.")] = None,
) -> None:
    """Run a Celery worker. Extra options are passed to `celery worker`."""
    settings = _settings()
    _require(settings)
    from shared import task_names
    from worker.app import app as celery_app

    argv = ["worker", f"--loglevel={settings.log_level}", f"--concurrency={concurrency or settings.worker_concurrency}",
            "-Q", task_names.QUEUE, "--without-mingle", "-E"]
    if hostname:
        argv += ["--hostname", hostname]
    celery_app.worker_main(argv + list(ctx.args))


@app.command()
def scheduler() -> None:
    """Run the reconciler: re-send lost jobs, re-queue expired leases, purge old jobs and sessions."""
    settings = _settings()
    _require(settings)
    from worker.reconciler import run_forever

    run_forever(settings)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port (ENGRAM_FLOWER_PORT).")] = None,
    address: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Run the Flower dashboard, behind basic auth (ENGRAM_FLOWER_BASIC_AUTH)."""
    settings = _settings()
    _require(settings)
    argv = ["flower", f"--port={port or settings.flower_port}", f"--address={address}"]
    if settings.flower_basic_auth is not None:
        argv.append(f"--basic-auth={settings.flower_basic_auth.get_secret_value()}")
    elif not settings.dev_mode:
        fail("ENGRAM_FLOWER_BASIC_AUTH (user:password) is required outside `engram dev`")
    else:
        log.warning("!!! Flower runs WITHOUT authentication (dev mode). Do not expose it. !!!")
    from worker.app import app as celery_app

    celery_app.start(argv + list(ctx.args))


@app.command()
def dev() -> None:
    """Run everything on this machine: api, worker, scheduler and Flower, with an embedded
    PostgreSQL and Redis under ENGRAM_DATA_DIR unless ENGRAM_DATABASE_URL / ENGRAM_REDIS_URL are set.
    Ctrl-C stops them all."""
    from shared.embedded import EmbeddedPostgres, EmbeddedRedis

    settings = _settings()
    data = settings.data_dir.resolve()
    pg = redis = None
    env = dict(os.environ, ENGRAM_DEV_MODE="1")
    stopping = False

    def _stop_signal(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop_signal)
    signal.signal(signal.SIGTERM, _stop_signal)
    children: list[tuple[str, subprocess.Popen]] = []
    try:
        if settings.database_url:
            database_url = settings.database_url
            log.info("using PostgreSQL from ENGRAM_DATABASE_URL")
        else:
            pg = EmbeddedPostgres(data / "postgres")
            database_url = pg.start()
            log.info("embedded PostgreSQL running, data in %s", data / "postgres")
        if settings.redis_url:
            redis_url = settings.redis_url
        else:
            redis = EmbeddedRedis(data / "redis")
            redis_url = redis.start()
            log.info("embedded Redis running on %s, data in %s", redis_url, data / "redis")
        env.update(ENGRAM_DATABASE_URL=database_url, ENGRAM_REDIS_URL=redis_url)
        run_migrations(database_url)
        log.info("database migrated")
        exe = [sys.executable, "-m", "cli"]
        for name, args in (("api", ["api"]), ("worker", ["worker", "--concurrency", "1", "--hostname", "dev@%h"]),
                           ("scheduler", ["scheduler"]), ("flower", ["flower"])):
            children.append((name, subprocess.Popen(exe + args, env=env)))
        typer.secho(
            f"\nEngram is up:\n  API     http://{settings.api_host}:{settings.api_port}/docs\n"
            f"  Flower  http://127.0.0.1:{settings.flower_port}/\n"
            + ("  Auth    OPEN (no ENGRAM_ADMIN_KEY): local use only\n" if settings.admin_key is None else
               "  Auth    Bearer ENGRAM_ADMIN_KEY\n") + "Ctrl-C stops everything.\n",
            fg=typer.colors.GREEN, err=True)
        while not stopping:
            for name, proc in children:
                if proc.poll() is not None:
                    log.error("%s exited with code %s; stopping everything", name, proc.returncode)
                    stopping = True
            time.sleep(0.3)
    finally:
        log.info("stopping api, worker, scheduler and flower")
        for _, proc in children:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc in children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()
        log.info("stopped")
