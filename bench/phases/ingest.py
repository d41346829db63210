"""Ingestion: turns per second through POST …/turns in batches of 500, against the same rows by a
raw multi-row INSERT and by COPY."""

from __future__ import annotations

import statistics
import time
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.phases.common import Ctx, Figure, ms


async def run(ctx: Ctx) -> list[Figure]:
    cfg, api, ns, text = ctx.cfg, ctx.api, ctx.ns, ctx.text
    size = 500
    await api.agent(ns, "ing-a")
    await api.agent(ns, "ing-b")
    await api.session(ns, "ingest", ["ing-a", "ing-b"])
    batches = [text.turns(["ing-a", "ing-b"], size) for _ in range(cfg.ingest_warmup + cfg.ingest_batches)]
    path = f"/v1/namespaces/{ns}/sessions/ingest/turns"
    raws = [api.client.build("POST", path, {"turns": b}) for b in batches]

    cols = "session_id, seq, speaker, content, visible_to, metadata"
    ctx.sql("DROP TABLE IF EXISTS bench_turns")
    ctx.sql("CREATE TABLE bench_turns (LIKE turns INCLUDING ALL)")  # LIKE copies no foreign key

    def rows(sid: int, b: int) -> list[tuple[Any, ...]]:
        return [(sid, b * size + j + 1, t["speaker"], t["content"], None, Jsonb({})) for j, t in enumerate(batches[b])]

    insert_sql = f"INSERT INTO bench_turns ({cols}) VALUES " + ",".join(["(%s, %s, %s, %s, %s, %s)"] * size)
    api_times, insert_times, copy_times = [], [], []
    ctx.profiler.start("ingest", {"api": ctx.procs.pid("api")})
    try:
        with psycopg.connect(ctx.dsn) as conn:
            # Interleaved, batch by batch: API append, the same rows by INSERT, then by COPY.
            for b, raw in enumerate(raws):
                t0 = time.perf_counter()
                resp = await api.client.send(raw)
                elapsed = time.perf_counter() - t0
                if resp.status != 201:
                    raise RuntimeError(f"append -> {resp.status}: {resp.body[:300]!r}")
                params = [v for row in rows(1, b) for v in row]
                t0 = time.perf_counter()
                conn.execute(insert_sql, params)
                conn.commit()
                t_insert = time.perf_counter() - t0
                data = rows(2, b)
                t0 = time.perf_counter()
                with conn.cursor() as cur, cur.copy(f"COPY bench_turns ({cols}) FROM STDIN") as cp:
                    for row in data:
                        cp.write_row(row)
                conn.commit()
                t_copy = time.perf_counter() - t0
                if b >= cfg.ingest_warmup:
                    api_times.append(elapsed)
                    insert_times.append(t_insert)
                    copy_times.append(t_copy)
    finally:
        ctx.profiler.stop()
    ctx.sql("DROP TABLE bench_turns")

    api_rate = size / statistics.median(api_times)
    ins_rate = size / statistics.median(insert_times)
    copy_rate = size / statistics.median(copy_times)
    ctx.say(f"append {api_rate:.0f} turns/s; raw INSERT {ins_rate:.0f}/s; COPY {copy_rate:.0f}/s")
    details: dict[str, Any] = {"batch": size, "batches": cfg.ingest_batches, "session": "2 participants, turns visible to all",
               "api_batch_p50_ms": ms(statistics.median(api_times)), "api_batch_max_ms": ms(max(api_times)),
               "insert_batch_p50_ms": ms(statistics.median(insert_times)),
               "copy_batch_p50_ms": ms(statistics.median(copy_times))}
    ratio = api_rate / ins_rate
    note = (f"per 500-turn batch (p50): API {ms(statistics.median(api_times)):.1f} ms, INSERT "
            f"{ms(statistics.median(insert_times)):.1f} ms, COPY {ms(statistics.median(copy_times)):.1f} ms")
    return [
        Figure("ingest_rate", "ingestion: turns/s through POST …/turns (batches of 500)", round(api_rate), "turns/s",
               round(ins_rate), "raw psycopg multi-row INSERT, same rows and columns", round(ratio, 3),
               "ratio >= 0.6", ratio >= 0.6, details, note),
        Figure("ingest_vs_copy", "ingestion vs COPY (second reference)", round(api_rate), "turns/s", round(copy_rate),
               "raw psycopg COPY, same rows", round(api_rate / copy_rate, 3)),
    ]
