"""Statements the tests run to set up or inspect the database, through the service's own connector
(shared.kit.connector), in its one form: ``%(name)s`` parameters, a literal % written %%."""

from __future__ import annotations

from typing import Any

from shared.agents.repository import AGENT_COLUMNS
from shared.kit import connector
from shared.kit.db import Record, UnitOfWork
from shared.models import Agent


def rows(db: UnitOfWork, sql: str, params: dict[str, Any] | None = None) -> list[Record]:
    return connector.fetch_all(db, sql, params)


def row(db: UnitOfWork, sql: str, params: dict[str, Any] | None = None) -> Record | None:
    return connector.fetch_one(db, sql, params)


def value(db: UnitOfWork, sql: str, params: dict[str, Any] | None = None) -> Any:
    """The one value of a statement that returns one row of one column."""
    (only,) = connector.fetch_all(db, sql, params)
    return only[0]


def agent(db: UnitOfWork, agent_id: int) -> Agent:
    """An agent's record, by id."""
    found = connector.fetch_one(db, f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = %(id)s", {"id": agent_id})
    assert found is not None, f"no agent {agent_id}"
    return Agent(**found._mapping)


def run(db: UnitOfWork, sql: str, params: dict[str, Any] | None = None) -> int:
    return connector.execute(db, sql, params)
