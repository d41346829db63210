"""Distractors for the dev set's measure (see bench/recall_dev.py, **Distractors**): BENCH ONLY,
other agents' memories written straight into the ``memories`` table of a subset's agents, then
that subset asked again and compared."""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx

from bench.recall_dev_api import Found, Log, ask, call
from bench.recall_dev_score import figures, recall_at
from bench.recall_dev_set import CATEGORIES, DevSet, Question
from bench.recall_reference import KS

DISTRACTOR_SUFFIX = "-distractors"

# A BENCH-ONLY DIRECT WRITE: Engram's API never inserts memories that way. Copies of the other
# agents' integrated memories (job_id set: no distractor of an earlier call) into one agent's stream.
_DISTRACT = """
    WITH own AS (SELECT DISTINCT md5(content) AS h FROM memories WHERE agent_id = %(agent_id)s),
    sources AS (
        SELECT DISTINCT ON (m.kind, md5(m.content)) m.kind, m.speaker, m.content, m.importance, m.occurred_at,
               a.name AS agent_name
        FROM memories m JOIN agents a ON a.id = m.agent_id
        WHERE a.namespace_id = %(namespace_id)s AND m.agent_id <> %(agent_id)s AND m.job_id IS NOT NULL
          AND NOT (a.name = ANY(%(excluded)s)) AND md5(m.content) NOT IN (SELECT h FROM own)
        ORDER BY m.kind, md5(m.content), m.id
    ),
    pool AS (SELECT row_number() OVER (ORDER BY md5(kind || content)) - 1 AS i, * FROM sources),
    size AS (SELECT count(*) AS n FROM pool)
    INSERT INTO memories (agent_id, session_id, session_name, generation, kind, speaker, content, importance,
                          evidence, job_id, occurred_at, created_at, last_seen_at)
    SELECT %(agent_id)s, %(session_id)s, %(session_name)s, 1, p.kind,
           CASE WHEN p.speaker = p.agent_name THEN %(agent)s ELSE p.speaker END, p.content, p.importance,
           ARRAY[g.n + 1]::bigint[], NULL, p.occurred_at, now(), now()
    FROM generate_series(0, %(count)s - 1) AS g(n) CROSS JOIN size JOIN pool p ON p.i = g.n %% greatest(size.n, 1)
    ORDER BY g.n"""


def add_distractors(dsn: str, http: httpx.Client, ns: str, question: Question, ds: DevSet, count: int) -> dict[str, Any]:
    """BENCH ONLY, a direct SQL write: ``count`` distractor memories for the question's agent, in a
    session ``<agent>-distractors`` made through the API (see the module docstring). ``ds`` must
    hold every conversation loaded in ``ns`` (to leave out those sharing the question's evidence
    sessions). Returns the seconds the insert took and how many distinct memories it cycled."""
    import psycopg

    session = f"{question.agent}{DISTRACTOR_SUFFIX}"
    call(http, "POST", f"/v1/namespaces/{ns}/sessions", ok=(409,), json={"name": session})
    wanted = set(question.evidence_sessions)
    excluded = [c.agent for c in ds.conversations
                if c.agent != question.agent and wanted & {s.source.split("~")[0] for s in c.sessions}]
    with psycopg.connect(dsn, autocommit=True) as db:
        row = db.execute("SELECT n.id, a.id, s.id FROM namespaces n JOIN agents a ON a.namespace_id = n.id "
                         "JOIN sessions s ON s.namespace_id = n.id WHERE n.name = %s AND a.name = %s AND s.name = %s",
                         (ns, question.agent, session)).fetchone()
        if row is None:
            raise RuntimeError(f"no agent {question.agent} or session {session} in namespace {ns}")
        namespace_id, agent_id, session_id = row
        t0 = time.perf_counter()
        with db.transaction():
            inserted = db.execute(_DISTRACT, {"agent_id": agent_id, "namespace_id": namespace_id, "session_id": session_id,
                                              "session_name": session, "agent": question.agent, "count": count,
                                              "excluded": excluded}).rowcount
        seconds = time.perf_counter() - t0
        distinct = db.execute("SELECT count(DISTINCT md5(content)) FROM memories WHERE agent_id = %s AND session_id = %s",
                              (agent_id, session_id)).fetchone()
    if inserted != count:
        raise RuntimeError(f"{question.agent}: {inserted} distractors inserted, {count} wanted (no other agents?)")
    return {"agent": question.agent, "inserted": inserted, "distinct": distinct[0] if distinct else None,
            "excluded_agents": excluded, "insert_s": round(seconds, 1)}


def distractor_subset(ds: DevSet, n: int) -> list[Question]:
    """``n`` asked held-out questions (tuning ones if none is held out), the categories in turn: the
    first of each category in rank order, then the second of each, and so on."""
    asked = [q for q in ds.questions if q.asked]
    half = "heldout" if any(q.half == "heldout" for q in asked) else "tune"
    mine = sorted((q for q in asked if q.half == half), key=lambda q: q.rank)
    turn = {q.id: sum(p.category == q.category for p in mine[:i]) for i, q in enumerate(mine)}
    return sorted(mine, key=lambda q: (turn[q.id], CATEGORIES.index(q.category)))[:n]


def with_distractors(http: httpx.Client, ns: str, ds: DevSet, dsn: str, count: int, questions: int,
                     before: dict[str, Found], log: Log = print) -> dict[str, Any]:
    """Add ``count`` distractors to the agents of a subset of questions, ask them again, compare."""
    import psycopg

    subset = distractor_subset(ds, questions)
    inserts = []
    for q in subset:
        inserts.append(add_distractors(dsn, http, ns, q, ds, count))
        log(f"{count:,} distractors for {q.agent} ({q.category}) in {inserts[-1]['insert_s']}s "
            f"({inserts[-1]['distinct']:,} distinct)")
    with psycopg.connect(dsn, autocommit=True) as db:
        db.execute("ANALYZE memories")
    after, latencies = ask(http, ns, subset)
    out = figures(subset, {"without": before, "with": after}, ratios=("with", "without"))
    out.update({"distractors_per_agent": count, "question_ids": [q.id for q in subset], "inserts": inserts,
                "insert_s": round(sum(i["insert_s"] for i in inserts), 1),
                "recall_p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
                "per_question": [{"id": q.id, "category": q.category,
                                  **{f"{name}@{k}": round(recall_at(found[q.id], q.evidence, k), 3)
                                     for name, found in (("without", before), ("with", after)) for k in KS}}
                                 for q in subset]})
    return out
