"""All SQL of the memory stream: writing and reinforcing memories, recall, forgetting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import any_, bindparam, delete, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.types import String

from shared.db import rowcount
from shared.memories import vectors
from shared.models import Insight, Memory


class Known(NamedTuple):
    id: int
    kind: str
    text: str  # what near-duplicates are compared on: speaker and content


# Lock the agent (two sessions integrating it cannot both add one memory), then read its most
# recent memories, the window near-duplicates are looked for in. Two statements: under READ
# COMMITTED a statement reads from the snapshot it started with, so the read must come after the
# lock has been granted to see what the previous holder committed. The window bounds the cost of
# an integration however much the agent remembers.
LOCK_AGENT = "SELECT id FROM agents WHERE id = %(agent_id)s FOR UPDATE"
RECENT = """
    SELECT id, kind, coalesce(speaker || ': ', '') || content FROM memories WHERE agent_id = %(agent_id)s
    AND id > %(after)s ORDER BY id DESC LIMIT %(window)s
"""
"""The agent's ``window`` latest memories after the id ``after`` (params: agent_id, after, window),
rows of ``Known``, newest first. An agent's memories are written under its lock, so those written
since a reader held it have greater ids than any it read."""

COUNT_BETWEEN = "SELECT count(*) FROM memories WHERE agent_id = %(agent_id)s AND id BETWEEN %(low)s AND %(high)s"
"""How many of the agent's memories have ids in [low, high]: fewer than were read there means some
were deleted (forgotten, or their evidence redacted) since."""


WINDOW_UNCHANGED = """(NOT EXISTS (SELECT FROM memories WHERE agent_id = %(agent_id)s AND id > %(high)s)
    AND (SELECT count(*) FROM memories WHERE agent_id = %(agent_id)s AND id BETWEEN %(low)s AND %(high)s) = %(kept)s)"""
"""A condition: the agent's latest memories are still the window a write was sifted against: none
after its newest (``high``), and ``kept`` of them from its oldest (``low``) to ``high``, none deleted
(params: agent_id, low, high, kept). True for a NULL agent_id and kept 0."""


def window_deltas_sql(people: str) -> str:
    """For the agents of ``people`` (a relation with an ``agent_id`` column), as read without their
    lock: the memories after the newest one the process kept of each (params: agents and highs, the
    kept windows' agent ids and newest ids; window), rows (agent_id, id, kind, text) newest first."""
    return f"""
        SELECT people.agent_id, m.id, m.kind, m.text
        FROM (SELECT DISTINCT agent_id FROM {people} AS agents) people
        LEFT JOIN unnest(CAST(%(agents)s AS bigint[]), CAST(%(highs)s AS bigint[])) AS kept(agent_id, high)
             ON kept.agent_id = people.agent_id
        CROSS JOIN LATERAL (
            SELECT id, kind, coalesce(speaker || ': ', '') || content AS text FROM memories
            WHERE agent_id = people.agent_id AND id > coalesce(kept.high, 0) ORDER BY id DESC LIMIT %(window)s) m"""


# The writes of an integration step into an agent's stream, as parts of one statement
# (shared.jobs.repository.COMMIT_STEP); ``{when}`` is the condition under which they apply.
INSERT_MEMORIES = """
    INSERT INTO memories (agent_id, session_id, session_name, generation, kind, speaker, content, importance,
                          evidence, occurred_at, job_id)
    SELECT %(agent_id)s, %(session_id)s, %(session_name)s, %(generation)s, m.kind, m.speaker, m.content,
           m.importance, m.evidence, m.occurred_at, %(id)s
    FROM jsonb_to_recordset(CAST(%(memories)s AS jsonb))
         AS m(kind text, speaker text, content text, importance smallint, evidence bigint[], occurred_at timestamptz)
    WHERE {when}"""
"""Insert memories in the order of the JSON list (params: agent_id, session_id, session_name,
generation, id (the job), memories)."""

REINFORCE = """
    UPDATE memories m SET reinforcements = m.reinforcements + r.times, last_seen_at = now()
    FROM (SELECT id, count(*) AS times FROM unnest(CAST(%(reinforce)s AS bigint[])) AS id GROUP BY id) r
    WHERE m.id = r.id AND {when}"""
"""A near-duplicate was seen again: count it on the memory, and note when (param: reinforce, ids)."""

INSERT_VECTORS = """
    INSERT INTO memory_embeddings (memory_id, agent_id, dimensions, embedding)
    SELECT m.id, m.agent_id, v.dimensions, CAST(v.embedding AS vector)
    FROM jsonb_to_recordset(CAST(%(vectors)s AS jsonb)) AS v(kind text, speaker text, content text, dimensions int,
                                                           embedding text)
    JOIN memories m ON m.agent_id = %(agent_id)s AND m.id > %(after)s AND m.job_id = %(id)s AND m.kind = v.kind
                   AND m.speaker IS NOT DISTINCT FROM v.speaker AND m.content = v.content
"""
"""The vectors of memories just inserted by INSERT_MEMORIES, found by what they say (unique in one
write: a repeat is a near-duplicate) among the agent's memories after ``after``, the newest id read
under the agent's lock (params: vectors, agent_id, after, id (the job)). Needs pgvector."""


def list_before(db: Session, agent_id: int, before: int | None, limit: int) -> list[Memory]:
    """The agent's memories, newest first, before a position (a memory id)."""
    q = select(Memory).where(Memory.agent_id == agent_id).order_by(Memory.id.desc()).limit(limit)
    if before is not None:
        q = q.where(Memory.id < before)
    return list(db.execute(q).scalars())


def delete_one(db: Session, agent_id: int, memory_id: int) -> bool:
    """Forget one memory of the agent; False when it has no such memory."""
    return rowcount(db.execute(delete(Memory).where(Memory.agent_id == agent_id, Memory.id == memory_id))) > 0


def delete_citing(db: Session, session_id: int, generation: int, seq: int) -> tuple[int, int]:
    """Delete every insight and memory citing a turn of the session as evidence; (insights,
    memories) deleted. Insights are always of the session's current generation (a truncate
    deletes them); memories carry the generation their evidence belongs to."""
    insights = rowcount(db.execute(
        delete(Insight).where(Insight.session_id == session_id, literal(seq) == any_(Insight.evidence))))
    memories = rowcount(db.execute(delete(Memory).where(
        Memory.session_id == session_id, Memory.generation == generation, literal(seq) == any_(Memory.evidence))))
    return insights, memories


# --- recall ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecallQuery:
    agent_id: int
    text: str
    strict: bool  # web-search syntax: every term must match
    limit: int
    session: str | None
    kinds: list[str] | None
    w_relevance: float
    w_importance: float
    w_recency: float
    w_reflections: float
    w_vectors: float
    rrf_k: int
    candidates: int
    scan: int


# Recall ranks in two steps (DESIGN.md section 2, Recall; after Park et al. 2023).
# 1. Full-text: the query is an OR of its stemmed terms (english configuration), or web-search
#    syntax when strict. Each match scores relevance + recency + importance: relevance is
#    ts_rank_cd (cover density: terms near each other count more) normalized by the memory's
#    length (flag 1) and by the best match of its kind; recency is where the memory's occurred_at
#    falls between the oldest and the newest match (what is said last about a thing is what holds
#    now); importance is 1-10 over 10. Only the `scan` most recent matches are ranked: ranking
#    reads each match's tsvector, and a common word can match much of a large memory.
#    Observations and reflections are ranked apart, so that long reflections do not crowd out
#    the turns.
# 2. The rankings (observations, reflections, and vectors when there is an embedder) are fused by
#    weighted reciprocal rank fusion: weight / (k + rank), summed. BENCHMARKS.md has the figures
#    against plain ts_rank and the alternatives that were measured.
_QUERY = """
    WITH q AS (
        SELECT CASE WHEN :strict THEN websearch_to_tsquery('english', :text)
                    ELSE replace(plainto_tsquery('english', :text)::text, ' & ', ' | ')::tsquery END AS query
    ),
    recent AS (
        SELECT m.id FROM memories m, q
        WHERE m.agent_id = :agent_id AND m.tsv @@ q.query {filters}
        ORDER BY m.id DESC
        LIMIT :scan
    ),
    matches AS (
        SELECT m.id, m.kind, m.importance, extract(epoch FROM m.occurred_at) AS t,
               ts_rank_cd(m.tsv, q.query, 1) AS r
        FROM recent JOIN memories m ON m.id = recent.id, q
        ORDER BY r DESC, m.id DESC
        LIMIT :candidates
    ),
    scored AS (
        SELECT id, kind,
               :w_rel * r / nullif(max(r) OVER (PARTITION BY kind), 0)
               + :w_rec * coalesce((t - min(t) OVER ()) / nullif(max(t) OVER () - min(t) OVER (), 0), 1)
               + :w_imp * importance / 10.0 AS s
        FROM matches
    ),
    fts AS (
        SELECT id, row_number() OVER (PARTITION BY kind ORDER BY s DESC, id DESC) AS rank,
               CASE kind WHEN 'reflection' THEN :w_refl ELSE 1.0 END AS weight
        FROM scored
    ){vector_cte},
    fused AS (
        SELECT id, sum(weight / (:rrf_k + rank)) AS score
        FROM (SELECT id, rank, weight FROM fts {vector_union}) r GROUP BY id
    )
    SELECT m.id, m.kind, m.speaker, m.content, m.importance, m.evidence, m.session_id, m.session_name, m.generation,
           m.occurred_at,
           m.created_at, m.reinforcements, m.last_seen_at, f.score
    FROM fused f JOIN memories m ON m.id = f.id
    ORDER BY f.score DESC, m.id DESC
    LIMIT :limit
"""


def recall(db: Session, q: RecallQuery, query_vector: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The agent's memories for the query, best first, each with its score. With a query vector,
    the vector ranking joins the full-text one in the fusion."""
    filters = ""
    params: dict[str, Any] = {
        "agent_id": q.agent_id, "text": q.text, "strict": q.strict, "candidates": q.candidates, "scan": q.scan,
        "rrf_k": q.rrf_k,
        "w_refl": q.w_reflections, "w_vec": q.w_vectors, "w_rel": q.w_relevance, "w_imp": q.w_importance, "w_rec": q.w_recency,
        "limit": q.limit}
    if q.session is not None:
        filters += " AND m.session_name = :session"
        params["session"] = q.session
    if q.kinds:
        filters += " AND m.kind = ANY(:kinds)"
        params["kinds"] = q.kinds
    vector_cte = vector_union = ""
    if query_vector is not None:
        vectors.set_search_breadth(db, q.candidates)
        vector_cte = vectors.candidates_cte(len(query_vector)).format(filters=filters)
        vector_union = "UNION ALL SELECT id, rank, :w_vec FROM vec"
        params["query_vector"] = vectors.literal(query_vector)
    stmt = text(_QUERY.format(filters=filters, vector_cte=vector_cte, vector_union=vector_union))
    if q.kinds:
        stmt = stmt.bindparams(bindparam("kinds", type_=ARRAY(String())))
    return [dict(r._mapping) for r in db.execute(stmt, params)]


def latest_insights(db: Session, session_id: int, agent_id: int, limit: int) -> list[Insight]:
    """The participant's latest insights in the session, newest first."""
    return list(db.execute(
        select(Insight).where(Insight.session_id == session_id, Insight.agent_id == agent_id)
        .order_by(Insight.id.desc()).limit(limit)).scalars())
