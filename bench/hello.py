"""Hello world on the API's FastAPI/uvicorn set-up: the ceiling the submit figure is compared with.

Served exactly as `engram api` serves Engram: same uvicorn.run arguments
(workers from ENGRAM_API_WORKERS, default loop and http implementations — uvloop and httptools
when installed — access log off, same log level and graceful shutdown).

    python -m bench.hello --port 8001
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

app = FastAPI(title="hello")


@app.post("/hello")
async def hello() -> dict[str, str]:
    """The ceiling: no thread pool, no database."""
    return {"hello": "world"}


@app.post("/hello-sync")
def hello_sync() -> dict[str, str]:
    """Same, through FastAPI's thread pool, as Engram's (sync) endpoints are."""
    return {"hello": "world"}


def port() -> int:
    """The ``--port`` of the command line."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    return int(parser.parse_args().port)


def serve(app: str, port: int) -> None:
    """Serve ``app`` (``module:attribute``) as `engram api` serves Engram."""
    import uvicorn

    from shared.config import get_settings

    settings = get_settings()
    uvicorn.run(
        app, host=settings.api_host, port=port, workers=settings.api_workers,
        log_level=settings.log_level.lower(), access_log=False,
        timeout_graceful_shutdown=settings.max_wait_seconds + 5,
    )


if __name__ == "__main__":
    serve("bench.hello:app", port())
