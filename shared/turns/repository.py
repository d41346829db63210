"""All SQL on turns (what a participant sees is the rule ``sees`` of shared.sessions.repository)."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from shared.models import ActivitySession, Turn
from shared.sessions.repository import sees
from shared.turns.schemas import TurnCreate

# One statement, one round trip: the turns travel as one JSON array (one parameter, so the statement
# text is the same for every batch and psycopg converts its placeholders once), numbered in the order
# sent (WITH ORDINALITY); the session's counter moves in the same statement. A turn without a time of
# its own happened when it was appended.
APPEND = """
WITH appended AS (
    INSERT INTO turns (session_id, seq, speaker, content, visible_to, metadata, occurred_at)
    SELECT %(session_id)s, %(first)s + t.i - 1, t.speaker, t.content, t.visible_to, t.metadata,
           coalesce(t.occurred_at, now())
    FROM ROWS FROM (jsonb_to_recordset(CAST(%(turns)s AS jsonb)) AS (
             speaker text, content text, visible_to varchar(63)[], metadata jsonb, occurred_at timestamptz))
         WITH ORDINALITY AS t(speaker, content, visible_to, metadata, occurred_at, i)
    ORDER BY t.i
    RETURNING seq, created_at, occurred_at
), counted AS (
    UPDATE sessions SET turn_count = %(last)s, updated_at = now() WHERE id = %(session_id)s
)
SELECT array_agg(created_at ORDER BY seq), array_agg(occurred_at ORDER BY seq) FROM appended
"""

_TURN_LIST = TypeAdapter(list[TurnCreate])


def append(db: Session, s: ActivitySession, turns: list[TurnCreate]) -> list[tuple[datetime, datetime]]:
    """Insert the turns after the session's last (seq = turn_count + 1, …) and advance its
    ``turn_count`` and ``updated_at``; returns the turns' (created_at, occurred_at), in order.
    The caller holds the session's row lock. ``s`` is kept in step without a flush of its own."""
    if not turns:
        return []
    first, last = s.turn_count + 1, s.turn_count + len(turns)
    doc = _TURN_LIST.dump_json(turns).decode()
    created, occurred = db.connection().exec_driver_sql(
        APPEND, {"session_id": s.id, "first": first, "last": last, "turns": doc}).one()
    set_committed_value(s, "turn_count", last)
    db.expire(s, ["updated_at"])  # now(), as the database has it
    return list(zip(created, occurred, strict=True))


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
