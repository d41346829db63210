"""Scale-out: what a second process brings, in the same run (info figures, no target).

API processes. Two extra API stacks are started for this phase only and stopped at its end:
`engram api --workers 1` and `engram api --workers 2` (uvicorn processes, i.e.
ENGRAM_API_WORKERS=1 and 2), on their own ports, on the same database, broker and workers as
everything else. Rounds alternate between them (1, 2, then 2, 1, …); each is
``scale_requests`` POST …/integrate on sessions of their own, by 32 clients, as in the submit
phase, after a warm-up of 64; the workers drain the jobs after each round. Figure: accepted/s
with 2 processes ÷ with 1.

Worker processes. Trivial integrations (1 participant, 1 turn), ``scale_jobs`` submitted at once,
first submit → last finished_at, as in the throughput phase; with both workers w1 and w2, and with
w1 alone. For a one-worker round w2 stops consuming Engram's queue through Celery's remote control
(``cancel_consumer``; the process stays up, idle), and takes it up again after (``add_consumer``):
the same processes, no restart. Which worker ran each job is read from the jobs' lease owner, so a
one-worker round that w2 touched is reported. Rounds alternate (2, 1, then 1, 2, …). Figure:
jobs/s with 2 workers ÷ with 1.

About 45 s in a full run (2 rounds of each), 30 s with --quick (1 round), on 2 cores.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from bench.loadgen import Client, run_load
from bench.phases.common import CONCURRENCY, Ctx, Figure
from bench.phases.throughput import integrate_all, prepare
from bench.system import SCALE_APIS

WARMUP = 64  # integrate requests sent to each extra API stack before its rounds


def _node(app: Any, name: str) -> str:
    """The full Celery node name (``w2@host``) of an Engram worker."""
    for reply in app.control.ping(timeout=2.0) or []:
        for node in reply:
            if node.split("@")[0] == name:
                return str(node)
    raise RuntimeError(f"worker {name} does not answer a Celery ping")


def _control(app: Any, command: str, queue: str, node: str) -> None:
    method = getattr(app.control, command)
    replies = method(queue, destination=[node], reply=True, timeout=5.0) or []
    if not any(node in r for r in replies):
        raise RuntimeError(f"{command} {queue} on {node}: no reply ({replies})")


async def _api_processes(ctx: Ctx) -> Figure:
    cfg, api, ns = ctx.cfg, ctx.api, ctx.ns
    per, rounds, warmup = cfg.scale_requests, cfg.scale_rounds, min(cfg.submit_warmup, WARMUP)
    clients = {name: Client("127.0.0.1", ctx.procs.extra_ports[name], {"Authorization": f"Bearer {ctx.procs.admin_key}"})
               for name in SCALE_APIS}
    n = len(SCALE_APIS) * (warmup + rounds * per)
    creates = [api.client.build("POST", f"/v1/namespaces/{ns}/sessions", {"name": f"so-{i}"}) for i in range(n)]
    res = await run_load(api.client, creates, CONCURRENCY)
    if res.statuses != {201: n}:
        raise RuntimeError(f"creating the scale-out sessions: {res.statuses}")
    next_session = 0

    async def submit(name: str, k: int) -> tuple[float, dict[str, float]]:
        nonlocal next_session
        client = clients[name]
        reqs = [client.build("POST", f"/v1/namespaces/{ns}/sessions/so-{i}/integrate")
                for i in range(next_session, next_session + k)]
        next_session += k
        c0 = ctx.cpu.snapshot()
        res = await run_load(client, reqs, CONCURRENCY)
        cpu = ctx.cpu_since(c0)
        if res.statuses != {202: k}:
            raise RuntimeError(f"{name}: unexpected statuses {res.statuses}")
        await ctx.drain()
        return res.rate, cpu

    t0 = time.perf_counter()
    ctx.procs.start_extra()
    ctx.say(f"API stacks with 1 and 2 uvicorn processes ready in {time.perf_counter() - t0:.1f}s")
    rates: dict[str, list[float]] = {name: [] for name in SCALE_APIS}
    cpus: dict[str, list[dict[str, float]]] = {name: [] for name in SCALE_APIS}
    try:
        for name in SCALE_APIS:
            await submit(name, warmup)
        for r in range(rounds):
            for name in (list(SCALE_APIS) if r % 2 == 0 else list(SCALE_APIS)[::-1]):
                rate, cpu = await submit(name, per)
                rates[name].append(rate)
                cpus[name].append(cpu)
            ctx.say(f"round {r + 1}: " + ", ".join(f"{SCALE_APIS[n]} process(es) {rates[n][-1]:.0f} req/s" for n in SCALE_APIS))
    finally:
        for c in clients.values():
            c.close()
        ctx.procs.stop_extra()
    one, two = rates["api-1p"], rates["api-2p"]
    ratio = statistics.median(b / a for a, b in zip(one, two, strict=True))
    details: dict[str, Any] = {
        "requests_per_round": per, "rounds": rounds, "concurrency": CONCURRENCY,
        "rates_1_process": [round(x, 1) for x in one], "rates_2_processes": [round(x, 1) for x in two],
        "round_ratios": [round(b / a, 3) for a, b in zip(one, two, strict=True)],
        "cpu_pct_of_core": cpus["api-2p"][len(cpus["api-2p"]) // 2],
        "cpu_pct_of_core_1_process": cpus["api-1p"][len(cpus["api-1p"]) // 2],
    }
    note = (f"rounds: 1 process {', '.join(f'{x:.0f}' for x in one)} req/s, 2 processes "
            f"{', '.join(f'{x:.0f}' for x in two)} req/s; CPU below: the 2-process rounds")
    return Figure("scaleout_api", "scale-out: submit accepted/s, API with 2 uvicorn processes vs 1",
                  round(statistics.median(two), 1), "req/s", round(statistics.median(one), 1), "same API, 1 process",
                  round(ratio, 3), details=details, note=note)


async def _worker_processes(ctx: Ctx) -> Figure:
    cfg = ctx.cfg
    n, rounds = cfg.scale_jobs, cfg.scale_rounds
    from bench import raw_celery  # its app's remote control reaches every worker on the broker
    from shared import task_names

    app, queue = raw_celery.app, task_names.QUEUE
    w2 = _node(app, "w2")
    sets = {2: "both workers", 1: "w1 alone"}
    sessions = {(r, k): [f"sw{r}-{k}-{i}" for i in range(n)] for r in range(rounds) for k in sets}
    t0 = time.perf_counter()
    await prepare(ctx, [s for names in sessions.values() for s in names])
    ctx.say(f"{n * len(sessions)} trivial sessions prepared in {time.perf_counter() - t0:.1f}s")
    rates: dict[int, list[float]] = {k: [] for k in sets}
    cpus: dict[int, list[dict[str, float]]] = {k: [] for k in sets}
    by_worker: dict[int, list[dict[str, int]]] = {k: [] for k in sets}
    for r in range(rounds):
        for k in ((2, 1) if r % 2 == 0 else (1, 2)):
            if k == 1:
                _control(app, "cancel_consumer", queue, w2)
                await asyncio.sleep(1.5)  # a receive w2 had already started ends (its 1 s poll)
            try:
                c0 = ctx.cpu.snapshot()
                wall, _ = await integrate_all(ctx, sessions[(r, k)])
                cpus[k].append(ctx.cpu_since(c0))
            finally:
                if k == 1:
                    _control(app, "add_consumer", queue, w2)
            rates[k].append(n / wall)
            rows = ctx.sql("SELECT split_part(lease_owner, '@', 1), count(*) FROM jobs WHERE session_name = ANY(%s) "
                           "GROUP BY 1", (sessions[(r, k)],))
            by_worker[k].append({str(w): int(c) for w, c in rows})
        ctx.say(f"round {r + 1}: 2 workers {rates[2][-1]:.1f} jobs/s, 1 worker {rates[1][-1]:.1f} jobs/s "
                f"(jobs by worker: {by_worker[2][-1]}, {by_worker[1][-1]})")
    touched = sum(c.get("w2", 0) for c in by_worker[1])
    if touched:
        ctx.say(f"warning: w2 ran {touched} job(s) of the one-worker rounds")
    ratio = statistics.median(b / a for a, b in zip(rates[1], rates[2], strict=True))
    details: dict[str, Any] = {
        "jobs_per_round": n, "rounds": rounds, "session": "1 participant, 1 turn",
        "rates_1_worker": [round(x, 1) for x in rates[1]], "rates_2_workers": [round(x, 1) for x in rates[2]],
        "round_ratios": [round(b / a, 3) for a, b in zip(rates[1], rates[2], strict=True)],
        "jobs_by_worker_1_worker": by_worker[1], "jobs_by_worker_2_workers": by_worker[2],
        "one_worker_jobs_run_by_w2": touched,
        "cpu_pct_of_core": cpus[2][len(cpus[2]) // 2], "cpu_pct_of_core_1_worker": cpus[1][len(cpus[1]) // 2],
        "how": "w2 stops consuming (Celery cancel_consumer) for the one-worker rounds; add_consumer after",
    }
    note = (f"rounds: 1 worker {', '.join(f'{x:.0f}' for x in rates[1])} jobs/s, 2 workers "
            f"{', '.join(f'{x:.0f}' for x in rates[2])} jobs/s; w2 paused by cancel_consumer; CPU below: the 2-worker rounds")
    return Figure("scaleout_workers", "scale-out: trivial integrations finished/s, 2 worker processes vs 1",
                  round(statistics.median(rates[2]), 1), "jobs/s", round(statistics.median(rates[1]), 1),
                  "w1 alone (w2 not consuming)", round(ratio, 3), details=details, note=note)


async def run(ctx: Ctx) -> list[Figure]:
    return [await _api_processes(ctx), await _worker_processes(ctx)]
