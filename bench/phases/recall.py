"""Recall: quality of the memories recalled on the LongMemEval_S dev set (bench/recall_dev.py, data we
did not write) against BM25 over the raw turns, with and without 100,000 distractor memories per
agent; and recall latency for an agent with 100,000 memories against a GET of one session.

In that order: the dev set is loaded, integrated and asked; then the latency part copies the dev
set's integrated memories (cycled) into one agent by COPY and asks the dev set's questions; then
the distractors go in. The generated recall set (bench/recall_set.py) is only the tests' now."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench import recall_dev, recall_dev_score, recall_dev_set
from bench.phases.common import Ctx, Figure, ms, pct

DEV_NS = "recall-dev"
DEV_QUICK_LIMIT = 12  # --quick: one question per category and half
DEV_DISTRACTORS = {"full": (100_000, 6), "quick": (10_000, 2)}  # per agent, agents (held-out questions)
AGENT = "recall-big"
SESSIONS = 50
# One log line per request would drown the phase's own output.
logging.getLogger("httpx").setLevel(logging.WARNING)


def _dev(ctx: Ctx, ds: recall_dev_set.DevSet, latency: Any) -> dict[str, Any]:
    """The dev set's measure (all of it; 12 questions with --quick); ``latency`` runs between the
    questions and the distractors."""
    quick = ctx.cfg.name == "quick"
    count, agents = DEV_DISTRACTORS["quick" if quick else "full"]
    limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
    with httpx.Client(base_url=f"http://127.0.0.1:{ctx.procs.api_port}", timeout=300, limits=limits,
                      headers={"Authorization": f"Bearer {ctx.procs.admin_key}"}) as http:
        return recall_dev.measure(http, DEV_NS, ds, dsn=ctx.dsn, distractors=count, distractor_questions=agents,
                                  concurrency=8, log=ctx.say, before_distractors=latency)


def _dev_figures(ctx: Ctx, dev: dict[str, Any]) -> list[Figure]:
    for line in recall_dev_score.table(dev).splitlines():
        ctx.say(line)
    held, tune, both = dev["halves"].get("heldout"), dev["halves"].get("tune"), dev["all"]
    head = held or both  # the held-out half is the headline: the tuning half is what ranking is tuned on
    label = "held-out half" if held else "all"
    loading = dev["loading"] or {}
    details = {k: v for k, v in dev.items() if k != "distractors"}
    cats = dev["by_category"].get("heldout" if held else "tune", {})
    note = ", ".join(f"{cat} {f['engram']['recall@10']}/{f['bm25']['recall@10']}" for cat, f in cats.items())
    bm = "BM25 over the question's raw turns, same run"
    figures = [
        Figure("recall_at10", f"recall@10, LongMemEval_S dev set, {label} ({head['questions']} questions)",
               head["engram"]["recall@10"], "", head["bm25"]["recall@10"], bm, head["ratio@10"], details=details,
               note=f"recall@10 per category ({label}), engram/BM25: {note}; loaded {loading.get('turns')} turns in "
                    f"{loading.get('load_s')} s, all integrated after {loading.get('integrated_s')} s"),
        Figure("recall_at5", f"recall@5, dev set, {label}", head["engram"]["recall@5"], "", head["bm25"]["recall@5"], bm,
               head["ratio@5"]),
    ]
    if tune is not None and held is not None:
        figures.append(Figure("recall_at10_tune", f"recall@10, dev set, tuning half ({tune['questions']} questions)",
                              tune["engram"]["recall@10"], "", tune["bm25"]["recall@10"], bm, tune["ratio@10"]))
        figures.append(Figure("recall_at10_all", f"recall@10, dev set, both halves ({both['questions']} questions)",
                              both["engram"]["recall@10"], "", both["bm25"]["recall@10"], bm, both["ratio@10"]))
    d = dev.get("distractors")
    if d is not None:
        ctx.say(f"with {d['distractors_per_agent']:,} distractors per agent ({d['questions']} questions): recall@10 "
                f"{d['with']['recall@10']} vs {d['without']['recall@10']} without, @5 {d['with']['recall@5']} vs "
                f"{d['without']['recall@5']}; recall p50 {d['recall_p50_ms']} ms")
        ratio = d["ratio@10"]
        figures.append(Figure(
            "recall_at10_distractors", f"recall@10 with {d['distractors_per_agent']:,} distractor memories per agent "
            f"({d['questions']} held-out questions)", d["with"]["recall@10"], "", d["without"]["recall@10"],
            "the same questions without them", ratio, "ratio >= 0.95", None if ratio is None else ratio >= 0.95, d,
            f"distractors: other agents' integrated memories, inserted by SQL after the agent's own "
            f"({d['insert_s']} s in all)"))
    return figures


def _rows(ctx: Ctx, agent_id: int, sessions: list[tuple[int, str]], count: int) -> list[tuple[Any, ...]]:
    """``count`` memories drawn from the dev set's integrated ones (kind, speaker, content,
    importance, number of turns cited), spread over six months and the sessions in time order."""
    templates = ctx.sql("SELECT m.kind, m.speaker, m.content, m.importance, cardinality(m.evidence) FROM memories m "
                        "JOIN agents a ON a.id = m.agent_id JOIN namespaces n ON n.id = a.namespace_id "
                        "WHERE n.name = %s ORDER BY m.id", (DEV_NS,))
    rng = random.Random(11)
    start = datetime(2025, 9, 1, tzinfo=UTC)
    now = datetime.now(UTC)
    per_session = -(-count // len(sessions))
    rows: list[tuple[Any, ...]] = []
    for i in range(count):
        sid, sname = sessions[i // per_session]
        seq = i % per_session + 1
        kind, speaker, content, importance, n_ev = templates[rng.randrange(len(templates))]
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


async def _latency(ctx: Ctx, questions: list[str]) -> tuple[list[Figure], str]:
    count = ctx.cfg.recall_memories
    fill_s, _ = await _fill(ctx, count)
    ctx.say(f"{count:,} memories inserted by COPY (+ ANALYZE) in {fill_s:.1f}s")
    api = ctx.api
    recalls = [api.client.build("POST", f"/v1/namespaces/{ctx.ns}/agents/{AGENT}/recall",
                                {"query": question, "limit": 10}) for question in questions]
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
    line = f"recall p50 {ms(p50)} ms p99 {ms(p99)} ms; GET session p50 {ms(g50)} ms p99 {ms(g99)} ms"
    ldetails = {"memories": count, "fill": "COPY into memories (contents drawn from the dev set's integrated "
                "memories), then ANALYZE; queries: the dev set's questions", "fill_s": round(fill_s, 1),
                "rounds": rounds, "warmup": warmup, "cpu_pct_of_core": cpu}
    return [
        Figure("recall_p50", f"recall p50, one agent with {count:,} memories, one client", ms(p50), "ms", ms(g50),
               "GET …/sessions/{s} p50, interleaved", round(p50 / g50, 2), "ratio <= 5", p50 / g50 <= 5, ldetails,
               f"{count:,} memories inserted by COPY in {fill_s:.0f} s"),
        Figure("recall_p99", "recall p99, same", ms(p99), "ms", ms(g99), "GET p99", round(p99 / g99, 2)),
    ], line


async def run(ctx: Ctx) -> list[Figure]:
    try:
        ds = recall_dev_set.load_set()
    except recall_dev_set.DevSetMissing as exc:
        ctx.say(f"{exc}; the recall phase is skipped (its latency part draws its memories from the set too)")
        return []
    ds = recall_dev_set.select(ds, limit=DEV_QUICK_LIMIT if ctx.cfg.name == "quick" else None)
    loop = asyncio.get_running_loop()
    latency: list[Figure] = []

    def between() -> None:  # in _dev's thread: the latency part on the phase's event loop
        figures, line = asyncio.run_coroutine_threadsafe(_latency(ctx, [q.text for q in ds.questions]), loop).result()
        latency.extend(figures)
        ctx.say(line)

    dev = await asyncio.to_thread(_dev, ctx, ds, between)
    return [*_dev_figures(ctx, dev), *latency]
