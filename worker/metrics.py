"""The worker's metrics port: prometheus_client's multiprocess mode for Celery's prefork children.

``prepare`` runs in `engram worker` before anything imports prometheus_client: it gives the worker
a fresh folder (PROMETHEUS_MULTIPROC_DIR) where each process, the forked children included, keeps
its counts. ``serve`` then exposes their sum over HTTP from the worker's main process, on
ENGRAM_WORKER_METRICS_PORT (or `--metrics-port`); 0 turns it off. A port already taken is logged
and the worker runs without it: metrics never stop jobs.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

log = logging.getLogger("engram.worker.metrics")
ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    """Set up multiprocess mode for this worker and its children; the folder."""
    folder = tempfile.mkdtemp(prefix="engram-worker-metrics-")
    os.environ[ENV] = folder
    return folder


def serve(port: int, address: str = "0.0.0.0") -> bool:
    """Serve the sum of this worker's processes' metrics on ``port``; False when it could not."""
    if port == 0:
        return False
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated
    try:
        start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        log.warning("worker metrics not served: port %d: %s (set ENGRAM_WORKER_METRICS_PORT or --metrics-port)",
                    port, exc)
        return False
    log.info("worker metrics on http://%s:%d/metrics", address, port)
    return True


def child_exited(pid: int) -> None:
    """Forget a recycled child's live gauges (its counters stay counted)."""
    if os.environ.get(ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]  # unannotated upstream


def cleanup(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
