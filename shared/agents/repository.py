"""All SQL on agents."""

from __future__ import annotations

import json
from typing import Any

from shared.kit.connector import execute, fetch_all, fetch_one
from shared.kit.db import UnitOfWork
from shared.models import Agent
from shared.models.base import columns

# The columns of an agent, as its model names them (``Agent(**row._mapping)``).
AGENT_COLUMNS = columns(Agent)

UPSERT = f"""
    INSERT INTO agents (namespace_id, name, description, metadata)
    VALUES (%(namespace_id)s, %(name)s, %(description)s, CAST(%(metadata)s AS jsonb))
    ON CONFLICT (namespace_id, name)
    DO UPDATE SET description = EXCLUDED.description, metadata = EXCLUDED.metadata, updated_at = now()
    RETURNING {AGENT_COLUMNS}, created_at = updated_at AS created
"""
"""Create the agent ``name`` of ``namespace_id``, or set its ``description`` and ``metadata`` (JSON); with ``created``."""

AGENT = f"SELECT {AGENT_COLUMNS} FROM agents WHERE namespace_id = %(namespace_id)s AND name = %(name)s"
"""The agent ``name`` of the namespace ``namespace_id``."""

AGENTS_AFTER = f"""
    SELECT {AGENT_COLUMNS} FROM agents
    WHERE namespace_id = %(namespace_id)s AND (%(after)s::text IS NULL OR name > %(after)s)
    ORDER BY name LIMIT %(limit)s
"""
"""Up to ``limit`` agents of the namespace ``namespace_id`` by name, after the name ``after`` (NULL: from the first)."""

DELETE = "DELETE FROM agents WHERE id = %(id)s"
"""Delete the agent ``id``; its memories, insights and participations go with it (ON DELETE CASCADE)."""


def upsert(db: UnitOfWork, namespace_id: int, name: str, description: str, metadata: dict[str, Any]) -> tuple[Agent, bool]:
    row = fetch_one(db, UPSERT, {"namespace_id": namespace_id, "name": name, "description": description,
                                 "metadata": json.dumps(metadata)})
    assert row is not None  # INSERT ... RETURNING
    values = dict(row._mapping)
    created = bool(values.pop("created"))
    return Agent(**values), created


def get(db: UnitOfWork, namespace_id: int, name: str) -> Agent | None:
    row = fetch_one(db, AGENT, {"namespace_id": namespace_id, "name": name})
    return None if row is None else Agent(**row._mapping)


def list_after(db: UnitOfWork, namespace_id: int, after: str | None, limit: int) -> list[Agent]:
    rows = fetch_all(db, AGENTS_AFTER, {"namespace_id": namespace_id, "after": after, "limit": limit})
    return [Agent(**r._mapping) for r in rows]


def delete_(db: UnitOfWork, agent_id: int) -> None:
    execute(db, DELETE, {"id": agent_id})
