"""All SQL on turns (what a participant sees is the rule ``sees`` of shared.sessions.repository, as text here)."""

from __future__ import annotations

from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from shared.kit.connector import fetch_all, fetch_one
from shared.models import ActivitySession, Turn
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
    UPDATE sessions SET turn_count = %(last)s, updated_at = now() WHERE id = %(session_id)s RETURNING updated_at
)
SELECT array_agg(created_at ORDER BY seq) AS created, array_agg(occurred_at ORDER BY seq) AS occurred,
       (SELECT updated_at FROM counted) AS updated_at
FROM appended
"""
"""Append turns as seq first to last, the session's new turn_count: session_id, first, last, turns (a JSON array); their times."""

_TURN_LIST = TypeAdapter(list[TurnCreate])


def append(db: Session, s: ActivitySession, turns: list[TurnCreate]) -> list[tuple[datetime, datetime]]:
    """Insert the turns after the session's last (seq = turn_count + 1, …) and advance its
    ``turn_count`` and ``updated_at``; returns the turns' (created_at, occurred_at), in order.
    The caller holds the session's row lock. ``s`` is kept in step without a flush of its own."""
    if not turns:
        return []
    first, last = s.turn_count + 1, s.turn_count + len(turns)
    doc = _TURN_LIST.dump_json(turns).decode()
    row = fetch_one(db, APPEND, {"session_id": s.id, "first": first, "last": last, "turns": doc})
    assert row is not None  # an aggregate: always one row
    # The record is told what the statement wrote, as committed state: nothing to write back.
    set_committed_value(s, "turn_count", last)
    set_committed_value(s, "updated_at", row.updated_at)
    return list(zip(row.created, row.occurred, strict=True))


# What a participant sees (shared.sessions.repository.sees; DESIGN.md section 2, Turns), as a condition on
# a turn row for the text parameter %(viewer)s: the turns addressed to everyone, to it, or spoken by it.
_SEES = "(visible_to IS NULL OR CAST(%(viewer)s AS text) = ANY(visible_to) OR speaker = CAST(%(viewer)s AS text))"

# The columns of a Turn, in the model's names, for ``Turn(**row._mapping)``.
TURN_COLUMNS = ("session_id, seq, speaker, content, visible_to, metadata AS metadata_, created_at, occurred_at, "
                "redacted_at")

LIST_AFTER = f"""
    SELECT {TURN_COLUMNS} FROM turns
    WHERE session_id = %(session_id)s AND seq > %(after)s AND (CAST(%(viewer)s AS text) IS NULL OR {_SEES})
    ORDER BY seq LIMIT %(limit)s
"""
"""A session's turns after a seq, in order: session_id, after, limit, viewer (only the turns it sees; None: all)."""

LATEST_SEEN = f"""
    SELECT {TURN_COLUMNS} FROM turns
    WHERE session_id = %(session_id)s AND seq > %(after)s AND {_SEES}
    ORDER BY seq DESC LIMIT %(limit)s
"""
"""The latest turns a participant sees after a seq, newest first: session_id, viewer, after, limit."""

REDACT = """
    UPDATE turns SET content = '', metadata = '{}'::jsonb, redacted_at = coalesce(redacted_at, now())
    WHERE session_id = %(session_id)s AND seq = %(seq)s
    RETURNING redacted_at
"""
"""Erase a turn's content and metadata, keeping its seq: session_id, seq; when it was first redacted."""


def list_after(db: Session, session_id: int, after: int, limit: int, *, viewer: str | None, after_seq: int) -> list[Turn]:
    """The session's turns after a seq, in order; only those ``viewer`` sees when one is given."""
    rows = fetch_all(db, LIST_AFTER, {"session_id": session_id, "after": max(after, after_seq), "limit": limit,
                                      "viewer": viewer})
    return [Turn(**r._mapping) for r in rows]


def latest_seen(db: Session, session_id: int, viewer: str, after_seq: int, limit: int) -> list[Turn]:
    """The latest turns ``viewer`` sees after ``after_seq`` (its binding), newest first."""
    rows = fetch_all(db, LATEST_SEEN, {"session_id": session_id, "viewer": viewer, "after": after_seq, "limit": limit})
    return [Turn(**r._mapping) for r in rows]


def redact(db: Session, session_id: int, seq: int) -> datetime | None:
    """Erase a turn's content and metadata, keeping its seq; when it was redacted (the first time),
    or None when there is no such turn."""
    row = fetch_one(db, REDACT, {"session_id": session_id, "seq": seq})
    return None if row is None else row.redacted_at
