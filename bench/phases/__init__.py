"""The measurements, one module each; each phase's ``run(ctx)`` returns its figures (value,
reference, ratio, target, pass/fail). What they share is in ``common``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bench.phases import e2e, ingest, memory, recall, scaleout, scaling, submit, throughput, webhooks
from bench.phases.common import FULL, QUICK, Config, Ctx, Figure, Profiler

__all__ = ["FULL", "PHASES", "QUICK", "Config", "Ctx", "Figure", "Profiler"]

# In the order a full run takes them.
PHASES: dict[str, Callable[[Ctx], Awaitable[list[Figure]]]] = {
    "submit": submit.run,
    "e2e": e2e.run,
    "ingest": ingest.run,
    "scaling": scaling.run,
    "throughput": throughput.run,
    "scaleout": scaleout.run,
    "memory": memory.run,
    "recall": recall.run,
    "webhooks": webhooks.run,
}
