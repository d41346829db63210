"""Submit: POST …/integrate accepted per second at 32 clients, against a hello-world POST on the
same uvicorn set-up (bench/hello.py) and against the tutorial-shape peer (bench/tutorial.py: sync
handler, SQLAlchemy ORM session, send_task), in alternating rounds."""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

from bench.loadgen import Client, LoadResult, run_load
from bench.phases.common import CONCURRENCY, Ctx, Figure, ms, pct


async def run(ctx: Ctx) -> list[Figure]:
    cfg, api, ns = ctx.cfg, ctx.api, ctx.ns
    hello = Client("127.0.0.1", ctx.procs.hello_port)
    peer = Client("127.0.0.1", ctx.procs.tutorial_port)
    n = cfg.submit_warmup + cfg.rounds * cfg.submit_per_round
    creates = [api.client.build("POST", f"/v1/namespaces/{ns}/sessions", {"name": f"sub-{i}"}) for i in range(n)]
    res = await run_load(api.client, creates, CONCURRENCY)
    if res.statuses != {201: n}:
        raise RuntimeError(f"creating the submit sessions: {res.statuses}")
    ctx.say(f"{n} sessions created in {res.elapsed:.1f}s ({res.rate:.0f}/s)")

    def integrates(start: int, k: int) -> list[bytes]:
        return [api.client.build("POST", f"/v1/namespaces/{ns}/sessions/sub-{i}/integrate") for i in range(start, start + k)]

    def peer_integrates(start: int, k: int) -> list[bytes]:
        return [peer.build("POST", f"/sessions/tut-{i}/integrate") for i in range(start, start + k)]

    hello_raw, hello_sync_raw = hello.build("POST", "/hello"), hello.build("POST", "/hello-sync")
    from bench import raw_celery, tutorial

    rds = raw_celery._client()

    def purge_peer_queue() -> None:
        """Nothing consumes the peer's messages: empty its Redis list so that it does not grow."""
        rds.delete(tutorial.QUEUE)

    async def measure(client: Client, reqs: list[bytes], check: int, cpu: dict[str, list[float]]) -> LoadResult:
        c0 = ctx.cpu.snapshot()
        res = await run_load(client, reqs, CONCURRENCY)
        for g, v in ctx.cpu.delta(c0, ctx.cpu.snapshot()).items():
            cpu.setdefault(g, []).append(v)
        if res.statuses != {check: len(reqs)}:
            raise RuntimeError(f"unexpected statuses {res.statuses}")
        return res

    # Warm-up of the three servers, then rounds that alternate: hello, hello through the thread
    # pool, the tutorial-shape peer (then its Redis list is emptied), Engram (then wait for the
    # workers to drain the jobs), so that a slower moment of a shared machine hits the figure and
    # its references alike.
    await run_load(hello, [hello_raw] * cfg.hello_warmup, CONCURRENCY)
    await run_load(hello, [hello_sync_raw] * cfg.hello_warmup, CONCURRENCY)
    await run_load(peer, peer_integrates(0, cfg.submit_warmup), CONCURRENCY)
    purge_peer_queue()
    await run_load(api.client, integrates(0, cfg.submit_warmup), CONCURRENCY)
    await ctx.drain()
    h_rates, h_lats, hs_rates, hs_lats, e_rates, e_lats, t_rates, t_lats = [], [], [], [], [], [], [], []
    hello_cpu: dict[str, list[float]] = {}
    peer_cpu: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    pg_conns: list[float] = []
    peer_pg_conns: list[float] = []
    ctx.profiler.start("submit", ctx.worker_targets())
    try:
        for r in range(cfg.rounds):
            res = await measure(hello, [hello_raw] * cfg.hello_per_round, 200, hello_cpu)
            h_rates.append(res.rate)
            h_lats += res.latencies
            res = await run_load(hello, [hello_sync_raw] * cfg.hello_per_round, CONCURRENCY)
            hs_rates.append(res.rate)
            hs_lats += res.latencies
            pg0 = ctx.pg_sessions()
            first = cfg.submit_warmup + r * cfg.submit_per_round
            res = await measure(peer, peer_integrates(first, cfg.submit_per_round), 202, peer_cpu)
            t_rates.append(res.rate)
            t_lats += res.latencies
            purge_peer_queue()
            await asyncio.sleep(1.1)  # PostgreSQL backends flush their statistics at most once a second
            pg1 = ctx.pg_sessions()
            peer_pg_conns.append((pg1 - pg0) / cfg.submit_per_round)
            pg0 = pg1
            res = await measure(api.client, integrates(cfg.submit_warmup + r * cfg.submit_per_round, cfg.submit_per_round),
                                202, cpu)
            e_rates.append(res.rate)
            e_lats += res.latencies
            await ctx.drain()
            await asyncio.sleep(1.1)  # PostgreSQL backends flush their statistics at most once a second
            pg_conns.append((ctx.pg_sessions() - pg0) / cfg.submit_per_round)
    finally:
        ctx.profiler.stop()
    ctx.say(f"hello: {statistics.median(h_rates):.0f} req/s (sync endpoint {statistics.median(hs_rates):.0f} req/s)")
    rate, ref, peer_rate = statistics.median(e_rates), statistics.median(h_rates), statistics.median(t_rates)
    ratio = statistics.median(e / h for e, h in zip(e_rates, h_rates, strict=True))  # each round against its own reference
    peer_ratio = statistics.median(e / t for e, t in zip(e_rates, t_rates, strict=True))
    p50_ratio = pct(e_lats, 50) / pct(h_lats, 50)
    ctx.say(f"tutorial-shape peer: {peer_rate:.0f} req/s (p50 {ms(pct(t_lats, 50))} ms)")
    ctx.say(f"integrate accepted: {rate:.0f} req/s (p50 {ms(pct(e_lats, 50))} ms)")
    details: dict[str, Any] = {
        "concurrency": CONCURRENCY, "rounds": cfg.rounds, "requests_per_round": cfg.submit_per_round,
        "rates": [round(x, 1) for x in e_rates], "p50_ms": ms(pct(e_lats, 50)), "p99_ms": ms(pct(e_lats, 99)),
        "hello_rates": [round(x, 1) for x in h_rates], "hello_p50_ms": ms(pct(h_lats, 50)), "hello_p99_ms": ms(pct(h_lats, 99)),
        "hello_sync_rate": round(statistics.median(hs_rates), 1), "hello_sync_p50_ms": ms(pct(hs_lats, 50)),
        "hello_sync_p99_ms": ms(pct(hs_lats, 99)),
        "round_ratios": [round(e / h, 4) for e, h in zip(e_rates, h_rates, strict=True)],
        "tutorial_rates": [round(x, 1) for x in t_rates], "tutorial_p50_ms": ms(pct(t_lats, 50)),
        "tutorial_p99_ms": ms(pct(t_lats, 99)),
        "tutorial_round_ratios": [round(e / t, 4) for e, t in zip(e_rates, t_rates, strict=True)],
        "tutorial_pg_connections_opened_per_request": round(statistics.median(peer_pg_conns), 3),
        "tutorial_cpu_pct_of_core": {g: round(statistics.median(v), 1) for g, v in peer_cpu.items()
                                     if statistics.median(v) >= 1},
        "pg_connections_opened_per_request": round(statistics.median(pg_conns), 3),
        "cpu_pct_of_core": {g: round(statistics.median(v), 1) for g, v in cpu.items() if statistics.median(v) >= 1},
        "hello_cpu_pct_of_core": {g: round(statistics.median(v), 1) for g, v in hello_cpu.items()
                                  if statistics.median(v) >= 1},
    }
    ctx.say(f"CPU during integrate rounds (% of one core): {details['cpu_pct_of_core']}")
    ctx.say(f"CPU during hello rounds: {details['hello_cpu_pct_of_core']}")
    ctx.say(f"CPU during tutorial-shape rounds: {details['tutorial_cpu_pct_of_core']}")
    note = (f"p50/p99 {ms(pct(e_lats, 50)):.0f}/{ms(pct(e_lats, 99)):.0f} ms (hello {ms(pct(h_lats, 50)):.1f}/"
            f"{ms(pct(h_lats, 99)):.1f} ms); hello through the thread pool (sync endpoint) "
            f"{statistics.median(hs_rates):,.0f} req/s; PostgreSQL connections opened per request "
            f"{details['pg_connections_opened_per_request']:.2f}")
    peer_note = (f"tutorial-shape peer p50/p99 {ms(pct(t_lats, 50)):.0f}/{ms(pct(t_lats, 99)):.0f} ms, rounds "
                 f"{', '.join(f'{x:.0f}' for x in t_rates)} req/s; its PostgreSQL connections opened per request "
                 f"{details['tutorial_pg_connections_opened_per_request']:.2f}")
    return [
        Figure("submit_rate", "submit: POST …/integrate accepted/s at 32 clients", round(rate, 1), "req/s",
               round(ref, 1), "hello-world POST, same uvicorn set-up", round(ratio, 3), "ratio >= 0.25",
               ratio >= 0.25, details, note),
        Figure("submit_vs_tutorial", "submit vs the tutorial-shape peer (sync FastAPI + SQLAlchemy ORM + send_task)",
               round(rate, 1), "req/s", round(peer_rate, 1), "tutorial-shape peer, same uvicorn set-up",
               round(peer_ratio, 2), "ratio >= 5", peer_ratio >= 5,
               {"rates": details["tutorial_rates"], "p50_ms": details["tutorial_p50_ms"],
                "p99_ms": details["tutorial_p99_ms"], "cpu_pct_of_core": details["tutorial_cpu_pct_of_core"]},
               peer_note),
        Figure("submit_p50", "submit latency p50", ms(pct(e_lats, 50)), "ms", ms(pct(h_lats, 50)), "hello-world p50",
               round(p50_ratio, 1), "ratio <= 10", p50_ratio <= 10, details={}),
        Figure("submit_p99", "submit latency p99", ms(pct(e_lats, 99)), "ms", ms(pct(h_lats, 99)), "hello-world p99",
               round(pct(e_lats, 99) / pct(h_lats, 99), 1), details={}),
    ]
