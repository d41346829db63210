"""Agents and their long-term memories."""

from __future__ import annotations

from shared.agents import repository as repo
from shared.agents.schemas import AgentRead, AgentUpsert
from shared.errors import absent
from shared.kit.db import UnitOfWork
from shared.models import Agent, Namespace
from shared.schemas import Page, page_of


def to_read(agent: Agent) -> AgentRead:
    return AgentRead(name=agent.name, description=agent.description, metadata=agent.metadata_,
                     created_at=agent.created_at, updated_at=agent.updated_at)


def put(db: UnitOfWork, ns: Namespace, name: str, body: AgentUpsert) -> tuple[AgentRead, bool]:
    agent, created = repo.upsert(db, ns.id, name, body.description, body.metadata)
    return to_read(agent), created


def get(db: UnitOfWork, ns: Namespace, name: str) -> Agent:
    agent = repo.get(db, ns.id, name)
    if agent is None:
        raise absent("agent", name, ns.name)
    return agent


def list_(db: UnitOfWork, ns: Namespace, *, cursor: str | None, limit: int) -> Page[AgentRead]:
    return page_of(lambda after, n: repo.list_after(db, ns.id, after, n), cursor, str, limit,
                   item=to_read, position=lambda r: r.name)


def delete(db: UnitOfWork, ns: Namespace, name: str) -> None:
    """Delete the agent with its memories, insights and participations."""
    repo.delete_(db, get(db, ns, name).id)

