"""All SQL of the memory stream: writing and reinforcing memories, recall, forgetting."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from shared.kit import connector
from shared.kit.db import UnitOfWork
from shared.memories import vectors
from shared.models import Insight, Memory
from shared.models.base import columns
from shared.models.states import MemoryKind


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
"""Lock the agent (param: agent_id): its memories are written under this lock."""
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


INSERT_VECTORS = """
    INSERT INTO memory_embeddings (memory_id, agent_id, dimensions, embedding)
    SELECT m.id, m.agent_id, v.dimensions, CAST(v.embedding AS vector)
    FROM jsonb_to_recordset(CAST(%(vectors)s AS jsonb)) AS v(kind text, speaker text, content text, dimensions int,
                                                           embedding text)
    JOIN memories m ON m.agent_id = %(agent_id)s AND m.id > %(after)s AND m.job_id = %(id)s AND m.kind = v.kind
                   AND m.speaker IS NOT DISTINCT FROM v.speaker AND m.content = v.content
"""
"""The vectors of memories just inserted by the integration step (shared.jobs.runs.COMMIT_STEP),
found by what they say (unique in one write: a repeat is a near-duplicate) among the agent's
memories after ``after``, the newest id read under the agent's lock (params: vectors, agent_id,
after, id (the job)). Needs pgvector."""


_MEMORY = columns(Memory, "m", leave_out=("tsv", "doc_length"))
"""Fragment: the columns of a memory (aliased ``m``) a ``Memory`` record holds (not its index columns)."""

LIST_BEFORE = f"""
    SELECT {_MEMORY} FROM memories m
    WHERE m.agent_id = %(agent_id)s AND (CAST(%(before)s AS bigint) IS NULL OR m.id < %(before)s)
    ORDER BY m.id DESC LIMIT %(limit)s
"""
"""The agent's memories, newest first, before a memory id (params: agent_id, before or NULL, limit)."""


def list_before(db: UnitOfWork, agent_id: int, before: int | None, limit: int) -> list[Memory]:
    """The agent's memories, newest first, before a position (a memory id)."""
    rows = connector.fetch_all(db, LIST_BEFORE, {"agent_id": agent_id, "before": before, "limit": limit})
    return [Memory(**row._mapping) for row in rows]


DELETE_ONE = "DELETE FROM memories WHERE agent_id = %(agent_id)s AND id = %(id)s"
"""Forget one memory of an agent (params: agent_id, id)."""


def delete_one(db: UnitOfWork, agent_id: int, memory_id: int) -> bool:
    """Forget one memory of the agent; False when it has no such memory."""
    return connector.execute(db, DELETE_ONE, {"agent_id": agent_id, "id": memory_id}) > 0


# --- recall ------------------------------------------------------------------------------------
# Recall ranks by BM25 over the agent's memories (Lucene's form: idf = ln(1 + (N - df + 0.5) /
# (df + 0.5)), a term adds idf * tf / (tf + k1 * (1 - b + b * length / average length))), from the
# statistics that migration 0005's triggers keep: N and the total length in memory_corpus, df in
# memory_terms, a memory's length in memories.doc_length, and a term's frequency from the positions
# of its lexeme in the memory's tsvector. Two statements: QUERY_TERMS reads the query's terms and
# their statistics; shared.memories.ranking picks the terms that bring in candidates; the recall
# statement (recall_sql) scores the candidates and fuses the rankings.


class Term(NamedTuple):
    lexeme: str
    df: int  # how many of the agent's memories hold it


@dataclass(frozen=True)
class QueryTerms:
    terms: list[Term]  # the query's lexemes (to_tsvector('english'): stemmed, stopwords out)
    docs: int  # the agent's memories (N)
    total_length: int
    strict_query: str | None  # a strict query's tsquery (web-search syntax), as text

    @property
    def average_length(self) -> float:
        return max(1.0, self.total_length / self.docs) if self.docs else 1.0


QUERY_TERMS = """
    SELECT w.lexeme,
           -- one index lookup per term, whatever the planner thinks of the agent's share of the table
           coalesce((SELECT t.df FROM memory_terms t WHERE t.agent_id = %(agent_id)s AND t.lexeme = w.lexeme COLLATE "C"), 0),
           c.docs, c.total_length,
           CASE WHEN %(strict)s THEN CAST(websearch_to_tsquery('english', %(text)s) AS text) END
    FROM (SELECT coalesce(max(docs), 0) AS docs, coalesce(max(total_length), 0) AS total_length
          FROM memory_corpus WHERE agent_id = %(agent_id)s) c
    LEFT JOIN unnest(to_tsvector('english', %(text)s)) w ON true
"""
"""The query's terms with their document frequency among the agent's memories, and the agent's
corpus (params: agent_id, text, strict); rows (lexeme, df, docs, total_length, strict query), one
with a NULL lexeme when the query has no term."""


def query_terms(db: UnitOfWork, agent_id: int, text: str, strict: bool) -> QueryTerms:
    rows = connector.fetch_all(db, QUERY_TERMS, {"agent_id": agent_id, "text": text, "strict": strict})
    return QueryTerms(terms=[Term(r[0], int(r[1])) for r in rows if r[0] is not None], docs=int(rows[0][2]),
                      total_length=int(rows[0][3]), strict_query=rows[0][4] or None)


@dataclass(frozen=True)
class RecallQuery:
    agent_id: int
    terms: QueryTerms
    matching: str | None  # the tsquery (text) whose matches are the full-text candidates; None: none
    limit: int
    session: str | None
    kinds: list[str] | None
    k1: float  # BM25 term-frequency saturation
    b: float  # BM25 length normalization
    scored: int  # at most this many matches are scored, the shortest
    candidates: int  # each ranking hands this many to the fusion
    rrf_k: int
    w_vectors: float
    w_reflections: float  # a reflection's BM25 is weighed by this (an observation's by 1)
    agent_name: str = ""  # the asking agent: a memory of its own words is weighed by w_own_words
    w_own_words: float = 1.0
    explain: bool = False


def _bm25(memory: str) -> str:
    """What a query term (``w`` of words, ``t`` of _term_frequencies) adds to the score of ``memory``
    (a row with kind, speaker and doc_length): its BM25, weighed by w_reflections for a reflection and
    by w_own_words for what the asking agent said itself."""
    return (f"CASE WHEN {memory}.kind = '{MemoryKind.REFLECTION.value}' THEN %(w_reflections)s"
            f" WHEN {memory}.speaker = %(agent_name)s THEN %(w_own_words)s ELSE 1 END * w.idf * t.tf"
            f" / (t.tf + %(k1)s * (1 - %(b)s + %(b)s * {memory}.doc_length / %(average_length)s))")


def _term_frequencies(tsv: str) -> str:
    """The query's terms in the tsvector ``tsv``, rows (lexeme, tf): the query's lexemes are marked
    (weight A) and kept (ts_filter), so that only they are unnested, not the whole memory."""
    return (f"(SELECT lexeme COLLATE \"C\" AS lexeme, coalesce(array_length(positions, 1), 1) AS tf "
            f"FROM unnest(ts_filter(setweight({tsv}, 'A', CAST(%(lexemes)s AS text[])), '{{a}}')))")


# The filters of a recall request, on a memory ``m`` (params: session, kinds; NULL for any). Recall's
# statements are planned for the values of their parameters (RECALL_PLANNING), so a NULL filter
# costs nothing and the planner sees how many memories match the tsquery (GIN statistics).
_FILTERS = """(CAST(%(session)s AS text) IS NULL OR m.session_name = %(session)s)
          AND (CAST(%(kinds)s AS text[]) IS NULL OR m.kind = ANY(%(kinds)s))"""

# The candidates are the matches of the tsquery ``matching`` (NULL: none), at most `scored` of them,
# the shortest: the best BM25 for a word said once.
_FULL_TEXT = f"""
    words AS (
        SELECT lexeme, ln(1 + (%(docs)s - df + 0.5) / (df + 0.5)) AS idf
        FROM unnest(CAST(%(lexemes)s AS text[]), CAST(%(dfs)s AS float8[])) AS w(lexeme, df)),
    candidate AS MATERIALIZED (
        SELECT m.id, m.kind, m.speaker, m.tsv, m.doc_length, m.occurred_at FROM memories m
        WHERE m.agent_id = %(agent_id)s AND m.tsv @@ CAST(%(matching)s AS tsquery) AND {_FILTERS}
        ORDER BY m.doc_length, m.id DESC
        LIMIT %(scored)s),
    scored AS (
        SELECT c.id, c.occurred_at, sum({_bm25("c")}) AS score
        FROM candidate c CROSS JOIN LATERAL {_term_frequencies("c.tsv")} t JOIN words w ON w.lexeme = t.lexeme
        GROUP BY c.id, c.occurred_at),
    fts AS (
        SELECT id, occurred_at, score, row_number() OVER (ORDER BY score DESC, occurred_at DESC, id DESC) AS rank
        FROM scored ORDER BY rank LIMIT %(candidates)s)"""

# The rankings fused: full-text alone (ordered by BM25), or with the vector one by weighted
# reciprocal rank fusion. Rows (id, occurred_at, score, full_text_rank, full_text_score, vector_rank,
# vector_score).
_FTS_ONLY = """
    ranked AS (SELECT id, occurred_at, score, rank AS full_text_rank, score AS full_text_score,
                      NULL::bigint AS vector_rank, NULL::float8 AS vector_score FROM fts)"""
_FUSED = """
    ranked AS (
        SELECT id, max(occurred_at) AS occurred_at, sum(weight / (%(rrf_k)s + rank)) AS score,
               max(full_text_rank) AS full_text_rank, max(full_text_score) AS full_text_score,
               max(vector_rank) AS vector_rank, max(vector_score) AS vector_score
        FROM (SELECT id, occurred_at, 1.0 AS weight, rank, rank AS full_text_rank, score AS full_text_score,
                     NULL::bigint AS vector_rank, NULL::float8 AS vector_score FROM fts
              UNION ALL
              SELECT id, occurred_at, %(w_vectors)s, rank, NULL, NULL, rank, similarity FROM vec) u
        GROUP BY id)"""

# The best `limit` of the fused ranking, then their memories. Equal scores go to the most recent
# (occurred_at, then id): recency breaks ties, it never outweighs a word.
_BEST = f"""
    SELECT m.id, m.kind, m.speaker, m.content, m.importance, m.evidence, m.session_id, m.session_name, m.generation,
           m.occurred_at, m.created_at, m.reinforcements, m.last_seen_at, r.score,
           r.full_text_rank, r.full_text_score, r.vector_rank, r.vector_score,
           CASE WHEN %(explain)s AND r.full_text_rank IS NOT NULL THEN (
               SELECT jsonb_object_agg(t.lexeme, {_bm25("m")})
               FROM {_term_frequencies("m.tsv")} t JOIN words w ON w.lexeme = t.lexeme) END AS full_text_terms
    FROM (SELECT * FROM ranked ORDER BY score DESC, occurred_at DESC, id DESC LIMIT %(limit)s) r
    JOIN memories m ON m.id = r.id
    ORDER BY r.score DESC, r.occurred_at DESC, r.id DESC"""

RECALL_PLANNING = """SELECT set_config('plan_cache_mode', 'force_custom_plan', true),
                            set_config('hnsw.ef_search', %(ef_search)s, true)"""
"""For the rest of the transaction (params: ef_search): recall's statements are planned for their
parameters' values, never with a generic plan (the tsquery's matches decide between the GIN index
and the agent's rows), and HNSW looks at ``ef_search`` rows before the agent and filters apply."""

RECALL = f"WITH {_FULL_TEXT}, {_FTS_ONLY} {_BEST}"
"""The agent's memories for a query, best first, by BM25 (params: ``recall_params``)."""


@functools.cache
def recall_hybrid(dimensions: int) -> str:
    """RECALL with a vector ranking fused in, for query vectors of ``dimensions`` (an embedder's, set
    for the process). The length is written into the statement: the HNSW index of that length is on
    ``embedding::vector(n)`` where ``dimensions = n`` (vectors.hnsw_index)."""
    n = int(dimensions)
    distance = f"(e.embedding::vector({n})) <=> CAST(%(query_vector)s AS vector({n}))"
    vec = f"""
    vec AS (
        SELECT m.id, m.occurred_at, row_number() OVER (ORDER BY {distance}, m.id DESC) AS rank,
               1 - ({distance}) AS similarity
        FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id
        WHERE e.agent_id = %(agent_id)s AND e.dimensions = {n} AND {_FILTERS}
        ORDER BY {distance}, m.id DESC
        LIMIT %(candidates)s)"""
    return f"WITH {_FULL_TEXT}, {vec}, {_FUSED} {_BEST}"


def recall_params(q: RecallQuery, query_vector: Sequence[float] | None) -> dict[str, Any]:
    params: dict[str, Any] = {
        "agent_id": q.agent_id, "lexemes": [t.lexeme for t in q.terms.terms], "dfs": [t.df for t in q.terms.terms],
        "docs": q.terms.docs, "average_length": q.terms.average_length, "k1": q.k1, "b": q.b, "scored": q.scored,
        "candidates": q.candidates, "rrf_k": q.rrf_k, "w_vectors": q.w_vectors, "w_reflections": q.w_reflections,
        "agent_name": q.agent_name, "w_own_words": q.w_own_words,
        "limit": q.limit, "explain": q.explain, "session": q.session, "kinds": q.kinds or None,
        "matching": q.matching}
    if query_vector is not None:
        params["query_vector"] = vectors.literal(query_vector)
    return params


def recall(db: UnitOfWork, q: RecallQuery, query_vector: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The agent's memories for the query, best first, each with its score and its rank and score in
    each ranking fused. With a query vector, the vector ranking joins the full-text one."""
    if q.matching is None and query_vector is None:
        return []
    connector.fetch_all(db, RECALL_PLANNING, {"ef_search": str(max(40, min(q.candidates * 4, 1000)))})
    stmt = RECALL if query_vector is None else recall_hybrid(len(query_vector))
    return [dict(r._mapping) for r in connector.fetch_all(db, stmt, recall_params(q, query_vector))]


_INSIGHT = columns(Insight)
"""Fragment: the columns of an insight, as the model ``Insight`` has them."""

LATEST_INSIGHTS = f"""
    SELECT {_INSIGHT} FROM insights
    WHERE session_id = %(session_id)s AND agent_id = %(agent_id)s ORDER BY id DESC LIMIT %(limit)s
"""
"""A participant's latest insights in a session, newest first (params: session_id, agent_id, limit)."""


def latest_insights(db: UnitOfWork, session_id: int, agent_id: int, limit: int) -> list[Insight]:
    """The participant's latest insights in the session, newest first."""
    rows = connector.fetch_all(db, LATEST_INSIGHTS, {"session_id": session_id, "agent_id": agent_id, "limit": limit})
    return [Insight(**row._mapping) for row in rows]
