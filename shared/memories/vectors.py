"""All SQL of vector recall (pgvector). Embeddings live in `memory_embeddings`, a table the
migrations create only where PostgreSQL has pgvector; without it, recall is full-text only."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session


def available(db: Session) -> bool:
    """Whether this database can hold embeddings (pgvector was there when it was migrated)."""
    return bool(db.execute(text("SELECT to_regclass('memory_embeddings') IS NOT NULL")).scalar_one())


def literal(vector: Sequence[float]) -> str:
    """A vector in pgvector's text form, bound as a parameter and cast in SQL."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def ensure_index(db: Session, dimensions: int) -> None:
    """The HNSW index (cosine distance) for vectors of this length: a vector column without a fixed
    length is indexed through a cast, one partial index per length in use."""
    dims = int(dimensions)
    db.execute(text("SELECT pg_advisory_xact_lock(7340210002)"))  # several processes may start at once
    db.execute(text(
        f"CREATE INDEX IF NOT EXISTS ix_memory_embeddings_hnsw_{dims} ON memory_embeddings "
        f"USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WHERE dimensions = {dims}"))


def insert(db: Session, agent_id: int, rows: Sequence[tuple[int, Sequence[float]]]) -> None:
    """Store (memory id, vector) pairs of the agent."""
    if rows:
        db.execute(
            text("INSERT INTO memory_embeddings (memory_id, agent_id, dimensions, embedding) "
                 "VALUES (:memory_id, :agent_id, :dimensions, CAST(:embedding AS vector))"),
            [{"memory_id": m, "agent_id": agent_id, "dimensions": len(v), "embedding": literal(v)} for m, v in rows])


def candidates_cte(dimensions: int) -> str:
    """The vector ranking for recall: a CTE `vec(id, occurred_at, rank, similarity)` of the agent's memories nearest
    to the query vector (`%(query_vector)s`; cosine similarity), filtered like the full-text one
    (`{filters}` on `m`), at most `%(candidates)s` of them."""
    dims = int(dimensions)
    distance = f"(e.embedding::vector({dims})) <=> CAST(%(query_vector)s AS vector({dims}))"
    return f"""
    vec AS (
        SELECT m.id, m.occurred_at, row_number() OVER (ORDER BY {distance}, m.id DESC) AS rank,
               1 - ({distance}) AS similarity
        FROM memory_embeddings e JOIN memories m ON m.id = e.memory_id
        WHERE e.agent_id = %(agent_id)s AND e.dimensions = {dims} {{filters}}
        ORDER BY {distance}, m.id DESC
        LIMIT %(candidates)s
    )"""


def set_search_breadth(db: Session, candidates: int) -> None:
    """HNSW returns at most ef_search rows before the agent and filters apply: look at enough."""
    db.execute(text("SELECT set_config('hnsw.ef_search', :n, true)"), {"n": str(max(40, min(candidates * 4, 1000)))})
