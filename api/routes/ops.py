from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import SettingsDep
from shared.config import Settings
from shared.errors import PROBLEM_MEDIA_TYPE, problem_body
from shared.kit.db import unit_of_work
from shared.memories.service import recall_mode
from shared.ops import repository as repo
from shared.queue import producer

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers. Checks nothing else."""
    return {"status": "ok"}


def _check_database(settings: Settings) -> str | None:
    try:
        with unit_of_work(settings) as conn:
            repo.ping(conn)
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0][:200] or type(exc).__name__


def _check_broker(settings: Settings) -> str | None:
    try:
        with producer(settings).connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            conn.default_channel.client.ping()  # type: ignore[attr-defined]  # kombu's Redis channel has a client
        return None
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0][:200] or type(exc).__name__


@router.get("/readyz", responses={503: {"description": "A dependency is down; the body says which."}})
async def readyz(request: Request, settings: SettingsDep) -> JSONResponse:
    """Readiness: PostgreSQL and the Redis broker are reachable. 503 names what is down. When ready,
    `recall` says how recall ranks: `full-text`, `hybrid` (with vectors), or full-text because an
    embedder is configured but PostgreSQL has no pgvector."""
    db_error = await run_in_threadpool(_check_database, settings)
    broker_error = await run_in_threadpool(_check_broker, settings)
    checks = {
        "database": {"status": "down", "error": db_error} if db_error else {"status": "up"},
        "broker": {"status": "down", "error": broker_error} if broker_error else {"status": "up"},
    }
    down = [name for name, c in checks.items() if c["status"] == "down"]
    if down:
        return JSONResponse(problem_body(503, "Service unavailable", f"not ready: {', '.join(down)} unreachable",
                                         type_slug="unavailable", instance=request.url.path, checks=checks),
                            status_code=503, media_type=PROBLEM_MEDIA_TYPE)
    return JSONResponse({"status": "ready", "checks": checks,
                         "recall": await run_in_threadpool(recall_mode, settings)})


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics of this API process."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
