"""Memory: the RSS of each worker tree (main process and pool child) over thousands of jobs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from bench.phases.common import CONCURRENCY, POOL_AGENTS, Ctx, Figure
from bench.workload import limited


def tree_rss(pid: int) -> tuple[int, list[int]]:
    import psutil

    p = psutil.Process(pid)
    procs = [p, *p.children(recursive=True)]
    total = 0
    for q in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += q.memory_info().rss
    return total, sorted(q.pid for q in procs)


async def run(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    n_sessions = CONCURRENCY
    await limited([api.agent(ns, f"tp-{a}") for a in range(POOL_AGENTS)], CONCURRENCY)
    await limited([api.session(ns, f"mem-{i}", [f"tp-{i % POOL_AGENTS}"]) for i in range(n_sessions)], CONCURRENCY)
    await ctx.drain()
    workers = {name: ctx.procs.pid(name) for name in ("w1", "w2")}
    before = {name: tree_rss(pid) for name, pid in workers.items()}
    samples: list[tuple[float, dict[str, int]]] = []
    issued = done = 0
    start = time.perf_counter()

    async def client(i: int) -> None:
        nonlocal issued, done
        s, a = f"mem-{i}", f"tp-{i % POOL_AGENTS}"
        while issued < cfg.memory_jobs:
            issued += 1
            await api.append(ns, s, [{"speaker": a, "content": text.sentence()}])
            await api.integrate_and_wait(ns, s)
            done += 1

    async def sampler() -> None:
        last_report = time.perf_counter()
        while True:
            samples.append((round(time.perf_counter() - start, 1), {k: tree_rss(p)[0] for k, p in workers.items()}))
            if time.perf_counter() - last_report > 15:
                last_report = time.perf_counter()
                ctx.say(f"… {done}/{cfg.memory_jobs} jobs, {done / (last_report - start):.1f}/s")
            await asyncio.sleep(1.0)

    c0 = ctx.cpu.snapshot()
    sampling = asyncio.create_task(sampler())
    try:
        await asyncio.gather(*(client(i) for i in range(n_sessions)))
    finally:
        sampling.cancel()
    elapsed = time.perf_counter() - start
    mem_cpu = ctx.cpu_since(c0)
    await ctx.drain()
    await asyncio.sleep(1.0)
    after = {name: tree_rss(pid) for name, pid in workers.items()}
    mb = 1024 * 1024
    growth = {k: (after[k][0] - before[k][0]) / mb for k in workers}
    recycled = {k: before[k][1] != after[k][1] for k in workers}
    worst = max(growth, key=lambda k: growth[k])
    ctx.say(f"{cfg.memory_jobs} jobs in {elapsed:.0f}s; RSS growth " +
            ", ".join(f"{k} {before[k][0] / mb:.1f} → {after[k][0] / mb:.1f} MB" for k in workers))
    details: dict[str, Any] = {
        "jobs": cfg.memory_jobs, "elapsed_s": round(elapsed, 1), "jobs_per_s": round(cfg.memory_jobs / elapsed, 1),
        "rss_before_mb": {k: round(v[0] / mb, 1) for k, v in before.items()},
        "rss_after_mb": {k: round(v[0] / mb, 1) for k, v in after.items()},
        "growth_mb": {k: round(v, 1) for k, v in growth.items()},
        "pool_child_recycled": recycled, "cpu_pct_of_core": mem_cpu,
        "workload": f"{n_sessions} clients, each: append 1 turn, integrate, wait; 1 participant",
        "samples_mb": [(t, {k: round(v / mb, 1) for k, v in d.items()}) for t, d in samples[:: max(1, len(samples) // 60)]],
    }
    value = growth[worst]
    note = (f"{cfg.memory_jobs:,} jobs in {elapsed:.0f} s ({cfg.memory_jobs / elapsed:.0f}/s); " +
            ", ".join(f"{k} {before[k][0] / mb:.0f} → {after[k][0] / mb:.0f} MB" for k in workers) +
            ("; a pool child was recycled (worker_max_memory_per_child)!" if any(recycled.values()) else
             "; no pool child recycled"))
    return [Figure("memory_growth", f"worker RSS growth over {cfg.memory_jobs:,} jobs (worst worker tree: main + pool child)",
                   round(value, 1), "MB", round(before[worst][0] / mb, 1), f"RSS of {worst} before",
                   round(after[worst][0] / before[worst][0], 3), "growth <= 20 MB", value <= 20 and not any(recycled.values()),
                   details, note)]
