"""All SQL on turns, and the rule of what a participant sees."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, any_, insert, literal, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from shared.models import Turn


def sees(agent_name: str | ColumnElement[str] | QueryableAttribute[str]) -> ColumnElement[bool]:
    """What a participant sees (DESIGN.md section 2, Turns): the turns addressed to everyone, to
    it, or spoken by it. Every read of a participant's turns applies this condition."""
    name = literal(agent_name) if isinstance(agent_name, str) else agent_name
    return or_(Turn.visible_to.is_(None), name == any_(Turn.visible_to), Turn.speaker == name)


def insert_many(db: Session, rows: list[dict[str, Any]]) -> list[datetime]:
    """Insert the turns; returns their created_at, in order. One multi-row INSERT … RETURNING
    (SQLAlchemy's insertmanyvalues) on the table, without building ORM objects."""
    table = cast(Table, Turn.__table__)  # a mapped class's table is a Table
    stmt = insert(table).returning(table.c.created_at, sort_by_parameter_order=True)
    return list(db.execute(stmt, rows).scalars())


def list_after(db: Session, session_id: int, after: int, limit: int, *, viewer: str | None, after_seq: int) -> list[Turn]:
    """The session's turns after a seq, in order; only those ``viewer`` sees when one is given."""
    q = select(Turn).where(Turn.session_id == session_id, Turn.seq > max(after, after_seq)).order_by(Turn.seq).limit(limit)
    if viewer is not None:
        q = q.where(sees(viewer))
    return list(db.execute(q).scalars())
