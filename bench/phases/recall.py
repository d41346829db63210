"""Recall: quality of the memories recalled for the recall set's questions against BM25 over the raw
turns, and recall latency for an agent with many memories against a GET of one session."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import recall_quality
from bench.phases.common import Ctx, Figure, ms, pct
from bench.recall_reference import bm25_rankings, report
from bench.recall_set import KINDS, RecallSet, build
from bench.recall_templates import CITIES, PEOPLE, PROJECTS, SERVICES

RECALL_NS = "recall"
RECALL_OFTEN_NS = "recall-often"
OFTEN = 10  # turns appended between two integrations of a session, in the second measure
AGENT = "recall-big"
SESSIONS = 50
# One log line per request would drown the phase's own output.
logging.getLogger("httpx").setLevel(logging.WARNING)


def _quality(ctx: Ctx, rs: RecallSet) -> dict[str, Any]:
    with httpx.Client(base_url=f"http://127.0.0.1:{ctx.procs.api_port}", timeout=120,
                      headers={"Authorization": f"Bearer {ctx.procs.admin_key}"}) as http:
        t0 = time.perf_counter()
        recall_quality.load(http, RECALL_NS, rs)
        t1 = time.perf_counter()
        recall_quality.integrate_all(http, RECALL_NS, rs)
        t2 = time.perf_counter()
        per_memory, latencies = recall_quality.ask(http, RECALL_NS, rs)
        # The same set, each session integrated every OFTEN turns, as an agent that integrates often.
        recall_quality.load_integrating_every(http, RECALL_OFTEN_NS, rs, OFTEN)
        often, _ = recall_quality.ask(http, RECALL_OFTEN_NS, rs)
    return {"engram": recall_quality.score(rs, per_memory), "bm25": report(rs, bm25_rankings(rs, 10)),
            "often": recall_quality.score(rs, often),
            "load_s": round(t1 - t0, 1), "integrate_s": round(t2 - t1, 1),
            "ask_p50_ms": ms(statistics.median(latencies))}


def _rows(ctx: Ctx, agent_id: int, sessions: list[tuple[int, str]], count: int) -> list[tuple[Any, ...]]:
    """Memories shaped like the integrated ones of the recall set, names swapped so contents vary,
    spread over six months and the sessions in time order."""
    templates = ctx.sql("SELECT m.kind, m.speaker, m.content, m.importance, cardinality(m.evidence) FROM memories m "
                        "JOIN agents a ON a.id = m.agent_id JOIN namespaces n ON n.id = a.namespace_id "
                        "WHERE n.name = %s ORDER BY m.id", (RECALL_NS,))
    groups = [list(PEOPLE), [s for s, _ in SERVICES], list(PROJECTS), list(CITIES)]
    group_of = {name: g for g in groups for name in g}
    names = re.compile(r"\b(" + "|".join(sorted(map(re.escape, group_of), key=len, reverse=True)) + r")\b")
    rng = random.Random(11)
    start = datetime(2025, 9, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    per_session = -(-count // len(sessions))
    rows: list[tuple[Any, ...]] = []
    for i in range(count):
        sid, sname = sessions[i // per_session]
        seq = i % per_session + 1
        kind, speaker, content, importance, n_ev = templates[rng.randrange(len(templates))]
        content = names.sub(lambda m: rng.choice(group_of[m.group(0)]), content)
        evidence = [seq] if kind == "observation" else sorted(rng.sample(range(1, seq + 1), min(seq, n_ev or 1)))
        occurred = start + timedelta(days=180 * i / count, seconds=rng.randint(0, 600))
        rows.append((agent_id, sid, sname, 1, kind, speaker, content, importance, evidence,
                     str(uuid.UUID(int=rng.getrandbits(128))), occurred, now, now))
    return rows


async def _fill(ctx: Ctx, count: int) -> tuple[float, int]:
    await ctx.api.agent(ctx.ns, AGENT)
    for k in range(SESSIONS):
        await ctx.api.session(ctx.ns, f"{AGENT}-{k:02d}", [AGENT])
    agent_id = ctx.sql("SELECT a.id FROM agents a JOIN namespaces n ON n.id = a.namespace_id "
                       "WHERE n.name = %s AND a.name = %s", (ctx.ns, AGENT))[0][0]
    sessions = [(r[0], r[1]) for r in ctx.sql(
        "SELECT s.id, s.name FROM sessions s JOIN namespaces n ON n.id = s.namespace_id "
        "WHERE n.name = %s AND s.name LIKE %s ORDER BY s.name", (ctx.ns, f"{AGENT}-%"))]
    rows = _rows(ctx, agent_id, sessions, count)
    t0 = time.perf_counter()
    cols = ("agent_id, session_id, session_name, generation, kind, speaker, content, importance, evidence, job_id, "
            "occurred_at, created_at, last_seen_at")
    with ctx.db.cursor() as cur, cur.copy(f"COPY memories ({cols}) FROM STDIN") as cp:
        for row in rows:
            cp.write_row(row)
    ctx.sql("ANALYZE memories")
    return time.perf_counter() - t0, int(agent_id)


async def run(ctx: Ctx) -> list[Figure]:
    rs = build()
    q = await asyncio.to_thread(_quality, ctx, rs)
    eng, ref = q["engram"], q["bm25"]
    for k in (5, 10):
        ctx.say(f"recall@{k}: engram {eng[f'recall@{k}']}, BM25 {ref[f'recall@{k}']}")
    by_kind = {kind: {"engram": eng["by_kind"][kind], "bm25": ref["by_kind"][kind]} for kind in KINDS}
    for kind, v in by_kind.items():
        ctx.say(f"  {kind:18s} @5 {v['engram']['recall@5']} vs {v['bm25']['recall@5']}, "
                f"@10 {v['engram']['recall@10']} vs {v['bm25']['recall@10']}")
    qdetails = {"questions": eng["questions"], "turns": sum(len(c.turns) for c in rs.conversations),
                "sessions": len(rs.conversations), "by_kind": by_kind, "load_s": q["load_s"],
                "integrate_s": q["integrate_s"], "recall_p50_ms_small_agents": q["ask_p50_ms"]}
    kinds_note = ", ".join(f"{kind} {v['engram']['recall@10']}/{v['bm25']['recall@10']}" for kind, v in by_kind.items())

    count = ctx.cfg.recall_memories
    fill_s, _ = await _fill(ctx, count)
    ctx.say(f"{count:,} memories inserted by COPY (+ ANALYZE) in {fill_s:.1f}s")
    api = ctx.api
    recalls = [api.client.build("POST", f"/v1/namespaces/{ctx.ns}/agents/{AGENT}/recall",
                                {"query": question.text, "limit": 10}) for question in rs.questions]
    get = api.client.build("GET", f"/v1/namespaces/{ctx.ns}/sessions/{AGENT}-00")
    warmup, rounds = 30, ctx.cfg.recall_rounds
    t_recall: list[float] = []
    t_get: list[float] = []
    snap = ctx.cpu.snapshot()
    for i in range(warmup + rounds):
        t0 = time.perf_counter()
        r1 = await api.client.send(recalls[i % len(recalls)])
        t1 = time.perf_counter()
        r2 = await api.client.send(get)
        t2 = time.perf_counter()
        if r1.status != 200 or r2.status != 200:
            raise RuntimeError(f"recall -> {r1.status}, get -> {r2.status}: {r1.body[:300]!r}")
        if i >= warmup:
            t_recall.append(t1 - t0)
            t_get.append(t2 - t1)
    cpu = ctx.cpu_since(snap)
    p50, p99, g50, g99 = pct(t_recall, 50), pct(t_recall, 99), pct(t_get, 50), pct(t_get, 99)
    ctx.say(f"recall p50 {ms(p50)} ms p99 {ms(p99)} ms; GET session p50 {ms(g50)} ms p99 {ms(g99)} ms")
    ldetails = {"memories": count, "fill": "COPY into memories (contents from the recall set's integrated memories, "
                "names varied), then ANALYZE", "fill_s": round(fill_s, 1), "rounds": rounds, "warmup": warmup,
                "cpu_pct_of_core": cpu}
    r10 = eng["recall@10"] / ref["recall@10"]
    r5 = eng["recall@5"] / ref["recall@5"]
    often = q["often"]
    ctx.say(f"integrated every {OFTEN} turns: recall@10 {often['recall@10']}, @5 {often['recall@5']}")
    often_kinds = ", ".join(f"{kind} {often['by_kind'][kind]['recall@10']}" for kind in KINDS)
    return [
        Figure("recall_at10", f"recall quality: evidence recall@10 ({eng['questions']} questions)", eng["recall@10"], "",
               ref["recall@10"], "BM25 over the raw turns, same run", round(r10, 3), "ratio >= 1.15", r10 >= 1.15,
               qdetails, f"recall@10 per kind, engram/BM25: {kinds_note}"),
        Figure("recall_at5", "recall quality: evidence recall@5", eng["recall@5"], "", ref["recall@5"],
               "BM25 over the raw turns, same run", round(r5, 3)),
        Figure("recall_at10_often", f"recall@10, each session integrated every {OFTEN} turns", often["recall@10"], "",
               ref["recall@10"], "BM25 over the raw turns, same run", round(often["recall@10"] / ref["recall@10"], 3),
               details={"by_kind": often["by_kind"], "recall@5": often["recall@5"], "every_turns": OFTEN},
               note=f"recall@10 per kind: {often_kinds}"),
        Figure("recall_p50", f"recall p50, one agent with {count:,} memories, one client", ms(p50), "ms", ms(g50),
               "GET …/sessions/{s} p50, interleaved", round(p50 / g50, 2), "ratio <= 5", p50 / g50 <= 5, ldetails,
               f"{count:,} memories inserted by COPY in {fill_s:.0f} s"),
        Figure("recall_p99", "recall p99, same", ms(p99), "ms", ms(g99), "GET p99", round(p99 / g99, 2)),
    ]
