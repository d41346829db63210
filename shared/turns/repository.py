"""All SQL on turns, and the rule of what a participant sees."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, DateTime, Table, any_, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.orm import QueryableAttribute, Session

from shared.models import Turn


def sees(agent_name: str | ColumnElement[str] | QueryableAttribute[str]) -> ColumnElement[bool]:
    """What a participant sees (DESIGN.md section 2, Turns): the turns addressed to everyone, to
    it, or spoken by it. Every read of a participant's turns applies this condition."""
    name = literal(agent_name) if isinstance(agent_name, str) else agent_name
    return or_(Turn.visible_to.is_(None), name == any_(Turn.visible_to), Turn.speaker == name)


def insert_many(db: Session, rows: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    """Insert the turns; returns their (created_at, occurred_at), in order. One multi-row INSERT … RETURNING
    (SQLAlchemy's insertmanyvalues) on the table, without building ORM objects."""
    table = cast(Table, Turn.__table__)  # a mapped class's table is a Table
    # A turn without a time of its own happened when it was appended.
    occurred = func.coalesce(bindparam("occurred_at", type_=DateTime(timezone=True)), func.now())
    stmt = insert(table).values(occurred_at=occurred).returning(
        table.c.created_at, table.c.occurred_at, sort_by_parameter_order=True)
    return [(r[0], r[1]) for r in db.execute(stmt, rows)]


def list_after(db: Session, session_id: int, after: int, limit: int, *, viewer: str | None, after_seq: int) -> list[Turn]:
    """The session's turns after a seq, in order; only those ``viewer`` sees when one is given."""
    q = select(Turn).where(Turn.session_id == session_id, Turn.seq > max(after, after_seq)).order_by(Turn.seq).limit(limit)
    if viewer is not None:
        q = q.where(sees(viewer))
    return list(db.execute(q).scalars())


def latest_seen(db: Session, session_id: int, viewer: str, after_seq: int, limit: int) -> list[Turn]:
    """The latest turns ``viewer`` sees after ``after_seq`` (its binding), newest first."""
    return list(db.execute(
        select(Turn).where(Turn.session_id == session_id, Turn.seq > after_seq, sees(viewer))
        .order_by(Turn.seq.desc()).limit(limit)).scalars())


def redact(db: Session, session_id: int, seq: int) -> datetime | None:
    """Erase a turn's content and metadata, keeping its seq; when it was redacted (the first time),
    or None when there is no such turn."""
    return db.execute(
        update(Turn).where(Turn.session_id == session_id, Turn.seq == seq)
        .values(content="", metadata_={}, redacted_at=func.coalesce(Turn.redacted_at, func.now()))
        .returning(Turn.redacted_at)).scalar_one_or_none()
