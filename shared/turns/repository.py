from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from shared.models import Turn
from shared.sessions.repository import visible_to


def insert_many(db: Session, rows: list[dict[str, Any]]) -> list[datetime]:
    """Insert the turns; returns their created_at, in order. One multi-row INSERT … RETURNING
    (SQLAlchemy's insertmanyvalues) on the table, without building ORM objects."""
    table = Turn.__table__
    stmt = insert(table).returning(table.c.created_at, sort_by_parameter_order=True)
    return list(db.execute(stmt, rows).scalars())


def list_after(db: Session, session_id: int, after: int, limit: int, *, viewer: str | None, after_seq: int) -> list[Turn]:
    q = select(Turn).where(Turn.session_id == session_id, Turn.seq > max(after, after_seq)).order_by(Turn.seq).limit(limit)
    if viewer is not None:
        q = q.where(visible_to(viewer))
    return list(db.execute(q).scalars())
