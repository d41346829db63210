"""End-to-end latency: one integrate at a time, POST → finished (via ?wait), against a raw Celery
no-op round trip on the same broker; then the same with nothing new to integrate (the job
machinery alone), and the difference of the two per new turn (the integrator's own cost)."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

from bench.phases.common import CONCURRENCY, Ctx, Figure, ms, pct, secs
from bench.workload import limited

TURNS = 20  # new turns per session (2 participants, both see them all)


async def run(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    total = cfg.e2e_warmup + cfg.e2e_jobs

    async def setup(i: int) -> None:
        a, b = f"e{i}-a", f"e{i}-b"
        await api.agent(ns, a)
        await api.agent(ns, b)
        await api.session(ns, f"e2e-{i}", [a, b])
        await api.append(ns, f"e2e-{i}", text.turns([a, b], TURNS))

    t0 = time.perf_counter()
    await limited([setup(i) for i in range(total)], CONCURRENCY)
    ctx.say(f"{total} sessions (2 participants, 20 turns) prepared in {time.perf_counter() - t0:.1f}s")
    await ctx.drain()

    from bench import raw_celery

    rds = raw_celery._client()
    key = f"bench:e2e:{secrets.token_hex(4)}"

    def raw_round_trip(i: int) -> float:
        t0 = time.perf_counter()
        raw_celery.send(key, str(i))
        if rds.blpop([key], timeout=30) is None:
            raise RuntimeError("raw Celery no-op did not complete in 30 s")
        return time.perf_counter() - t0

    # Each Engram job is followed by one raw Celery round trip: the two see the same machine.
    lat, queue_wait, runs, post, raw = [], [], [], [], []
    ctx.profiler.start("e2e", ctx.worker_targets())
    c0 = ctx.cpu.snapshot()
    try:
        for i in range(total):
            t0 = time.perf_counter()
            job = await api.integrate(ns, f"e2e-{i}")
            t1 = time.perf_counter()
            job = await api.wait(ns, job["id"])
            t2 = time.perf_counter()
            await asyncio.sleep(0.01)  # let the worker finish its bookkeeping (ack, events)
            if job["status"] != "succeeded":
                raise RuntimeError(f"e2e job failed: {job}")
            r = raw_round_trip(i)
            if i >= cfg.e2e_warmup:
                lat.append(t2 - t0)
                post.append(t1 - t0)
                queue_wait.append(secs(job["started_at"]) - secs(job["created_at"]))
                runs.append(secs(job["finished_at"]) - secs(job["started_at"]))
                raw.append(r)
    finally:
        ctx.profiler.stop()
    cpu_s = ctx.cpu.seconds(c0, ctx.cpu.snapshot())  # the raw round trips use none of api, workers, postgres
    e2e_cpu = ctx.cpu_since(c0)

    # The same sessions again: nothing new to integrate, so no integrator call: what is left is
    # the job machinery (API, broker, claim, transactions, notify, long-poll). Interleaved with
    # raw round trips of its own, as above.
    empty, empty_runs, empty_raw = [], [], []
    for i in range(total):
        t, job = await api.integrate_and_wait(ns, f"e2e-{i}")
        await asyncio.sleep(0.01)
        r = raw_round_trip(total + i)
        if i >= cfg.e2e_warmup:
            empty.append(t)
            empty_runs.append(secs(job["finished_at"]) - secs(job["started_at"]))
            empty_raw.append(r)

    p50, ref = pct(lat, 50), pct(raw, 50)
    ctx.say(f"integrate e2e p50 {ms(p50)} ms p99 {ms(pct(lat, 99))} ms; nothing new p50 {ms(pct(empty, 50))} ms; "
            f"raw Celery p50 {ms(ref)} ms (beside the nothing-new jobs {ms(pct(empty_raw, 50))} ms)")
    ratio = p50 / ref
    empty_ref = pct(empty_raw, 50)
    machinery_ratio = pct(empty, 50) / empty_ref
    # What integrating the 20 new turns adds to a job that has nothing new: the integrator's own
    # work and the writes of its results, per new turn of the session (each of the 2 participants sees it).
    per_turn = (p50 - pct(empty, 50)) / TURNS
    run_per_turn = (pct(runs, 50) - pct(empty_runs, 50)) / TURNS
    details: dict[str, Any] = {
        "jobs": cfg.e2e_jobs, "session": "2 participants, 20 turns", "sequential": True,
        "p50_ms": ms(p50), "p90_ms": ms(pct(lat, 90)), "p99_ms": ms(pct(lat, 99)), "max_ms": ms(max(lat)),
        "post_p50_ms": ms(pct(post, 50)), "queue_wait_p50_ms": ms(pct(queue_wait, 50)),
        "run_p50_ms": ms(pct(runs, 50)),
        "note": "queue_wait = job created_at → started_at (API commit, send, worker claim); run = started_at → finished_at",
        "raw_p50_ms": ms(ref), "raw_p99_ms": ms(pct(raw, 99)), "cpu_pct_of_core": e2e_cpu,
        "nothing_new_p50_ms": ms(pct(empty, 50)), "nothing_new_p99_ms": ms(pct(empty, 99)),
        "nothing_new_run_p50_ms": ms(pct(empty_runs, 50)),
        "integrator_ms_per_turn": ms(per_turn), "integrator_run_ms_per_turn": ms(run_per_turn),
        "cpu_ms_per_job": {k: round(cpu_s[k] * 1000 / total, 1) for k in ("workers", "api", "postgres")},
    }
    note = (f"POST {ms(pct(post, 50)):.1f} ms, created→started {ms(pct(queue_wait, 50)):.1f} ms, started→finished "
            f"{ms(pct(runs, 50)):.1f} ms (p50s); CPU per job: workers {details['cpu_ms_per_job']['workers']:.0f} ms, "
            f"api {details['cpu_ms_per_job']['api']:.0f} ms; {cfg.e2e_jobs} sequential jobs")
    return [
        Figure("e2e_p50", "end-to-end integrate (2×20 turns) p50, POST → finished via ?wait", ms(p50), "ms", ms(ref),
               "raw Celery no-op round trip p50, same broker", round(ratio, 2), "ratio <= 5", ratio <= 5, details, note),
        Figure("e2e_p99", "end-to-end integrate p99", ms(pct(lat, 99)), "ms", ms(pct(raw, 99)),
               "raw Celery no-op round trip p99", round(pct(lat, 99) / pct(raw, 99), 2)),
        Figure("e2e_machinery_p50", "end-to-end integrate with nothing new (job machinery only) p50",
               ms(pct(empty, 50)), "ms", ms(empty_ref), "raw Celery no-op round trip p50, interleaved",
               round(machinery_ratio, 2), "ratio <= 2", machinery_ratio <= 2,
               {"p50_ms": ms(pct(empty, 50)), "p99_ms": ms(pct(empty, 99)), "run_p50_ms": ms(pct(empty_runs, 50)),
                "raw_p50_ms": ms(empty_ref), "raw_p99_ms": ms(pct(empty_raw, 99))},
               f"the same {cfg.e2e_jobs} sessions integrated again with no new turn: the integrator is not called; "
               f"started→finished {ms(pct(empty_runs, 50)):.1f} ms (p50)"),
        Figure("e2e_integrator_per_turn", "integrator's own cost per new turn: (e2e p50 − nothing-new p50) / 20 turns",
               round(per_turn * 1000, 3), "ms/turn",
               note=f"from the jobs' started→finished instead: {run_per_turn * 1000:.2f} ms per turn; "
                    f"{TURNS} turns per job, each seen by 2 participants"),
    ]

