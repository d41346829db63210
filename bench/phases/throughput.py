"""Worker throughput: trivial integrations finished per second by 2 worker processes, against raw
Celery no-ops on 2 worker processes of the same settings."""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from typing import Any

from bench.loadgen import LoadResult, run_load
from bench.phases.common import CONCURRENCY, POOL_AGENTS, Ctx, Figure
from bench.workload import limited


async def prepare(ctx: Ctx, sessions: list[str]) -> None:
    """Trivial sessions: 1 participant (one of the POOL_AGENTS agents), 1 turn; workers idle after."""
    api, ns, text = ctx.api, ctx.ns, ctx.text
    await limited([api.agent(ns, f"tp-{a}") for a in range(POOL_AGENTS)], CONCURRENCY)

    async def setup(i: int, s: str) -> None:
        a = f"tp-{i % POOL_AGENTS}"
        await api.session(ns, s, [a])
        await api.append(ns, s, [{"speaker": a, "content": text.sentence()}])

    await limited([setup(i, s) for i, s in enumerate(sessions)], CONCURRENCY)
    await ctx.drain()


async def integrate_all(ctx: Ctx, sessions: list[str]) -> tuple[float, LoadResult]:
    """Submit an integrate of every session at once (32 clients), wait until all have finished:
    (seconds from the first submit to the last finished_at, the submit load)."""
    n = len(sessions)
    reqs = [ctx.api.client.build("POST", f"/v1/namespaces/{ctx.ns}/sessions/{s}/integrate") for s in sessions]
    start = time.time()
    res = await run_load(ctx.api.client, reqs, CONCURRENCY, keep=True)
    if res.statuses != {202: n}:
        raise RuntimeError(f"throughput submit statuses {res.statuses}")
    ids = [resp.json()["id"] for resp in res.responses]  # type: ignore[union-attr]
    deadline = time.monotonic() + 600
    while True:
        done, last, ok = ctx.sql(
            "SELECT count(*) FILTER (WHERE finished_at IS NOT NULL), max(finished_at), "
            "count(*) FILTER (WHERE status = 'succeeded') FROM jobs WHERE id = ANY(%s)", (ids,))[0]
        if done == n:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"throughput: {done}/{n} jobs finished after 600 s")
        ctx.procs.check_alive()
        await asyncio.sleep(0.02)
    if ok != n:
        raise RuntimeError(f"throughput: only {ok}/{n} jobs succeeded")
    return last.timestamp() - start, res


async def run(ctx: Ctx) -> list[Figure]:
    cfg = ctx.cfg
    n = cfg.tp_sessions

    from bench import raw_celery

    rds = raw_celery._client()

    def raw_round() -> tuple[float, float]:
        """n no-ops sent at once to the raw workers: (tasks/s, raw worker CPU ms per task)."""
        key = f"bench:tp:{secrets.token_hex(4)}"
        c0 = ctx.cpu.snapshot()
        t0 = time.perf_counter()
        for i in range(n):
            raw_celery.send(key, str(i))
        for _ in range(n):
            if rds.blpop([key], timeout=60) is None:
                raise RuntimeError("raw Celery no-ops did not complete")
        rate = n / (time.perf_counter() - t0)
        return rate, ctx.cpu.seconds(c0, ctx.cpu.snapshot())["raw workers"] * 1000 / n

    raw_round()  # warm-up
    raw_rates, raw_cpu_ms = [], []
    rates, submit_rates, walls, cpus, cpu_ms, pg_conns = [], [], [], [], [], []
    for r in range(cfg.tp_rounds):
        t0 = time.perf_counter()
        sessions = [f"tp{r}-{i}" for i in range(n)]
        await prepare(ctx, sessions)
        ctx.say(f"round {r + 1}: {n} sessions prepared in {time.perf_counter() - t0:.1f}s")
        if r == 0:
            ctx.profiler.start("throughput", ctx.worker_targets())
        c0, pg0 = ctx.cpu.snapshot(), ctx.pg_sessions()
        wall, res = await integrate_all(ctx, sessions)
        cpus.append(ctx.cpu_since(c0))
        secs = ctx.cpu.seconds(c0, ctx.cpu.snapshot())
        cpu_ms.append({k: secs[k] * 1000 / n for k in ("workers", "api", "postgres")})
        await asyncio.sleep(1.1)  # backends flush their statistics at most once a second
        pg_conns.append((ctx.pg_sessions() - pg0) / n)
        if r == 0:
            ctx.profiler.stop()
        rates.append(n / wall)
        walls.append(wall)
        submit_rates.append(res.rate)
        raw_rate, raw_ms = raw_round()  # right after: the reference sees the same machine
        raw_rates.append(raw_rate)
        raw_cpu_ms.append(raw_ms)
        ctx.say(f"round {r + 1}: {n} integrations in {wall:.2f}s = {n / wall:.1f}/s (submitted at {res.rate:.0f}/s); "
                f"raw Celery {raw_rate:.0f}/s")

    rate, ref = statistics.median(rates), statistics.median(raw_rates)
    ctx.say(f"integrations {rate:.1f}/s; raw Celery no-ops {ref:.0f}/s")
    ratio = statistics.median(e / w for e, w in zip(rates, raw_rates, strict=True))
    details: dict[str, Any] = {"jobs_per_round": n, "rounds": cfg.tp_rounds, "rates": [round(x, 1) for x in rates],
               "walls_s": [round(x, 2) for x in walls], "submit_rates": [round(x) for x in submit_rates],
               "raw_rates": [round(x) for x in raw_rates],
               "round_ratios": [round(e / w, 4) for e, w in zip(rates, raw_rates, strict=True)],
               "session": "1 participant, 1 turn", "workers": "2 × --concurrency 1 (prefork)",
               "cpu_pct_of_core": cpus[len(cpus) // 2],
               "cpu_ms_per_job": {k: round(statistics.median(c[k] for c in cpu_ms), 2) for k in cpu_ms[0]},
               "raw_worker_cpu_ms_per_task": round(statistics.median(raw_cpu_ms), 2),
               "pg_connections_opened_per_job": round(statistics.median(pg_conns), 3)}
    per_job = details["cpu_ms_per_job"]
    note = (f"rounds: {', '.join(f'{x:.0f}' for x in rates)} jobs/s; CPU per job: workers {per_job['workers']:.1f} ms, "
            f"api {per_job['api']:.1f} ms, postgres {per_job['postgres']:.1f} ms; raw Celery worker CPU per no-op "
            f"{details['raw_worker_cpu_ms_per_task']:.1f} ms; the API accepted the {n} submits at "
            f"{statistics.median(submit_rates):.0f} req/s")
    return [Figure("throughput", "worker throughput: trivial integrations finished/s, 2 worker processes",
                   round(rate, 1), "jobs/s", round(ref, 1), "raw Celery no-ops/s, 2 worker processes",
                   round(ratio, 4), "ratio >= 0.5", ratio >= 0.5, details, note)]
