"""The process commands of `engram`: migrate, api, worker, scheduler, flower, and dev (all of them
on this machine).

The server's modules (settings, Celery, uvicorn, Alembic) are imported inside each command, so the
client verbs of `engram` start without them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated

import typer

from cli.output import fail
from cli.verbs import PLAIN

if TYPE_CHECKING:
    from shared.config import Process, Settings

app = typer.Typer(**PLAIN)  # commands at the top level of `engram`
log = logging.getLogger("engram.cli")


def run_migrations(database_url: str) -> None:
    """Bring the database to the latest migration (``shared.migrations.upgrade``)."""
    from shared.migrations import upgrade

    upgrade(database_url)


def _settings(process: Process | None = None) -> Settings:
    """The settings, checked for what ``process`` needs (one clear message when something is
    missing), and logging configured."""
    from shared.config import SettingsError, get_settings
    from shared.logs import configure_logging

    settings = get_settings()
    configure_logging(settings)
    if process is not None:
        try:
            settings.check_for(process)
        except SettingsError as exc:
            fail(str(exc))
    return settings


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head)."""
    settings = _settings("migrate")
    run_migrations(settings.db_url)
    typer.echo("database is at the latest migration")


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="Bind address (ENGRAM_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (ENGRAM_API_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn processes (ENGRAM_API_WORKERS).")] = None,
) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    settings = _settings("api")
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
    metrics_port: Annotated[int | None, typer.Option(
        help="Port of the worker's Prometheus metrics (ENGRAM_WORKER_METRICS_PORT); 0: none.")] = None,
) -> None:
    """Run a Celery worker. Extra options are passed to `celery worker`."""
    settings = _settings("worker")
    from worker import metrics

    folder = metrics.prepare()  # before anything imports prometheus_client: the children count in it
    from shared import task_names
    from worker.app import app as celery_app

    metrics.serve(settings.worker_metrics_port if metrics_port is None else metrics_port)

    argv = ["worker", f"--loglevel={settings.log_level}", f"--concurrency={concurrency or settings.worker_concurrency}",
            "-Q", task_names.QUEUE, "--without-mingle", "-E"]
    if hostname:
        argv += ["--hostname", hostname]
    try:
        celery_app.worker_main(argv + list(ctx.args))
    finally:
        metrics.cleanup(folder)


@app.command()
def scheduler() -> None:
    """Run the reconciler: re-send lost jobs, re-queue expired leases, purge old jobs and sessions."""
    settings = _settings("scheduler")
    from worker.reconciler import run_forever

    run_forever(settings)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def flower(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port (ENGRAM_FLOWER_PORT).")] = None,
    address: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
) -> None:
    """Run the Flower dashboard, behind basic auth (ENGRAM_FLOWER_BASIC_AUTH)."""
    settings = _settings("flower")
    argv = ["flower", f"--port={port or settings.flower_port}", f"--address={address}"]
    if settings.flower_basic_auth is not None:
        argv.append(f"--basic-auth={settings.flower_basic_auth.get_secret_value()}")
    else:
        log.warning("!!! Flower runs WITHOUT authentication (dev mode). Do not expose it. !!!")
    from worker.app import app as celery_app

    celery_app.start(argv + list(ctx.args))


@app.command()
def dev() -> None:
    """Run everything on this machine: api, worker, scheduler and Flower, with an embedded
    PostgreSQL and Redis under ENGRAM_DATA_DIR unless ENGRAM_DATABASE_URL / ENGRAM_REDIS_URL are set.
    Ctrl-C stops them all."""
    from shared.stack import run_dev

    run_dev(_settings())
