from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from shared.models import Agent


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

