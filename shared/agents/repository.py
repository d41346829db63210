from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.models import Agent, Memory


def upsert(db: Session, namespace_id: int, name: str, description: str, metadata: dict[str, Any]) -> tuple[Agent, bool]:
    new = insert(Agent).values(namespace_id=namespace_id, name=name, description=description, metadata=metadata)
    stmt = new.on_conflict_do_update(
        index_elements=[Agent.namespace_id, Agent.name],
        set_={"description": new.excluded.description, "metadata": new.excluded.metadata, "updated_at": func.now()},
    ).returning(Agent.id, (Agent.created_at == Agent.updated_at).label("created"))
    agent_id, created = db.execute(stmt).one()
    agent = db.get_one(Agent, agent_id, populate_existing=True)
    return agent, bool(created)


def get(db: Session, namespace_id: int, name: str) -> Agent | None:
    return db.execute(select(Agent).where(Agent.namespace_id == namespace_id, Agent.name == name)).scalar_one_or_none()


def list_after(db: Session, namespace_id: int, after: str | None, limit: int) -> list[Agent]:
    q = select(Agent).where(Agent.namespace_id == namespace_id).order_by(Agent.name).limit(limit)
    if after is not None:
        q = q.where(Agent.name > after)
    return list(db.execute(q).scalars())


def delete_(db: Session, agent_id: int) -> None:
    db.execute(delete(Agent).where(Agent.id == agent_id))


def memories_before(db: Session, agent_id: int, before: int | None, limit: int) -> list[Memory]:
    q = select(Memory).where(Memory.agent_id == agent_id).order_by(Memory.id.desc()).limit(limit)
    if before is not None:
        q = q.where(Memory.id < before)
    return list(db.execute(q).scalars())


# Lock the agent (two sessions integrating it cannot both add one memory) and read its most recent
# memories, the window near-duplicates are looked for in, in one round trip. The window bounds the
# cost of an integration however much the agent remembers.
_LOCK_RECENT_MEMORIES = text("""
    WITH locked AS (SELECT id FROM agents WHERE id = :agent_id FOR UPDATE)
    SELECT m.content FROM locked
    JOIN LATERAL (SELECT content FROM memories WHERE agent_id = locked.id ORDER BY id DESC LIMIT :window) m ON true
""")


def lock_recent_memories(db: Session, agent_id: int, window: int) -> list[str]:
    """Lock the agent for a write of memories; the contents of its ``window`` latest memories."""
    return list(db.execute(_LOCK_RECENT_MEMORIES, {"agent_id": agent_id, "window": window}).scalars())


def insert_memories(db: Session, rows: list[dict[str, Any]]) -> None:
    """Insert memories (agent_id, session_id, session_name, content, importance, evidence, job_id)."""
    if rows:
        db.execute(insert(Memory), rows)
