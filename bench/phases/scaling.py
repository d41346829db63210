"""Scaling with history: integrating N new turns after a long integrated history, against the same on
a fresh session; and appending with a large backlog pending."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.phases.common import Ctx, Figure, ms, secs
from bench.workload import append_all


async def run(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    agent = "hist-agent"
    await api.agent(ns, agent)
    await api.session(ns, "hist", [agent])
    speakers = ["user", agent]

    # History through the API, batches of 1000 (ENGRAM_MAX_TURNS_PER_BATCH), then integrated once.
    batch_times = []
    t0 = time.perf_counter()
    for _ in range(cfg.history_turns // 1000):
        raw = api.client.build("POST", f"/v1/namespaces/{ns}/sessions/hist/turns", {"turns": text.turns(speakers, 1000)})
        t1 = time.perf_counter()
        resp = await api.client.send(raw)
        batch_times.append(time.perf_counter() - t1)
        if resp.status != 201:
            raise RuntimeError(f"history append -> {resp.status}: {resp.body[:300]!r}")
    build = time.perf_counter() - t0
    ctx.say(f"{cfg.history_turns} history turns appended in {build:.1f}s "
            f"(batch p50 first 5: {ms(statistics.median(batch_times[:5]))} ms, last 5: "
            f"{ms(statistics.median(batch_times[-5:]))} ms)")
    t0 = time.perf_counter()
    first_integration, job = await api.integrate_and_wait(ns, "hist", timeout=900)
    ctx.say(f"history integrated once in {first_integration:.1f}s")

    sweep: dict[str, dict[int, list[float]]] = {"fresh": {}, "history": {}}
    server: dict[str, dict[int, list[float]]] = {"fresh": {}, "history": {}}  # job started_at → finished_at
    clean_appends: list[float] = []  # 1000 turns appended to the history session with nothing pending
    sizes = sorted(set(cfg.sweep) | {cfg.headline_turns})
    k = 0
    for n in sizes:
        reps = cfg.headline_reps if n == cfg.headline_turns else cfg.sweep_reps
        for _ in range(reps):
            k += 1
            fresh = f"fresh-{k}"
            await api.session(ns, fresh, [agent])
            await append_all(api, ns, fresh, text.turns(speakers, n))
            t, job = await api.integrate_and_wait(ns, fresh)
            sweep["fresh"].setdefault(n, []).append(t)
            server["fresh"].setdefault(n, []).append(secs(job["finished_at"]) - secs(job["started_at"]))
            turns = text.turns(speakers, n)
            if n == 1000:  # one batch, timed like the history batches: request built beforehand
                raw = api.client.build("POST", f"/v1/namespaces/{ns}/sessions/hist/turns", {"turns": turns})
                t0 = time.perf_counter()
                resp = await api.client.send(raw)
                clean_appends.append(time.perf_counter() - t0)
                if resp.status != 201:
                    raise RuntimeError(f"append -> {resp.status}: {resp.body[:300]!r}")
            else:
                await append_all(api, ns, "hist", turns)
            t, job = await api.integrate_and_wait(ns, "hist")
            sweep["history"].setdefault(n, []).append(t)
            server["history"].setdefault(n, []).append(secs(job["finished_at"]) - secs(job["started_at"]))
        ctx.say(f"{n} new turns: fresh {ms(statistics.median(sweep['fresh'][n]))} ms, "
                f"after {cfg.history_turns} turns {ms(statistics.median(sweep['history'][n]))} ms")
    h = statistics.median(sweep["history"][cfg.headline_turns])
    f = statistics.median(sweep["fresh"][cfg.headline_turns])
    ratio = h / f
    details: dict[str, Any] = {
        "history_turns": cfg.history_turns, "new_turns": cfg.headline_turns, "reps": cfg.headline_reps,
        "history_build_s": round(build, 1), "history_build_turns_per_s": round(cfg.history_turns / build),
        "append_1000_p50_ms_first5": ms(statistics.median(batch_times[:5])),
        "append_1000_p50_ms_last5": ms(statistics.median(batch_times[-5:])),
        "append_1000_p50_ms_nothing_pending": ms(statistics.median(clean_appends)) if clean_appends else None,
        "first_integration_s": round(first_integration, 2),
        "sweep_ms": {kind: {str(n): [ms(x) for x in v] for n, v in d.items()} for kind, d in sweep.items()},
        "run_ms_p50": {kind: {str(n): ms(statistics.median(v)) for n, v in d.items()} for kind, d in server.items()},
    }
    note = (f"history built through the API in {build:.0f} s ({cfg.history_turns / build:,.0f} turns/s), integrated at "
            f"once in {first_integration:.1f} s; job run time p50 by new turns, fresh / history: " +
            ", ".join(f"{n}: {ms(statistics.median(server['fresh'][n])):.0f}/{ms(statistics.median(server['history'][n])):.0f} ms"
                      for n in sizes))
    figs = [
        Figure("history_ratio", f"scaling: integrate {cfg.headline_turns} new turns after {cfg.history_turns:,} "
               "integrated turns (median)", ms(h), "ms", ms(f), "same on a fresh session", round(ratio, 3),
               "ratio <= 1.3", ratio <= 1.3, details, note),
    ]
    if clean_appends:
        last5 = statistics.median(batch_times[-5:])
        clean = statistics.median(clean_appends)
        figs.append(Figure(
            "append_backlog", f"append 1000 turns with ~{cfg.history_turns // 1000}k turns pending (not integrated), p50",
            ms(last5), "ms", ms(clean), "same session, nothing pending", round(last5 / clean, 2)))
    return figs
