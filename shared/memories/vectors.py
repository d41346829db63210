"""All SQL of vector recall's storage (pgvector). Embeddings live in `memory_embeddings`, a table the
migrations create only where PostgreSQL has pgvector; without it, recall is full-text only. The
recall statement with a vector ranking is shared.memories.repository.recall_hybrid; the integration
step writes vectors with INSERT_VECTORS there."""

from __future__ import annotations

import functools
from collections.abc import Sequence

from shared.kit import connector
from shared.kit.db import UnitOfWork

AVAILABLE = "SELECT to_regclass('memory_embeddings') IS NOT NULL"
"""Whether this database can hold embeddings (pgvector was there when it was migrated)."""

INDEXING_LOCK = "SELECT pg_advisory_xact_lock(7340210002)"
"""Serialize the processes that create an index at start (several may start at once)."""


@functools.cache
def hnsw_index(dimensions: int) -> str:
    """The HNSW index (cosine distance) for vectors of one length: a vector column without a fixed
    length is indexed through a cast, one partial index per length in use. DDL takes no parameters:
    the length is written into the statement."""
    n = int(dimensions)
    return (f"CREATE INDEX IF NOT EXISTS ix_memory_embeddings_hnsw_{n} ON memory_embeddings "
            f"USING hnsw ((embedding::vector({n})) vector_cosine_ops) WHERE dimensions = {n}")


def available(db: UnitOfWork) -> bool:
    """Whether this database can hold embeddings (pgvector was there when it was migrated)."""
    row = connector.fetch_one(db, AVAILABLE)
    return bool(row is not None and row[0])


def literal(vector: Sequence[float]) -> str:
    """A vector in pgvector's text form, bound as a parameter and cast in SQL."""
    return "[" + ",".join(repr(float(x)) for x in vector) + "]"


def ensure_index(db: UnitOfWork, dimensions: int) -> None:
    """The HNSW index for vectors of this length, created if missing."""
    connector.fetch_one(db, INDEXING_LOCK)
    connector.execute(db, hnsw_index(dimensions))
